import Foundation
import GatewayTooling
import X509

/// A real OCSP responder: `openssl ocsp -index ... -port ...`, answering from an OpenSSL CA database (index.txt)
/// that the test writes, signed by `signer` (the CA itself or a delegated responder certificate).
final class OpenSSLResponder {
    enum Entry {
        case valid(IssuedCertificate)
        case revoked(IssuedCertificate)
    }

    let port: Int
    private let process: Process
    /// What openssl printed (its log), for failure messages.
    let logPath: String

    var url: String { "http://127.0.0.1:\(port)" }

    /// `requests`: the responder exits after answering that many (openssl's -nrequest). `minutes`: the
    /// answers' nextUpdate (none when nil).
    init(directory: String, port: Int, ca: IssuedCertificate, signer: IssuedCertificate, entries: [Entry], requests: Int? = nil, minutes: Int? = 5) throws {
        self.port = port
        let index = "\(directory)/ocsp-index-\(port).txt"
        try entries.map(Self.line).joined().write(toFile: index, atomically: true, encoding: .utf8)
        try ca.certificatePEM.write(toFile: "\(directory)/ocsp-ca-\(port).pem", atomically: true, encoding: .utf8)
        try signer.certificatePEM.write(toFile: "\(directory)/ocsp-signer-\(port).pem", atomically: true, encoding: .utf8)
        try signer.privateKeyPEM.write(toFile: "\(directory)/ocsp-signer-\(port).key", atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        var arguments = [
            "ocsp", "-index", index, "-port", "\(port)", "-CA", "\(directory)/ocsp-ca-\(port).pem",
            "-rsigner", "\(directory)/ocsp-signer-\(port).pem", "-rkey", "\(directory)/ocsp-signer-\(port).key", "-ignore_err",
        ]
        if let requests { arguments += ["-nrequest", "\(requests)"] }
        if let minutes { arguments += ["-nmin", "\(minutes)"] }
        process.arguments = arguments
        logPath = "\(directory)/ocsp-\(port).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardError = log
        process.standardOutput = log
        try process.run()
    }

    /// Waits until the responder says it accepts connections. (Not by connecting to it: OpenSSL 3.0's responder
    /// hangs for good on a connection closed without a request.)
    func waitReady() async throws {
        for _ in 0..<100 {
            if log.contains("waiting for OCSP client connections") { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw PluginFixtures.FixtureError(message: "openssl ocsp did not start on port \(port): \(log)")
    }

    var isRunning: Bool { process.isRunning }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// An index.txt line: status, expiry, revocation time, serial (hex, as OpenSSL prints it), file, subject.
    private static func line(_ entry: Entry) -> String {
        let (status, issued, revokedAt): (String, IssuedCertificate, String) = switch entry {
        case .valid(let cert): ("V", cert, "")
        case .revoked(let cert): ("R", cert, time(Date().addingTimeInterval(-3600)))
        }
        let serial = issued.certificate.serialNumber.bytes.drop { $0 == 0 }.map { String(format: "%02X", $0) }.joined()
        let subject = "/" + String(describing: issued.certificate.subject).split(separator: ",").reversed().joined(separator: "/")
        return "\(status)\t\(time(issued.certificate.notValidAfter))\t\(revokedAt)\t\(serial.isEmpty ? "00" : serial)\tunknown\t\(subject)\n"
    }

    private static func time(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyMMddHHmmss'Z'"
        return formatter.string(from: date)
    }
}
