import Logging
import ServiceLifecycle

/// `watch: true`: reloads the configuration, as SIGHUP does, when the configuration file or any file it names
/// (certificates, keys, passphrase files, CA bundles, CRLs, plugin libraries) changes. Every `watch_interval`
/// it stamps those files (`stat` through symlinks, so the atomic `..data` swap of a Kubernetes Secret counts)
/// and compares them with the stamps the running generation was built from. A change is acted on once the
/// files have held still for one interval (a copy in progress is not loaded half-written). A reload that fails
/// (a broken or half-written file) leaves the running configuration in place, logged and counted as any failed
/// reload, and is tried again only when the files change again.
package struct FileWatchService: Service {
    package let server: GatewayServer
    package let logger: Logger

    package init(server: GatewayServer, logger: Logger) {
        self.server = server
        self.logger = logger
    }

    package func run() async throws {
        var previous: [String: FileStamp]?
        var lastAttempt: [String: FileStamp]?
        while !Task.isShuttingDownGracefully {
            let runtime = server.runtime
            let interval = runtime.config.watchInterval.nanoseconds
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(nanoseconds: UInt64(max(interval, 100_000_000))) }
            } catch {
                return
            }
            // `watch` is read from the running generation: a reload can turn it on or off.
            guard runtime.config.watch, runtime === server.runtime else {
                previous = nil
                continue
            }
            var now: [String: FileStamp] = [:]
            for path in runtime.fileStamps.keys { now[path] = FileStamp(path: path) }
            defer { previous = now }
            guard now != runtime.fileStamps, now == previous, now != lastAttempt else { continue }
            lastAttempt = now
            let changed = now.keys.filter { now[$0] != runtime.fileStamps[$0] }.sorted()
            logger.info("watched files changed: reloading", metadata: ["files": "\(changed.joined(separator: ", "))"])
            let outcome = await server.reload()
            if !outcome.success {
                logger.warning("reload after a file change failed; the running configuration stays until the files change again", metadata: [
                    "errors": "\(outcome.errors.joined(separator: "; "))",
                ])
            }
        }
    }
}
