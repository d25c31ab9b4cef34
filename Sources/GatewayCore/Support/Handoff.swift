/// Carries a non-Sendable value across a thread boundary where the hand-over itself orders the accesses: the
/// sender stops touching the value until the receiver is done with it and hands it back (a future completing,
/// or a wait), so one thread at a time owns it. The one audited place that asserts this.
// @unchecked Sendable: ownership passes with the hand-over, never shared (see above).
package struct Handoff<Value>: @unchecked Sendable {
    package let value: Value

    package init(_ value: Value) {
        self.value = value
    }
}
