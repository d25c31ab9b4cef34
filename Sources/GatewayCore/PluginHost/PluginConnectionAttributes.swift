import Foundation
import PluginAPI

/// Connection attributes, shared by connection and request handles.
package enum PluginConnectionAttributes {
    package static func read(_ attribute: gw_attribute, index: Int, connection: ConnectionContext, arena: PluginArena, into out: inout gw_str) -> gw_status {
        let identity = connection.clientCertificate
        func text(_ value: String?) -> gw_status {
            guard let value else { return GW_ERR_NOT_FOUND }
            out = arena.view(value)
            return GW_OK
        }
        func stable(_ value: StableBytes?) -> gw_status {
            guard let value else { return GW_ERR_NOT_FOUND }
            out = value.view
            return GW_OK
        }
        func indexed(_ values: [StableBytes]?) -> gw_status {
            guard let values, index < values.count else { return GW_ERR_NOT_FOUND }
            out = values[index].view
            return GW_OK
        }
        if index != 0 && ![GW_ATTR_CLIENT_SAN_DNS, GW_ATTR_CLIENT_SAN_URI, GW_ATTR_CLIENT_SAN_IP, GW_ATTR_CLIENT_SAN_EMAIL, GW_ATTR_CLIENT_CHAIN_DER].contains(attribute) {
            return GW_ERR_NOT_FOUND
        }
        switch attribute {
        case GW_ATTR_LISTENER_NAME: return text(connection.listenerName)
        case GW_ATTR_CLIENT_ADDRESS: return text(connection.remoteAddress?.ipAddress)
        case GW_ATTR_LOCAL_ADDRESS: return text(connection.localAddress?.ipAddress)
        case GW_ATTR_SNI: return text(connection.serverName)
        case GW_ATTR_ALPN: return text(connection.negotiatedALPN)
        case GW_ATTR_TLS_VERSION: return text(connection.tlsVersionName)
        case GW_ATTR_TLS_CIPHER: return text(connection.cipherName)
        case GW_ATTR_TLS_CIPHERS_OFFERED:
            return text(connection.isTLS ? connection.offeredCipherSuites.map(CipherSuiteNames.name).joined(separator: ":") : nil)
        case GW_ATTR_CLIENT_JA4: return text(connection.ja4)
        case GW_ATTR_CLIENT_JA3: return text(connection.ja3)
        case GW_ATTR_CLIENT_VERIFY: return text(connection.clientVerifyText)
        case GW_ATTR_VERIFY_ERROR:
            if case .failed(let rejection) = connection.verification { return text(rejection.detail) }
            return GW_ERR_NOT_FOUND
        case GW_ATTR_CLIENT_SUBJECT: return stable(identity?.views.subject)
        case GW_ATTR_CLIENT_ISSUER: return stable(identity?.views.issuer)
        case GW_ATTR_CLIENT_SERIAL: return stable(identity?.views.serial)
        case GW_ATTR_CLIENT_FINGERPRINT_SHA1: return stable(identity?.views.sha1)
        case GW_ATTR_CLIENT_FINGERPRINT_SHA256: return stable(identity?.views.sha256)
        case GW_ATTR_CLIENT_NOT_BEFORE: return stable(identity?.views.notBefore)
        case GW_ATTR_CLIENT_NOT_AFTER: return stable(identity?.views.notAfter)
        case GW_ATTR_CLIENT_SAN_DNS: return indexed(identity?.views.dns)
        case GW_ATTR_CLIENT_SAN_URI: return indexed(identity?.views.uris)
        case GW_ATTR_CLIENT_SAN_IP: return indexed(identity?.views.ips)
        case GW_ATTR_CLIENT_SAN_EMAIL: return indexed(identity?.views.emails)
        case GW_ATTR_CLIENT_CERT_DER: return stable(identity?.views.chainDER.first)
        case GW_ATTR_CLIENT_CERT_PEM: return stable(identity?.views.leafPEM)
        case GW_ATTR_CLIENT_CHAIN_DER: return indexed(identity?.views.chainDER)
        case GW_ATTR_CLIENT_CHAIN_PEM: return stable(identity?.views.chainPEM)
        default: return GW_ERR_NOT_FOUND
        }
    }

    package static func readInt(_ attribute: gw_attribute, connection: ConnectionContext) -> Int64? {
        switch attribute {
        case GW_ATTR_CLIENT_PORT: return connection.remoteAddress?.port.map(Int64.init)
        case GW_ATTR_LOCAL_PORT: return connection.localAddress?.port.map(Int64.init)
        case GW_ATTR_CONNECTION_ID: return Int64(bitPattern: connection.id)
        case GW_ATTR_CLIENT_CERT_PRESENT: return connection.clientCertificate == nil ? 0 : 1
        case GW_ATTR_CLIENT_NOT_BEFORE_UNIX: return connection.clientCertificate.map { Int64($0.notBefore.timeIntervalSince1970) }
        case GW_ATTR_CLIENT_NOT_AFTER_UNIX: return connection.clientCertificate.map { Int64($0.notAfter.timeIntervalSince1970) }
        default: return nil
        }
    }
}

extension PluginConnectionAttributes {
    /// `get_dn_value`: the `index`-th value of attribute `type` (short name, any case, or dotted OID).
    /// ABI 1.4 `get_connection_data`, for a connection's or a request's target.
    package static func connectionData(_ tag: UInt64, connection: ConnectionContext, into out: inout UnsafeMutableRawPointer?) -> gw_status {
        out = connection.pluginData.value(tag: tag)
        return out == nil ? GW_ERR_NOT_FOUND : GW_OK
    }

    /// ABI 1.4 `set_connection_data`. The replaced value's release runs after the list changed (a release
    /// function that calls back finds no change under way).
    package static func setConnectionData(
        _ tag: UInt64, _ data: UnsafeMutableRawPointer?, release: PluginConnectionData.Release?, connection: ConnectionContext
    ) -> gw_status {
        connection.pluginData.set(tag: tag, data: data, release: release).run()
        return GW_OK
    }

    package static func dnValue(_ which: gw_dn, type: String, index: Int, connection: ConnectionContext, into out: inout gw_str) -> gw_status {
        let values: [ClientIdentity.DNValue]
        switch which {
        case GW_DN_SUBJECT: values = connection.clientCertificate?.subjectValues ?? []
        case GW_DN_ISSUER: values = connection.clientCertificate?.issuerValues ?? []
        default: return GW_ERR_INVALID_ARGUMENT
        }
        var seen = 0
        for value in values where value.oid == type || value.shortName?.caseInsensitiveCompare(type) == .orderedSame {
            if seen == index {
                out = value.value.view
                return GW_OK
            }
            seen += 1
        }
        return GW_ERR_NOT_FOUND
    }
}

/// The target of a connection handle (on_connection): read-only (the base class refuses every edit).
package final class PluginConnectionTarget: PluginCallTarget {
    package let connection: ConnectionContext

    package init(connection: ConnectionContext) { self.connection = connection }

    package func endCall() { PluginArena.current.reset() }

    override package func attribute(_ attribute: gw_attribute, index: Int, arena: PluginArena, into out: inout gw_str) -> gw_status {
        PluginConnectionAttributes.read(attribute, index: index, connection: connection, arena: arena, into: &out)
    }
    override package func attributeInt(_ attribute: gw_attribute) -> Int64? { PluginConnectionAttributes.readInt(attribute, connection: connection) }
    override package func dnValue(_ which: gw_dn, type: String, index: Int, into out: inout gw_str) -> gw_status {
        PluginConnectionAttributes.dnValue(which, type: type, index: index, connection: connection, into: &out)
    }
    override package func connectionData(_ tag: UInt64, into out: inout UnsafeMutableRawPointer?) -> gw_status {
        PluginConnectionAttributes.connectionData(tag, connection: connection, into: &out)
    }
    override package func setConnectionData(_ tag: UInt64, _ data: UnsafeMutableRawPointer?, release: PluginConnectionData.Release?) -> gw_status {
        PluginConnectionAttributes.setConnectionData(tag, data, release: release, connection: connection)
    }
}
