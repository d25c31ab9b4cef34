import NIOHTTP1

/// The request head the gateway sends a backend: the client's headers and the gateway's own as `HTTPHeaders`,
/// and the headers plugins added as the bytes they arrived in (`HeaderBlock`), which go before the String
/// field at `addedAt` (after the client's, before the gateway's X-Forwarded-*).
package struct UpstreamHead: Sendable {
    package var head: HTTPRequestHead
    package var added: HeaderBlock
    package var addedAt: Int

    package init(_ head: HTTPRequestHead, added: HeaderBlock = HeaderBlock(), at addedAt: Int? = nil) {
        self.head = head
        self.added = added
        self.addedAt = addedAt ?? head.headers.count
    }

    /// Removes every field `name` (any case) of the String part; the added ones keep their place.
    package mutating func remove(_ name: String) {
        guard head.headers.contains(name: name) else { return }
        var before = 0
        for (index, field) in head.headers.enumerated() where index < addedAt && field.name.utf8.count == name.utf8.count {
            if ProxyHeaders.sameIgnoringCase(Substring(field.name), Substring(name)) { before += 1 }
        }
        head.headers.remove(name: name)
        addedAt -= before
    }

    /// Every field in the order it is sent (tests and logs).
    package var fields: [(String, String)] {
        let strings = head.headers.map { ($0.name, $0.value) }
        return Array(strings[..<addedAt]) + added.fields + Array(strings[addedAt...])
    }
}
