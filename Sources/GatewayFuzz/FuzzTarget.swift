import Foundation
import GatewayCore
import GatewayPluginKit
import GatewayTooling
import NIOCore
import NIOHTTP1
import X509

/// The gateway's parsers of hostile or operator input, each as a function of arbitrary bytes that must not
/// crash and must keep its stated properties (a violated property is a `fatalError`, which libFuzzer reports
/// with the input). Run under libFuzzer by `scripts/fuzz TARGET`, and replayed over the committed corpus plus
/// seeded random inputs by `gateway-fuzz replay` in `scripts/test`.
enum FuzzTarget: String, CaseIterable {
    /// The hand-written ClientHello reader: never crashes; a server name it returns is a valid host name; the
    /// JA4 fingerprint of whatever it accepts is well formed.
    case clientHello = "client-hello"
    /// Request-head validation: a head it accepts is in normal form (origin-form or `*`, one Host at most,
    /// one canonical Content-Length), and normalising it again changes nothing.
    case requestHead = "request-head"
    /// DER certificates from a client: parsing, the RFC 2253 formatter and the identity fields never crash,
    /// and no formatted field (subject, issuer, serial, validity) holds CR, LF or NUL. (SAN values are the
    /// certificate's own bytes; their consumers escape them.)
    case identity
    /// CRL files (PEM or DER): never crash; revoked serials are normalised (no leading zero byte).
    case crl
    /// The gateway's configuration (YAML): decoding and validation never crash.
    case config
    /// A plugin's config through the kit's strict JSON parser and decoder: never crashes, errors are
    /// PluginConfigError, and whatever it accepts Foundation's JSON parser accepts too.
    case pluginConfig = "plugin-config"
    /// Key paths of the ABI's config reader: never crash; a parsed path prints back to itself.
    case configPath = "config-path"
    /// PROXY protocol headers (v1 and v2): never crash; a header is never longer than the input or the limits;
    /// every shorter prefix of it asks for more bytes (a header split over reads parses the same); bytes after
    /// it change nothing.
    case proxyProtocol = "proxy-protocol"
    /// DNS responses to the gateway's A/AAAA queries for `api.test` (ID from the first two bytes): never
    /// crash; every address returned is an IP address of the asked family that NIO reads back to the same
    /// address, none twice; a TTL comes with addresses and only with them.
    case dnsResponse = "dns-response"
    /// Client bytes through the gateway's HTTP/1 request parser and through llhttp (NIO's decoder): they agree
    /// on every message (method, target, version, headers, body, end) and on refusing, or differ in one of the
    /// documented ways (`HTTP1Differential.Deliberate`); the parse is the same when the bytes arrive in two
    /// reads cut anywhere.
    case http1Request = "http1-request"
    /// Backend bytes through the gateway's HTTP/1 response parser and through llhttp (NIO's response
    /// decoder), answering a GET (or a HEAD, when the first byte is odd): the same agreement as
    /// `http1-request`; the parse is the same in two reads cut anywhere.
    case http1Response = "http1-response"
    /// OCSP responses (what a responder sends back): never crash; what parses holds at most 64 answers and 8
    /// certificates; validating it for a CertID of a fixed issuer never crashes, and accepts only a response
    /// that answers that CertID.
    case ocspResponse = "ocsp-response"
    /// Client bytes through `RequestHeadGuard`'s head-end scan (`HeadEndScanner`, memchr for line feeds): the
    /// same count and end as the byte-by-byte loop it replaced, whole and in two reads cut anywhere.
    case headEnd = "head-end"

    func run(_ bytes: [UInt8]) {
        switch self {
        case .clientHello: Self.clientHello(bytes)
        case .requestHead: Self.requestHead(bytes)
        case .identity: Self.identity(bytes)
        case .crl: Self.crl(bytes)
        case .config: Self.config(bytes)
        case .pluginConfig: Self.pluginConfig(bytes)
        case .configPath: Self.configPath(bytes)
        case .proxyProtocol: Self.proxyProtocol(bytes)
        case .dnsResponse: Self.dnsResponse(bytes)
        case .http1Request: Self.http1Request(bytes)
        case .http1Response: Self.http1Response(bytes)
        case .ocspResponse: Self.ocspResponse(bytes)
        case .headEnd: Self.headEnd(bytes)
        }
    }

    private static func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError("property violated: \(message())") }
    }

    private static func clientHello(_ bytes: [UInt8]) {
        guard case .complete(let hello) = ClientHello.parse(ByteBuffer(bytes: bytes)) else { return }
        if let name = hello.serverName {
            check(ClientHello.isValidServerName(Array(name.utf8)), "accepted server name \(name.debugDescription)")
        }
        let ja4 = JA4Fingerprint(hello)
        check(JA4Fingerprint.isWellFormed(ja4.fingerprint), "JA4 not well formed: \(ja4.fingerprint)")
        check(ja4.raw.hasPrefix(String(ja4.fingerprint.prefix(10))), "JA4_r does not start like JA4: \(ja4.raw)")
    }

    /// Bytes as a head: the first line is the method and target, the others `name: value` headers.
    private static func requestHead(_ bytes: [UInt8]) {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard let first = lines.first else { return }
        let parts = first.split(separator: " ", maxSplits: 1)
        let method = HTTPMethod(rawValue: parts.first.map(String.init) ?? "GET")
        var headers = HTTPHeaders()
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            // llhttp delivers only RFC 9110 token names (NIO's case-insensitive lookup would also take a CR
            // for a '-', which no decoded head can hold).
            guard !name.isEmpty, name.utf8.allSatisfy(Self.isTokenByte) else { continue }
            // The value as the parser keeps it: without the spaces and tabs around it (and the line's CR).
            var value = Substring(line[line.index(after: colon)...])
            while let last = value.utf8.last, last == 13 || last == 32 || last == 9 { value = value.dropLast() }
            while let first = value.utf8.first, first == 32 || first == 9 { value = value.dropFirst() }
            headers.add(name: name, value: String(value))
        }
        let minor = bytes.count % 2
        var head = HTTPRequestHead(version: .init(major: 1, minor: minor), method: method, uri: parts.count > 1 ? String(parts[1]) : "/", headers: headers)
        // The check on bytes (what the proxy runs on a parsed head, whose values hold no CR, LF or NUL and no
        // whitespace at their ends) agrees with the check on Strings: the same refusal, or the same facts and
        // the same normal form.
        let parsable = head.headers.allSatisfy { field in
            !field.value.utf8.contains { $0 == 0 || $0 == 10 || $0 == 13 } && field.value.utf8.first != 32 && field.value.utf8.first != 9
                && field.value.utf8.last != 32 && field.value.utf8.last != 9
        }
        if parsable {
            var onBytes = ClientRequestHead(head)
            var onStrings = head
            let bytesResult = RequestHeadValidator.check(&onBytes, maxBodyBytes: 1 << 20)
            let stringsResult = RequestHeadValidator.check(&onStrings, maxBodyBytes: 1 << 20)
            check(bytesResult == stringsResult, "the checks disagree: \(bytesResult) on bytes, \(stringsResult) on Strings, for \(head)")
            if case .success = stringsResult {
                check(onBytes == ClientRequestHead(onStrings), "the normal forms differ: \(onBytes) on bytes, \(onStrings) on Strings")
            }
        }
        guard RequestHeadValidator.normalise(&head, maxBodyBytes: 1 << 20) == nil else { return }
        // Bytes, not Characters: "/" followed by a combining mark is one Character that is not "/".
        check(head.uri.utf8.first == UInt8(ascii: "/") || head.uri == "*", "target not normalised: \(head.uri.debugDescription)")
        check(!head.uri.utf8.contains(UInt8(ascii: "#")), "fragment accepted")
        check(head.headers["host"].count <= 1, "several Host headers accepted")
        let lengths = head.headers["content-length"]
        check(lengths.count <= 1 && lengths.allSatisfy { Int64($0).map(String.init) == $0 }, "Content-Length not canonical: \(lengths)")
        var again = head
        check(RequestHeadValidator.normalise(&again, maxBodyBytes: 1 << 20) == nil, "normal form refused")
        check(again.uri == head.uri && again.headers == head.headers, "normalising twice changed the head")
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        (byte >= 48 && byte <= 57) || (byte | 0x20 >= 97 && byte | 0x20 <= 122) || "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }

    private static func identity(_ bytes: [UInt8]) {
        // One or more DER certificates, split at a 0xFF 0x00 marker so that chains get fuzzed too.
        var chain: [[UInt8]] = []
        var current: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index] == 0xFF, index + 1 < bytes.count, bytes[index + 1] == 0 {
                chain.append(current)
                current = []
                index += 2
            } else {
                current.append(bytes[index])
                index += 1
            }
        }
        chain.append(current)
        guard let presented = try? chain.map({ try Certificate(derEncoded: $0) }) else { return }
        let identity = ClientIdentity(presented: presented, der: chain)
        let fields = [identity.subject, identity.issuer, identity.serialHex, identity.notBeforeText, identity.notAfterText]
        for field in fields {
            check(!field.utf8.contains(where: { $0 == 10 || $0 == 13 || $0 == 0 }), "identity field with CR, LF or NUL: \(field.debugDescription)")
        }
        // Where revocation is looked up: only plain http URLs of bounded length, without control bytes.
        for certificate in presented {
            let locations = RevocationLocations(certificate)
            for url in locations.crlURLs + locations.ocspURLs {
                check(url.lowercased().hasPrefix("http://") && url.utf8.count <= RevocationLocations.maxURLLength
                      && url.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "unusable URL kept: \(url.debugDescription)")
            }
        }
    }

    /// A fixed issuer and CertID for `ocsp-response` (the signature never verifies for fuzzed bytes; the checks
    /// before it still run).
    private static let ocspIssuer: Certificate? = try? CertificateFactory.makeCA(CertificateFactory.name(commonName: "Fuzz CA")).certificate

    private static func ocspResponse(_ bytes: [UInt8]) {
        guard let message = try? OCSPResponseMessage(derEncoded: bytes) else { return }
        check(message.responses.count <= 64 && message.certificates.count <= 8, "\(message.responses.count) responses, \(message.certificates.count) certificates")
        guard let issuer = ocspIssuer else { return }
        for single in message.responses {
            let id = single.certID ?? OCSPCertificateID(issuerNameHash: [], issuerKeyHash: [], serial: [1])
            if case .success(let answer) = message.validate(for: id, issuer: issuer, now: Date()) {
                check(answer.certID == id, "validated an answer for another CertID")
            }
        }
    }

    private static func crl(_ bytes: [UInt8]) {
        guard let lists = try? CertificateRevocationList.parseFile(Data(bytes)) else { return }
        for list in lists {
            for serial in list.revokedSerials {
                check(serial.first != 0 || serial.count == 1, "serial not normalised: \(serial)")
            }
        }
    }

    private static func headEnd(_ bytes: [UInt8]) {
        let cut = bytes.isEmpty ? 0 : Int(bytes.reduce(0 as UInt32) { $0 &* 31 &+ UInt32($1) } % UInt32(bytes.count + 1))
        for pieces in [[bytes[...]], [bytes[..<cut], bytes[cut...]]] {
            var scanner = HeadEndScanner()
            var reference = HeadEndByteLoop()
            for piece in pieces {
                let got = Array(piece).withUnsafeBytes { scanner.scan($0) }
                let expected = reference.scan(piece)
                check(got == expected, "head-end scan of \(Array(piece)) (cut at \(cut)): \(got), the byte loop \(expected)")
                if expected.ended { break }
            }
        }
    }

    private static func proxyProtocol(_ bytes: [UInt8]) {
        let parse = bytes.withUnsafeBytes { ProxyProtocolHeader.parse($0) }
        guard case .header(let header) = parse else { return }
        check(header.length > 0 && header.length <= bytes.count, "header length \(header.length) of \(bytes.count) bytes")
        let limit = header.version == .v1 ? ProxyProtocolHeader.v1MaxLength : ProxyProtocolHeader.v2MaxLength
        check(header.length <= limit, "header of \(header.length) bytes over the v\(header.version.rawValue) limit")
        check((header.source == nil) == (header.destination == nil), "one address without the other")
        for cut in [0, 1, header.length / 2, header.length - 1] where cut < header.length {
            let prefix = bytes.withUnsafeBytes { ProxyProtocolHeader.parse(UnsafeRawBufferPointer(rebasing: $0[0..<cut])) }
            check(prefix == .needMore, "a \(cut)-byte prefix of a \(header.length)-byte header parsed as \(prefix)")
        }
        let exact = bytes.withUnsafeBytes { ProxyProtocolHeader.parse(UnsafeRawBufferPointer(rebasing: $0[0..<header.length])) }
        check(exact == parse, "the header alone parsed differently: \(exact)")
    }

    private static func dnsResponse(_ bytes: [UInt8]) {
        let id = bytes.count >= 2 ? UInt16(bytes[0]) << 8 | UInt16(bytes[1]) : 0
        for type in [DNSMessage.RecordType.a, .aaaa] {
            guard let answer = try? DNSMessage.addresses(in: bytes, id: id, name: "api.test", type: type) else { continue }
            check(Set(answer.addresses).count == answer.addresses.count, "an address twice: \(answer.addresses)")
            check((answer.ttl == nil) == answer.addresses.isEmpty, "TTL \(String(describing: answer.ttl)) with \(answer.addresses.count) addresses")
            for text in answer.addresses {
                let address = try? SocketAddress(ipAddress: text, port: 1)
                check(address?.protocol == (type == .a ? .inet : .inet6), "\(text) is not an address of the asked family")
                // The text names the address NIO's own text does (glibc writes ::/96 in dotted form, RFC 5952 not).
                let again = address?.ipAddress.flatMap { try? SocketAddress(ipAddress: $0, port: 1) }
                check(again != nil && again == address, "\(text) and NIO's \(String(describing: address?.ipAddress)) name different addresses")
            }
        }
    }

    private static func http1Request(_ bytes: [UInt8]) {
        let gateway = HTTP1Differential.gateway(bytes)
        let verdict = HTTP1Differential.compare(bytes, llhttp: HTTP1Differential.llhttp(bytes), gateway: gateway)
        if case .differs(let what) = verdict { check(false, "the gateway's parser and llhttp differ on \(bytes.debugDescription): \(what)") }
        guard bytes.count > 1 else { return }
        let cut = 1 + Int(bytes.reduce(0 as UInt32) { $0 &* 31 &+ UInt32($1) } % UInt32(bytes.count - 1))
        let split = HTTP1Differential.gateway(bytes, cuts: [cut])
        check(split.messages == gateway.messages && split.refusal == gateway.refusal, "a read boundary at \(cut) changes the parse")
    }

    private static func http1Response(_ bytes: [UInt8]) {
        let head = (bytes.first ?? 0) & 1 == 1
        if case .differs(let what) = HTTP1Differential.compareResponses(bytes, head: head) {
            check(false, "the gateway's response parser and llhttp differ on \(bytes.debugDescription): \(what)")
        }
        guard bytes.count > 1 else { return }
        let whole = HTTP1Differential.gatewayResponses(bytes, head: head)
        let cut = 1 + Int(bytes.reduce(0 as UInt32) { $0 &* 31 &+ UInt32($1) } % UInt32(bytes.count - 1))
        let split = HTTP1Differential.gatewayResponses(bytes, head: head, cuts: [cut])
        check(split.messages == whole.messages && split.refusal == whole.refusal, "a read boundary at \(cut) changes the parse")
    }

    private static func config(_ bytes: [UInt8]) {
        _ = try? ConfigLoader.decode(Data(bytes), source: "fuzz.yaml")
    }

    private static func pluginConfig(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            _ = try PluginConfig(json: text, tag: 0).decode(JSONValue.self, allowingUnknownKeys: true)
            let foundation = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            check(foundation != nil, "the kit accepted JSON that Foundation refuses: \(text.debugDescription)")
        } catch is PluginConfigError {
            // Refused with a message: fine.
        } catch {
            check(false, "an error that is not PluginConfigError: \(error)")
        }
    }

    private static func configPath(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let steps = PluginConfigReader.steps(text) else { return }
        var printed = ""
        for step in steps {
            switch step {
            case .key(let key): printed += printed.isEmpty ? key : "." + key
            case .index(let index): printed += "[\(index)]"
            }
        }
        check(PluginConfigReader.steps(printed) == steps, "path \(text.debugDescription) prints as \(printed.debugDescription), which parses otherwise")
    }
}
