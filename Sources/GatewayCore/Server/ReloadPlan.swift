import NIOCore

/// What a reload does with the listening sockets, decided from names and addresses alone before anything is
/// touched: a listener whose name and address stay keeps its socket (its new connections switch to the new
/// generation), a new or moved one gets a socket bound first, and a removed or moved one's socket drains.
/// `GatewayServer.reload` executes the plan in one place.
package struct ReloadPlan: Equatable, Sendable {
    /// Listeners that need a socket of their own (new names, or an address that changed), in config order.
    package var bind: [String] = []
    /// Listeners whose socket stays and swaps to the new generation, in config order.
    package var keep: [String] = []
    /// Sockets to stop accepting on and drain (removed names, or moved addresses), sorted by name.
    package var drain: [String] = []

    package init(current: [String: SocketAddress], next: [(name: String, address: SocketAddress)]) {
        var staying = Set<String>()
        for listener in next {
            if current[listener.name] == listener.address {
                keep.append(listener.name)
                staying.insert(listener.name)
            } else {
                bind.append(listener.name)
            }
        }
        drain = current.keys.filter { !staying.contains($0) }.sorted()
    }
}
