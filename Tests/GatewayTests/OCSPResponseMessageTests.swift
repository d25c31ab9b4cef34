import Foundation
import GatewayCore
import GatewayTooling
import X509
import XCTest

/// The OCSP request encoder and response reader against what OpenSSL writes and answers (Tests/Fixtures/ocsp,
/// see its README), and their refusals.
final class OCSPResponseMessageTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/ocsp")

    private func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: Self.fixtures.appendingPathComponent(name))) }
    private func certificate(_ name: String) throws -> Certificate {
        try Certificate(pemEncoded: String(decoding: try bytes(name), as: UTF8.self))
    }

    private func id() throws -> OCSPCertificateID { try OCSPCertificateID(certificate: certificate("leaf.pem"), issuer: certificate("ca.pem")) }

    /// The moment the fixtures' answers were produced (their validity is judged then).
    private func producedAt(_ message: OCSPResponseMessage) throws -> Date { try XCTUnwrap(message.producedAt).addingTimeInterval(1) }

    func testTheRequestIsOpenSSLsByteForByte() throws {
        XCTAssertEqual(try id().requestDER, try bytes("req.der"))
        // A serial whose top bit is set gets its sign byte (swift-certificates holds serials without it).
        XCTAssertEqual(Array(OCSPCertificateID(issuerNameHash: [], issuerKeyHash: [], serial: [0x80, 0x01]).certIDDER.suffix(5)), [0x02, 0x03, 0x00, 0x80, 0x01])
        XCTAssertEqual(Array(OCSPCertificateID(issuerNameHash: [], issuerKeyHash: [], serial: [0x7F]).certIDDER.suffix(3)), [0x02, 0x01, 0x7F])
    }

    func testOpenSSLsAnswersReadAsGoodRevokedAndUnknown() throws {
        let ca = try certificate("ca.pem")
        let expected: [(String, OCSPResponseMessage.Status, Bool)] = [
            ("good-delegated.der", .good, true), ("good-by-ca.der", .good, false), ("unknown.der", .unknown, false),
        ]
        for (file, status, hasNextUpdate) in expected {
            let message = try OCSPResponseMessage(derEncoded: try bytes(file))
            let answer = try message.validate(for: try id(), issuer: ca, now: try producedAt(message)).get()
            XCTAssertEqual(answer.status, status, file)
            XCTAssertEqual(answer.nextUpdate != nil, hasNextUpdate, file)
        }
        let revoked = try OCSPResponseMessage(derEncoded: try bytes("revoked.der"))
        XCTAssertTrue(revoked.certificates.isEmpty, "sent with -resp_no_certs")
        // Without its responder certificate, a delegated answer cannot be believed.
        guard case .failure(let error) = revoked.validate(for: try id(), issuer: ca, now: try producedAt(revoked)) else { return XCTFail("accepted") }
        XCTAssertTrue(error.description.contains("signed neither by"), error.description)
    }

    func testEveryCheckRefusesWhatItShould() throws {
        let ca = try certificate("ca.pem")
        let good = try bytes("good-delegated.der")
        let message = try OCSPResponseMessage(derEncoded: good)
        let now = try producedAt(message)

        func refusal(_ message: OCSPResponseMessage, id: OCSPCertificateID? = nil, issuer: Certificate? = nil, at time: Date? = nil) throws -> String {
            guard case .failure(let error) = message.validate(for: try id ?? self.id(), issuer: issuer ?? ca, now: time ?? now) else {
                XCTFail("accepted")
                return ""
            }
            return error.description
        }
        // Another certificate's answer.
        var other = try id()
        other.serial = [0x01]
        XCTAssertTrue(try refusal(message, id: other).contains("has no answer for the certificate"))
        // Past nextUpdate, and produced in the future.
        XCTAssertTrue(try refusal(message, at: now.addingTimeInterval(3600)).contains("is stale"))
        // (The CA's own answer: the delegate's certificate was not yet valid an hour before.)
        let byCA = try OCSPResponseMessage(derEncoded: try bytes("good-by-ca.der"))
        XCTAssertTrue(try refusal(byCA, at: try producedAt(byCA).addingTimeInterval(-3600)).contains("in the future"))
        XCTAssertTrue(try refusal(message, at: now.addingTimeInterval(-3600)).contains("is not valid now"))
        // Another CA of the same name (another key) is not the issuer: its delegate is not believed, nor a
        // response the real CA signed.
        let impostor = try CertificateFactory.makeCA(try DistinguishedName { CommonName("Seed CA") }).certificate
        XCTAssertTrue(try refusal(message, issuer: impostor).contains("is not issued by"))
        // The CA's answer carries the CA's certificate, which the impostor did not issue.
        XCTAssertTrue(try refusal(byCA, issuer: impostor, at: try producedAt(byCA)).contains("is not issued by"))
        // A flipped bit in the signature.
        var tampered = message
        tampered.signatureBytes[tampered.signatureBytes.count - 3] ^= 0x01
        XCTAssertTrue(try refusal(tampered).contains("does not verify"))
        // A responder error status.
        let tryLater = try OCSPResponseMessage(derEncoded: [0x30, 0x03, 0x0A, 0x01, 0x03])
        XCTAssertTrue(try refusal(tryLater).contains("tryLater"))
    }

    func testMalformedAnswersAreRefusedWithoutCrashing() throws {
        let good = try bytes("good-delegated.der")
        XCTAssertThrowsError(try OCSPResponseMessage(derEncoded: []))
        XCTAssertThrowsError(try OCSPResponseMessage(derEncoded: Array("<html>".utf8)))
        XCTAssertThrowsError(try OCSPResponseMessage(derEncoded: [0x30, 0x03, 0x0A, 0x01, 0x00]), "successful without responseBytes")
        // Every truncation.
        for length in 0..<good.count {
            XCTAssertThrowsError(try OCSPResponseMessage(derEncoded: Array(good[..<length])), "\(length) bytes")
        }
    }
}
