import NIOCore
import NIOHTTP1

/// How the gateway rewrites headers between client and backend: hop-by-hop headers removed (RFC 9110 7.6.1,
/// including those the Connection header names), X-Forwarded-* set from what the gateway itself saw.
package enum ProxyHeaders {
    /// Removes hop-by-hop headers in place, and those a Connection header names. One pass over the names finds
    /// whether there is anything to remove (usually not: HTTP/1.1 clients seldom send any), so the common case
    /// costs a length check per header; otherwise the kept headers are copied once into a new list (one
    /// `HTTPHeaders.remove(name:)` per name would be a pass and a copy of tuples each).
    package static func removeHopByHop(_ headers: inout HTTPHeaders) {
        guard headers.contains(where: { isHopByHop($0.name) }) else { return }
        var listed: [Substring] = []
        for (name, value) in headers where isConnection(name) { collectListed(value, into: &listed) }
        var kept: [(String, String)] = []
        kept.reserveCapacity(headers.count)
        for (name, value) in headers where !isHopByHop(name) && !isListed(name, listed) { kept.append((name, value)) }
        headers = HTTPHeaders(kept)
    }

    @inline(__always)
    private static func isConnection(_ name: String) -> Bool {
        name.utf8.count == 10 && equalsIgnoringCase(Substring(name), "connection")
    }

    /// Adds the names a Connection header value lists (RFC 9110 7.6.1) to `listed`: all but `close` and
    /// `keep-alive` (options, not names) and Host and Content-Length, which Connection may not remove (they route
    /// and frame the message; Transfer-Encoding is hop-by-hop anyway, and re-framed). Allocates nothing for the
    /// usual `Connection: keep-alive`.
    private static func collectListed(_ value: String, into listed: inout [Substring]) {
        var rest = Substring(value)
        while !rest.isEmpty {
            let comma = rest.utf8.firstIndex(of: UInt8(ascii: ",")) ?? rest.endIndex
            let token = trimmed(rest[..<comma])
            rest = comma == rest.endIndex ? rest[rest.endIndex...] : rest[rest.utf8.index(after: comma)...]
            if !token.isEmpty, !equalsIgnoringCase(token, "close"), !equalsIgnoringCase(token, "keep-alive"),
                !equalsIgnoringCase(token, "host"), !equalsIgnoringCase(token, "content-length") {
                listed.append(token)
            }
        }
    }

    @inline(__always)
    private static func isListed(_ name: String, _ listed: [Substring]) -> Bool {
        guard !listed.isEmpty else { return false }
        return listed.contains { sameIgnoringCase($0, Substring(name)) }
    }

    /// ASCII case-insensitive equality of two texts.
    package static func sameIgnoringCase(_ a: Substring, _ b: Substring) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        @inline(__always) func lower(_ x: UInt8) -> UInt8 { x >= 65 && x <= 90 ? x | 0x20 : x }
        // Native strings (all of NIO's) lend their bytes: a plain loop, no iterator per byte.
        if let equal = a.utf8.withContiguousStorageIfAvailable({ x in
            b.utf8.withContiguousStorageIfAvailable { y in
                for i in 0..<x.count where lower(x[i]) != lower(y[i]) { return false }
                return true
            }
        }), let equal {
            return equal
        }
        return zip(a.utf8, b.utf8).allSatisfy { x, y in lower(x) == lower(y) }
    }

    /// Whether `name` (any case) is a hop-by-hop header: Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
    /// Transfer-Encoding, Upgrade, Proxy-Authenticate, Proxy-Authorization. Lengths are compared first, nothing
    /// is allocated.
    @inline(__always)
    package static func isHopByHop(_ name: String) -> Bool {
        // One list of hop-by-hop names: the byte form's.
        var name = name
        return name.withUTF8 { HTTP1ConnectionOptions.isHopByHop(UnsafeRawBufferPointer($0)) }
    }

    /// ASCII case-insensitive equality with a lowercase literal.
    package static func equalsIgnoringCase(_ text: Substring, _ lowercase: StaticString) -> Bool {
        guard text.utf8.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            // Native strings (all of NIO's) lend their bytes: a plain loop, no iterator per byte.
            if let equal = text.utf8.withContiguousStorageIfAvailable({ bytes in
                for i in 0..<bytes.count where (bytes[i] >= 65 && bytes[i] <= 90 ? bytes[i] | 0x20 : bytes[i]) != expected[i] { return false }
                return true
            }) {
                return equal
            }
            return zip(text.utf8, expected).allSatisfy { byte, wanted in (byte >= 65 && byte <= 90 ? byte | 0x20 : byte) == wanted }
        }
    }

    /// Without leading and trailing spaces and tabs.
    package static func trimmed(_ text: Substring) -> Substring {
        var text = text
        while let first = text.utf8.first, first == 32 || first == 9 { text = text.dropFirst() }
        while let last = text.utf8.last, last == 32 || last == 9 { text = text.dropLast() }
        return text
    }

    /// What `upstreamRequest` does with a header of the client's (or a plugin's).
    enum Upstream {
        case keep, drop, host, contentLength, forwardedFor
    }

    /// One length switch per name, nothing allocated: hop-by-hop headers, Expect (the gateway answered it) and
    /// X-Forwarded-* other than For (the gateway sets them) are dropped; X-Forwarded-For is extended.
    @inline(__always)
    static func upstreamRule(_ name: String) -> Upstream {
        if let rule = name.utf8.withContiguousStorageIfAvailable({ upstreamRule(UnsafeRawBufferPointer($0)) }) { return rule }
        var name = name
        return name.withUTF8 { upstreamRule(UnsafeRawBufferPointer($0)) }
    }

    static func upstreamRule(_ name: UnsafeRawBufferPointer) -> Upstream {
        func equals(_ lowercase: StaticString) -> Bool { HTTP1Syntax.equalsIgnoringCase(name, lowercase) }
        func underscored(_ lowercase: StaticString) -> Bool { isUnderscoreSpelling(name, of: lowercase) }
        switch name.count {
        case 2: return equals("te") ? .drop : .keep
        case 4: return equals("host") ? .host : .keep
        case 6: return equals("expect") ? .drop : .keep
        case 7: return equals("trailer") || equals("upgrade") ? .drop : .keep
        case 10: return equals("connection") || equals("keep-alive") ? .drop : .keep
        case 14: return equals("content-length") ? .contentLength : .keep
        case 15:
            if equals("x-forwarded-for") { return .forwardedFor }
            return underscored("x-forwarded-for") ? .drop : .keep
        case 16:
            return equals("proxy-connection") || equals("x-forwarded-host") || equals("x-forwarded-port") || underscored("x-forwarded-host")
                || underscored("x-forwarded-port") ? .drop : .keep
        case 17: return equals("transfer-encoding") || equals("x-forwarded-proto") || underscored("x-forwarded-proto") ? .drop : .keep
        case 18: return equals("proxy-authenticate") ? .drop : .keep
        case 19: return equals("proxy-authorization") ? .drop : .keep
        default: return .keep
        }
    }

    /// `name` is `lowercase` (an X-Forwarded-* name) in any case with one or more of its `-` written `_`. Such a
    /// name is not the header, but CGI-style backends (PHP, WSGI and Django's `META`, Rack) read both as
    /// `HTTP_X_FORWARDED_FOR`: a client's `X_Forwarded_For` could stand beside, or in place of, the one the gateway
    /// sets. The X-Forwarded-* names are the gateway's, so these spellings are dropped like the client's own
    /// X-Forwarded-Proto/-Port/-Host (nginx drops every name with `_` by default).
    private static func isUnderscoreSpelling(_ name: UnsafeRawBufferPointer, of lowercase: StaticString) -> Bool {
        guard name.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            var underscore = false
            for i in 0..<name.count {
                var byte = name[i]
                if byte == 95 {
                    byte = 45
                    underscore = true
                } else if byte >= 65 && byte <= 90 {
                    byte |= 0x20
                }
                if byte != expected[i] { return false }
            }
            return underscore
        }
    }

    /// The request head sent to the backend: the client's headers (and `added`, headers plugins added, in that
    /// order) without hop-by-hop headers and those Connection names, without Expect, then Transfer-Encoding:
    /// chunked if a body has no length, and X-Forwarded-For/-Proto/-Port/-Host as the gateway saw them
    /// (replacing the client's; an X-Forwarded-For chain is extended). The client's Host is preserved.
    /// `hopByHopRemoved`: the head already went through `removeHopByHop` (the plugins' view) and nothing added
    /// one since, so no Connection header can name anything.
    ///
    /// The added headers go on as the bytes they are when every one of them is kept as it is (the usual case:
    /// identity headers); when a rule applies to one (a plugin added Host, Content-Length, X-Forwarded-*, a
    /// hop-by-hop header or one Connection names) all of them are taken as Strings, in order, like the client's.
    package static func upstreamRequest(
        _ head: HTTPRequestHead, adding added: HeaderBlock = HeaderBlock(), clientIP: String, scheme: String, localPort: Int?, hasBody: Bool,
        hopByHopRemoved: Bool = false
    ) -> UpstreamHead {
        var listed: [Substring] = []
        var extra: [(String, String)] = []
        if !hopByHopRemoved {
            for (name, value) in head.headers where isConnection(name) { collectListed(value, into: &listed) }
            extra = added.fields
            for (name, value) in extra where isConnection(name) { collectListed(value, into: &listed) }
        } else {
            var keptAsTheyAre = true
            added.forEach { name, _ in
                keptAsTheyAre = upstreamRule(name) == .keep
                return keptAsTheyAre
            }
            if !keptAsTheyAre { extra = added.fields }
        }
        let block = extra.isEmpty ? added : HeaderBlock()
        var out: [(String, String)] = []
        out.reserveCapacity(head.headers.count + extra.count + 5)
        var host: String?
        var hasLength = false
        var forwardedFor: [(String, String)] = []
        func take(_ name: String, _ value: String) {
            let rule = upstreamRule(name)
            if rule == .drop || isListed(name, listed) { return }
            switch rule {
            case .forwardedFor: forwardedFor.append((name, value))
            case .host:
                if host == nil { host = value }
                out.append((name, value))
            case .contentLength:
                hasLength = true
                out.append((name, value))
            case .keep, .drop:
                out.append((name, value))
            }
        }
        for (name, value) in head.headers { take(name, value) }
        let addedAt = out.count
        for (name, value) in extra { take(name, value) }
        // The client's Transfer-Encoding is hop-by-hop and was dropped: a body without a Content-Length is
        // re-framed as chunked here. NIO's encoder frames a GET/DELETE/OPTIONS body with neither header as raw
        // bytes, which a backend would read as the next request (smuggling).
        if hasBody && !hasLength { out.append(("transfer-encoding", "chunked")) }
        let previous = forwardedFor.isEmpty ? "" : HTTPHeaders(forwardedFor)[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
        out.append(("x-forwarded-for", previous.isEmpty ? clientIP : "\(previous), \(clientIP)"))
        out.append(("x-forwarded-proto", scheme))
        if let localPort { out.append(("x-forwarded-port", String(localPort))) }
        if let host { out.append(("x-forwarded-host", host)) }
        return UpstreamHead(HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri, headers: HTTPHeaders(out)), added: block, at: addedAt)
    }

    /// `upstreamRequest` and the upstream encoder's framing (`UpstreamRequestEncoder.serialize`) in one pass, for
    /// the usual request: the head the backend gets, as the bytes those two would write, and whether its body
    /// goes chunked. No `HTTPHeaders`, no String per field: the client's field lines (already `name: value
    /// CRLF`) are sized in a first pass and copied in a second, a run of kept lines at once, after one
    /// reservation. Nil, with nothing made, for what only the general path does (`ProxyHeadersTests` compares
    /// the two on random heads):
    /// - TRACE, and POST/PUT/PATCH without a Content-Length (the encoder re-frames those);
    /// - an X-Forwarded-For from the client (its values are joined as a list);
    /// - a head whose hop-by-hop fields were not removed for the plugins (`hopByHopRemoved` false) with a
    ///   Connection field that names other fields to drop, or with headers plugins added;
    /// - added headers one of the rules applies to (Host, Content-Length, X-Forwarded-*, hop-by-hop).
    package static func writeUpstreamRequest(
        _ head: ClientRequestHead, adding added: HeaderBlock, clientIP: String, scheme: String, localPort: Int?, hasBody: Bool,
        hopByHopRemoved: Bool, allocator: ByteBufferAllocator
    ) -> (head: ByteBuffer, chunked: Bool)? {
        let method = head.method
        if case .TRACE = method { return nil }
        if !hopByHopRemoved && !added.isEmpty { return nil }
        if !added.isEmpty {
            var keptAsTheyAre = true
            added.forEach { name, _ in
                keptAsTheyAre = upstreamRule(name) == .keep
                return keptAsTheyAre
            }
            if !keptAsTheyAre { return nil }
        }
        return head.fields.bytes.withUnsafeBytes { block in
            writeUpstreamRequest(
                head, fields: block, adding: added, clientIP: clientIP, scheme: scheme, localPort: localPort, hasBody: hasBody,
                hopByHopRemoved: hopByHopRemoved, allocator: allocator
            )
        }
    }

    /// `writeUpstreamRequest` with the head's field lines as `fields`.
    private static func writeUpstreamRequest(
        _ head: ClientRequestHead, fields block: UnsafeRawBufferPointer, adding added: HeaderBlock, clientIP: String, scheme: String,
        localPort: Int?, hasBody: Bool, hopByHopRemoved: Bool, allocator: ByteBufferAllocator
    ) -> (head: ByteBuffer, chunked: Bool)? {
        let method = head.method
        // The usual methods as literals (no `rawValue` String made and lent).
        let literal = HTTPHeadWriter.Cursor.literal(for: method)
        let methodName = literal == nil ? method.rawValue : ""
        var size = (literal?.utf8CodeUnitCount ?? methodName.utf8.count) + 1 + head.uri.utf8.count + 1 + 8 + 2 + added.bytes.count + 2
        var host: Range<Int>?
        var hasLength = false
        var general = false
        var dropped = 0
        let whole = HeaderBlock.forEachLine(in: block) { name, value, line in
            switch upstreamRule(name) {
            case .drop:
                dropped += 1
                if !hopByHopRemoved, name.count == 10, HTTP1Syntax.equalsIgnoringCase(name, "connection") {
                    // A Connection field that names other fields (to drop too) is the general path's.
                    var listed: [Substring] = []
                    collectListed(String(decoding: value, as: UTF8.self), into: &listed)
                    if !listed.isEmpty {
                        general = true
                        return false
                    }
                }
                return true
            case .forwardedFor:
                general = true
                return false
            case .host: if host == nil { host = (line.upperBound - 2 - value.count)..<(line.upperBound - 2) }
            case .contentLength: hasLength = true
            case .keep: break
            }
            size += line.count
            return true
        }
        // A block that does not end with a whole line (none does) would not be written as it was sized.
        if general || !whole { return nil }
        switch method {
        case .POST, .PUT, .PATCH: if !hasLength { return nil }
        default: break
        }
        let chunked = hasBody && !hasLength
        if chunked { size += 28 }
        size += 17 + clientIP.utf8.count + 2 + 19 + scheme.utf8.count + 2
        if let localPort { size += 18 + HTTPHeadWriter.Cursor.decimalDigits(localPort) + 2 }
        if let host { size += 18 + host.count + 2 }
        var buffer = allocator.buffer(capacity: size)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            var out = HTTPHeadWriter.Cursor(base: raw.baseAddress!)
            if let literal { out.literal(literal) } else { out.copy(methodName) }
            out.byte(32)
            out.copy(head.uri)
            out.literal(" HTTP/1.1\r\n")
            if dropped == 0 {
                out.copy(block)
            } else {
                // The kept lines, a run of consecutive ones at once.
                var run = 0..<0
                HeaderBlock.forEachLine(in: block) { name, _, line in
                    if upstreamRule(name) == .drop {
                        if !run.isEmpty { out.copy(UnsafeRawBufferPointer(rebasing: block[run])) }
                        run = line.upperBound..<line.upperBound
                    } else {
                        run = run.isEmpty ? line : run.lowerBound..<line.upperBound
                    }
                    return true
                }
                if !run.isEmpty { out.copy(UnsafeRawBufferPointer(rebasing: block[run])) }
            }
            out.copy(added.bytes)
            if chunked { out.literal("transfer-encoding: chunked\r\n") }
            out.literal("x-forwarded-for: ")
            out.copy(clientIP)
            out.literal("\r\nx-forwarded-proto: ")
            out.copy(scheme)
            out.crlf()
            if let localPort {
                out.literal("x-forwarded-port: ")
                out.decimal(localPort)
                out.crlf()
            }
            if let host {
                out.literal("x-forwarded-host: ")
                out.copy(UnsafeRawBufferPointer(rebasing: block[host]))
                out.crlf()
            }
            out.crlf()
            // The sizes above and the writes here must agree (the room was reserved for `size`).
            precondition(out.offset == size, "upstream head: \(out.offset) bytes written, \(size) reserved")
            return out.offset
        }
        return (buffer, chunked)
    }

    /// The response head sent to the client, from a head without its hop-by-hop fields (the backend parser
    /// leaves them out) and the names its Connection fields listed (any ASCII case), which go as well.
    package static func downstreamResponse(_ head: HTTPResponseHead, removing listed: [String], version: HTTPVersion, close: Bool) -> HTTPResponseHead {
        var headers = head.headers
        for name in listed { headers.removeIfPresent(name) }
        if close { headers.add(name: "connection", value: "close") }
        return HTTPResponseHead(version: version, status: head.status, headers: headers)
    }
}
