import Foundation
import GatewayPluginKit
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Writes audit lines to a file from its own thread, so that hooks never do file I/O. Lines wait in a
/// bounded queue; by default a full queue makes producers wait (nothing is lost); `when_full: drop` counts
/// and reports what it drops instead. Reopens on request (SIGHUP), rotates by size, flushes on close.
// @unchecked Sendable: the queue and file state are shared with the writer thread under `condition`.
final class AuditWriter: @unchecked Sendable {
    enum FsyncPolicy: String {
        case never, interval, always
    }

    struct Options {
        var path: String
        var queueSize = 10_000
        var dropWhenFull = false
        var fsync: FsyncPolicy = .interval
        var fsyncInterval: Double = 1.0
        var maxSize: Int64 = 0
        var maxFiles = 5
        /// Seconds `close` waits for queued lines to reach the file; what is left then goes to stderr.
        var closeTimeout: Double = 5
        /// Whether a failing file takes the gateway out through `/readyz` (`on_write_error: deny`).
        var reportsReadiness = false
    }

    let options: Options
    private let tag: UInt64
    private let condition = NSCondition()
    /// Queued lines, each followed by a newline, as one byte batch: a producer copies its line in (no
    /// allocation per line); the writer swaps it with `spare` and writes it with one system call.
    private var pending: [UInt8] = []
    private var pendingLines = 0
    /// The writer's buffer, swapped with `pending`: both keep their capacity.
    private var spare: [UInt8] = []
    private var stopping = false
    /// The writer thread waits for lines (producers signal only then).
    private var writerWaiting = false
    /// Producers wait for room in a full queue.
    private var producersWaiting = 0
    /// When the writer entered the write or fsync it is in (0 outside them): a producer that sees it there
    /// for more than a second sets the queue gauges itself (once a second), since the writer cannot.
    private var writerBusySince: Double = 0
    private var producerRecordedAt: Double = 0
    private var reopenRequested = false
    private var dropped: UInt64 = 0
    private var reportedDropped: UInt64 = 0
    private var fd: Int32
    private var size: Int64 = 0
    private var lastSync = Date()
    /// Written since the last fsync (an idle file is not synced again and again).
    private var dirty = false
    private var thread: Thread?
    /// Plugin metrics (exported with the gateway's metrics): lines written and lines dropped.
    private var writtenMetric: UInt32 = 0
    private var droppedMetric: UInt32 = 0
    private var errorsMetric: UInt32 = 0
    /// Gauges (ABI 1.3): lines waiting for the file (the batch being written included), and the Unix time at
    /// which the oldest of them was queued (0 when none waits). Set by the writer thread at each batch and at
    /// each failed attempt; when a write hangs, the timestamp stays and the age (time() minus it) grows.
    private var queuedMetric = UInt32.max
    private var oldestMetric = UInt32.max
    /// When the first line of `pending` was queued (0 while it is empty); under `condition`.
    private var pendingSince: Double = 0
    /// The batch the writer is writing: its lines and when its oldest line was queued.
    private var inFlightLines = 0
    private var inFlightSince: Double = 0
    /// The last write to the file failed and none has succeeded since (read by hooks on every event loop).
    private let failing = Atomic<Bool>(false)
    /// When `close` gives up on lines that cannot be written (set under `condition`).
    private var closeDeadline: Date?
    private let finished = NSCondition()
    private var done = false

    struct OpenError: Error { var message: String }

    /// Files whose last write failed, across instances: the instance a reload makes for the same file starts
    /// failing (denying, not ready) instead of ready until its first write, which may not come soon once a
    /// load balancer has taken the gateway out. Its first successful write clears it.
    private static let failingPaths = Mutex<Set<String>>([])

    init(options: Options, tag: UInt64) throws {
        self.options = options
        self.tag = tag
        fd = try Self.open(options.path)
        size = Self.fileSize(fd)
        if Self.failingPaths.withLock({ $0.contains(options.path) }) {
            failing.store(true, ordering: .relaxed)
            if options.reportsReadiness {
                PluginHost.setReady(tag, false, reason: "audit log '\(options.path)' could not be written before the reload; its listener answers 503 until a write succeeds")
            }
        }
        withGWStr("audit_lines_written") { name in withGWStr("Audit lines written to the file") { help in
            _ = PluginHost.api.pointee.metric_define(tag, GW_METRIC_COUNTER, name, help, &writtenMetric) } }
        withGWStr("audit_lines_dropped") { name in withGWStr("Audit lines dropped because the queue was full (when_full: drop)") { help in
            _ = PluginHost.api.pointee.metric_define(tag, GW_METRIC_COUNTER, name, help, &droppedMetric) } }
        withGWStr("audit_write_errors") { name in withGWStr("Failed writes to the audit file (each retried; lines stay queued)") { help in
            _ = PluginHost.api.pointee.metric_define(tag, GW_METRIC_COUNTER, name, help, &errorsMetric) } }
        withGWStr("audit_queued_lines") { name in withGWStr("Audit lines waiting to be written (the batch being written included)") { help in
            _ = PluginHost.api.pointee.metric_define(tag, GW_METRIC_GAUGE, name, help, &queuedMetric) } }
        withGWStr("audit_oldest_queued_line_timestamp_seconds") { name in
            withGWStr("Unix time at which the oldest audit line still waiting was queued; 0 when none waits") { help in
                _ = PluginHost.api.pointee.metric_define(tag, GW_METRIC_GAUGE, name, help, &oldestMetric) } }
        let thread = Thread { [unowned self] in self.run() }
        thread.name = "gateway-audit"
        self.thread = thread
        thread.start()
    }

    static func open(_ path: String) throws -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw OpenError(message: "cannot open '\(path)': \(String(cString: strerror(errno)))") }
        return fd
    }

    private static func fileSize(_ fd: Int32) -> Int64 {
        var info = stat()
        return fstat(fd, &info) == 0 ? Int64(info.st_size) : 0
    }

    /// Queues one line (without newline): copies it into the pending batch. Called from event loops.
    func submit(_ line: UnsafeRawBufferPointer) {
        condition.lock()
        defer { condition.unlock() }
        while pendingLines >= options.queueSize && !stopping {
            // A full queue blocks the event loop only while the disk may still take the lines: when writes
            // fail (a full or read-only disk) it would block every connection, the admin listener's included,
            // for as long as the disk stays broken.
            if options.dropWhenFull || failing.load(ordering: .relaxed) {
                dropped += 1
                _ = PluginHost.api.pointee.metric_record(tag, droppedMetric, 1)
                return
            }
            producersWaiting += 1
            condition.wait()
            producersWaiting -= 1
        }
        if pendingLines == 0 { pendingSince = Self.now() }
        line.withMemoryRebound(to: UInt8.self) { pending.append(contentsOf: $0) }
        pending.append(10)
        pendingLines += 1
        // Wake the writer only when it sleeps on an empty queue: one wake-up per batch, not per line.
        if writerWaiting { condition.broadcast() }
        guard writerBusySince != 0 else { return }
        // The writer has been in one write or fsync for over a second (a hung disk): the gauges would show
        // the queue as it was when it went in; set them from here, at most once a second.
        let now = Self.now()
        guard now - writerBusySince >= 1, now - producerRecordedAt >= 1 else { return }
        producerRecordedAt = now
        let (lines, since) = (inFlightLines + pendingLines, inFlightLines > 0 ? inFlightSince : pendingSince)
        _ = PluginHost.api.pointee.metric_record(tag, queuedMetric, Double(lines))
        _ = PluginHost.api.pointee.metric_record(tag, oldestMetric, since)
    }

    /// The Unix time, from the clock itself (a Foundation `Date` costs more on every batch's first line).
    private static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// Sets the queue gauges from the batch in flight and the lines queued behind it.
    private func recordQueue() {
        condition.lock()
        let lines = inFlightLines + pendingLines
        let since = inFlightLines > 0 ? inFlightSince : pendingSince
        condition.unlock()
        _ = PluginHost.api.pointee.metric_record(tag, queuedMetric, Double(lines))
        _ = PluginHost.api.pointee.metric_record(tag, oldestMetric, since)
    }

    /// The file cannot be written right now (the last write failed).
    var isFailing: Bool { failing.load(ordering: .relaxed) }

    func requestReopen() {
        condition.lock()
        reopenRequested = true
        condition.broadcast()
        condition.unlock()
    }

    /// Writes every queued line, then stops the thread and closes the file. Bounded by
    /// `options.closeTimeout` whatever the disk does: lines that could not be written by then go to stderr
    /// (the journal under systemd), each prefixed, with their count logged, so none vanishes silently.
    func close() {
        condition.lock()
        stopping = true
        closeDeadline = Date().addingTimeInterval(options.closeTimeout)
        condition.broadcast()
        condition.unlock()
        finished.lock()
        while !done { finished.wait() }
        finished.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while pendingLines == 0 && !stopping && !reopenRequested {
                writerWaiting = true
                _ = condition.wait(until: Date().addingTimeInterval(options.fsync == .interval ? options.fsyncInterval : 1))
                writerWaiting = false
                if options.fsync == .interval && Date().timeIntervalSince(lastSync) >= options.fsyncInterval { break }
            }
            var batch: [UInt8] = []
            swap(&batch, &spare)
            batch.removeAll(keepingCapacity: true)
            swap(&batch, &pending)
            let batchLines = pendingLines
            pendingLines = 0
            inFlightLines = batchLines
            inFlightSince = pendingSince
            pendingSince = 0
            if batchLines > 0 { writerBusySince = Self.now() }
            let reopen = reopenRequested
            reopenRequested = false
            let stop = stopping
            if producersWaiting > 0 { condition.broadcast() }  // room in the queue again
            condition.unlock()

            reportDropped()
            if reopen { reopenFile() }
            if batchLines > 0 {
                recordQueue()
                let reached = write(batch)
                if reached < batch.count {
                    // Only when closing past the deadline: the rest of this batch and everything still queued.
                    let written = batch[..<reached].reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
                    _ = PluginHost.api.pointee.metric_record(tag, writtenMetric, Double(written))
                    // A line cut mid-way in the file is completed on stderr in full.
                    let lineStart = batch[..<reached].lastIndex(of: 10).map { $0 + 1 } ?? 0
                    var unwritten = Array(batch[lineStart...])
                    condition.lock()
                    unwritten += pending
                    pending = []
                    pendingLines = 0
                    condition.unlock()
                    spill(unwritten[...])
                    break
                }
                _ = PluginHost.api.pointee.metric_record(tag, writtenMetric, Double(batchLines))
                condition.lock()
                inFlightLines = 0
                inFlightSince = 0
                writerBusySince = 0
                condition.unlock()
            }
            // The written buffer is the next spare (a burst's large one is let go).
            if batch.capacity > 1 << 20 { batch = [] }
            condition.lock()
            swap(&batch, &spare)
            condition.unlock()
            if options.fsync == .interval, dirty, Date().timeIntervalSince(lastSync) >= options.fsyncInterval {
                // The gauges first (at most once per interval): an fsync can hang as a write can, and they
                // still showed the batch just written. Lines queued while it hangs are reported by `submit`.
                recordQueue()
                condition.lock()
                writerBusySince = Self.now()
                condition.unlock()
                fsync(fd)
                condition.lock()
                writerBusySince = 0
                condition.unlock()
                dirty = false
                lastSync = Date()
            }
            if stop {
                condition.lock()
                let empty = pendingLines == 0
                condition.unlock()
                if empty { break }
            } else if batchLines < Swift.min(64, Swift.max(1, options.queueSize / 2)) {
                // Let lines gather for a moment: under load, one write (and one wake-up) covers many requests;
                // at a few thousand requests a second, 5 ms gathers tens of lines where 2 ms gathered a few.
                // What a line waits (the fsync interval is a second by default) is nothing to an audit reader.
                // Not while producers wait for room (a small queue): they would wait out the pause.
                condition.lock()
                let blocked = producersWaiting > 0
                condition.unlock()
                if !blocked { usleep(5_000) }
            }
            // The gauges after a batch: set again here only when no line waits now (the writer goes idle); else
            // the next batch sets them before its write, which is what shows a write that hangs. One setting
            // per batch under load, not two (each takes the host's metric lock).
            if batchLines > 0 {
                condition.lock()
                let idle = pendingLines == 0
                condition.unlock()
                if idle { recordQueue() }
            }
        }
        if options.fsync != .never { fsync(fd) }
        Glibc.close(fd)
        // Nothing waits any more (what could not be written went to stderr): the series outlives this instance.
        condition.lock()
        inFlightLines = 0
        pendingLines = 0
        pendingSince = 0
        condition.unlock()
        recordQueue()
        finished.lock()
        done = true
        finished.broadcast()
        finished.unlock()
    }

    /// Writes whole lines (each ends with a newline), retrying until every byte is in the file, or until
    /// `close`'s deadline passes: then it returns the offset it reached (the rest goes to stderr).
    private func write(_ bytes: [UInt8]) -> Int {
        if options.maxSize > 0 && size > 0 && size + Int64(bytes.count) > options.maxSize { rotate() }
        var attempt = 0
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                attempt += 1
                if !failing.exchange(true, ordering: .relaxed) {
                    Self.failingPaths.withLock { _ = $0.insert(options.path) }
                    if options.reportsReadiness {
                        PluginHost.setReady(tag, false, reason: "audit log '\(options.path)' cannot be written (\(reason)); its listener answers 503")
                    }
                }
                _ = PluginHost.api.pointee.metric_record(tag, errorsMetric, 1)
                recordQueue()
                if closeDeadlinePassed() { return offset }
                // Loud and persistent: lines stay in memory and are retried; nothing is dropped here.
                PluginHost.log(tag, GW_LOG_ERROR, "audit write to '\(options.path)' failed (\(reason)); retrying (attempt \(attempt))")
                reportDropped()
                usleep(useconds_t(min(attempt, 10) * 100_000))
                continue
            }
            size += Int64(written)
            offset += written
            if failing.exchange(false, ordering: .relaxed) {
                Self.failingPaths.withLock { _ = $0.remove(options.path) }
                if options.reportsReadiness { PluginHost.setReady(tag, true) }
            }
        }
        if options.fsync == .always { fsync(fd) } else { dirty = true }
        return offset
    }

    /// Logs the lines dropped since the last report (a full queue with `when_full: drop`, or while the file
    /// cannot be written).
    private func reportDropped() {
        condition.lock()
        let newlyDropped = dropped - reportedDropped
        reportedDropped = dropped
        let total = dropped
        condition.unlock()
        guard newlyDropped > 0 else { return }
        PluginHost.log(tag, GW_LOG_ERROR, "audit queue full: dropped \(newlyDropped) line(s) (when_full: drop, or the file cannot be written), \(total) in total")
    }

    private func closeDeadlinePassed() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard let closeDeadline else { return false }
        return Date() >= closeDeadline
    }

    /// Shutdown gave up on these lines: each goes to stderr, prefixed, so the journal keeps it.
    private func spill(_ bytes: ArraySlice<UInt8>) {
        guard !bytes.isEmpty else { return }
        let lines = bytes.split(separator: 10)
        PluginHost.log(tag, GW_LOG_ERROR, "audit file '\(options.path)' could not be written before shutdown: \(lines.count) line(s) written to stderr instead, each prefixed 'audit-unwritten: '")
        var out: [UInt8] = []
        for line in lines {
            out.append(contentsOf: "audit-unwritten: ".utf8)
            out.append(contentsOf: line)
            out.append(10)
        }
        var offset = 0
        while offset < out.count {
            let written = out.withUnsafeBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { break }
            offset += written
        }
    }

    private func reopenFile() {
        do {
            let newFD = try Self.open(options.path)
            if options.fsync != .never { fsync(fd) }
            Glibc.close(fd)
            fd = newFD
            size = Self.fileSize(fd)
        } catch {
            PluginHost.log(tag, GW_LOG_ERROR, "audit reopen failed, still writing to the old file: \((error as? OpenError)?.message ?? "\(error)")")
        }
    }

    /// audit.log -> audit.log.1 -> ... -> audit.log.<max_files>, the oldest removed.
    private func rotate() {
        if options.fsync != .never { fsync(fd) }
        let base = options.path
        Glibc.unlink("\(base).\(options.maxFiles)")
        if options.maxFiles > 1 {
            for n in stride(from: options.maxFiles - 1, through: 1, by: -1) { Glibc.rename("\(base).\(n)", "\(base).\(n + 1)") }
        }
        Glibc.rename(base, "\(base).1")
        reopenFile()
    }
}
