import Foundation
import GatewayCore
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// Differential testing of the gateway's request parser (`HTTP1RequestParser`) against llhttp (NIO's
/// `HTTPRequestDecoder`, which the gateway used before): the same bytes through both, and the messages each made
/// of them compared. The two must agree on what they accept (method, target, version, header list, body bytes,
/// where each message ends) and on where they refuse, or differ in one of the documented ways of `Deliberate`:
/// places where the gateway is stricter on purpose, or where llhttp stops reading. Used by
/// `HTTP1DifferentialTests` (seeded, bounded) and by the `http1-request` fuzz target (libFuzzer).
package enum HTTP1Differential {
    /// One message as a parser delivered it.
    package struct Message: Equatable, CustomStringConvertible {
        package var method: String
        package var target: String
        package var version: String
        package var headers: [String]
        package var body: [UInt8] = []
        package var ended = false

        package init(method: String, target: String, version: String, headers: [String], body: [UInt8] = [], ended: Bool = false) {
            self.method = method
            self.target = target
            self.version = version
            self.headers = headers
            self.body = body
            self.ended = ended
        }

        package var description: String {
            "\(method) \(target) \(version) \(headers) body \(body.count) bytes\(ended ? "" : " (not ended)")"
        }
    }

    /// What a parser made of some bytes: the messages it delivered, and whether (and why) it then refused.
    package struct Outcome: CustomStringConvertible {
        package var messages: [Message] = []
        package var refusal: String?
        /// llhttp only: the last message asked for an upgrade, after which llhttp parses nothing more.
        package var upgraded = false
        /// llhttp only: its error.
        package var llhttpError: HTTPParserError?
        /// The gateway only: where the input it refused starts (the head or line it was reading).
        package var refusedAt = 0
        /// The gateway only: bytes wait for more (an unfinished head, line or body).
        package var waiting = false

        package var description: String { "\(messages)\(refusal.map { " refused: \($0)" } ?? "")\(upgraded ? " (upgrade)" : "")" }
    }

    /// Where the gateway's parser deliberately differs from llhttp.
    package enum Deliberate: String, CaseIterable, Sendable {
        /// llhttp stops parsing after a request with `Connection: upgrade` and `Upgrade`, or a CONNECT (NIO then
        /// drops the rest); the gateway strips Upgrade (refuses CONNECT) and parses what follows as the next
        /// request.
        case afterUpgrade = "llhttp stops after an upgrade request"
        /// Empty lines before a request line (or a status line): RFC 9112 2.2 asks to ignore at least one CRLF;
        /// the gateway ignores exactly one, llhttp any number of CRs and LFs.
        case leadingEmptyLines = "more than one empty line before a request"
        /// A Transfer-Encoding that is not a list of tokens ending with the only `chunked` (`identity`,
        /// `"chunked"`, `chunked;q=1`, `xchunked`): llhttp reads some of them as a request without a body, which
        /// `RequestHeadValidator` then answered 501; the gateway's parser refuses them (400).
        case transferCodingSyntax = "transfer coding syntax"
        /// A request line with more than one space (or a tab) between its parts: RFC 9112 3 allows a server to
        /// accept it, llhttp does; the gateway refuses it (a backend could split the line differently).
        case requestLineWhitespace = "whitespace in the request line"
        /// A Content-Length with whitespace after its digits (llhttp takes a space there but not a tab; the
        /// gateway takes neither) or with more than 18 digits (llhttp takes up to 2^64 - 1; the gateway's
        /// largest `max_body_bytes` is far below 10^18).
        case contentLengthSyntax = "Content-Length syntax"
        /// `PRI`, the start of the HTTP/2 preface: llhttp stops there without an error, the gateway refuses it.
        case h2Preface = "HTTP/2 preface"
        /// A target one parser refuses and the other takes, which `RequestHeadValidator` refuses (400) before
        /// routing, plugins or backends see it: an absolute-form authority that is not a host[:port] (llhttp
        /// refuses it, the gateway's parser takes it), `*` followed by more (llhttp takes it, the gateway's
        /// parser refuses it).
        case targetCheckedByValidator = "target refused by RequestHeadValidator"
        /// A chunk size line llhttp takes that the gateway does not: an extension RFC 9112 7.1.1 does not allow
        /// (`;name=` with an empty value), or a size of more than 15 hex digits (llhttp takes up to 2^64 - 1).
        case chunkExtension = "chunk size line"
        /// A Transfer-Encoding or Content-Length among the trailers: llhttp refuses some (a Transfer-Encoding in a
        /// request's trailers) and takes others; the gateway refuses them all (RFC 9110 6.5.1).
        case trailerFraming = "framing field in trailers"
        /// Responses: a Transfer-Encoding with `chunked` anywhere but last (`chunked, chunked`, `chunked, gzip`),
        /// or with a tab after its value: llhttp reads the body as chunked or until the close (with the tab it
        /// does not see `chunked`), the gateway refuses the response (502).
        case responseTransferCoding = "response transfer coding"
        /// Responses: a status code below 100, or a control byte (a bare CR included) in the reason phrase:
        /// llhttp takes them, the gateway refuses the response (502; it never forwards the backend's reason
        /// phrase anyway).
        case statusLine = "status line"
        /// Bytes after a message that closes the connection (HTTP/1.0 without keep-alive, `Connection: close`;
        /// for responses any HTTP/1.0 message, an interim one included): llhttp refuses them; the gateway parses
        /// them but never serves them (the connection closes after the response to that message, and no later
        /// request is taken before).
        case afterClose = "bytes after a closing message"
        /// A Connection element with tabs next to it (`keep-alive\t`): llhttp does not see the `keep-alive` and
        /// closes an HTTP/1.0 connection after the message; the gateway drops the optional whitespace around a
        /// list element (spaces and tabs, RFC 9110 5.6.1), as NIO's `isKeepAlive` did before it, and keeps the
        /// connection open for the next request.
        case connectionListTabs = "tabs around a Connection element"
    }

    package enum Verdict: CustomStringConvertible {
        case same
        case deliberate(Deliberate)
        case differs(String)

        package var description: String {
            switch self {
            case .same: return "same"
            case .deliberate(let reason): return "deliberate: \(reason.rawValue)"
            case .differs(let what): return "differs: \(what)"
            }
        }
    }

    // MARK: running the two parsers

    /// llhttp, as NIO's `HTTPRequestDecoder` drives it, over all of `bytes` in one read.
    package static func llhttp(_ bytes: [UInt8]) -> Outcome {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        var outcome = Outcome()
        do {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
        } catch {
            outcome.refusal = "\(error)"
            outcome.llhttpError = error as? HTTPParserError
        }
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let head):
                // llhttp keeps the whitespace after a value, which RFC 9110 5.5 excludes from it (the gateway's
                // parser drops it): compared without it.
                // NIO names llhttp's M-SEARCH `.MSEARCH`, whose raw value is "MSEARCH" (and so it forwarded it);
                // the gateway's parser keeps the method the client sent.
                outcome.messages.append(Message(
                    method: head.method == .MSEARCH ? "M-SEARCH" : head.method.rawValue, target: head.uri, version: "\(head.version)",
                    headers: head.headers.map { "\($0.name): \(trimmedEnd($0.value))" }
                ))
                // llhttp treats CONNECT as an upgrade too.
                outcome.upgraded = head.method == .CONNECT
                    || (head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "upgrade" } && head.headers.contains(name: "upgrade"))
            case .body(var body):
                outcome.messages[outcome.messages.count - 1].body += body.readBytes(length: body.readableBytes) ?? []
            case .end:
                outcome.messages[outcome.messages.count - 1].ended = true
            }
        }
        return outcome
    }

    /// The gateway's parser over `bytes`, cut into reads at `cuts` (offsets, ascending).
    package static func gateway(_ bytes: [UInt8], cuts: [Int] = [], maxHeadBytes: Int = 1 << 20, maxFields: Int = 10_000) -> Outcome {
        var parser = HTTP1RequestParser(maxHeadBytes: maxHeadBytes, maxFields: maxFields)
        var outcome = Outcome()
        var start = 0
        for end in cuts.filter({ $0 > 0 && $0 < bytes.count }) + [bytes.count] where end >= start {
            parser.append(ByteBuffer(bytes: bytes[start..<end]))
            start = end
            do {
                while true {
                    outcome.refusedAt = end - parser.bufferedBytes
                    guard let part = try parser.next() else { break }
                    switch part {
                    case .head(let head):
                        outcome.messages.append(Message(
                            method: head.method.rawValue, target: head.uri, version: "\(head.version)",
                            headers: head.headers.map { "\($0.name): \($0.value)" }
                        ))
                    case .body(var body):
                        outcome.messages[outcome.messages.count - 1].body += body.readBytes(length: body.readableBytes) ?? []
                    case .end:
                        outcome.messages[outcome.messages.count - 1].ended = true
                    }
                }
            } catch {
                outcome.refusal = error.reason.rawValue
                return outcome
            }
        }
        outcome.waiting = parser.bufferedBytes > 0
        return outcome
    }

    fileprivate static func trimmedEnd(_ value: String) -> Substring {
        var value = Substring(value)
        while let last = value.utf8.last, last == 32 || last == 9 { value = value.dropLast() }
        return value
    }

    // MARK: comparing them

    /// Runs both parsers over `bytes` and compares what they made of it.
    package static func compare(_ bytes: [UInt8]) -> Verdict {
        compare(bytes, llhttp: llhttp(bytes), gateway: gateway(bytes))
    }

    package static func compare(_ bytes: [UInt8], llhttp: Outcome, gateway: Outcome, retried: Bool = false) -> Verdict {
        // Every message both delivered must be the same, the last one up to where the shorter side stopped.
        let common = min(llhttp.messages.count, gateway.messages.count)
        for index in 0..<common {
            let a = llhttp.messages[index], b = gateway.messages[index]
            if a.method != b.method || a.target != b.target || a.version != b.version || a.headers != b.headers {
                return .differs("message \(index): llhttp \(a), gateway \(b)")
            }
            if a.body != b.body || a.ended != b.ended {
                // llhttp reads no body after an upgrade request or a CONNECT.
                if llhttp.upgraded, index == llhttp.messages.count - 1 { return .deliberate(.afterUpgrade) }
                // Where one side refused in the middle of a body, the other may have taken a few more bytes.
                let lastOfRefused = index == common - 1 && (llhttp.refusal != nil || gateway.refusal != nil)
                if !(lastOfRefused && (a.body.starts(with: b.body) || b.body.starts(with: a.body))) {
                    return .differs("message \(index) body: llhttp \(a), gateway \(b)")
                }
            }
        }
        if llhttp.messages.count == gateway.messages.count, (llhttp.refusal == nil) == (gateway.refusal == nil) { return .same }
        // One side refused at the first bad byte of a head or line the other has not seen the end of yet (the
        // gateway judges a line once all of it is there; llhttp waits for more after a bare LF): end the line
        // (and the head) and compare again, once.
        let gatewayWaits = llhttp.refusal != nil && gateway.refusal == nil && gateway.waiting
        let llhttpWaits = gateway.refusal != nil && llhttp.refusal == nil
        if gatewayWaits || llhttpWaits, llhttp.messages.count == gateway.messages.count, !retried {
            let ended = bytes + Array("\r\n\r\n".utf8)
            let verdict = compare(ended, llhttp: Self.llhttp(ended), gateway: Self.gateway(ended), retried: true)
            if case .differs(let what) = verdict { return .differs("with the line ended: \(what)") }
            return verdict
        }
        // After a message llhttp took as an upgrade (or CONNECT), it parses nothing more.
        if llhttp.upgraded, llhttp.refusal == nil, gateway.messages.count >= llhttp.messages.count { return .deliberate(.afterUpgrade) }
        if llhttp.llhttpError == .closedConnection, gateway.messages.count >= llhttp.messages.count,
            gateway.messages.count > llhttp.messages.count || gateway.refusal != nil || gateway.waiting,
            let last = llhttp.messages.last, last.ended {
            if closes(last) { return .deliberate(.afterClose) }
            // libFuzzer on http1-request: `Connection: ..., keep-alive\t\t, ...` on an HTTP/1.0 request.
            if closes(last, trimming: [" "]) { return .deliberate(.connectionListTabs) }
            // The same with the tabs at the end of the value (`Connection: keep-alive\t`): NIO's decoder trims
            // them from the value it reports, so they are looked for in the bytes.
            if last.version == "HTTP/1.0", keepAliveBeforeTab(bytes) { return .deliberate(.connectionListTabs) }
        }
        // llhttp took a message the gateway refused (or did not finish).
        if llhttp.messages.count > gateway.messages.count || (gateway.refusal != nil && llhttp.refusal == nil) {
            guard let reason = gateway.refusal else { return .differs("llhttp delivered more: \(llhttp) / \(gateway)") }
            if let deliberate = explainGatewayRefusal(reason, bytes: bytes, at: gateway.refusedAt) {
                return .deliberate(deliberate)
            }
            return .differs("gateway refused (\(reason)) what llhttp took: llhttp \(llhttp), gateway \(gateway)")
        }
        // The gateway took more than llhttp.
        if llhttp.llhttpError == .invalidURL, let message = gateway.messages.dropFirst(llhttp.messages.count).first {
            var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: message.method), uri: message.target, headers: ["host": "h"])
            if RequestHeadValidator.normalise(&head, maxBodyBytes: 1 << 40) != nil { return .deliberate(.targetCheckedByValidator) }
        }
        return .differs("llhttp refused (\(llhttp.refusal ?? "-")) what the gateway took: llhttp \(llhttp), gateway \(gateway)")
    }

    /// A line of `bytes` is a field named Transfer-Encoding or Content-Length (the trailer section the parser
    /// refused starts within them).
    private static func hasFramingField(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.split(separator: 10).contains { line in
            startsWithName(line, "transfer-encoding:") || startsWithName(line, "content-length:")
        }
    }

    /// `bytes` start with `prefix`, ASCII letters in either case. Compared as bytes: `String.hasPrefix` compares
    /// Characters, so a combining mark after the colon hid a field from it (libFuzzer on http1-response: a
    /// `Transfer-Encoding:` followed by U+065C among a response's trailers).
    static func startsWithName(_ bytes: some Collection<UInt8>, _ prefix: String) -> Bool {
        guard bytes.count >= prefix.utf8.count else { return false }
        return zip(bytes, prefix.utf8).allSatisfy { pair in
            let lower = pair.0 >= 65 && pair.0 <= 90 ? pair.0 | 0x20 : pair.0
            return lower == pair.1
        }
    }

    /// A Connection line of `bytes` whose value ends with `keep-alive` and whitespace that holds a tab (any
    /// case): what llhttp does not read as the keep-alive option.
    private static func keepAliveBeforeTab(_ bytes: [UInt8]) -> Bool {
        bytes.split(separator: 10).contains { raw in
            let line = raw.last == 13 ? raw.dropLast() : raw[...]
            guard startsWithName(line, "connection:") else { return false }
            let trailing = line.reversed().prefix { $0 == 32 || $0 == 9 }
            guard trailing.contains(9) else { return false }
            let value = line.dropLast(trailing.count)
            return value.count >= 10 && startsWithName(value.suffix(10), "keep-alive")
        }
    }

    /// Before a request line: two CRLFs, or CRs and LFs that are not one CRLF (llhttp skips any of them).
    private static func startsWithEmptyLines(_ rest: ArraySlice<UInt8>) -> Bool {
        guard let first = rest.first else { return false }
        if first == 10 { return true }
        guard first == 13 else { return false }
        let second = rest.dropFirst().first
        return second != 10 || rest.starts(with: [13, 10, 13, 10]) || rest.dropFirst(2).first == 13 || rest.dropFirst(2).first == 10
    }

    /// An HTTP/1.0 message without `Connection: keep-alive`, or one with `Connection: close`; the elements
    /// without the `trimming` characters around them (spaces and tabs, as RFC 9110 and the gateway read them).
    private static func closes(_ message: Message, trimming: CharacterSet = .whitespaces) -> Bool {
        let tokens = message.headers.filter { startsWithName($0.utf8, "connection:") }
            .flatMap { String(decoding: $0.utf8.dropFirst(11), as: UTF8.self).split(separator: ",") }
            .map { $0.trimmingCharacters(in: trimming).lowercased() }
        if tokens.contains("close") { return true }
        return message.version == "HTTP/1.0" && !tokens.contains("keep-alive")
    }

    /// Why the gateway's refusal of a message llhttp accepted is deliberate, judged from the refusal reason and
    /// the bytes where the refused input starts; nil if it is not one of the documented differences.
    private static func explainGatewayRefusal(_ reason: String, bytes: [UInt8], at offset: Int) -> Deliberate? {
        let rest = bytes[min(offset, bytes.count)...]
        let head = rest.starts(with: [13, 10]) ? rest.dropFirst(2) : rest
        let line = head.prefix { $0 != 13 && $0 != 10 }
        switch HTTP1ParseError.Reason(rawValue: reason) {
        case .version?, .unsupportedVersion?:
            if line.contains(9) || zip(line, line.dropFirst()).contains(where: { $0 == 32 && $1 == 32 }) { return .requestLineWhitespace }
            return nil
        case .method?: return line.starts(with: Array("PRI ".utf8)) ? .h2Preface : nil
        case .trailers?: return hasFramingField(rest) ? .trailerFraming : nil
        case .target?:
            // A target `RequestHeadValidator` refuses anyway (llhttp takes `*` followed by anything).
            let parts = line.split(separator: 32)
            guard parts.count == 3 else { return nil }
            var request = HTTPRequestHead(
                version: .http1_1, method: HTTPMethod(rawValue: String(decoding: parts[0], as: UTF8.self)),
                uri: String(decoding: parts[1], as: UTF8.self), headers: ["host": "h"]
            )
            return RequestHeadValidator.normalise(&request, maxBodyBytes: 1 << 40) != nil ? .targetCheckedByValidator : nil
        case .transferEncoding?: return .transferCodingSyntax
        case .chunkSize?:
            // Hex digits, then an extension llhttp takes and RFC 9112 7.1.1 does not (`;a=`, an empty value); or
            // more than 15 hex digits (llhttp takes up to 2^64 - 1).
            let digits = line.prefix { ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 102) }
            return (!digits.isEmpty && line.dropFirst(digits.count).first == 59) || digits.count > 15 ? .chunkExtension : nil
        case .contentLength?:
            // A value llhttp took (one, with digits only) with a space after it or more than 18 digits.
            let lines = head.split(separator: 10, omittingEmptySubsequences: false).map { $0.last == 13 ? $0.dropLast() : $0 }.prefix { !$0.isEmpty }
            let values = lines.filter { $0.count > 15 && String(decoding: $0.prefix(15), as: UTF8.self).lowercased() == "content-length:" }
                .map { String(decoding: $0.dropFirst(15), as: UTF8.self).drop { $0 == " " || $0 == "\t" } }
            guard values.count == 1, let value = values.first, value.last == " " || value.count > 18 else { return nil }
            return .contentLengthSyntax
        case .requestLine?:
            if startsWithEmptyLines(rest) { return .leadingEmptyLines }
            // Two spaces, or a tab, where the request line has one space.
            if line.contains(9) || zip(line, line.dropFirst()).contains(where: { $0 == 32 && $1 == 32 }) { return .requestLineWhitespace }
            return nil
        case .lineEnding?:
            return startsWithEmptyLines(rest) ? .leadingEmptyLines : nil
        default:
            return nil
        }
    }
}

extension HTTP1Differential {
    /// llhttp, as NIO's `HTTPResponseDecoder` drives it, over all of `bytes` then the close; `head`: the
    /// request was a HEAD.
    package static func llhttpResponses(_ bytes: [UInt8], head: Bool) -> Outcome {
        let channel = EmbeddedChannel()
        var outcome = Outcome()
        do {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
            // The decoder learns the request's method from the request head going out.
            try channel.writeOutbound(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: head ? .HEAD : .GET, uri: "/")))
            try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
            _ = try channel.finish()
        } catch {
            outcome.refusal = "\(error)"
            outcome.llhttpError = error as? HTTPParserError
            _ = try? channel.finish()
        }
        while let part = try? channel.readInbound(as: HTTPClientResponsePart.self) {
            switch part {
            case .head(let head):
                outcome.messages.append(Message(
                    method: "\(head.status.code)", target: "", version: "\(head.version)",
                    headers: head.headers.map { "\($0.name): \(trimmedEnd($0.value))" }
                ))
            case .body(var body):
                outcome.messages[outcome.messages.count - 1].body += body.readBytes(length: body.readableBytes) ?? []
            case .end:
                outcome.messages[outcome.messages.count - 1].ended = true
            }
        }
        return outcome
    }

    /// The gateway's response parser over `bytes` (cut into reads at `cuts`), then the close.
    package static func gatewayResponses(_ bytes: [UInt8], head: Bool, cuts: [Int] = []) -> Outcome {
        var parser = HTTP1ResponseParser(maxHeadBytes: 1 << 20, maxFields: 10_000)
        parser.heads.requestSent(isHEAD: head)
        var outcome = Outcome()
        func take(_ part: HTTP1ResponseParser.Part) {
            switch part {
            case .head(let head):
                outcome.messages.append(Message(
                    method: "\(head.status.code)", target: "", version: "\(head.version)", headers: head.headers.map { "\($0.name): \($0.value)" }
                ))
            case .body(var body):
                outcome.messages[outcome.messages.count - 1].body += body.readBytes(length: body.readableBytes) ?? []
            case .end:
                outcome.messages[outcome.messages.count - 1].ended = true
            }
        }
        var start = 0
        do {
            for end in cuts.filter({ $0 > 0 && $0 < bytes.count }) + [bytes.count] where end >= start {
                parser.append(ByteBuffer(bytes: bytes[start..<end]))
                start = end
                while true {
                    outcome.refusedAt = end - parser.bufferedBytes
                    guard let part = try parser.next() else { break }
                    take(part)
                }
            }
            if let part = try parser.finish() { take(part) }
        } catch {
            outcome.refusal = error.reason.rawValue
        }
        return outcome
    }

    /// Runs both parsers over responses and compares what they made of them.
    package static func compareResponses(_ bytes: [UInt8], head: Bool) -> Verdict {
        let llhttp = llhttpResponses(bytes, head: head), gateway = gatewayResponses(bytes, head: head)
        // A Transfer-Encoding with a tab after its value: llhttp does not see `chunked` in it (and reads until the
        // close); the gateway refuses it.
        let lines = bytes.split(separator: 10).map { $0.last == 13 ? $0.dropLast() : $0 }
        if lines.contains(where: { $0.count > 18 && String(decoding: $0.prefix(18), as: UTF8.self).lowercased() == "transfer-encoding:" && $0.last == 9 }) {
            return .deliberate(.responseTransferCoding)
        }
        let common = min(llhttp.messages.count, gateway.messages.count)
        for index in 0..<common {
            let a = llhttp.messages[index], b = gateway.messages[index]
            if a.method != b.method || a.version != b.version || a.headers != b.headers {
                return .differs("response \(index): llhttp \(a), gateway \(b)")
            }
            if a.body != b.body || a.ended != b.ended {
                let lastOfRefused = index == common - 1 && (llhttp.refusal != nil || gateway.refusal != nil)
                if !(lastOfRefused && (a.body.starts(with: b.body) || b.body.starts(with: a.body))) {
                    return .differs("response \(index) body: llhttp \(a), gateway \(b)")
                }
            }
        }
        if llhttp.messages.count == gateway.messages.count, (llhttp.refusal == nil) == (gateway.refusal == nil) { return .same }
        // llhttp refuses the close right after a 101 (its upgrade); the gateway ends the response there.
        if llhttp.messages.last?.method == "101", gateway.messages.last?.method == "101", gateway.refusal == nil {
            return .deliberate(.afterUpgrade)
        }
        // llhttp refuses anything after an HTTP/1.0 message, interim ones included; the gateway reads on (and
        // never reuses a connection whose response did not keep it alive).
        if llhttp.llhttpError == .closedConnection, gateway.messages.count >= llhttp.messages.count { return .deliberate(.afterClose) }
        if let reason = gateway.refusal, llhttp.messages.count >= gateway.messages.count {
            // The bytes from the head the gateway refused, or the interim responses it skipped before it.
            let from = bytes[min(gateway.refusedAt, bytes.count)...]
            var statusLines: [ArraySlice<UInt8>] = []
            // Where each of those heads starts: the one refused may be any of them.
            var headStarts: [Int] = []
            var rest = from
            while true {
                let unstripped = rest
                if rest.starts(with: [13, 10]) { rest = rest.dropFirst(2) }
                statusLines.append(rest.prefix { $0 != 10 })
                headStarts.append(bytes.count - rest.count)
                guard rest.starts(with: Array("HTTP/1.".utf8)), rest.dropFirst(9).first == 49, !rest.dropFirst(9).starts(with: Array("101".utf8)),
                    let end = rest.indices.first(where: { rest[$0] == 10 && $0 >= rest.startIndex + 3 && rest[$0 - 2] == 10 })
                else {
                    rest = unstripped
                    break
                }
                rest = rest[(end + 1)...]
            }
            // Stray CRs and LFs where a response would start: llhttp skips them.
            if llhttp.refusal == nil, rest.allSatisfy({ $0 == 13 || $0 == 10 }) { return .deliberate(.leadingEmptyLines) }
            if [.lineEnding, .statusLine].contains(HTTP1ParseError.Reason(rawValue: reason)), startsWithEmptyLines(from) || startsWithEmptyLines(rest) {
                return .deliberate(.leadingEmptyLines)
            }
            switch HTTP1ParseError.Reason(rawValue: reason) {
            case .lineEnding?, .statusLine?:
                // A status code below 100, a control byte or a CR inside a status line (llhttp takes them).
                for line in statusLines {
                    let code = line.dropFirst(9).prefix(3)
                    let low = code.count == 3 && code.allSatisfy { $0 >= 48 && $0 <= 57 } && code.first == 48
                    let control = line.dropFirst(12).dropLast().contains { ($0 < 32 && $0 != 9) || $0 == 127 }
                    if low || control { return .deliberate(.statusLine) }
                }
            case .transferEncoding?:
                return .deliberate(.responseTransferCoding)
            case .trailers?:
                if hasFramingField(from) { return .deliberate(.trailerFraming) }
            case .chunkSize?:
                if explainGatewayRefusal(reason, bytes: bytes, at: gateway.refusedAt) == .chunkExtension { return .deliberate(.chunkExtension) }
            case .contentLength?:
                // In the head the gateway refused: a final one, or one of the interim ones it was skipping
                // (libFuzzer on http1-response: `Content-Length:3 ` in a 100 Continue, first or later).
                for at in headStarts where explainGatewayRefusal(reason, bytes: bytes, at: at) == .contentLengthSyntax {
                    return .deliberate(.contentLengthSyntax)
                }
            default:
                break
            }
        }
        return .differs("llhttp \(llhttp) / gateway \(gateway)")
    }
}
