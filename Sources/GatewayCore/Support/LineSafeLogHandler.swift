import Logging

/// Wraps the process's log handler so that no input can forge or split a log line: CR, LF, tabs and every
/// other control character (C0, DEL, C1) in the message and in every metadata value are written escaped
/// (`\n`, `\r`, `\t`, `\u{1b}`...). What reaches a log field can come from a client (a ClientHello's server
/// name, a self-signed certificate's CN in a rejection's detail, a request path) or a backend; a terminal or a
/// line-based log shipper sees one line per event whatever it was. Backslashes stay as they are, so RFC 2253
/// names read as usual. Costs a scan of each logged string; nothing on a path that does not log.
package struct LineSafeLogHandler: LogHandler {
    private var wrapped: any LogHandler

    package init(wrapping handler: any LogHandler) {
        self.wrapped = handler
    }

    package var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    package var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue.mapValues(Self.escaped) }
    }

    package var metadataProvider: Logger.MetadataProvider? {
        get { wrapped.metadataProvider }
        set { wrapped.metadataProvider = newValue }
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue.map(Self.escaped) }
    }

    package func log(event: LogEvent) {
        var event = event
        let message = event.message.description
        if Self.needsEscaping(message) { event.message = Logger.Message(stringLiteral: Self.escaped(message)) }
        event.metadata = event.metadata?.mapValues(Self.escaped)
        wrapped.log(event: event)
    }

    /// True when `text` holds a control character.
    package static func needsEscaping(_ text: String) -> Bool {
        text.unicodeScalars.contains { isControl($0) }
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value < 0xA0) || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    /// `text` with every control character escaped.
    package static func escaped(_ text: String) -> String {
        guard needsEscaping(text) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where isControl(scalar): out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func escaped(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): return needsEscaping(text) ? .string(escaped(text)) : value
        case .stringConvertible(let convertible):
            let text = convertible.description
            return needsEscaping(text) ? .string(escaped(text)) : value
        case .array(let items): return .array(items.map(escaped))
        case .dictionary(let entries): return .dictionary(entries.mapValues(escaped))
        }
    }
}
