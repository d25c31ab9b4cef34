import Crypto
import Foundation
import GatewayCore
import GatewayTooling
import SwiftASN1
import X509

/// Builds signed X.509 v2 CRLs for tests (swift-certificates has no CRL type).
enum CRLBuilder {
    static func make(
        issuer: IssuedCertificate, revoked: [Certificate.SerialNumber],
        thisUpdate: Date = Date().addingTimeInterval(-3600), nextUpdate: Date = Date().addingTimeInterval(7 * 86400),
        signer: P256.Signing.PrivateKey? = nil
    ) throws -> [UInt8] {
        let ecdsaWithSHA256: ASN1ObjectIdentifier = [1, 2, 840, 10045, 4, 3, 2]
        var tbs = DER.Serializer()
        try tbs.appendConstructedNode(identifier: .sequence) { c in
            try c.serialize(1)  // v2
            try c.appendConstructedNode(identifier: .sequence) { a in try a.serialize(ecdsaWithSHA256) }
            try c.serialize(issuer.certificate.subject)
            try c.serialize(utc(thisUpdate))
            try c.serialize(utc(nextUpdate))
            if !revoked.isEmpty {
                try c.appendConstructedNode(identifier: .sequence) { list in
                    for serial in revoked {
                        try list.appendConstructedNode(identifier: .sequence) { entry in
                            try entry.serialize(serial.bytes)
                            try entry.serialize(utc(thisUpdate))
                        }
                    }
                }
            }
        }
        let tbsBytes = tbs.serializedBytes
        let signature = try (signer ?? issuer.privateKey).signature(for: tbsBytes).derRepresentation
        var outer = DER.Serializer()
        try outer.appendConstructedNode(identifier: .sequence) { c in
            c.serializeRawBytes(tbsBytes)
            try c.appendConstructedNode(identifier: .sequence) { a in try a.serialize(ecdsaWithSHA256) }
            try c.serialize(ASN1BitString(bytes: ArraySlice(signature)))
        }
        return outer.serializedBytes
    }

    static func pem(_ der: [UInt8]) -> String {
        PEMDocument(type: "X509 CRL", derBytes: der).pemString + "\n"
    }

    private static func utc(_ date: Date) throws -> UTCTime {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return try UTCTime(year: c.year!, month: c.month!, day: c.day!, hours: c.hour!, minutes: c.minute!, seconds: c.second!)
    }
}
