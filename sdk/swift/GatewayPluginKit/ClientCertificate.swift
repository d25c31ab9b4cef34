/// The client certificate of a request's connection, as the gateway verified it: read once per hook call
/// with `GatewayRequest.clientCertificate` (each property is a copy; keep what you need).
public struct ClientCertificate: Sendable {
    /// True only when the gateway verified the chain (GW_ATTR_CLIENT_VERIFY is "SUCCESS").
    public var verified: Bool
    public var subject: DistinguishedName
    public var issuer: DistinguishedName
    /// Uppercase hex, no separators.
    public var serial: String
    /// Lowercase hex SHA-256 of the leaf's DER.
    public var fingerprintSHA256: String
    public var uris: [String]
    public var dnsNames: [String]
    public var emails: [String]
}

extension GatewayRequest {
    /// The connection's client certificate; nil when the client presented none.
    public var clientCertificate: ClientCertificate? {
        guard integer(GW_ATTR_CLIENT_CERT_PRESENT) == 1 else { return nil }
        return ClientCertificate(
            verified: string(GW_ATTR_CLIENT_VERIFY) == "SUCCESS",
            subject: DistinguishedName(rfc2253: string(GW_ATTR_CLIENT_SUBJECT) ?? ""),
            issuer: DistinguishedName(rfc2253: string(GW_ATTR_CLIENT_ISSUER) ?? ""),
            serial: string(GW_ATTR_CLIENT_SERIAL) ?? "",
            fingerprintSHA256: string(GW_ATTR_CLIENT_FINGERPRINT_SHA256) ?? "",
            uris: strings(GW_ATTR_CLIENT_SAN_URI),
            dnsNames: strings(GW_ATTR_CLIENT_SAN_DNS),
            emails: strings(GW_ATTR_CLIENT_SAN_EMAIL)
        )
    }
}

/// A distinguished name parsed from the RFC 2253 text the gateway provides (`CN=a\,b,OU=ops+OU=dev,O=Corp`):
/// escapes are undone, multi-valued RDNs are split. Attribute types are matched case-insensitively.
public struct DistinguishedName: Sendable, CustomStringConvertible {
    /// Every (type, value) in the order written (most specific first, as RFC 2253 prints them).
    public var attributes: [(type: String, value: String)]
    public var description: String

    public init(rfc2253 text: String) {
        description = text
        attributes = Self.parse(text)
    }

    /// Every value of an attribute type, e.g. `values("OU")`.
    public func values(_ type: String) -> [String] {
        attributes.filter { $0.type.caseInsensitiveCompare(type) == .orderedSame }.map(\.value)
    }

    /// The first CN, if any.
    public var commonName: String? { values("CN").first }

    private static func parse(_ text: String) -> [(type: String, value: String)] {
        var result: [(String, String)] = []
        var type = "", value: [UInt8] = []
        var inValue = false
        let bytes = Array(text.utf8)
        var i = 0
        func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case 48...57: return b - 48
            case 65...70: return b - 55
            case 97...102: return b - 87
            default: return nil
            }
        }
        func flush() {
            if inValue { result.append((type.trimmingSpaces, String(decoding: value, as: UTF8.self))) }
            type = ""
            value = []
            inValue = false
        }
        while i < bytes.count {
            let b = bytes[i]
            if !inValue {
                if b == UInt8(ascii: "=") { inValue = true } else { type.unicodeScalars.append(UnicodeScalar(b)) }
            } else if b == UInt8(ascii: "\\"), i + 1 < bytes.count {
                if i + 2 < bytes.count, let high = hex(bytes[i + 1]), let low = hex(bytes[i + 2]) {
                    value.append(high << 4 | low)
                    i += 2
                } else {
                    value.append(bytes[i + 1])
                    i += 1
                }
            } else if b == UInt8(ascii: ",") || b == UInt8(ascii: "+") {
                flush()
            } else {
                value.append(b)
            }
            i += 1
        }
        flush()
        return result
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
