/// A pointer fixed when its owner is created, to memory that is not written after it is shared: a plugin's
/// static descriptor, bytes the host wrote once, or a plugin instance's state, which the ABI requires the
/// plugin itself to make safe for concurrent hooks. The one audited place that lets such pointers cross
/// threads; the types holding them are then plainly Sendable.
// @unchecked Sendable: the pointer never changes and its memory is immutable or synchronised by its owner.
package struct ForeignPointer<Pointer>: @unchecked Sendable {
    package let raw: Pointer

    @inline(__always)
    package init(_ raw: Pointer) {
        self.raw = raw
    }
}
