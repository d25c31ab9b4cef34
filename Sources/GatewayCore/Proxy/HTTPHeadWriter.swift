import NIOCore
import NIOHTTP1

/// Writes an HTTP/1.1 head into a `ByteBuffer` in one pass: the total size is summed first, the buffer
/// reserved once, and every name and value copied with `memcpy` from the string's own UTF-8 storage.
/// Writes exactly the bytes NIO's encoders write (`method SP uri SP version CRLF`, `name: value CRLF`,
/// `CRLF`).
package enum HTTPHeadWriter {
    package static func write(_ head: HTTPRequestHead, into buffer: inout ByteBuffer) {
        writeRequest(head, added: nil, at: 0, into: &buffer)
    }

    /// The request line, the String fields up to `addedAt`, the added block's bytes as they are, the other
    /// String fields, CRLF.
    package static func write(_ upstream: UpstreamHead, into buffer: inout ByteBuffer) {
        writeRequest(upstream.head, added: upstream.added.isEmpty ? nil : upstream.added.bytes, at: upstream.addedAt, into: &buffer)
    }

    private static func writeRequest(_ head: HTTPRequestHead, added: [UInt8]?, at addedAt: Int, into buffer: inout ByteBuffer) {
        let method = head.method.rawValue
        var size = method.utf8.count + 1 + head.uri.utf8.count + 1 + versionLength(head.version) + 2
        size += blockSize(head.headers) + (added?.count ?? 0)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            var out = Cursor(base: raw.baseAddress!)
            out.copy(method)
            out.byte(32)
            out.copy(head.uri)
            out.byte(32)
            out.version(head.version)
            out.crlf()
            if let added {
                for (index, field) in head.headers.enumerated() {
                    if index == addedAt { out.copy(added) }
                    out.header(field.name, field.value)
                }
                if addedAt >= head.headers.count { out.copy(added) }
                out.crlf()
            } else {
                out.block(head.headers)
            }
            return out.offset
        }
    }

    /// `version SP code SP reason CRLF`, the headers, CRLF: what NIO's `HTTPResponseEncoder` writes.
    package static func write(_ head: HTTPResponseHead, into buffer: inout ByteBuffer) {
        let code = String(head.status.code)
        let reason = head.status.reasonPhrase
        var size = versionLength(head.version) + 1 + code.utf8.count + 1 + reason.utf8.count + 2
        size += blockSize(head.headers)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            var out = Cursor(base: raw.baseAddress!)
            out.version(head.version)
            out.byte(32)
            out.copy(code)
            out.byte(32)
            out.copy(reason)
            out.crlf()
            out.block(head.headers)
            return out.offset
        }
    }

    /// A forwarded response head (`DownstreamResponseEncoder.writeForwarded`): `HTTP/1.x code reason CRLF`
    /// (`minor` 0 or 1), the fields' bytes, the `connection: close` and `transfer-encoding: chunked` lines
    /// asked for, CRLF.
    package static func writeForwarded(
        _ head: BackendResponseHead, minor: Int, close: Bool, chunked: Bool, into buffer: inout ByteBuffer
    ) {
        let reason = head.status.reasonPhrase
        let size = 13 + reason.utf8.count + 2 + head.fields.bytes.count + (close ? 19 : 0) + (chunked ? 28 : 0) + 2
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            var out = Cursor(base: raw.baseAddress!)
            out.version(HTTPVersion(major: 1, minor: minor))
            out.byte(32)
            let code = Int(head.status.code)
            out.byte(UInt8(48 + code / 100 % 10))
            out.byte(UInt8(48 + code / 10 % 10))
            out.byte(UInt8(48 + code % 10))
            out.byte(32)
            out.copy(reason)
            out.crlf()
            out.copy(head.fields.bytes)
            if close { out.copy("connection: close\r\n") }
            if chunked { out.copy("transfer-encoding: chunked\r\n") }
            out.crlf()
            return out.offset
        }
    }

    /// A header block (trailers): every `name: value CRLF`, then the final CRLF.
    package static func write(_ headers: HTTPHeaders, into buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: blockSize(headers)) { raw in
            var out = Cursor(base: raw.baseAddress!)
            out.block(headers)
            return out.offset
        }
    }

    /// `value` in lowercase hexadecimal (a chunk size).
    package static func writeHex(_ value: Int, into buffer: inout ByteBuffer) {
        precondition(value >= 0)
        var digits = 1
        while value >> (4 * digits) != 0 && digits < 16 { digits += 1 }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: digits) { raw in
            for i in 0..<digits {
                let nibble = (value >> (4 * (digits - 1 - i))) & 0xF
                raw[i] = nibble < 10 ? UInt8(ascii: "0") + UInt8(nibble) : UInt8(ascii: "a") + UInt8(nibble - 10)
            }
            return digits
        }
    }

    /// The bytes of `name: value CRLF` for every header, and the final CRLF.
    private static func blockSize(_ headers: HTTPHeaders) -> Int {
        var size = 2
        for (name, value) in headers { size += name.utf8.count + 2 + value.utf8.count + 2 }
        return size
    }

    private static func versionLength(_ version: HTTPVersion) -> Int {
        if version.major == 1 && (version.minor == 0 || version.minor == 1) { return 8 }
        return 5 + String(version.major).utf8.count + 1 + String(version.minor).utf8.count
    }

    /// Writes forward from `base`; the caller reserved the room.
    package struct Cursor {
        let base: UnsafeMutableRawPointer
        package private(set) var offset = 0

        package init(base: UnsafeMutableRawPointer) {
            self.base = base
        }

        package mutating func byte(_ value: UInt8) {
            base.storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
            offset += 1
        }

        package mutating func crlf() {
            byte(13)
            byte(10)
        }

        package mutating func copy(_ string: String) {
            // Native strings (all but bridged ones) lend their bytes without the copy `withUTF8` needs.
            if let copied = string.utf8.withContiguousStorageIfAvailable({ bytes -> Int in
                guard let source = bytes.baseAddress, bytes.count > 0 else { return 0 }
                (base + offset).copyMemory(from: source, byteCount: bytes.count)
                return bytes.count
            }) {
                offset += copied
                return
            }
            var string = string
            string.withUTF8 { bytes in
                guard let source = bytes.baseAddress, bytes.count > 0 else { return }
                (base + offset).copyMemory(from: source, byteCount: bytes.count)
                offset += bytes.count
            }
        }

        /// The name of a method nearly every request has, as a literal; nil for the others.
        package static func literal(for method: HTTPMethod) -> StaticString? {
            switch method {
            case .GET: return "GET"
            case .POST: return "POST"
            case .PUT: return "PUT"
            case .HEAD: return "HEAD"
            case .DELETE: return "DELETE"
            case .PATCH: return "PATCH"
            case .OPTIONS: return "OPTIONS"
            default: return nil
            }
        }

        /// A literal's bytes (no String made or lent).
        package mutating func literal(_ text: StaticString) {
            (base + offset).copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
            offset += text.utf8CodeUnitCount
        }

        package mutating func copy(_ bytes: UnsafeRawBufferPointer) {
            guard let source = bytes.baseAddress, bytes.count > 0 else { return }
            (base + offset).copyMemory(from: source, byteCount: bytes.count)
            offset += bytes.count
        }

        package mutating func copy(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { bytes in
                guard let source = bytes.baseAddress, bytes.count > 0 else { return }
                (base + offset).copyMemory(from: source, byteCount: bytes.count)
                offset += bytes.count
            }
        }

        package mutating func header(_ name: String, _ value: String) {
            copy(name)
            byte(UInt8(ascii: ":"))
            byte(32)
            copy(value)
            crlf()
        }

        /// Every header, then the CRLF that ends the block.
        package mutating func block(_ headers: HTTPHeaders) {
            for (name, value) in headers { header(name, value) }
            crlf()
        }

        /// The digits of a non-negative `value`.
        package static func decimalDigits(_ value: Int) -> Int {
            precondition(value >= 0)
            var digits = 1
            var rest = value / 10
            while rest > 0 {
                digits += 1
                rest /= 10
            }
            return digits
        }

        /// `value` (non-negative) in decimal, `decimalDigits(value)` bytes.
        package mutating func decimal(_ value: Int) {
            let digits = Self.decimalDigits(value)
            var rest = value
            for i in stride(from: digits - 1, through: 0, by: -1) {
                base.storeBytes(of: UInt8(48 + rest % 10), toByteOffset: offset + i, as: UInt8.self)
                rest /= 10
            }
            offset += digits
        }

        package mutating func version(_ version: HTTPVersion) {
            copy("HTTP/")
            if version.major == 1 && (version.minor == 0 || version.minor == 1) {
                copy("1.")
                byte(version.minor == 0 ? UInt8(ascii: "0") : UInt8(ascii: "1"))
            } else {
                copy(String(version.major))
                byte(UInt8(ascii: "."))
                copy(String(version.minor))
            }
        }
    }
}
