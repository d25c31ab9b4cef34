import GatewayPluginKit

/// One connection's identity headers as `add_headers` takes them, made once per connection: the list, and
/// the memory its views point into (kept alive here, whatever the identity cache evicts meanwhile).
final class ConnectionHeaders {
    let list: [gw_header]
    private let storage: [PreparedHeaders]

    init(list: [gw_header], storage: [PreparedHeaders]) {
        self.list = list
        self.storage = storage
    }
}
