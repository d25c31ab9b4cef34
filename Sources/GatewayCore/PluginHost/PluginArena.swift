import PluginAPI

/// Memory for the views a host function hands to a plugin during one hook call: strings built for the call
/// (header values, request attributes) are copied here and released when the hook returns.
///
/// One arena per thread, reused by every hook call on it (hook calls on one thread never overlap): small
/// views are bump-allocated in a chunk kept for the life of the thread, so the request path allocates nothing
/// here in the steady state; a view larger than the chunk gets its own allocation, freed at `reset`.
package final class PluginArena {
    /// This thread's arena.
    package static var current: PluginArena {
        @inline(__always) get { PluginCallContext.forThisThread.arena }
    }

    private let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 1)
    private var used = 0
    private var large: [UnsafeMutableRawBufferPointer] = []

    package func view(_ string: String) -> gw_str {
        var string = string
        return string.withUTF8 { view(UnsafeRawBufferPointer($0)) }
    }

    /// A part of a string (a request's path), copied from the string's own bytes: no String made of it.
    package func view(_ text: Substring) -> gw_str {
        if let view = text.utf8.withContiguousStorageIfAvailable({ view(UnsafeRawBufferPointer($0)) }) { return view }
        return view(String(text))
    }

    package func view(_ bytes: UnsafeRawBufferPointer) -> gw_str {
        guard bytes.count > 0, let base = bytes.baseAddress else { return gw_str(ptr: nil, len: 0) }
        let target: UnsafeMutableRawPointer
        if used + bytes.count <= chunk.count {
            target = chunk.baseAddress! + used
            used += bytes.count
        } else {
            let block = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
            large.append(block)
            target = block.baseAddress!
        }
        target.copyMemory(from: base, byteCount: bytes.count)
        return gw_str(ptr: target.assumingMemoryBound(to: CChar.self), len: bytes.count)
    }

    /// Ends the hook call: every view handed out since the last reset becomes invalid.
    package func reset() {
        used = 0
        if !large.isEmpty {
            for block in large { block.deallocate() }
            large.removeAll(keepingCapacity: true)
        }
    }

    deinit {
        reset()
        chunk.deallocate()
    }
}

/// Bytes allocated once and never moved, so that views of them stay valid as long as their owner lives
/// (a connection's `ClientIdentity`): reading a certificate field allocates nothing per request.
/// The bytes are written once, in init, and only read after.
package final class StableBytes: Sendable {
    private let storage: ForeignPointer<UnsafeMutableRawBufferPointer>
    package var buffer: UnsafeMutableRawBufferPointer {
        @inline(__always) get { storage.raw }
    }

    package init(_ bytes: some Collection<UInt8>) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        _ = buffer.initializeMemory(as: UInt8.self, from: bytes)
        storage = ForeignPointer(buffer)
        count = bytes.count
    }

    package convenience init(_ string: String) { self.init(Array(string.utf8)) }

    package let count: Int

    package var view: gw_str { gw_str(ptr: buffer.baseAddress!.assumingMemoryBound(to: CChar.self), len: count) }

    deinit { buffer.deallocate() }
}
