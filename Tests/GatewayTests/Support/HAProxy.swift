import Foundation

/// A real HAProxy (Debian's, installed by scripts/test) in TCP mode in front of gateways: one frontend on
/// 127.0.0.1:`front` and the `backend` section's lines as given (servers, checks, balancing). Started in the
/// foreground (`-db`); `stop()` or deinit ends it.
final class HAProxy {
    let process = Process()

    init(front: Int, backend: String, configPath: String, maxConnections: Int = 1000) throws {
        try """
        global
          maxconn \(maxConnections)
        defaults
          mode tcp
          timeout connect 5s
          timeout client 30s
          timeout server 30s
        frontend front
          bind 127.0.0.1:\(front)
          default_backend gateways
        backend gateways
        \(backend)

        """.write(toFile: configPath, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/haproxy")
        process.arguments = ["-db", "-f", configPath]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        if process.isRunning { process.terminate() }
    }

    deinit { stop() }
}

extension Array where Element == UInt8 {
    /// Bytes from hex text (two digits each, as the fixtures and Python helpers write them).
    init(hex: String) {
        self.init()
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            append(UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)!)
        }
    }
}
