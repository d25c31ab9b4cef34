import Atomics
import NIOCore

/// One server of a backend group, with its live counters and its keep-alive connection pool.
final class BackendServer: Sendable {
    let address: String
    let host: String
    let port: Int
    let weight: Int
    /// Requests in flight on this server (least_connections).
    let activeRequests = ManagedAtomic<Int>(0)
    let pool: BackendConnectionPool

    init(address: String, host: String, port: Int, weight: Int, maxIdle: Int) {
        self.address = address
        self.host = host
        self.port = port
        self.weight = weight
        self.pool = BackendConnectionPool(maxIdlePerEventLoop: maxIdle)
    }
}
