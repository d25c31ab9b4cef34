import PluginAPI

/// Plugins' per-connection data (ABI 1.4 `set_connection_data`/`get_connection_data`): one pointer per instance
/// tag, with the plugin's function that releases it. Kept in the connection's `ConnectionContext`, touched only
/// on its event loop (blocking hooks are refused before they reach it).
///
/// A plugin keeps here what it derives once per connection; the host releases each value exactly once: when
/// the plugin replaces it, when the connection ends (`HTTPProxyHandler.handlerRemoved`, before the connection
/// stops counting for its configuration, hence before the instances' `destroy`), or when a reload moves the
/// connection on to a new configuration. A chain has a few entries: a list searched in order is the whole
/// index. The mutating functions hand back what goes instead of calling the plugins' release functions
/// themselves: the caller calls them (`Released.run`) once the list is no longer being changed.
package struct PluginConnectionData {
    package typealias Release = @convention(c) (UnsafeMutableRawPointer?) -> Void

    package struct Entry {
        var tag: UInt64
        var data: UnsafeMutableRawPointer
        var release: Release?
    }

    /// Values taken out of the list, to release.
    package struct Released {
        fileprivate var entries: [Entry] = []

        /// Calls each value's release function (none twice: a `Released` is run once, by its taker).
        package func run() {
            for entry in entries { entry.release?(entry.data) }
        }
    }

    private var entries: [Entry] = []

    package init() {}

    package var isEmpty: Bool { entries.isEmpty }

    /// The pointer kept for `tag`, if any.
    package func value(tag: UInt64) -> UnsafeMutableRawPointer? {
        for entry in entries where entry.tag == tag { return entry.data }
        return nil
    }

    /// Keeps `data` (nil clears) for `tag`; the value it replaces is handed back to release. The pointer
    /// already kept only gets the new `release`.
    package mutating func set(tag: UInt64, data: UnsafeMutableRawPointer?, release: Release?) -> Released {
        var replaced = Released()
        if let index = entries.firstIndex(where: { $0.tag == tag }) {
            if let data, entries[index].data == data {
                entries[index].release = release
                return replaced
            }
            replaced.entries.append(entries[index])
            if let data {
                entries[index] = Entry(tag: tag, data: data, release: release)
            } else {
                entries.remove(at: index)
            }
        } else if let data {
            entries.append(Entry(tag: tag, data: data, release: release))
        }
        return replaced
    }

    /// Takes every value out (the connection ends, or moves on to another configuration's instances).
    package mutating func takeAll() -> Released {
        defer { entries = [] }
        return Released(entries: entries)
    }

    /// Takes out the values of the instances `tags` (a chain that saw the connection but will not serve it).
    package mutating func take(tags: [UInt64]) -> Released {
        var taken = Released()
        entries.removeAll { entry in
            guard tags.contains(entry.tag) else { return false }
            taken.entries.append(entry)
            return true
        }
        return taken
    }
}
