#!/usr/bin/env python3
"""Keep-alive HTTPS load with a client certificate, for the reload and shutdown tests.

Runs PROCESSES x THREADS connections against https://127.0.0.1:PORT/PATH for DURATION seconds (or until
STOP_FILE appears). Each connection sends GETs one after another and reconnects when the gateway answers with
`Connection: close` (what a retired configuration does after a reload). Prints one JSON object:

  requests        responses with status 200
  statuses        count per status code
  failures        requests that got no complete response (each with its error), excluding `refused`
  refused         requests that never reached the gateway because the connection could not be (re)opened or
                  was closed before the request was read (only possible during shutdown, see --shutdown)
  serials         server certificate serials (hex) seen on new handshakes, with counts
  backends        count per x-backend response header (which backend answered)
"""
import argparse, http.client, json, multiprocessing, os, socket, ssl, sys, threading, time
from collections import Counter


def worker(args, deadline, result, lock):
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.check_hostname = False
    conn = None
    served = 0
    local = {"requests": 0, "statuses": Counter(), "failures": [], "refused": 0, "serials": Counter(), "backends": Counter()}
    while time.time() < deadline and not (args.stop_file and os.path.exists(args.stop_file)):
        fresh = False
        if conn is None:
            source = (args.source, 0) if args.source else None
            conn = http.client.HTTPSConnection("127.0.0.1", args.port, context=ctx, timeout=10, source_address=source)
            try:
                conn.connect()
                fresh = True
                served = 0
                serial = conn.sock.getpeercert().get("serialNumber", "?")
                local["serials"][serial] += 1
            except (OSError, ssl.SSLError) as e:
                conn.close()
                conn = None
                if args.shutdown:
                    local["refused"] += 1
                    break
                local["failures"].append(f"connect: {e!r}")
                time.sleep(0.01)
                continue
        sent = False
        answered = False
        try:
            conn.putrequest("GET", args.path)
            conn.endheaders()
            sent = True
            response = conn.getresponse()
            answered = True
            body = response.read()
            local["statuses"][response.status] += 1
            if response.status == 200:
                local["requests"] += 1
            local["backends"][response.getheader("x-backend", "-")] += 1
            served += 1
            if response.will_close or (args.requests_per_connection and served >= args.requests_per_connection):
                conn.close()
                conn = None
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError) as e:
            if answered:
                # A response cut after its status line: always a failure.
                conn.close()
                conn = None
                local["failures"].append(f"response cut: {e!r}")
                continue
            # Closed before any response byte: the request was never read. Only shutdown may do that, and only
            # to an idle connection; anything else is a failure. Over TLS the same close can surface as an SSL
            # EOF (the close_notify and the request crossed), which says no more than RemoteDisconnected.
            conn.close()
            conn = None
            if args.shutdown:
                local["refused"] += 1
                break
            local["failures"].append(f"{'fresh' if fresh else 'reused'} connection: {e!r}")
        except Exception as e:
            conn.close()
            conn = None
            local["failures"].append(f"request: {e!r}")
    if conn is not None:
        conn.close()
    with lock:
        result["requests"] += local["requests"]
        result["statuses"].update(local["statuses"])
        result["failures"] += local["failures"]
        result["refused"] += local["refused"]
        result["serials"].update(local["serials"])
        result["backends"].update(local["backends"])


def process_main(args, deadline, queue):
    result = {"requests": 0, "statuses": Counter(), "failures": [], "refused": 0, "serials": Counter(), "backends": Counter()}
    lock = threading.Lock()
    threads = [threading.Thread(target=worker, args=(args, deadline, result, lock)) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put(result)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--processes", type=int, default=5)
    p.add_argument("--threads", type=int, default=10)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--stop-file")
    p.add_argument("--source", help="the local address to connect from (e.g. 127.0.0.9), default any")
    p.add_argument("--requests-per-connection", type=int, default=0,
                   help="close each connection after this many requests and open a new one (0: keep it while it lasts)")
    p.add_argument("--shutdown", action="store_true", help="the gateway is being stopped: closed connections end a worker")
    args = p.parse_args()
    deadline = time.time() + args.duration
    queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=process_main, args=(args, deadline, queue)) for _ in range(args.processes)]
    for proc in procs:
        proc.start()
    total = {"requests": 0, "statuses": Counter(), "failures": [], "refused": 0, "serials": Counter(), "backends": Counter()}
    for _ in procs:
        r = queue.get()
        total["requests"] += r["requests"]
        total["statuses"].update(r["statuses"])
        total["failures"] += r["failures"]
        total["refused"] += r["refused"]
        total["serials"].update(r["serials"])
        total["backends"].update(r["backends"])
    for proc in procs:
        proc.join()
    total["statuses"] = {str(k): v for k, v in total["statuses"].items()}
    total["failures"] = total["failures"][:50] + ([f"... {len(total['failures']) - 50} more"] if len(total["failures"]) > 50 else [])
    print(json.dumps(total))


if __name__ == "__main__":
    main()
