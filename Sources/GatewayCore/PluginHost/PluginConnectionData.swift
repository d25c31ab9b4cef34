import PluginAPI

/// Plugins' per-connection data (ABI 1.4 `set_connection_data`/`get_connection_data`): one pointer per instance
/// tag, with the plugin's function that releases it. Kept in the connection's `ConnectionContext`, touched only
/// on its event loop (blocking hooks are refused before they reach it).
///
/// A plugin keeps here what it derives once per connection; the host releases each value exactly once: when
/// the plugin replaces it, when the connection ends (`HTTPProxyHandler.handlerRemoved`, before the connection
/// stops counting for its configuration, hence before the instances' `destroy`), or when a reload moves the
/// connection on to a new configuration. A chain has a few entries: a list searched in order is the whole
/// index.
package struct PluginConnectionData {
    package typealias Release = @convention(c) (UnsafeMutableRawPointer?) -> Void

    private struct Entry {
        var tag: UInt64
        var data: UnsafeMutableRawPointer
        var release: Release?
    }

    private var entries: [Entry] = []

    package init() {}

    package var isEmpty: Bool { entries.isEmpty }

    /// The pointer kept for `tag`, if any.
    package func value(tag: UInt64) -> UnsafeMutableRawPointer? {
        for entry in entries where entry.tag == tag { return entry.data }
        return nil
    }

    /// Keeps `data` (nil clears) for `tag`, releasing the value it replaces; the pointer already kept only gets
    /// the new `release`. The replaced value is released after the list changed, so a release function that
    /// breaks the rule and calls back finds a consistent list.
    package mutating func set(tag: UInt64, data: UnsafeMutableRawPointer?, release: Release?) {
        var replaced: Entry?
        if let index = entries.firstIndex(where: { $0.tag == tag }) {
            if let data, entries[index].data == data {
                entries[index].release = release
                return
            }
            replaced = entries[index]
            if let data {
                entries[index] = Entry(tag: tag, data: data, release: release)
            } else {
                entries.remove(at: index)
            }
        } else if let data {
            entries.append(Entry(tag: tag, data: data, release: release))
        }
        if let replaced { replaced.release?(replaced.data) }
    }

    /// Releases every value (the connection ends, or moves on to another configuration's instances).
    package mutating func releaseAll() {
        guard !entries.isEmpty else { return }
        let released = entries
        entries = []
        for entry in released { entry.release?(entry.data) }
    }
}
