#!/usr/bin/env python3
"""Keep-alive mTLS client for the profile: the same connections for the warm-up and the profiled requests.

Opens C connections (client certificate, TLS 1.3), sends W warm-up requests spread over them, prints `WARM`,
waits for a line on stdin, then sends N requests (C loops of sequential keep-alive GETs, like wrk -c C) and
prints `DONE {json}`. No handshake happens after `WARM`, so a profile zeroed then counts only the keep-alive
request path of scenario (a). Requests look like wrk's: `GET / HTTP/1.1` and a Host header.
"""
import argparse
import asyncio
import json
import ssl
import sys
import time


async def request(reader, writer, req):
    writer.write(req)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return head.split(b" ", 2)[1] == b"200"


async def loop(conn, count, req, ok):
    for _ in range(count):
        ok.append(await request(*conn, req))


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("-c", type=int, default=50)
    p.add_argument("-w", type=int, default=200)
    p.add_argument("-n", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    a = p.parse_args()
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols(["http/1.1"])
    req = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n\r\n".encode()
    conns = [await asyncio.open_connection("127.0.0.1", a.port, ssl=ctx, server_hostname="localhost")
             for _ in range(a.c)]

    async def batch(total):
        ok = []
        per = [total // a.c + (1 if i < total % a.c else 0) for i in range(a.c)]
        await asyncio.gather(*(loop(c, n, req, ok) for c, n in zip(conns, per)))
        return ok

    warm = await batch(max(a.w, a.c))
    print(f"WARM {sum(warm)}/{len(warm)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    t0 = time.monotonic()
    ok = await batch(a.n)
    print("DONE " + json.dumps({"ok": sum(ok), "sent": len(ok), "seconds": round(time.monotonic() - t0, 2)}),
          flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for _, w in conns:
        w.transport.abort()


if __name__ == "__main__":
    asyncio.run(main())
