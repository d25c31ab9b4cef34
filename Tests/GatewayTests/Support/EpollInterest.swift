import Foundation

/// What this process's epoll instances watch on one TCP socket, read from /proc (Linux): the gateway of an
/// in-process `GatewayHarness` registers its sockets in NIO's epoll instance, and `/proc/self/fdinfo/<epoll fd>`
/// lists each watched descriptor with its event mask.
enum EpollInterest {
    /// The event mask registered for this process's IPv4 socket from 127.0.0.1:`localPort` to
    /// 127.0.0.1:`remotePort`; nil if no epoll instance watches it (or it is not found).
    static func events(localPort: Int, remotePort: Int) -> UInt32? {
        guard let inode = socketInode(localPort: localPort, remotePort: remotePort), let fd = descriptor(ofSocket: inode) else { return nil }
        let fdinfo = "/proc/self/fdinfo"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: fdinfo)) ?? [] {
            guard let text = read("\(fdinfo)/\(entry)"), text.contains("tfd:") else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix("tfd:") {
                // tfd:       25 events:       19 data: ...
                let words = line.split(separator: " ", omittingEmptySubsequences: true)
                guard words.count >= 4, Int(words[1]) == fd, let events = UInt32(words[3], radix: 16) else { continue }
                return events
            }
        }
        return nil
    }

    /// EPOLLIN.
    static let readable: UInt32 = 0x1

    /// A /proc file whole: its size says 0 and each read(2) gives about a page, so it is read to EOF (a
    /// `String(contentsOfFile:)` stopped after the first page once the tables had grown).
    private static func read(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        var data = Data()
        while let chunk = try? handle.read(upToCount: 65536), !chunk.isEmpty { data.append(chunk) }
        return String(decoding: data, as: UTF8.self)
    }

    private static func socketInode(localPort: Int, remotePort: Int) -> String? {
        guard let table = read("/proc/net/tcp") else { return nil }
        let local = String(format: "0100007F:%04X", localPort)
        let remote = String(format: "0100007F:%04X", remotePort)
        for line in table.split(separator: "\n").dropFirst() {
            let columns = line.split(separator: " ", omittingEmptySubsequences: true)
            if columns.count > 9, columns[1] == local, columns[2] == remote { return String(columns[9]) }
        }
        return nil
    }

    private static func descriptor(ofSocket inode: String) -> Int? {
        let fds = "/proc/self/fd"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: fds)) ?? [] {
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fds)/\(entry)")) == "socket:[\(inode)]" { return Int(entry) }
        }
        return nil
    }
}
