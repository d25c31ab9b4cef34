import PluginAPI

/// Which host read an attribute belongs to: `get_attribute_int` for the ones the ABI header marks int,
/// `get_attribute` for every other (strings and bytes, and numbers the host does not know). ABI 1.6
/// `get_attributes` reads each entry by its kind.
package enum PluginAttributeKind {
    package static func isInteger(_ attribute: gw_attribute) -> Bool {
        switch attribute {
        case GW_ATTR_CLIENT_PORT, GW_ATTR_LOCAL_PORT, GW_ATTR_CONNECTION_ID, GW_ATTR_CLIENT_CERT_PRESENT,
            GW_ATTR_CLIENT_NOT_BEFORE_UNIX, GW_ATTR_CLIENT_NOT_AFTER_UNIX, GW_ATTR_REQUEST_ID, GW_ATTR_RESPONSE_STATUS,
            GW_ATTR_BYTES_RECEIVED, GW_ATTR_BYTES_SENT, GW_ATTR_DURATION_US, GW_ATTR_CLIENT_ABORTED,
            GW_ATTR_RESPONSE_INCOMPLETE:
            return true
        default:
            return false
        }
    }
}
