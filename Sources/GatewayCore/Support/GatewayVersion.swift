import Foundation

/// The gateway's version (`gateway --version`), and the commit of a packaged build: `scripts/package` writes a
/// `BUILD` file (`commit <hash>`) beside the executable, since SwiftPM has no way to stamp a build.
public enum GatewayVersion {
    public static let number = "0.5.0"

    /// The commit recorded in `BUILD` beside the executable, if there is one.
    public static var commit: String? {
        let path = "\(RuntimeCompiler.executableDirectory)/BUILD"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("commit ") {
            let value = line.dropFirst("commit ".count).trimmingCharacters(in: .whitespaces)
            // A hash, perhaps with `-dirty`: nothing else is printed.
            if (1...64).contains(value.utf8.count), value.utf8.allSatisfy({ (48...57).contains($0) || (97...122).contains($0) || $0 == UInt8(ascii: "-") }) {
                return value
            }
        }
        return nil
    }

    /// `mtls-gateway 0.5.0 (commit 1a2b3c4d5e6f)`, or `(source build: commit not recorded)`.
    public static var text: String {
        "mtls-gateway \(number) (\(commit.map { "commit \($0)" } ?? "source build: commit not recorded"))"
    }
}
