#!/usr/bin/env python3
"""Open N mutual-TLS connections to a proxy, send one GET on each, and hold them idle.

Used by scenario (d). Prints one line `READY {json}` once every connection has been tried (json: ok, failed,
first_error, seconds), then waits for a line on stdin (or EOF) and closes everything, printing `CLOSED`.

Each connection does a full handshake (presenting the client certificate), one keep-alive request for `/`
and reads the whole response, so the proxy holds a finished, idle keep-alive connection (and whatever state
that keeps) rather than a half-open one.
"""
import argparse
import asyncio
import json
import resource
import ssl
import sys
import time


async def open_one(host, port, ctx, server_name, sem, conns, errors):
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ctx, server_hostname=server_name), timeout=60)
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench-idle\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=60)
            status = head.split(b" ", 2)[1]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                await asyncio.wait_for(reader.readexactly(length), timeout=60)
            if status != b"200":
                raise RuntimeError(f"status {status.decode()}")
            conns.append(writer)
        except Exception as e:  # noqa: BLE001 - every failure is counted and the first one is reported
            errors.append(f"{type(e).__name__}: {e}")


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("-n", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--server-name", default="localhost")
    p.add_argument("--concurrency", type=int, default=200)
    a = p.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.n + 256
    if soft < want:
        if hard < want:
            print(f"idle_clients: need {want} file descriptors, hard limit is {hard}", file=sys.stderr)
            sys.exit(2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols(["http/1.1"])
    sem = asyncio.Semaphore(a.concurrency)
    conns, errors = [], []
    t0 = time.monotonic()
    await asyncio.gather(*(open_one(a.host, a.port, ctx, a.server_name, sem, conns, errors) for _ in range(a.n)))
    report = {"ok": len(conns), "failed": len(errors), "first_error": errors[0] if errors else None,
              "seconds": round(time.monotonic() - t0, 2)}
    print("READY " + json.dumps(report), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    # Closed connections are not the point; abort rather than wait for close_notify from 10k peers.
    for w in conns:
        w.transport.abort()
    print("CLOSED", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
