#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a plugin derives once per connection and reuses for each of its requests: a serialized log fragment,
/// a prepared header list. Everything a connection handle shows (listener, client address, TLS parameters,
/// the client certificate) stays the same while the connection lives, and `GW_ATTR_CONNECTION_ID` names the
/// connection, uniquely in the process.
///
/// Use one cache per thread (`PerThread`): one thread runs one hook at a time, so a thread's cache needs no
/// lock (a connection's hooks run on its event loop's thread; a blocking plugin's `on_request_headers` on a
/// worker thread, which then has a cache of its own). Direct-mapped by instance tag and connection id: a
/// connection whose slot another one took is derived again, which costs what a miss costs and is never
/// wrong; an entry stays until another connection takes its slot. One thing a connection shows can change:
/// its verification result, when an open connection is found revoked after a reload (`on_connection` runs
/// again, and its next request is refused before any hook).
///
///     static let cache = PerThread { ConnectionCache<[UInt8]>() }
///     ...
///     if let id = request.integer(GW_ATTR_CONNECTION_ID) {
///         let fragment = Self.cache.current.value(tag: tag, connection: id) { build(request) }
///     }
public final class ConnectionCache<Value> {
    @usableFromInline
    struct Slot {
        @usableFromInline var tag: UInt64 = 0
        @usableFromInline var connection: Int64 = -1
        @usableFromInline var value: Value?
        @usableFromInline init() {}
    }

    @usableFromInline var slots: [Slot]
    @usableFromInline let mask: Int

    /// `slots` is rounded up to a power of two.
    public init(slots: Int = 64) {
        var count = 1
        while count < max(slots, 1) { count <<= 1 }
        self.slots = [Slot](repeating: Slot(), count: count)
        mask = count - 1
    }

    /// The value of `connection` for instance `tag`, made by `make` (and kept) if this cache has none.
    @inlinable
    public func value(tag: UInt64, connection: Int64, make: () -> Value) -> Value {
        let index = Int(truncatingIfNeeded: UInt64(bitPattern: connection) &+ tag &* 0x9E37_79B9_7F4A_7C15) & mask
        if slots[index].tag == tag, slots[index].connection == connection, let value = slots[index].value { return value }
        let value = make()
        slots[index].tag = tag
        slots[index].connection = connection
        slots[index].value = value
        return value
    }
}

/// One object per thread, made on the thread's first use of `current` and released when the thread ends.
/// Keep it in a `static let`: its thread-specific key lives as long as the process.
public final class PerThread<Value: AnyObject>: @unchecked Sendable {
    @usableFromInline let key: pthread_key_t
    @usableFromInline let make: @Sendable () -> Value

    public init(_ make: @escaping @Sendable () -> Value) {
        var key = pthread_key_t()
        let created = pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<AnyObject>.fromOpaque(pointer).release() }
        }
        precondition(created == 0, "pthread_key_create failed: \(created)")
        self.key = key
        self.make = make
    }

    /// This thread's object.
    @inlinable
    public var current: Value {
        if let pointer = pthread_getspecific(key) { return Unmanaged<Value>.fromOpaque(pointer).takeUnretainedValue() }
        return makeCurrent()
    }

    @usableFromInline @inline(never)
    func makeCurrent() -> Value {
        let value = make()
        pthread_setspecific(key, Unmanaged.passRetained(value).toOpaque())
        return value
    }
}
