#if canImport(Glibc)
import Glibc
#endif

/// The part of a request line that is the same for every request of a connection (listener, client address
/// and port, TLS version and cipher, the certificate's subject, issuer, serial, fingerprint and SANs),
/// serialized once per connection and copied into each line: reading ~20 attributes and escaping them for
/// every request was most of the plugin's cost. One cache per thread (an event loop serves a connection on
/// one thread, so no lock), direct-mapped by instance and connection id (both unique in the process), 64
/// slots: a connection evicted by another comes back at the cost of one rebuild.
final class ConnectionFragments {
    private struct Slot {
        var tag: UInt64 = 0
        var connection: Int64 = -1
        var bytes: [UInt8] = []
    }

    private static let slotCount = 64
    private var slots = [Slot](repeating: Slot(), count: slotCount)

    /// The fragment of `connection` for instance `tag`, built by `build` on a miss.
    func fragment(tag: UInt64, connection: Int64, build: () -> [UInt8]) -> [UInt8] {
        let index = Int(truncatingIfNeeded: UInt64(bitPattern: connection) &+ tag &* 0x9E37_79B9_7F4A_7C15) & (Self.slotCount - 1)
        if slots[index].tag == tag, slots[index].connection == connection { return slots[index].bytes }
        let bytes = build()
        slots[index] = Slot(tag: tag, connection: connection, bytes: bytes)
        return bytes
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<ConnectionFragments>.fromOpaque(pointer).release() }
        }
        return key
    }()

    /// This thread's cache.
    static var current: ConnectionFragments {
        if let pointer = pthread_getspecific(key) { return Unmanaged<ConnectionFragments>.fromOpaque(pointer).takeUnretainedValue() }
        let cache = ConnectionFragments()
        pthread_setspecific(key, Unmanaged.passRetained(cache).toOpaque())
        return cache
    }
}
