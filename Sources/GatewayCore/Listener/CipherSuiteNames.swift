import Foundation

/// OpenSSL names of TLS cipher suites (what nginx's $ssl_cipher and $ssl_ciphers print).
package enum CipherSuiteNames {
    package static func name(_ code: UInt16) -> String {
        table[code] ?? String(format: "0x%04X", code)
    }

    package static let table: [UInt16: String] = [
        0x1301: "TLS_AES_128_GCM_SHA256",
        0x1302: "TLS_AES_256_GCM_SHA384",
        0x1303: "TLS_CHACHA20_POLY1305_SHA256",
        0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256",
        0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384",
        0xC02F: "ECDHE-RSA-AES128-GCM-SHA256",
        0xC030: "ECDHE-RSA-AES256-GCM-SHA384",
        0xCCA8: "ECDHE-RSA-CHACHA20-POLY1305",
        0xCCA9: "ECDHE-ECDSA-CHACHA20-POLY1305",
        0xC009: "ECDHE-ECDSA-AES128-SHA",
        0xC00A: "ECDHE-ECDSA-AES256-SHA",
        0xC013: "ECDHE-RSA-AES128-SHA",
        0xC014: "ECDHE-RSA-AES256-SHA",
        0xC023: "ECDHE-ECDSA-AES128-SHA256",
        0xC024: "ECDHE-ECDSA-AES256-SHA384",
        0xC027: "ECDHE-RSA-AES128-SHA256",
        0xC028: "ECDHE-RSA-AES256-SHA384",
        0x009C: "AES128-GCM-SHA256",
        0x009D: "AES256-GCM-SHA384",
        0x009E: "DHE-RSA-AES128-GCM-SHA256",
        0x009F: "DHE-RSA-AES256-GCM-SHA384",
        0x002F: "AES128-SHA",
        0x0035: "AES256-SHA",
        0x003C: "AES128-SHA256",
        0x003D: "AES256-SHA256",
        0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
    ]
}
