#if canImport(Glibc)
import Glibc
#endif

/// The strings this thread's plugins passed to the host most recently, so that the same header name or value
/// passed again is not copied into a new `String` (an allocation each) on every request: ClientCertHeaders adds
/// the same identity headers, from the same memory, on every request of a connection. A slot is found by where
/// the bytes are and a hit is confirmed by comparing them, so memory a plugin reuses for other bytes is never
/// mistaken for the old string. Direct-mapped and bounded: 64 slots, each up to `maxLength` bytes.
package final class PluginStringCache {
    private static let slots = 64
    /// Longer values (whole PEM chains) are copied every time rather than kept.
    package static let maxLength = 8 * 1024
    private var addresses = [UInt](repeating: 0, count: slots)
    private var strings = [String](repeating: "", count: slots)
    package private(set) var hits = 0

    package init() {}

    /// `bytes` as a String (invalid UTF-8 repaired, as `gw_str.string`), from the cache when the same bytes
    /// at the same place were seen last in their slot.
    package func string(_ bytes: UnsafeRawBufferPointer) -> String {
        // Up to 15 bytes a String is stored inline, without an allocation to save.
        guard let base = bytes.baseAddress, bytes.count > 15, bytes.count <= Self.maxLength else {
            return String(decoding: bytes, as: UTF8.self)
        }
        let address = UInt(bitPattern: base)
        let slot = Int(((address &>> 4) ^ (address &>> 10) ^ UInt(bytes.count)) & UInt(Self.slots - 1))
        if addresses[slot] == address {
            var cached = strings[slot]
            let same = cached.withUTF8 { stored in stored.count == bytes.count && memcmp(stored.baseAddress!, base, bytes.count) == 0 }
            if same {
                hits &+= 1
                return cached
            }
        }
        let made = String(decoding: bytes, as: UTF8.self)
        addresses[slot] = address
        strings[slot] = made
        return made
    }
}
