"""What the HTTP/2 attack scripts (h2_rapid_reset.py, h2_flood.py) share: the command line's connection options,
a TLS connection to the gateway with a client certificate that negotiated h2, and reading what comes back until
the gateway closes, noting a GOAWAY's error code in the result."""
import socket
import ssl


def add_connection_arguments(parser):
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)


def connect(args):
    """A TLS socket to 127.0.0.1:--port (SNI localhost) that negotiated h2."""
    context = ssl.create_default_context(cafile=args.ca)
    context.check_hostname = False
    context.load_cert_chain(args.cert, args.key)
    context.set_alpn_protocols(["h2"])
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", args.port), timeout=10), server_hostname="localhost")
    assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
    return sock


CLOSED = (ConnectionError, ssl.SSLError, OSError)


def poll(sock, result, take):
    """One non-blocking read while the attack writes: hands what came to `take`; False once the socket closed."""
    try:
        data = sock.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return True
    if not data:
        result["closed"] = True
        return False
    take(data)
    return True


def read_until_closed(sock, result, take, errors=CLOSED):
    """After the attack: what is left (the GOAWAY) until the gateway closes, 5 s at most per read."""
    sock.settimeout(5)
    try:
        while not result["closed"]:
            data = sock.recv(65536)
            if not data:
                result["closed"] = True
                break
            take(data)
    except errors:
        result["closed"] = True
