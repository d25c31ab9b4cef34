"""A WebSocket backend (the `websockets` package, plain ws on 127.0.0.1): echoes every message, and answers the
text message "headers?" with the upgrade request's headers as JSON (what the gateway sent it). Prints
{"port": N} once listening, then serves until killed."""
import asyncio
import json
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def handler(connection):
    headers = {}
    for name, value in connection.request.headers.raw_items():
        headers.setdefault(name.lower(), []).append(value)
    try:
        async for message in connection:
            if message == "headers?":
                await connection.send(json.dumps({"path": connection.request.path, "headers": headers}))
            else:
                await connection.send(message)
    except ConnectionClosed:
        pass  # the gateway closed an idle tunnel without a close frame: what the test expects


async def main():
    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
