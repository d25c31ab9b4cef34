/// The part of a request line that is the same for every request of a connection: the listener, client address
/// and port, TLS version and cipher, the certificate's subject, issuer, serial, fingerprint and SANs, serialized
/// once (reading ~20 attributes and escaping them for every request was most of the plugin's cost) and kept with
/// the connection by the host (`GatewayRequest.connectionData`).
final class ConnectionFields {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }
}
