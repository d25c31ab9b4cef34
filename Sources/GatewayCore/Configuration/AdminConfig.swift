/// The admin listener: plain HTTP for probes and scrapes (`/healthz`, `/readyz`, `/metrics`, `/config`,
/// `/plugins`, `POST /reload`). It binds to loopback unless told otherwise; exposing it is the operator's choice.
public struct AdminConfig: Codable, Sendable {
    public var address: String

    package enum CodingKeys: String, CodingKey { case address }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        address = c.value(.address, default: "127.0.0.1:9901")
    }
}
