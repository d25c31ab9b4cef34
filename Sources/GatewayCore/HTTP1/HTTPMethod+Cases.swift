import NIOHTTP1

extension HTTPMethod {
    /// `== .HEAD` without NIO's `==`, which compares `rawValue`s (two String conversions per comparison, ~100
    /// instructions; the response path asked four times per request).
    @inline(__always)
    package var isHEAD: Bool {
        if case .HEAD = self { return true }
        return false
    }

    @inline(__always)
    package var isCONNECT: Bool {
        if case .CONNECT = self { return true }
        return false
    }
}
