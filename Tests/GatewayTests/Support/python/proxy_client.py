#!/usr/bin/env python3
"""A client behind a PROXY-protocol balancer, for ProxyProtocolTests.

Opens CONNECTIONS connections to 127.0.0.1:PORT from the address --source, one after another, and keeps them
all open until the end. On each it sends the PROXY header given in hex (--header; none if empty), split into
pieces at the byte offsets of --split with --pause seconds between them (so that the header arrives over
several reads), then, unless --only-header, speaks TLS with the client certificate and sends GET PATH with
keep-alive. With --only-header it waits --wait seconds for the gateway to close the connection.

Prints one JSON list, an entry per connection:
  {"status": 200, "body": "..."}   the response
  {"closed": "reason"}             the gateway closed the connection (or refused the handshake) instead
  {"open": true}                   --only-header: the connection was still open after --wait seconds
"""
import argparse, json, socket, ssl, time


def read_response(tls):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return status, body[:length].decode("utf-8", "replace")


def one(args, ctx, header):
    sock = socket.create_connection(("127.0.0.1", args.port), timeout=10, source_address=(args.source, 0))
    cuts = [0] + [c for c in args.split if 0 < c < len(header)] + [len(header)]
    try:
        for start, end in zip(cuts, cuts[1:]):
            sock.sendall(header[start:end])
            if end < len(header):
                time.sleep(args.pause)
        if args.only_header:
            sock.settimeout(args.wait)
            try:
                data = sock.recv(1)
                return sock, {"closed": "end of stream" if not data else "unexpected bytes"}
            except socket.timeout:
                return sock, {"open": True}
            except OSError as error:
                return sock, {"closed": str(error)}
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
        tls.sendall(f"GET {args.path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        status, body = read_response(tls)
        return tls, {"status": status, "body": body}
    except (OSError, ssl.SSLError, ConnectionError) as error:
        return sock, {"closed": str(error)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--source", default="127.0.0.1")
    parser.add_argument("--header", default="", help="the PROXY header, hex")
    parser.add_argument("--split", type=lambda text: [int(x) for x in text.split(",") if x], default=[])
    parser.add_argument("--pause", type=float, default=0.2)
    parser.add_argument("--only-header", action="store_true")
    parser.add_argument("--wait", type=float, default=5)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--path", default="/who")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.check_hostname = False
    header = bytes.fromhex(args.header)
    results, sockets = [], []
    for _ in range(args.connections):
        sock, result = one(args, ctx, header)
        sockets.append(sock)
        results.append(result)
    for sock in sockets:
        sock.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
