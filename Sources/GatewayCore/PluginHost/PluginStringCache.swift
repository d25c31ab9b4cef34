#if canImport(Glibc)
import Glibc
#endif

/// The strings this thread's plugins passed to the host, so that the same header name or value passed again is
/// not copied into a new `String` (an allocation each) on every request: a plugin that sets or removes the
/// same headers, from the same memory, on every request (`set_header`, `remove_header`, and every edit of a
/// response head; a request header added with `add_header` or `add_headers` stays bytes in the request's
/// `HeaderBlock` and never becomes a String). An entry is found by where the
/// bytes are and how many there are, and a hit is confirmed by comparing them, so memory a plugin reuses for
/// other bytes is never mistaken for the old string.
///
/// An open-addressing table (linear probing) that is emptied when it holds `limit` entries: any working set
/// of up to `limit` strings hits on every pass after its first, wherever the plugin's memory happens to be.
/// (A direct-mapped cache evicted strings whose addresses collided, so the allocations per request changed
/// from process to process with the heap layout.) Bounded: `capacity` entries, each up to `maxLength` bytes.
package final class PluginStringCache {
    private static let capacity = 128
    /// Entries held before the table is emptied; below `capacity`, so probing always ends at an empty slot.
    package static let limit = 96
    /// Longer values (whole PEM chains) are copied every time rather than kept.
    package static let maxLength = 8 * 1024
    private var addresses = [UInt](repeating: 0, count: capacity)
    private var strings = [String](repeating: "", count: capacity)
    private var used = 0
    package private(set) var hits = 0

    package init() {}

    /// `bytes` as a String (invalid UTF-8 repaired, as `gw_str.string`), from the table when the same bytes at
    /// the same place were seen before.
    package func string(_ bytes: UnsafeRawBufferPointer) -> String {
        // Up to 15 bytes a String is stored inline, without an allocation to save.
        guard let base = bytes.baseAddress, bytes.count > 15, bytes.count <= Self.maxLength else {
            return String(decoding: bytes, as: UTF8.self)
        }
        let address = UInt(bitPattern: base)
        let mask = Self.capacity - 1
        let home = Int(truncatingIfNeeded: ((address &>> 4) ^ (address &>> 11) ^ (UInt(bytes.count) &* 0x9E37)) & UInt(mask))
        var slot = home
        while addresses[slot] != 0 {
            if addresses[slot] == address {
                var cached = strings[slot]
                let (sameLength, sameBytes) = cached.withUTF8 { stored -> (Bool, Bool) in
                    guard stored.count == bytes.count else { return (false, false) }
                    return (true, memcmp(stored.baseAddress!, base, bytes.count) == 0)
                }
                if sameBytes {
                    hits &+= 1
                    return cached
                }
                if sameLength {
                    // The plugin reused this memory for other bytes: the entry now holds them.
                    let made = String(decoding: bytes, as: UTF8.self)
                    strings[slot] = made
                    return made
                }
            }
            slot = (slot + 1) & mask
        }
        let made = String(decoding: bytes, as: UTF8.self)
        if used == Self.limit {
            for index in 0..<Self.capacity where addresses[index] != 0 {
                addresses[index] = 0
                strings[index] = ""
            }
            used = 0
            slot = home
        }
        addresses[slot] = address
        strings[slot] = made
        used += 1
        return made
    }
}
