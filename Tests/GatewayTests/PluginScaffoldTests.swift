import Foundation
import XCTest

/// `gateway plugin new c|swift NAME` makes a project that builds and passes `gateway plugin test` as written.
final class PluginScaffoldTests: XCTestCase {
    func testCAndSwiftProjectsBuildAndDecide() throws {
        let pki = try TestPKI()
        try "{ deny_prefix: /admin/ }".write(toFile: pki.path("scaffold.yaml"), atomically: true, encoding: .utf8)
        for (language, build, library) in [("c", ["make"], "libhello_c.so"), ("swift", ["swift", "build", "-c", "release"], ".build/release/libHelloSwiftPlugin.so")] {
            let name = "hello_\(language)"
            let directory = pki.path(name)
            let made = try GatewayProcess.run(["plugin", "new", language, name, "--dir", directory])
            XCTAssertEqual(made.status, 0, made.stderr)
            XCTAssertTrue(made.stdout.contains("Made \(directory)"), made.stdout)
            let built = try GatewayProcess.runCommand("/usr/bin/env", ["HOME=\(directory)", "bash", "-c", "cd \(directory) && \(build.joined(separator: " "))"], timeout: 600)
            XCTAssertEqual(built.status, 0, "\(language): \(built.stdout)\n\(built.stderr)")
            let result = try GatewayProcess.run([
                "plugin", "test", "\(directory)/\(library)", "--config", pki.path("scaffold.yaml"), "--json",
                "--cert", pki.path("valid.pem"), "--ca", pki.path("ca.pem"), "--request", "GET /hello", "--request", "GET /admin/x",
            ])
            XCTAssertEqual(result.status, 0, "\(language): \(result.stderr)")
            let outcomes = result.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            XCTAssertEqual(outcomes.count, 2, result.stdout)
            XCTAssertEqual(outcomes.first?["decision"] as? String, "continue", language)
            let added = outcomes.first?["added_headers"] as? [[String]] ?? []
            XCTAssertEqual(added.first { $0.first == "x-hello-\(language)-subject" }?.last, "CN=valid-client,OU=ops,O=Test,C=US", "\(language): \(added)")
            XCTAssertEqual(outcomes.last?["decision"] as? String, "respond", language)
            XCTAssertEqual(outcomes.last?["status"] as? Int, 403, language)

            // Both projects read their config strictly, like the gateway (C through the host's config reader).
            try "{ deny_prefx: /admin/ }".write(toFile: pki.path("typo.yaml"), atomically: true, encoding: .utf8)
            let typo = try GatewayProcess.run(["plugin", "test", "\(directory)/\(library)", "--config", pki.path("typo.yaml")])
            XCTAssertEqual(typo.status, 1, language)
            XCTAssertTrue(typo.stderr.contains("config: unknown key 'deny_prefx'; known: deny_prefix"), "\(language): \(typo.stderr)")
            try "{ deny_prefix: 3 }".write(toFile: pki.path("wrongtype.yaml"), atomically: true, encoding: .utf8)
            let wrongType = try GatewayProcess.run(["plugin", "test", "\(directory)/\(library)", "--config", pki.path("wrongtype.yaml")])
            XCTAssertEqual(wrongType.status, 1, language)
            XCTAssertTrue(wrongType.stderr.contains("deny_prefix: expected a string"), "\(language): \(wrongType.stderr)")
        }
    }

    func testNamesThatAreSwiftOrSDKNamesStillBuild() throws {
        // `decision` would name a type Decision, which the kit declares: the Plugin suffix avoids it.
        let pki = try TestPKI()
        let directory = pki.path("decision")
        XCTAssertEqual(try GatewayProcess.run(["plugin", "new", "swift", "decision", "--dir", directory]).status, 0)
        let built = try GatewayProcess.runCommand("/usr/bin/env", ["HOME=\(directory)", "bash", "-c", "cd \(directory) && swift build -c release"], timeout: 600)
        XCTAssertEqual(built.status, 0, built.stdout + built.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory)/.build/release/libDecisionPlugin.so"))
    }

    func testRefusesABadNameALanguageAndAUsedDirectory() throws {
        let pki = try TestPKI()
        let badName = try GatewayProcess.run(["plugin", "new", "c", "My-Plugin", "--dir", pki.path("x")])
        XCTAssertEqual(badName.status, 1)
        XCTAssertTrue(badName.stderr.contains("plugin name 'My-Plugin': use 1 to 64 of [a-z0-9_], starting with a letter"), badName.stderr)
        let badLanguage = try GatewayProcess.run(["plugin", "new", "rust", "p", "--dir", pki.path("y")])
        XCTAssertTrue(badLanguage.stderr.contains("language 'rust': expected c or swift"), badLanguage.stderr)
        let used = try GatewayProcess.run(["plugin", "new", "c", "p", "--dir", pki.directory])
        XCTAssertEqual(used.status, 1)
        XCTAssertTrue(used.stderr.contains("\(pki.directory): exists and is not empty"), used.stderr)
    }
}
