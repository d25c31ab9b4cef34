import Foundation
import NIOCore
import NIOPosix

/// A real DNS server (Debian's dnsmasq, installed by scripts/test) on 127.0.0.1 at a free UDP port, answering
/// only from a hosts file (no upstream, no /etc/hosts) with a TTL of 1 s. `setHosts` rewrites the file and sends
/// SIGHUP, after which dnsmasq answers with the new addresses; `stop()` (or deinit) ends it.
///
/// Two things of the test process must not reach dnsmasq, so a small Python parent starts it: the signal mask
/// (the test's threads block most signals, and dnsmasq, which uses plain handlers, would never see SIGHUP or
/// SIGTERM), and the descriptor through which Foundation's `Process` learns of the child's exit (dnsmasq
/// closes what it inherits, which Foundation takes for an exit: its monitor thread then blocks in `waitpid`
/// and no other child of the test is reaped).
final class Dnsmasq {
    let process = Process()
    let port: Int
    private let hostsPath: String
    private let pidPath: String

    init(hosts: [String], directory: String) throws {
        port = try Self.unusedUDPPort()
        hostsPath = directory + "/dnsmasq-hosts"
        pidPath = directory + "/dnsmasq-\(port).pid"
        try Self.write(hosts, to: hostsPath)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [
            "-c", "import signal, subprocess, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); "
                + "p = subprocess.Popen(sys.argv[2:]); open(sys.argv[1], 'w').write(str(p.pid)); sys.exit(p.wait())",
            pidPath, "/usr/sbin/dnsmasq", "--keep-in-foreground", "--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--addn-hosts=\(hostsPath)", "--local-ttl=1", "--pid-file=", "--user=\(NSUserName())", "--log-facility=-",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready once it answers.
        for _ in 0..<50 {
            if (try? SystemQuery.answers(port: port)) == true { return }
            guard process.isRunning else { break }  // the port was taken meanwhile
            usleep(100_000)
        }
        stop()
        throw NSError(domain: "Dnsmasq", code: 1, userInfo: [NSLocalizedDescriptionKey: "dnsmasq did not start on port \(port)"])
    }

    /// A started dnsmasq; a free port can be taken between the probe and dnsmasq's bind, so up to three tries.
    static func start(hosts: [String], directory: String) throws -> Dnsmasq {
        var lastError: (any Error)?
        for _ in 0..<3 {
            do { return try Dnsmasq(hosts: hosts, directory: directory) } catch { lastError = error }
        }
        throw lastError!
    }

    func setHosts(_ hosts: [String]) throws {
        try Self.write(hosts, to: hostsPath)
        if let pid = dnsmasqPID { kill(pid, SIGHUP) }
    }

    private var dnsmasqPID: pid_t? {
        (try? String(contentsOfFile: pidPath, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    private var stopped = false

    /// Ends dnsmasq once (later calls do nothing: its pid may belong to another process by then).
    func stop() {
        guard !stopped else { return }
        stopped = true
        if let pid = dnsmasqPID { kill(pid, SIGTERM) }
        if process.isRunning { process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: pidPath)
    }

    deinit { stop() }

    private static func write(_ hosts: [String], to path: String) throws {
        try (hosts.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
    }

    private static func unusedUDPPort() throws -> Int {
        let channel = try DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
        let port = channel.localAddress!.port!
        try channel.close().wait()
        return port
    }

    /// A plain query for `ready.test`'s A record with a POSIX socket: true when any response arrives.
    private enum SystemQuery {
        static func answers(port: Int) throws -> Bool {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let query: [UInt8] = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5] + Array("ready".utf8) + [4] + Array("test".utf8) + [0, 0, 1, 0, 1]
            let sent = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, query, query.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard sent == query.count else { return false }
            var buffer = [UInt8](repeating: 0, count: 512)
            return recv(fd, &buffer, buffer.count, 0) > 0
        }
    }
}
