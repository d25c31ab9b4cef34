#!/usr/bin/env python3
"""Captures the TLS ClientHellos of real clients, for JA4FingerprintTests.

Listens on 127.0.0.1:PORT, accepts COUNT connections one after another, reads each client's first bytes up to
the end of its ClientHello message (over as many reads as it takes), closes the connection (the client then
fails its handshake, which is expected) and prints a JSON list of the hellos in hex, in the order they came.
"""
import argparse, json, socket, struct


def hello_end(data):
    handshake, at = b"", 0
    while at + 5 <= len(data):
        length = struct.unpack(">H", data[at + 3:at + 5])[0]
        if data[at] != 0x16 or at + 5 + length > len(data):
            return None
        handshake += data[at + 5:at + 5 + length]
        at += 5 + length
        if len(handshake) >= 4 and 4 + int.from_bytes(handshake[1:4], "big") <= len(handshake):
            return at
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=1)
    args = p.parse_args()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen(8)
    server.settimeout(60)
    hellos = []
    for _ in range(args.count):
        conn, _ = server.accept()
        conn.settimeout(10)
        data = b""
        while hello_end(data) is None:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        end = hello_end(data)
        hellos.append(data[:end].hex() if end else "")
        conn.close()
    print(json.dumps(hellos))


if __name__ == "__main__":
    main()
