import PluginAPI

/// Memory for the views a host function hands to a plugin during one hook call: strings built for the call
/// (header values, request attributes) are copied here and freed when the hook returns.
struct PluginArena {
    private var blocks: [UnsafeMutableRawBufferPointer] = []

    mutating func view(_ string: String) -> gw_str {
        var string = string
        return string.withUTF8 { view(UnsafeRawBufferPointer($0)) }
    }

    mutating func view(_ bytes: UnsafeRawBufferPointer) -> gw_str {
        guard bytes.count > 0, let base = bytes.baseAddress else { return gw_str(ptr: nil, len: 0) }
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        block.copyMemory(from: UnsafeRawBufferPointer(start: base, count: bytes.count))
        blocks.append(block)
        return gw_str(ptr: block.baseAddress!.assumingMemoryBound(to: CChar.self), len: bytes.count)
    }

    mutating func reset() {
        for block in blocks { block.deallocate() }
        blocks.removeAll(keepingCapacity: true)
    }
}

/// Bytes allocated once and never moved, so that views of them stay valid as long as their owner lives
/// (a connection's `ClientIdentity`): reading a certificate field allocates nothing per request.
final class StableBytes: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer

    init(_ bytes: some Collection<UInt8>) {
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        _ = buffer.initializeMemory(as: UInt8.self, from: bytes)
        count = bytes.count
    }

    convenience init(_ string: String) { self.init(Array(string.utf8)) }

    let count: Int

    var view: gw_str { gw_str(ptr: buffer.baseAddress!.assumingMemoryBound(to: CChar.self), len: count) }

    deinit { buffer.deallocate() }
}
