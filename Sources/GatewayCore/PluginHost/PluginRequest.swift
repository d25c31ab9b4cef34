#if canImport(Glibc)
import Glibc
#endif
import Atomics
import NIOCore
import NIOHTTP1
import PluginAPI

/// One request as plugins see it: the request head they may change, the response head, shared variables,
/// and the figures of its completion. Owned by the proxy handler; touched by at most one hook at a time.
package final class PluginRequest: PluginCallTarget {
    package enum Phase {
        case request, response, complete
    }

    private static let nextHandle = ManagedAtomic<UInt64>(1)

    package let handle: UInt64
    package let connection: ConnectionContext
    /// The request head as plugins left it, as NIO's type (tests and tools; the proxy takes `headAndAdded`).
    /// Plugins read the head's fields where they are, as bytes; headers they add wait as bytes in `added` (a
    /// `HeaderBlock`) and go to the backend as those bytes. A plugin that sets or removes a header changes the
    /// head through NIO's type (Strings), once per such call.
    package var head: HTTPRequestHead {
        get { joinedHead.nioHead }
        set {
            added = HeaderBlock()
            storedHead = ClientRequestHead(newValue)
        }
    }
    private var storedHead: ClientRequestHead
    private var added = HeaderBlock()
    /// The head and the headers plugins added to it, not joined: `ProxyHeaders.writeUpstreamRequest` writes the
    /// added ones as they are, after the head's.
    package var headAndAdded: (head: ClientRequestHead, added: HeaderBlock) { (storedHead, added) }
    /// The request's HTTP version.
    package var version: HTTPVersion { storedHead.version }
    package var backendName: String?
    package var phase: Phase = .request
    /// The response head plugins see. A backend's head the proxy forwarded as bytes (`forwardedResponse`) is
    /// made into one only when a plugin reads its fields.
    package var responseHead: HTTPResponseHead? {
        get {
            if let forwarded {
                self.forwarded = nil
                storedResponseHead = ProxyHeaders.downstreamResponse(forwarded.head.nioHead, removing: [], version: forwarded.version, close: forwarded.close)
            }
            return storedResponseHead
        }
        set {
            forwarded = nil
            storedResponseHead = newValue
        }
    }
    private var storedResponseHead: HTTPResponseHead?
    private var forwarded: (head: BackendResponseHead, version: HTTPVersion, close: Bool)?

    /// The response is a backend's head that went to the client as its bytes, for a client of `version`, with
    /// `connection: close` when `close`: what `responseHead` shows if asked.
    package func forwardedResponse(_ head: BackendResponseHead, version: HTTPVersion, close: Bool) {
        // The response phase, as `PluginChain.runResponseHeaders` would have set it (no entry has that hook).
        phase = .response
        storedResponseHead = nil
        forwarded = (head, version, close)
    }

    /// A response head is known (without making a forwarded one).
    package var hasResponseHead: Bool { forwarded != nil || storedResponseHead != nil }
    package var vars: [String: String] = [:]
    /// Set by `respond`: the answer and which plugin gave it.
    package var answer: (status: Int, headers: [(String, String)], body: [UInt8])?
    package var answeredBy: String?
    /// The entry whose hook runs (set by the chain, which holds it while it runs, and cleared after): who
    /// answered, for `respond`.
    package unowned(unsafe) var currentEntry: PluginInstance?
    package var bytesReceived: Int64 = 0
    package var bytesSent: Int64 = 0
    package var backendServer: String?
    package var clientAborted = false
    /// The response head went out but the response was cut off (GW_ATTR_RESPONSE_INCOMPLETE).
    package var responseIncomplete = false
    package let started = NIODeadline.now()
    package var finished: NIODeadline?
    /// How many chain entries this request reached (their on_response_headers and on_complete will run).
    package var reached = 0

    package init(connection: ConnectionContext, head: ClientRequestHead) {
        self.handle = Self.nextHandle.loadThenWrappingIncrement(ordering: .relaxed) | (1 << 62)
        self.connection = connection
        self.storedHead = head
        self.isBlockingCopy = false
    }

    /// The request of NIO's head (tests and tools).
    package convenience init(connection: ConnectionContext, head: HTTPRequestHead) {
        self.init(connection: connection, head: ClientRequestHead(head))
    }

    /// The headers plugins added join the head's fields (their bytes appended).
    private func joinAdded() {
        guard !added.isEmpty else { return }
        added.bytes.withUnsafeBytes { storedHead.fields.append(lines: $0, count: added.count) }
        added = HeaderBlock()
    }

    /// The head with the headers plugins added joined to it.
    private var joinedHead: ClientRequestHead {
        joinAdded()
        return storedHead
    }

    package func endCall() { PluginArena.current.reset() }

    /// A blocking hook's copy (on a worker thread): it must not touch the connection's plugin data, which
    /// belongs to the event loop.
    private let isBlockingCopy: Bool

    private init(copying other: PluginRequest) {
        isBlockingCopy = true
        handle = other.handle
        connection = other.connection
        storedHead = other.joinedHead
        backendName = other.backendName
        vars = other.vars
        reached = other.reached
    }

    /// A private copy for a blocking hook on a worker thread: the event loop never shares the original.
    package func copyForBlockingCall() -> PluginRequest { PluginRequest(copying: self) }

    /// Takes over what a blocking hook changed in its copy (on the event loop, once it finished in time).
    package func adopt(_ copy: PluginRequest) {
        added = HeaderBlock()
        storedHead = copy.joinedHead
        vars = copy.vars
        answer = copy.answer
        answeredBy = copy.answeredBy
        if copy.addedHopByHop { addedHopByHop = true }
    }

    override package func dnValue(_ which: gw_dn, type: String, index: Int, into out: inout gw_str) -> gw_status {
        PluginConnectionAttributes.dnValue(which, type: type, index: index, connection: connection, into: &out)
    }

    override package func attribute(_ attribute: gw_attribute, index: Int, arena: PluginArena, into out: inout gw_str) -> gw_status {
        func text(_ value: String?) -> gw_status {
            guard let value else { return GW_ERR_NOT_FOUND }
            out = arena.view(value)
            return GW_OK
        }
        switch attribute {
        case GW_ATTR_METHOD:
            guard index == 0 else { return GW_ERR_NOT_FOUND }
            // The usual methods from the binary's constants: valid for as long as the view may be used.
            guard let literal = HTTPHeadWriter.Cursor.literal(for: storedHead.method) else { return text(storedHead.method.rawValue) }
            out = gw_str(ptr: UnsafeRawPointer(literal.utf8Start).assumingMemoryBound(to: CChar.self), len: literal.utf8CodeUnitCount)
            return GW_OK
        case GW_ATTR_PATH:
            guard index == 0 else { return GW_ERR_NOT_FOUND }
            // An origin-form target (all but a few) up to its query or fragment, from its own bytes.
            let view = storedHead.uri.utf8.withContiguousStorageIfAvailable { bytes -> gw_str? in
                let target = UnsafeRawBufferPointer(bytes)
                guard target.first == UInt8(ascii: "/") else { return nil }
                return arena.view(UnsafeRawBufferPointer(rebasing: target[..<Router.pathLength(target)]))
            }
            out = (view ?? nil) ?? arena.view(Router.path(of: storedHead.uri))
            return GW_OK
        case GW_ATTR_QUERY:
            guard index == 0, let q = storedHead.uri.firstIndex(of: "?") else { return GW_ERR_NOT_FOUND }
            out = arena.view(storedHead.uri[storedHead.uri.index(after: q)...].prefix { $0 != "#" })
            return GW_OK
        case GW_ATTR_HOST:
            guard index == 0 else { return GW_ERR_NOT_FOUND }
            if fieldValue("host", index: 0, arena: arena, into: &out) == GW_OK { return GW_OK }
            return addedHeader("host", index: 0, arena: arena, into: &out)
        case GW_ATTR_SCHEME: return index == 0 ? text(connection.isTLS ? "https" : "http") : GW_ERR_NOT_FOUND
        case GW_ATTR_URI: return index == 0 ? text(storedHead.uri) : GW_ERR_NOT_FOUND
        case GW_ATTR_BACKEND_NAME: return index == 0 ? text(backendName) : GW_ERR_NOT_FOUND
        case GW_ATTR_BACKEND_SERVER: return index == 0 && phase == .complete ? text(backendServer) : GW_ERR_NOT_FOUND
        case GW_ATTR_ANSWERED_BY: return index == 0 ? text(answeredBy) : GW_ERR_NOT_FOUND
        default:
            return PluginConnectionAttributes.read(attribute, index: index, connection: connection, arena: arena, into: &out)
        }
    }

    override package func attributeInt(_ attribute: gw_attribute) -> Int64? {
        switch attribute {
        case GW_ATTR_REQUEST_ID: return Int64(bitPattern: handle & ~(1 << 62))
        case GW_ATTR_RESPONSE_STATUS:
            guard phase != .request else { return nil }
            if let forwarded { return Int64(forwarded.head.status.code) }
            return responseHead.map { Int64($0.status.code) }
        case GW_ATTR_BYTES_RECEIVED: return phase == .complete ? bytesReceived : nil
        case GW_ATTR_BYTES_SENT: return phase == .complete ? bytesSent : nil
        case GW_ATTR_DURATION_US:
            guard phase == .complete, let finished else { return nil }
            return (finished - started).nanoseconds / 1000
        case GW_ATTR_CLIENT_ABORTED: return phase == .complete ? (clientAborted ? 1 : 0) : nil
        case GW_ATTR_RESPONSE_INCOMPLETE: return phase == .complete ? (responseIncomplete ? 1 : 0) : nil
        default: return PluginConnectionAttributes.readInt(attribute, connection: connection)
        }
    }

    /// The `index`-th value of header `name` (any case). In the request phase the head and the headers plugins
    /// added are read where they are, without joining them (which would copy the head's headers) and without
    /// collecting the values into an array.
    override package func header(_ name: String, index: Int, arena: PluginArena, into out: inout gw_str) -> gw_status {
        switch phase {
        case .request:
            var name = name
            return name.withUTF8 { wanted in
                let wanted = UnsafeRawBufferPointer(wanted)
                let (status, remaining) = Self.find(wanted, index: index, in: storedHead.fields, arena: arena, into: &out)
                if status == GW_OK { return GW_OK }
                return Self.find(wanted, index: remaining, in: added, arena: arena, into: &out).status
            }
        case .response, .complete:
            guard let responseHead else { return GW_ERR_NOT_FOUND }
            var remaining = index
            for (candidate, value) in responseHead.headers where ProxyHeaders.sameIgnoringCase(Substring(candidate), Substring(name)) {
                if remaining == 0 {
                    out = arena.view(value)
                    return GW_OK
                }
                remaining -= 1
            }
            return GW_ERR_NOT_FOUND
        }
    }

    /// The `index`-th value of the head's field `name` (any case, `name` lowercase), copied into the arena. The
    /// first value is looked for in the first line before the walk: Host, the usual look-up, is where clients
    /// put it. A block's lines are `name: value CRLF` (one space), so the value starts two bytes after the name.
    private func fieldValue(_ name: StaticString, index: Int, arena: PluginArena, into out: inout gw_str) -> gw_status {
        let wanted = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        if index == 0, let first = storedHead.fields.bytes.withUnsafeBytes({ raw -> gw_str? in
            let n = wanted.count
            guard raw.count >= n + 4, raw[n] == UInt8(ascii: ":"), HTTP1Syntax.equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: raw[0..<n]), name),
                let base = raw.baseAddress, let cr = memchr(base + n + 2, 13, raw.count - n - 2)
            else { return nil }
            return arena.view(UnsafeRawBufferPointer(start: base + n + 2, count: UnsafeRawPointer(cr) - (base + n + 2)))
        }) {
            out = first
            return GW_OK
        }
        return Self.find(wanted, index: index, in: storedHead.fields, arena: arena, into: &out).status
    }

    /// The `index`-th value of `name` (any case) in `block`, copied into the arena; if there is none, how many
    /// fields of that name are still to skip in what follows the block.
    private static func find(
        _ wanted: UnsafeRawBufferPointer, index: Int, in block: HeaderBlock, arena: PluginArena, into out: inout gw_str
    ) -> (status: gw_status, remaining: Int) {
        guard !block.isEmpty else { return (GW_ERR_NOT_FOUND, index) }
        var remaining = index
        var status = GW_ERR_NOT_FOUND
        block.forEach { candidate, value in
            guard HeaderBlock.sameIgnoringCase(candidate, wanted) else { return true }
            guard remaining == 0 else {
                remaining -= 1
                return true
            }
            out = arena.view(value)
            status = GW_OK
            return false
        }
        return (status, remaining)
    }

    /// The `index`-th value of `name` (any case) among the headers plugins added, copied into the arena.
    private func addedHeader(_ name: StaticString, index: Int, arena: PluginArena, into out: inout gw_str) -> gw_status {
        let wanted = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        return Self.find(wanted, index: index, in: added, arena: arena, into: &out).status
    }

    override package func header(at index: Int, arena: PluginArena, name: inout gw_str, value: inout gw_str) -> gw_status {
        guard index >= 0 else { return GW_ERR_NOT_FOUND }
        let entry: (name: String, value: String)
        switch phase {
        case .request:
            // The head's fields, then the added ones, as one list.
            let fields = storedHead.fields
            let (block, position) = index < fields.count ? (fields, index) : (added, index - fields.count)
            var remaining = position
            var status = GW_ERR_NOT_FOUND
            block.forEach { fieldName, fieldValue in
                guard remaining == 0 else {
                    remaining -= 1
                    return true
                }
                name = arena.view(fieldName)
                value = arena.view(fieldValue)
                status = GW_OK
                return false
            }
            return status
        case .response, .complete:
            guard let headers = responseHead?.headers, index < headers.count else { return GW_ERR_NOT_FOUND }
            entry = headers[headers.index(headers.startIndex, offsetBy: index)]
        }
        name = arena.view(entry.name)
        value = arena.view(entry.value)
        return GW_OK
    }

    /// A plugin set or added a hop-by-hop header (Connection, TE, ...) on the request: the head is no longer
    /// free of them, so the host removes them again before forwarding.
    package private(set) var addedHopByHop = false

    override package func setHeader(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, mode: HeaderEdit) -> gw_status {
        switch phase {
        case .request:
            if mode != .remove, HTTP1ConnectionOptions.isHopByHop(name) { addedHopByHop = true }
            if mode == .add {
                added.append(name: name, value: value)
            } else {
                var head = joinedHead.nioHead
                let strings = PluginCallContext.forThisThread.strings
                Self.edit(&head.headers, strings.string(name), mode == .remove ? "" : strings.string(value), mode)
                storedHead = ClientRequestHead(head)
            }
        case .response:
            guard responseHead != nil else { return GW_ERR_WRONG_PHASE }
            let strings = PluginCallContext.forThisThread.strings
            Self.edit(&responseHead!.headers, strings.string(name), mode == .remove ? "" : strings.string(value), mode)
        case .complete:
            return GW_ERR_WRONG_PHASE
        }
        return GW_OK
    }

    /// In the request phase the list joins `added` as one run of lines (one size check, one copy per part).
    override package func addHeaders(_ list: UnsafeBufferPointer<gw_header>) -> gw_status {
        guard phase == .request else { return super.addHeaders(list) }
        for header in list where HTTP1ConnectionOptions.isHopByHop(header.name.buffer) {
            addedHopByHop = true
            break
        }
        added.append(list.lazy.map { ($0.name.buffer, $0.value.buffer) })
        return GW_OK
    }

    /// In the request phase the set's lines become `added` (a reference to the set's bytes, no copy) when no
    /// plugin added any before; fields under an owned name, in the head or among the added ones, are removed
    /// first (looked at by name length, which passes most names over at once).
    override package func addHeaderSet(_ set: PluginHeaderSet) -> gw_status {
        switch phase {
        case .request:
            if set.ownsNames {
                if set.ownsAny(of: storedHead.fields) { storedHead.fields = storedHead.fields.removingAll(where: set.owns) }
                if set.ownsAny(of: added) { added = added.removingAll(where: set.owns) }
            }
            if set.lines.isEmpty { return GW_OK }
            if set.addsHopByHop { addedHopByHop = true }
            if added.isEmpty {
                added = set.lines
            } else {
                set.lines.bytes.withUnsafeBytes { added.append(lines: $0, count: set.lines.count) }
            }
            return GW_OK
        case .response:
            // Edited as one value and stored once (`responseHead` is a computed property).
            guard var head = responseHead else { return GW_ERR_WRONG_PHASE }
            if set.ownsNames {
                let owned = head.headers.map(\.name).filter { name in
                    var name = name
                    return name.withUTF8 { set.owns(UnsafeRawBufferPointer($0)) }
                }
                for name in owned { head.headers.remove(name: name) }
            }
            set.lines.forEach { name, value in
                head.headers.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
                return true
            }
            responseHead = head
            return GW_OK
        case .complete:
            return GW_ERR_WRONG_PHASE
        }
    }

    override package var canEditHeaders: Bool {
        switch phase {
        case .request: return true
        case .response: return responseHead != nil
        case .complete: return false
        }
    }

    /// `setHeader` with Strings (tests).
    package func setHeader(_ name: String, _ value: String, mode: HeaderEdit) -> gw_status {
        var (name, value) = (name, value)
        return name.withUTF8 { name in value.withUTF8 { setHeader(UnsafeRawBufferPointer(name), UnsafeRawBufferPointer($0), mode: mode) } }
    }

    private static func edit(_ headers: inout HTTPHeaders, _ name: String, _ value: String, _ mode: HeaderEdit) {
        switch mode {
        case .set: headers.replaceOrAdd(name: name, value: value)
        case .add: headers.add(name: name, value: value)
        case .remove: headers.remove(name: name)
        }
    }

    override package func respond(status: Int, headers: [(String, String)], body: [UInt8]) -> gw_status {
        guard phase == .request else { return GW_ERR_WRONG_PHASE }
        answer = (status, headers, body)
        answeredBy = currentEntry?.name ?? ""
        return GW_OK
    }

    override package func setVar(_ name: String, _ value: String) -> gw_status {
        guard phase != .complete else { return GW_ERR_WRONG_PHASE }
        vars[name] = value
        return GW_OK
    }

    override package func connectionData(_ tag: UInt64, into out: inout UnsafeMutableRawPointer?) -> gw_status {
        guard !isBlockingCopy else { return GW_ERR_WRONG_PHASE }
        return PluginConnectionAttributes.connectionData(tag, connection: connection, into: &out)
    }

    override package func setConnectionData(_ tag: UInt64, _ data: UnsafeMutableRawPointer?, release: PluginConnectionData.Release?) -> gw_status {
        guard !isBlockingCopy else { return GW_ERR_WRONG_PHASE }
        return PluginConnectionAttributes.setConnectionData(tag, data, release: release, connection: connection)
    }

    override package func getVar(_ name: UnsafeRawBufferPointer, arena: PluginArena, into out: inout gw_str) -> gw_status {
        // No variable set (the usual case): no String made of the name.
        guard !vars.isEmpty, let value = vars[String(decoding: name, as: UTF8.self)] else { return GW_ERR_NOT_FOUND }
        out = arena.view(value)
        return GW_OK
    }
}
