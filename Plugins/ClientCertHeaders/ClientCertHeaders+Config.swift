import GatewayPluginKit

extension ClientCertHeaders {
    /// A chain entry's config, decoded strictly by the SDK's decoder (a misspelt key is an error naming it).
    struct Config: Decodable {
        var dialect = "elb"
        /// Per field: a header name (renamed and enabled) or true/false.
        var fields: [String: FieldOverride] = [:]
        var fingerprintAlgorithm = "sha1"
        var maxValueBytes = 16384
        /// XFCC elements to emit; nil: all of them.
        var xfccElements: [String]?

        enum CodingKeys: String, CodingKey {
            case dialect, fields
            case fingerprintAlgorithm = "fingerprint_algorithm"
            case maxValueBytes = "max_value_bytes"
            case xfccElements = "xfcc_elements"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            dialect = try container.decodeIfPresent(String.self, forKey: .dialect) ?? dialect
            fields = try container.decodeIfPresent([String: FieldOverride].self, forKey: .fields) ?? fields
            fingerprintAlgorithm = try container.decodeIfPresent(String.self, forKey: .fingerprintAlgorithm) ?? fingerprintAlgorithm
            maxValueBytes = try container.decodeIfPresent(Int.self, forKey: .maxValueBytes) ?? maxValueBytes
            xfccElements = try container.decodeIfPresent([String].self, forKey: .xfccElements)
        }
    }

    /// `fields.<name>`: a header name, or true/false to enable or disable the field under its default name.
    enum FieldOverride: Decodable {
        case enabled(Bool)
        case header(String)

        init(from decoder: any Decoder) throws {
            let value = try decoder.singleValueContainer()
            if let flag = try? value.decode(Bool.self) {
                self = .enabled(flag)
            } else if let name = try? value.decode(String.self) {
                self = .header(name)
            } else {
                throw PluginConfigError("\(PluginConfig.keyPath(decoder.codingPath)): expected a header name or true/false")
            }
        }
    }
}
