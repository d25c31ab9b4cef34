import Foundation
import NIOCore

extension GatewayError {
    /// A listening socket that cannot be bound, said the way an operator reads an address (`127.0.0.1:443`,
    /// `[::1]:443`), with the likely remedy when the cause is a privileged port.
    package static func bindFailed(_ what: String, address: SocketAddress, error: any Error) -> GatewayError {
        var reason = "\(what): cannot bind \(address.text): \(error)"
        if let io = error as? IOError, io.errnoCode == EACCES, let port = address.port, port < 1024 {
            reason += " (a port below 1024 needs root or CAP_NET_BIND_SERVICE, as packaging/mtls-gateway.service grants)"
        }
        return GatewayError(.bindFailed, reason)
    }
}
