import Foundation
import NIOConcurrencyHelpers

/// Runs the real gateway as an unprivileged user, as the shipped systemd unit does (`User=` a system user,
/// only CAP_NET_BIND_SERVICE). The tests run as root on CI, which hid a gateway that served nothing as
/// anyone else; every test that starts a `gateway` process goes through here.
enum Unprivileged {
    static let user = "nobody"
    /// nobody's own group (nogroup on Debian, nobody elsewhere).
    static let group: String = {
        guard let entry = getpwnam(user), let group = getgrgid(entry.pointee.pw_gid) else { return "nogroup" }
        return String(cString: group.pointee.gr_name)
    }()

    /// True when this process is root and can run the gateway as `nobody` with setpriv. Run as another user,
    /// the tests' children are unprivileged already and start as they are. If root cannot (no setpriv, no
    /// such user, or a Swift runtime that user cannot read), the tests say so on stderr and run as root.
    static let canDrop: Bool = {
        guard getuid() == 0 else { return false }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), getpwnam(user) != nil else {
            FileHandle.standardError.write(Data("warning: no setpriv or no user \(user): the gateway processes of the tests run as root\n".utf8))
            return false
        }
        return true
    }()

    /// Whether the copied gateway starts as `nobody` at all (`gateway --help`); checked once.
    static let runsUnprivileged: Bool = {
        guard canDrop, let executable = try? gatewayExecutable else { return false }
        let (path, arguments) = setpriv(executable, ["--help"], netBindService: false)
        let probe = try? GatewayProcess.runCommand(path, arguments, timeout: 30)
        if probe?.status != 0 {
            FileHandle.standardError.write(Data("warning: the gateway does not start as \(user) (\(probe?.stderr ?? "?")): its Swift runtime must be readable by that user\n".utf8))
        }
        return probe?.status == 0
    }()

    /// The user id the gateway runs as.
    static var uid: uid_t { runsUnprivileged ? getpwnam(user)!.pointee.pw_uid : getuid() }

    /// The command that runs `executable` unprivileged. `netBindService` grants CAP_NET_BIND_SERVICE exactly as
    /// the systemd unit does: ambient and inheritable, the bounding set reduced to it, no new privileges.
    static func command(_ executable: String, _ arguments: [String], netBindService: Bool = false) -> (String, [String]) {
        guard runsUnprivileged else { return (executable, arguments) }
        return setpriv(executable, arguments, netBindService: netBindService)
    }

    private static func setpriv(_ executable: String, _ arguments: [String], netBindService: Bool) -> (String, [String]) {
        var prefix = ["--reuid=\(user)", "--regid=\(group)", "--clear-groups"]
        if netBindService {
            prefix += [
                "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service",
                "--bounding-set=-all,+net_bind_service", "--no-new-privs",
            ]
        }
        return ("/usr/bin/setpriv", prefix + ["--", executable] + arguments)
    }

    /// Hands a test directory (and what is in it) to the unprivileged user, the way an operator makes the
    /// configuration readable and the audit directory writable for the service user.
    static func handOver(_ directory: String) throws {
        guard runsUnprivileged else { return }
        let result = try GatewayProcess.runCommand("/bin/chown", ["-R", "\(user):\(group)", directory])
        guard result.status == 0 else { throw PluginFixtures.FixtureError(message: "chown \(directory): \(result.stderr)") }
    }

    /// The built gateway executable, and the plugins built beside it, where the unprivileged user can read and
    /// run them: the build folder may sit under a directory only root can enter (/root). Copied once per test
    /// run; the copy is the same binary, and its directory is the default plugin path as in the build folder.
    static var gatewayExecutable: String {
        get throws {
            guard canDrop else { return GatewayProcess.executable }
            return try copied.withLockedValue { path in
                if let path { return path }
                let source = URL(fileURLWithPath: GatewayProcess.executable).deletingLastPathComponent()
                let target = FileManager.default.temporaryDirectory.appendingPathComponent("gw-bin-\(getpid())")
                try? FileManager.default.removeItem(at: target)
                try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
                let files = try FileManager.default.contentsOfDirectory(atPath: source.path).filter { $0 == "gateway" || $0.hasSuffix(".so") }
                for file in files {
                    try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: target.appendingPathComponent(file))
                    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: target.appendingPathComponent(file).path)
                }
                path = target.appendingPathComponent("gateway").path
                return path!
            }
        }
    }
    private static let copied = NIOLockedValueBox<String?>(nil)

    /// A process's user id and effective capabilities, from /proc/PID/status.
    static func credentials(of pid: Int32) -> (uid: String, capEff: String)? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func field(_ name: String) -> String? {
            status.split(separator: "\n").first { $0.hasPrefix("\(name):") }.map {
                $0.dropFirst(name.count + 1).split(whereSeparator: { $0 == "\t" || $0 == " " }).first.map(String.init) ?? ""
            }
        }
        guard let uid = field("Uid"), let cap = field("CapEff") else { return nil }
        return (uid, cap)
    }
}
