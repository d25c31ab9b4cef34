import SwiftASN1
import X509

/// Prints a distinguished name exactly as OpenSSL's `X509_NAME_print_ex(..., XN_FLAG_RFC2253)` does, which is
/// what nginx's `$ssl_client_s_dn` / `$ssl_client_i_dn` and `openssl x509 -nameopt RFC2253` show: RDNs in
/// reverse order joined by `,`, multi-valued RDNs joined by `+` (also reversed), short attribute names,
/// RFC 2253 escaping, control characters and every byte of a non-ASCII UTF-8 character as `\XX`, and values
/// of unknown attribute types or non-string encodings as `#` followed by the hex of their DER.
/// Backends byte-compare these strings, so "close enough" is wrong: see the tests against `openssl x509`.
package enum DistinguishedNameFormatter {
    package static func rfc2253(_ name: DistinguishedName) -> String {
        var out = ""
        var first = true
        for rdn in name.reversed() {
            var firstInRDN = true
            for attribute in Array(rdn).reversed() {
                if !first { out += firstInRDN ? "," : "+" }
                first = false
                firstInRDN = false
                if let short = shortNames[attribute.type] {
                    out += short
                    out += "="
                    out += value(attribute.value, known: true)
                } else {
                    out += attribute.type.description
                    out += "="
                    out += value(attribute.value, known: false)
                }
            }
        }
        return out
    }

    /// Every attribute in RFC 2253 order (as `rfc2253` prints them): the OID, OpenSSL's short name, and the
    /// value as text (UTF-8, unescaped) for string types or as its DER for any other type.
    package static func attributes(_ name: DistinguishedName) -> [(oid: String, short: String?, value: [UInt8])] {
        var result: [(oid: String, short: String?, value: [UInt8])] = []
        for rdn in name.reversed() {
            for attribute in Array(rdn).reversed() {
                var serializer = DER.Serializer()
                // An attribute that cannot be re-encoded keeps its place (an empty value): indexes stay right.
                let der = (try? serializer.serialize(ASN1Any(attribute.value))) != nil ? serializer.serializedBytes : []
                var text: [UInt8]? = nil
                if let (tag, content) = splitDER(der) {
                    switch tag {
                    case 0x0C: text = Array(String(decoding: content, as: UTF8.self).utf8)
                    case 0x13, 0x16, 0x12, 0x1A, 0x14: text = Array(String(content.map { Character(Unicode.Scalar($0)) }).utf8)
                    case 0x1E where content.count % 2 == 0:
                        let units = stride(from: 0, to: content.count, by: 2).map { UInt16(content[$0]) << 8 | UInt16(content[$0 + 1]) }
                        text = Array(String(decoding: units, as: UTF16.self).utf8)
                    case 0x1C where content.count % 4 == 0:  // UniversalString, UTF-32BE
                        var scalars = String.UnicodeScalarView()
                        for i in stride(from: 0, to: content.count, by: 4) {
                            let code = UInt32(content[i]) << 24 | UInt32(content[i + 1]) << 16 | UInt32(content[i + 2]) << 8 | UInt32(content[i + 3])
                            scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
                        }
                        text = Array(String(scalars).utf8)
                    default: text = nil
                    }
                }
                result.append((attribute.type.description, shortNames[attribute.type], text ?? der))
            }
        }
        return result
    }

    private static func value(_ value: RelativeDistinguishedName.Attribute.Value, known: Bool) -> String {
        var serializer = DER.Serializer()
        guard (try? serializer.serialize(ASN1Any(value))) != nil else { return "" }
        let der = serializer.serializedBytes
        guard known, let (tag, content) = splitDER(der) else { return hexDump(der) }
        // Decode to Unicode scalars the way OpenSSL's ASN1_STRFLGS_UTF8_CONVERT does.
        var scalars: [UInt32] = []
        switch tag {
        case 0x0C:  // UTF8String
            scalars = String(decoding: content, as: UTF8.self).unicodeScalars.map(\.value)
        case 0x13, 0x16, 0x12, 0x1A, 0x14:  // Printable, IA5, Numeric, Visible, T61 (OpenSSL treats T61 as Latin-1)
            scalars = content.map(UInt32.init)
        case 0x1E:  // BMPString, UTF-16BE
            guard content.count % 2 == 0 else { return hexDump(der) }
            var units: [UInt16] = []
            for i in stride(from: 0, to: content.count, by: 2) { units.append(UInt16(content[i]) << 8 | UInt16(content[i + 1])) }
            scalars = String(decoding: units, as: UTF16.self).unicodeScalars.map(\.value)
        case 0x1C:  // UniversalString, UTF-32BE
            guard content.count % 4 == 0 else { return hexDump(der) }
            for i in stride(from: 0, to: content.count, by: 4) {
                scalars.append(UInt32(content[i]) << 24 | UInt32(content[i + 1]) << 16 | UInt32(content[i + 2]) << 8 | UInt32(content[i + 3]))
            }
        default:
            return hexDump(der)
        }
        return escape(scalars)
    }

    /// RFC 2253 escaping with OpenSSL's ESC_2253 | ESC_CTRL | ESC_MSB rules over the UTF-8 bytes.
    private static func escape(_ scalars: [UInt32]) -> String {
        var out = ""
        let count = scalars.count
        for (index, scalar) in scalars.enumerated() {
            guard let unicode = Unicode.Scalar(scalar) else { continue }
            if scalar > 0x7F {
                for byte in String(unicode).utf8 { out += hexEscape(byte) }
                continue
            }
            let c = UInt8(scalar)
            switch c {
            case UInt8(ascii: ","), UInt8(ascii: "+"), UInt8(ascii: "\""), UInt8(ascii: "\\"),
                UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: ";"):
                out += "\\" + String(unicode)
            case UInt8(ascii: "#") where index == 0:
                out += "\\#"
            case UInt8(ascii: " ") where index == 0 || index == count - 1:
                out += "\\ "
            case 0..<0x20, 0x7F:
                out += hexEscape(c)
            default:
                out.unicodeScalars.append(unicode)
            }
        }
        return out
    }

    private static func hexEscape(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return "\\" + String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }

    private static func hexDump(_ der: [UInt8]) -> String {
        let digits = Array("0123456789ABCDEF")
        return "#" + String(der.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] })
    }

    /// Splits a DER TLV with a one-byte tag into its tag and content.
    /// The tag and the content bytes, as an array indexed from 0 (the decoders below index it so).
    private static func splitDER(_ der: [UInt8]) -> (UInt8, [UInt8])? {
        guard der.count >= 2 else { return nil }
        var index = 1
        var length = Int(der[index])
        index += 1
        if length & 0x80 != 0 {
            let octets = length & 0x7F
            guard octets > 0, octets <= 4, der.count >= index + octets else { return nil }
            length = 0
            for _ in 0..<octets {
                length = length << 8 | Int(der[index])
                index += 1
            }
        }
        guard der.count == index + length else { return nil }
        return (der[0], Array(der[index...]))
    }

    /// OpenSSL's short names (OBJ_nid2sn) for the attribute types seen in certificate names.
    package static let shortNames: [ASN1ObjectIdentifier: String] = [
        [2, 5, 4, 3]: "CN",
        [2, 5, 4, 4]: "SN",
        [2, 5, 4, 5]: "serialNumber",
        [2, 5, 4, 6]: "C",
        [2, 5, 4, 7]: "L",
        [2, 5, 4, 8]: "ST",
        [2, 5, 4, 9]: "street",
        [2, 5, 4, 10]: "O",
        [2, 5, 4, 11]: "OU",
        [2, 5, 4, 12]: "title",
        [2, 5, 4, 13]: "description",
        [2, 5, 4, 15]: "businessCategory",
        [2, 5, 4, 17]: "postalCode",
        [2, 5, 4, 41]: "name",
        [2, 5, 4, 42]: "GN",
        [2, 5, 4, 43]: "initials",
        [2, 5, 4, 44]: "generationQualifier",
        [2, 5, 4, 46]: "dnQualifier",
        [2, 5, 4, 65]: "pseudonym",
        [2, 5, 4, 97]: "organizationIdentifier",
        [0, 9, 2342, 19_200_300, 100, 1, 1]: "UID",
        [0, 9, 2342, 19_200_300, 100, 1, 25]: "DC",
        [1, 2, 840, 113_549, 1, 9, 1]: "emailAddress",
        [1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 3]: "jurisdictionC",
        [1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 2]: "jurisdictionST",
        [1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 1]: "jurisdictionL",
    ]
}
