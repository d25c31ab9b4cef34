"""A WebSocket client (the `websockets` package) through the gateway over wss with a client certificate.

echo: a text message and a binary one of --binary-bytes random bytes, each echoed back by ws_backend.py, then
the headers the backend saw on the upgrade request. idle: opens the tunnel, sends nothing, and reports whether
and when the gateway closed it. Either way a refused upgrade reports its HTTP status. Prints one JSON object."""
import argparse
import asyncio
import json
import os
import ssl
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


async def run(args):
    context = ssl.create_default_context(cafile=args.ca)
    context.load_cert_chain(args.cert, args.key)
    context.check_hostname = False
    extra = [tuple(header.split(": ", 1)) for header in args.header]
    result = {}
    try:
        async with connect(args.url, ssl=context, server_hostname="localhost", max_size=None,
                           additional_headers=extra, open_timeout=10) as ws:
            result["status"] = ws.response.status_code
            result["response_headers"] = {name.lower(): value for name, value in ws.response.headers.raw_items()}
            if args.mode == "echo":
                await ws.send("hello through the gateway")
                result["text"] = await ws.recv()
                payload = os.urandom(args.binary_bytes)
                await ws.send(payload)
                echoed = await ws.recv()
                result["binary_equal"] = echoed == payload
                result["binary_length"] = len(echoed)
                await ws.send("headers?")
                result["backend"] = json.loads(await ws.recv())
            else:
                started = time.monotonic()
                try:
                    await asyncio.wait_for(ws.recv(), timeout=args.wait)
                    result["closed"] = False
                except ConnectionClosed:
                    result["closed"] = True
                except asyncio.TimeoutError:
                    result["closed"] = False
                result["seconds"] = time.monotonic() - started
    except InvalidStatus as refused:
        result["status"] = refused.response.status_code
        result["body"] = refused.response.body.decode("utf-8", "replace") if refused.response.body else ""
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--mode", choices=["echo", "idle"], default="echo")
    parser.add_argument("--binary-bytes", type=int, default=10 * 1024 * 1024)
    parser.add_argument("--wait", type=float, default=10)
    parser.add_argument("--header", action="append", default=[])
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
