/// An error raised by the gateway's core, with a stable code, a readable reason and where it was raised.
///
/// Shaped like swift-service-lifecycle's `ServiceGroupError`: the code set can grow without breaking callers.
public struct GatewayError: Error, CustomStringConvertible, Hashable, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: Hashable, Sendable {
            case bindFailed
            case invalidArgument
        }
        private let backing: Backing
        public static let bindFailed = Code(backing: .bindFailed)
        /// A command-line argument or input file the operator gave is unusable.
        public static let invalidArgument = Code(backing: .invalidArgument)
        public var description: String { String(describing: backing) }
    }

    public let code: Code
    public let reason: String
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
    }

    public var description: String { reason }
}
