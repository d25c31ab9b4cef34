#!/usr/bin/env python3
"""`bench/run soak`: the gateway under a long run, watched for leaks (issue 18). Run by hand, not in CI.

One gateway (the real chain: Audit + ClientCertHeaders, one event loop, as bench/run measures it) behind the
same nginx backend, through three phases:

  keepalive   BENCH_SOAK_REQUESTS (1,000,000) keep-alive requests (wrk, 50 connections, the client-cert shim)
  handshakes  BENCH_SOAK_HANDSHAKES (100,000) full mTLS handshakes (Connection: close, no resumption)
  reloads     BENCH_SOAK_RELOADS (1,000) SIGHUP reloads, each one waited for ("configuration reloaded" in the
              log), every one creating new plugin instances, while wrk keeps keep-alive load on it

Every second it samples the gateway's RSS, open file descriptors, threads and mapped shared libraries. Two
checks, each with the margins RSS 4 MiB or 5 % (the larger), 16 descriptors, 2 threads, 0 libraries (the
descriptors without the connections to the backend, which are counted apart):
- within a phase of 20 samples or more, after its first fifth (warm-up), the later half's maximum must not
  exceed the earlier half's;
- at rest (the load stopped, 3 s later) after each phase, nothing may exceed the rest after the first phase,
  and after the reloads the descriptors, threads and libraries must be back at the idle start's (the reload
  phase is too short for the first check: 1,000 reloads take about 11 s here); at every rest, no more
  connections to the backend than the load had connections (the pool of the current generation).
Writes bench/results/soak-<date>.md.
"""
import os
import re
import signal
import threading
import time

import harness as H

MARGINS = {"rss_kib": None, "fds": 16, "threads": 2, "libs": 0}
# Connections to the backend are counted apart from the other descriptors: idle ones wait in the current
# generation's pool (at most one per connection the load used at once) and are reused by the next requests.
BACKEND_PORT = None


def backend_sockets():
    """Inodes of the established TCP connections to the backend (any process: matched against the gateway's)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == BACKEND_PORT:
                        inodes.add(fields[9])
        except OSError:
            pass
    return inodes


def sample(pid):
    """RSS (KiB), open descriptors, threads and distinct mapped .so files of one process."""
    out = {"t": time.monotonic()}
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    out["rss_kib"] = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))
    out["threads"] = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    fds = os.listdir(f"/proc/{pid}/fd")
    to_backend = backend_sockets() if BACKEND_PORT else set()
    backend = 0
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in to_backend:
            backend += 1
    out["fds"] = len(fds) - backend
    out["backend_conns"] = backend
    libs = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            path = line.split(None, 5)[5].strip() if len(line.split(None, 5)) > 5 else ""
            if ".so" in path:
                libs.add(path)
    out["libs"] = len(libs)
    return out


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.phase, self.stopped = pid, [], "start", False

    def run(self):
        while not self.stopped:
            try:
                s = sample(self.pid)
            except (OSError, AttributeError):
                return
            s["phase"] = self.phase
            self.samples.append(s)
            time.sleep(1)


def grew(key, before, after):
    allowed = max(4096, before * 0.05) if key == "rss_kib" else MARGINS[key]
    return after - before > allowed


def verdict(samples):
    """(ok, rows): per metric, the earlier and later half after a fifth of warm-up (None: too few samples)."""
    rest = samples[len(samples) // 5:]
    if len(samples) < 20:
        return None, []
    half = len(rest) // 2
    early, late = rest[:half], rest[half:]
    ok, rows = True, []
    for key in MARGINS:
        a, b = max(x[key] for x in early), max(x[key] for x in late)
        g = grew(key, a, b)
        ok = ok and not g
        rows.append((key, a, b, "GROWING" if g else "flat"))
    return ok, rows


def wait_reloads(log_path, count, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, errors="replace") as f:
            if f.read().count("configuration reloaded") >= count:
                return True
        time.sleep(0.01)
    return False


def main():
    s = H.Settings()
    requests = H.env_int("BENCH_SOAK_REQUESTS", 1_000_000)
    handshakes = H.env_int("BENCH_SOAK_HANDSHAKES", 100_000)
    reloads = H.env_int("BENCH_SOAK_RELOADS", 1_000)
    procs = H.Procs(s.work)
    signal.signal(signal.SIGTERM, lambda sig, _f: (_ for _ in ()).throw(KeyboardInterrupt(f"signal {sig}")))
    try:
        bindir = os.path.join(s.work, "bin")
        H.copy_binaries(s, bindir)
        version = H.gateway_version(s, bindir)
        pki = H.make_pki(os.path.join(s.work, "pki"))
        backend = H.Backend(s, procs, s.work)
        global BACKEND_PORT
        BACKEND_PORT = backend.port
        gw = H.Gateway("gateway", s, pki, backend, s.work, bindir, "real")
        gw.start(procs)
        H.wait_port(gw.port, gw.proc, "gateway", gw.stderr_log)
        pid = gw.proc.pid  # taskset execs the gateway
        H.log(f"soak: gateway pid {pid}; {requests} keep-alive requests, {handshakes} handshakes, {reloads} reloads")
        sampler = Sampler(pid)
        sampler.start()
        rows = []

        def load(scenario, target, label):
            sampler.phase = label
            done, t0 = 0, time.monotonic()
            while done < target:
                r = H.wrk(s, pki, gw, scenario, 10)
                if r["errors"] or r["non2xx"]:
                    raise H.BenchError(f"soak {label}: {r['errors']} errors, {r['non2xx']} non-2xx")
                done += r["requests"]
                H.log(f"soak {label}: {done}/{target}, RSS {sample(pid)['rss_kib']} KiB")
            rows.append((label, done, time.monotonic() - t0))

        rests = []

        def rest(label):
            sampler.phase = "rest"
            time.sleep(3)
            rests.append((label, sample(pid)))

        rests.append(("start (idle)", sample(pid)))
        load("a", requests, "keepalive")
        rest("keepalive")
        load("c", handshakes, "handshakes")
        rest("handshakes")

        sampler.phase = "reloads"
        # Keep-alive load during the reloads, started through Procs so that it is stopped with everything else.
        reload_load = procs.start("reload load", ["wrk", "-t1", "-c", str(s.conns), "-d", "3600s", "--timeout", "10s", gw.url("/")],
                                  s.loadgen_cpu, env=H.shim_env(s, pki))
        t0 = time.monotonic()
        for n in range(1, reloads + 1):
            os.kill(pid, signal.SIGHUP)
            if not wait_reloads(gw.stderr_log, n):
                raise H.BenchError(f"soak reloads: reload {n} did not finish within 30 s; log {gw.stderr_log}")
            if n % 100 == 0:
                H.log(f"soak reloads: {n}/{reloads}, RSS {sample(pid)['rss_kib']} KiB")
        rows.append(("reloads", reloads, time.monotonic() - t0))
        procs.stop(reload_load)
        rest("reloads")  # the last retired generations have torn down
        sampler.stopped = True
        sampler.join(3)
        procs.stop_all()

        ok_all, lines = True, []
        lines.append(f"# Soak run, {s.date}\n")
        lines.append(f"`bench/run soak` on this machine. Gateway: {version}; real chain (Audit + ClientCertHeaders), "
                     "one event loop, pinned to CPU 1; wrk with 50 connections on CPU 0; nginx backend.\n")
        lines.append("| phase | amount | seconds |\n|---|---|---|")
        for label, amount, secs in rows:
            lines.append(f"| {label} | {amount:,} | {secs:.0f} |")
        lines.append("")
        for phase in ("keepalive", "handshakes", "reloads"):
            ps = [x for x in sampler.samples if x["phase"] == phase]
            ok, judged = verdict(ps)
            if ok is None:
                lines.append(f"## {phase}: {len(ps)} samples, too few for the within-phase check (see the rest check)\n")
            else:
                ok_all = ok_all and ok
                lines.append(f"## {phase}: {'flat' if ok else 'GROWING'} ({len(ps)} samples, 1 s apart)\n")
                lines.append("| metric | max, earlier half after warm-up | max, later half | verdict |\n|---|---|---|---|")
                for key, a, b, v in judged:
                    lines.append(f"| {key} | {a} | {b} | {v} |")
            first, last = (ps[0], ps[-1]) if ps else ({}, {})
            lines.append(f"\nFirst sample: RSS {first.get('rss_kib')} KiB, {first.get('fds')} descriptors, "
                         f"{first.get('threads')} threads, {first.get('libs')} libraries; last: RSS {last.get('rss_kib')} KiB, "
                         f"{last.get('fds')} descriptors, {last.get('threads')} threads, {last.get('libs')} libraries.\n")
        lines.append("## At rest (load stopped, 3 s later), against the rest after the first phase\n")
        lines.append("| after | RSS KiB | descriptors (without backend connections) | backend connections | threads | libraries | verdict |\n|---|---|---|---|---|---|---|")
        reference, idle = rests[1][1], rests[0][1]
        for label, x in rests:
            bad = [k for k in MARGINS if label != "start (idle)" and grew(k, reference[k], x[k])]
            # After the reloads the retired generations have torn down: the idle start's descriptors, threads and
            # libraries again (RSS keeps its warm-up), and no more backend connections than the load had
            # connections (the current generation's pool, reused by the next requests).
            if label == "reloads":
                bad += [k for k in ("fds", "threads", "libs") if grew(k, idle[k], x[k]) and k not in bad]
            if x["backend_conns"] > s.conns:
                bad.append("backend connections")
            ok_all = ok_all and not bad
            lines.append(f"| {label} | {x['rss_kib']} | {x['fds']} | {x['backend_conns']} | {x['threads']} | {x['libs']} | "
                         f"{'reference' if x is reference else ('GROWING: ' + ', '.join(bad) if bad else 'flat')} |")
        lines.append("")
        lines.append(f"**Verdict: {'no growth after warm-up' if ok_all else 'something keeps growing'}.**\n")
        out = os.path.join(H.BENCH, "results", f"soak-{s.date}.md")
        with open(out, "w") as f:
            f.write("\n".join(lines))
        H.log(f"soak report written to {out}")
        if not ok_all:
            raise H.BenchError("soak: a resource keeps growing after warm-up (see the report)")
    finally:
        procs.stop_all()
