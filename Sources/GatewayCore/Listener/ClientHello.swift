import NIOCore

/// What a TLS ClientHello says before any cryptography: the server name, the offered ALPN protocols and cipher
/// suites. Parsed by hand (bounds-checked, from untrusted bytes) because swift-nio-ssl exposes none of it per
/// connection, and SNI is needed before the TLS handler exists to pick the listener's certificate.
package struct ClientHello: Sendable, Equatable {
    package var serverName: String?
    package var alpn: [String] = []
    package var cipherSuites: [UInt16] = []
    /// What a JA4 fingerprint is made of, as offered (GREASE values included): the legacy version, every
    /// extension type in order, supported_versions, signature_algorithms, and the first ALPN value's bytes.
    package var legacyVersion: UInt16 = 0
    package var extensionTypes: [UInt16] = []
    package var supportedVersions: [UInt16] = []
    package var signatureAlgorithms: [UInt16] = []
    package var firstALPN: [UInt8]?
    /// What JA3 adds: supported_groups (elliptic curves) and ec_point_formats, as offered.
    package var supportedGroups: [UInt16] = []
    package var ecPointFormats: [UInt8] = []

    package init(serverName: String? = nil, alpn: [String] = [], cipherSuites: [UInt16] = []) {
        self.serverName = serverName
        self.alpn = alpn
        self.cipherSuites = cipherSuites
    }

    package enum ParseResult: Equatable {
        case needMoreData
        case notTLS(String)
        /// A well-formed ClientHello the gateway refuses (a server name that is no host name).
        case refused(String)
        case complete(ClientHello)
    }

    /// RFC 6066 3: a host name in ASCII without a trailing dot; here also 1 to 253 bytes, labels of 1 to 63
    /// letters, digits, '-' or '_'. Anything else (control bytes, spaces, an IP literal with ':') is refused
    /// before it can reach a log line, a plugin or a header.
    package static func isValidServerName(_ name: some Collection<UInt8>) -> Bool {
        guard (1...253).contains(name.count) else { return false }
        var label = 0
        for byte in name {
            if byte == UInt8(ascii: ".") {
                guard label > 0 else { return false }
                label = 0
                continue
            }
            let allowed = (byte >= 48 && byte <= 57) || (byte | 0x20 >= 97 && byte | 0x20 <= 122) || byte == 45 || byte == 95
            guard allowed else { return false }
            label += 1
            guard label <= 63 else { return false }
        }
        return label > 0
    }

    /// The largest ClientHello accepted (post-quantum key shares make them ~2 KiB; 64 KiB is generous).
    package static let maximumSize = 64 * 1024

    /// Parses from the start of `buffer` (TLS records as received); never consumes the buffer.
    package static func parse(_ buffer: ByteBuffer) -> ParseResult {
        var records = buffer
        var handshake = ByteBuffer()
        // Reassemble handshake fragments across records until the ClientHello is complete.
        while true {
            guard let type = records.readInteger(as: UInt8.self),
                let _ = records.readInteger(as: UInt16.self),
                let length = records.readInteger(as: UInt16.self)
            else { return handshake.readableBytes + records.readableBytes > maximumSize ? .notTLS("ClientHello too large") : .needMoreData }
            guard type == 22 else { return .notTLS("first record is not a TLS handshake record (type \(type))") }
            guard length > 0, length <= 16_384 + 256 else { return .notTLS("invalid TLS record length \(length)") }
            guard var fragment = records.readSlice(length: Int(length)) else { return .needMoreData }
            handshake.writeBuffer(&fragment)
            if handshake.readableBytes >= 4 {
                let bytes = handshake.getBytes(at: handshake.readerIndex, length: 4)!
                guard bytes[0] == 1 else { return .notTLS("first handshake message is not a ClientHello") }
                let bodyLength = Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
                guard bodyLength <= maximumSize else { return .notTLS("ClientHello too large") }
                if handshake.readableBytes >= 4 + bodyLength {
                    handshake.moveReaderIndex(forwardBy: 4)
                    guard var body = handshake.readSlice(length: bodyLength) else { return .notTLS("malformed ClientHello") }
                    do {
                        guard let hello = try parseBody(&body) else { return .notTLS("malformed ClientHello") }
                        return .complete(hello)
                    } catch {
                        return .refused("server_name is not a valid host name")
                    }
                }
            }
        }
    }

    private struct InvalidServerName: Error {}

    private static func parseBody(_ body: inout ByteBuffer) throws(InvalidServerName) -> ClientHello? {
        var hello = ClientHello()
        guard let legacyVersion = body.readInteger(as: UInt16.self),
            body.readSlice(length: 32) != nil,  // random
            let sessionIDLength = body.readInteger(as: UInt8.self),
            body.readSlice(length: Int(sessionIDLength)) != nil,
            let suitesLength = body.readInteger(as: UInt16.self), suitesLength % 2 == 0,
            var suites = body.readSlice(length: Int(suitesLength)),
            let compressionLength = body.readInteger(as: UInt8.self),
            body.readSlice(length: Int(compressionLength)) != nil
        else { return nil }
        hello.legacyVersion = legacyVersion
        while let suite = suites.readInteger(as: UInt16.self) { hello.cipherSuites.append(suite) }
        guard body.readableBytes > 0 else { return hello }  // no extensions
        guard let extensionsLength = body.readInteger(as: UInt16.self), var extensions = body.readSlice(length: Int(extensionsLength)) else {
            return nil
        }
        while extensions.readableBytes > 0 {
            guard let type = extensions.readInteger(as: UInt16.self), let length = extensions.readInteger(as: UInt16.self),
                var data = extensions.readSlice(length: Int(length))
            else { return nil }
            hello.extensionTypes.append(type)
            switch type {
            case 0:  // server_name
                guard let listLength = data.readInteger(as: UInt16.self), var list = data.readSlice(length: Int(listLength)) else { return nil }
                while list.readableBytes > 0 {
                    guard let nameType = list.readInteger(as: UInt8.self), let nameLength = list.readInteger(as: UInt16.self),
                        let name = list.readBytes(length: Int(nameLength))
                    else { return nil }
                    if nameType == 0, hello.serverName == nil {
                        guard isValidServerName(name) else { throw InvalidServerName() }
                        hello.serverName = String(decoding: name, as: UTF8.self)
                    }
                }
            case 16:  // application_layer_protocol_negotiation
                guard let listLength = data.readInteger(as: UInt16.self), var list = data.readSlice(length: Int(listLength)) else { return nil }
                while list.readableBytes > 0 {
                    guard let length = list.readInteger(as: UInt8.self), let proto = list.readBytes(length: Int(length)) else { return nil }
                    if hello.firstALPN == nil { hello.firstALPN = proto }
                    hello.alpn.append(String(decoding: proto, as: UTF8.self))
                }
            case 43:  // supported_versions
                guard let listLength = data.readInteger(as: UInt8.self), listLength % 2 == 0, var list = data.readSlice(length: Int(listLength)) else {
                    return nil
                }
                while let version = list.readInteger(as: UInt16.self) { hello.supportedVersions.append(version) }
            case 13:  // signature_algorithms
                guard let listLength = data.readInteger(as: UInt16.self), listLength % 2 == 0, var list = data.readSlice(length: Int(listLength)) else {
                    return nil
                }
                while let algorithm = list.readInteger(as: UInt16.self) { hello.signatureAlgorithms.append(algorithm) }
            // Read for JA3 only: a malformed list is left empty here (BoringSSL judges the hello; ec_point_formats
            // means nothing to it in TLS 1.3), never a reason to refuse the connection.
            case 10:  // supported_groups
                if let listLength = data.readInteger(as: UInt16.self), listLength % 2 == 0, var list = data.readSlice(length: Int(listLength)) {
                    while let group = list.readInteger(as: UInt16.self) { hello.supportedGroups.append(group) }
                }
            case 11:  // ec_point_formats
                if let listLength = data.readInteger(as: UInt8.self), let list = data.readBytes(length: Int(listLength)) {
                    hello.ecPointFormats = list
                }
            default:
                break
            }
        }
        return hello
    }

    /// Reads the cipher suite the server chose from the first bytes the server sends (a plaintext ServerHello).
    package static func serverHelloCipher(_ buffer: ByteBuffer) -> UInt16? {
        var b = buffer
        guard b.readInteger(as: UInt8.self) == 22, b.readInteger(as: UInt16.self) != nil, b.readInteger(as: UInt16.self) != nil,
            b.readInteger(as: UInt8.self) == 2, b.readSlice(length: 3) != nil,  // ServerHello, length
            b.readInteger(as: UInt16.self) != nil, b.readSlice(length: 32) != nil,
            let sessionIDLength = b.readInteger(as: UInt8.self), b.readSlice(length: Int(sessionIDLength)) != nil
        else { return nil }
        return b.readInteger(as: UInt16.self)
    }
}
