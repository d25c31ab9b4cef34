/// Generates HTTP/1 requests (and responses) for differential testing: mostly well-formed requests built from a grammar, with
/// the framing headers, line endings, separators and bytes that request smuggling is made of mixed in, chunked
/// bodies with extensions and trailers, a pipelined second request, and random byte mutations on top. Seeded:
/// the same seed gives the same requests.
package struct HTTP1MessageGenerator {
    private var state: UInt64

    package init(seed: UInt64) { state = seed }

    /// SplitMix64.
    private mutating func random() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private mutating func below(_ n: Int) -> Int { Int(random() % UInt64(n)) }
    private mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    private mutating func pick<T>(_ choices: [T]) -> T { choices[below(choices.count)] }

    /// Bytes that matter to an HTTP/1 parser.
    private static let interesting: [UInt8] = [0, 9, 10, 13, 32, 34, 44, 58, 59, 61, 92, 127, 128, 255, 0x0B, 0x0C, 65, 48, 45]

    private mutating func eol() -> String { chance(96) ? "\r\n" : pick(["\n", "\r", "\r\r\n", "\n\r"]) }

    private mutating func method() -> String {
        chance(85) ? pick(["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH"])
            : pick(["CONNECT", "M-SEARCH", "QUERY", "PROPFIND", "get", "FOO", "PRI", "GE T", "", "GET\t", "SOURCE", "PURGE", "LINK"])
    }

    private mutating func target() -> String {
        chance(80) ? pick(["/", "/a/b?c=d&e=f", "/x%20y", "/api/v1/items/42"])
            : pick(["*", "http://h.example/x", "https://h.example:8443/", "/a#frag", "", "/a b", "/\u{7f}", "/é", "/a\"b", "/{}|\\^`", "//", "/?"])
    }

    private mutating func version() -> String {
        chance(90) ? pick(["HTTP/1.1", "HTTP/1.0"])
            : pick(["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "http/1.1", "HTTP/1.10", "HTTP/11", "", "HTTP/1.1 ", "HTTP/3.0", "HTTP/1"])
    }

    private mutating func randomBytes(_ count: Int) -> String {
        var bytes: [UInt8] = []
        for _ in 0..<count {
            bytes.append(chance(60) ? UInt8(97 + below(26)) : Self.interesting[below(Self.interesting.count)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private enum Framing { case none, length(Int), chunked }

    private mutating func headers(framing: inout Framing) -> [String] {
        var lines: [String] = []
        if chance(90) { lines.append(pick(["Host: h.example", "host: h.example:8443", "Host:h.example", "Host: ", "Host:  h.example  "])) }
        for _ in 0..<below(5) {
            switch below(14) {
            case 0, 1:
                let length = below(40)
                framing = .length(length)
                lines.append(chance(85) ? "Content-Length: \(length)"
                    : pick(["Content-Length: \(length) ", "Content-Length:  \(length)", "Content-Length: +\(length)", "Content-Length: \(length),\(length)",
                            "Content-Length: 0x\(length)", "Content-Length: -1", "Content-Length: 99999999999999999999", "content-length: \(length)",
                            "Content-Length:", "Content-Length: \(length)\t", "Content-Length : \(length)", "Content-Length: 1 2"]))
            case 2, 3:
                framing = .chunked
                lines.append(chance(75) ? "Transfer-Encoding: chunked"
                    : pick(["Transfer-Encoding: gzip, chunked", "Transfer-Encoding: chunked, gzip", "Transfer-Encoding: Chunked", "Transfer-Encoding:  chunked ",
                            "Transfer-Encoding: chunked, chunked", "Transfer-Encoding: identity", "Transfer-Encoding: ", "Transfer-Encoding: chunked;q=1",
                            "Transfer-Encoding: , chunked", "Transfer-Encoding: \"chunked\"", "Transfer-Encoding: xchunked", "Transfer-Encoding: chunked\u{0B}"]))
            case 4: lines.append(pick(["Connection: close", "Connection: keep-alive", "Connection: upgrade", "Connection: Upgrade, close"]))
            case 5: lines.append(pick(["Upgrade: websocket", "Upgrade: h2c", "Expect: 100-continue", "TE: trailers"]))
            case 6: lines.append(" folded continuation")
            case 7: lines.append("\tfolded")
            case 8: lines.append("X-\(randomBytes(1 + below(6))): \(randomBytes(below(12)))")
            case 9: lines.append("\(randomBytes(1 + below(8))): v")
            case 10: lines.append(pick(["X-A : b", ": empty-name", "X-A", "X A: b", "X-A:\tb\t", "X-A: a\u{0}b", "X-A: \u{80}\u{ff}", "X-A: a\rb"]))
            default: lines.append(pick(["Accept: */*", "User-Agent: curl/7.88.1", "X-Forwarded-For: 10.0.0.1", "Cookie: a=b; c=d"]))
            }
        }
        return lines
    }

    private mutating func body(_ framing: Framing) -> String {
        switch framing {
        case .none:
            return chance(10) ? randomBytes(below(8)) : ""
        case .length(let length):
            return randomBytes(chance(90) ? length : below(40))
        case .chunked:
            var text = ""
            for _ in 0..<below(4) {
                let size = 1 + below(20)
                let sizeText = chance(90) ? String(size, radix: 16) : pick([String(size, radix: 16, uppercase: true), "0" + String(size, radix: 16), "\(size)x", "-\(size)", " \(size)"])
                let extensions = chance(80) ? "" : pick([";a=b", ";a", "; a = \"q\\\"x\"", ";a=\"unterminated", ";", ";a=b\u{0}", " ;a", ";a=\u{80}"])
                text += sizeText + extensions + eol() + randomBytes(chance(90) ? size : below(24)) + (chance(95) ? "\r\n" : pick(["\n", "", "xx"]))
            }
            text += "0" + eol()
            if chance(15) { text += pick(["X-Trailer: t\r\n", "Bad Trailer: t\r\n", "X-T: \u{0}\r\n", " folded\r\n"]) }
            text += chance(95) ? "\r\n" : ""
            return text
        }
    }

    private mutating func request() -> String {
        var framing = Framing.none
        let separator = chance(97) ? " " : pick(["  ", "\t", ""])
        var text = method() + separator + target() + (chance(98) ? " " : "  ") + version() + eol()
        for line in headers(framing: &framing) { text += line + eol() }
        text += eol()
        text += body(framing)
        return text
    }

    private mutating func response() -> String {
        var framing = Framing.none
        let status = chance(85) ? pick(["200 OK", "201 Created", "204 No Content", "304 Not Modified", "404 Not Found", "502 Bad Gateway"])
            : pick(["100 Continue", "103 Early Hints", "101 Switching Protocols", "200", "200 ", "999 Odd", "099 Low", "20 OK", "2000 OK", "200 O\tK", "200 caf\u{e9}"])
        let version = chance(90) ? pick(["HTTP/1.1", "HTTP/1.0"]) : pick(["HTTP/2.0", "HTTP/1.2", "http/1.1", "HTTP/1.10", ""])
        var text = version + (chance(97) ? " " : "  ") + status + eol()
        for line in headers(framing: &framing) where !line.lowercased().hasPrefix("host") { text += line + eol() }
        text += eol()
        let code = Int(status.prefix(3)) ?? 200
        if (100..<200).contains(code) || code == 204 || code == 304 { return text + (chance(10) ? randomBytes(below(6)) : "") }
        if case .none = framing, chance(50) { return text + randomBytes(below(30)) }
        return text + body(framing)
    }

    /// One input of responses: one or two, maybe an interim one first, maybe a few random byte mutations.
    package mutating func nextResponses() -> [UInt8] {
        var text = chance(10) ? "HTTP/1.1 100 Continue\r\n\r\n" : ""
        text += response()
        if chance(25) { text += response() }
        return mutated(Array(text.utf8))
    }

    private mutating func mutated(_ input: [UInt8]) -> [UInt8] {
        var bytes = input
        if chance(30) {
            for _ in 0..<(1 + below(3)) {
                let position = bytes.isEmpty ? 0 : below(bytes.count)
                switch below(3) {
                case 0 where !bytes.isEmpty: bytes[position] = Self.interesting[below(Self.interesting.count)]
                case 1: bytes.insert(Self.interesting[below(Self.interesting.count)], at: position)
                default: if !bytes.isEmpty { bytes.remove(at: position) }
                }
            }
        }
        return bytes
    }

    /// One input: one or two requests, maybe an empty line first, maybe a few random byte mutations.
    package mutating func next() -> [UInt8] {
        var text = chance(3) ? pick(["\r\n", "\r\n\r\n", "\n"]) : ""
        text += request()
        if chance(25) { text += request() }
        return mutated(Array(text.utf8))
    }
}
