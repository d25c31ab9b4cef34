/// The servers of a backend group at one moment, with the balancer over them. Immutable: when discovery
/// changes a group's addresses it swaps in a new one, and a request keeps the one it started with, so that the
/// server indices of its retries stay valid.
package final class BackendMembers: Sendable {
    package let servers: [BackendServer]
    package let balancer: LoadBalancer

    package init(servers: [BackendServer], balance: BalanceStrategy) {
        self.servers = servers
        self.balancer = LoadBalancer(strategy: balance, servers: servers)
    }
}
