import Foundation

/// A path given on the command line, made absolute against a directory (the working directory by default)
/// with `.` and `..` removed: the form every message and `plugin inspect` prints.
package enum CommandLinePath {
    package static func absolute(_ path: String, in directory: String = FileManager.default.currentDirectoryPath) -> String {
        URL(fileURLWithPath: path.hasPrefix("/") ? path : directory + "/" + path).standardized.path
    }
}
