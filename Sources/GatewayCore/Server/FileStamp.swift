#if canImport(Glibc)
import Glibc
#endif

/// What identifies a file's content without reading it: device, inode, size, modification and change times,
/// taken with `stat` (through symlinks, so a Kubernetes Secret's `..data` swap changes the stamp of every
/// file behind it). A missing or unreadable file has the stamp `missing`.
package struct FileStamp: Hashable, Sendable, CustomStringConvertible {
    private var device: UInt64 = 0
    private var inode: UInt64 = 0
    private var size: Int64 = -1
    private var modified: Int64 = 0
    private var changed: Int64 = 0

    package static let missing = FileStamp()

    private init() {}

    /// The file's stamp now.
    package init(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            self = .missing
            return
        }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(info.st_mtim.tv_nsec)
        changed = Int64(info.st_ctim.tv_sec) &* 1_000_000_000 &+ Int64(info.st_ctim.tv_nsec)
    }

    package var description: String { self == .missing ? "missing" : "inode \(inode), \(size) bytes" }
}
