#!/usr/bin/env python3
"""Extracts the TLS ClientHellos of FoxIO's JA4 test captures into Tests/Fixtures/ja4-vectors.json.

    scripts/ja4-vectors.py PATH/TO/FoxIO-LLC/ja4 > Tests/Fixtures/ja4-vectors.json

For every TCP stream of the captures in pcap/ whose expected fingerprints python/test/testdata/<capture>.json
lists (as `JA4.1` and `JA4_r.1`), it reassembles the client's first bytes (in capture order) up to the end of
the ClientHello handshake message and writes them as hex beside the expected JA4 and JA4_r (each distinct
hello once; QUIC and DTLS hellos are left out: the gateway reads TLS over TCP). Reads classic pcap
(either byte order; Ethernet, raw IP, Linux cooked, BSD loopback) and pcapng, with the standard library only.
Streams whose hello is not found in the capture are left out (and counted on stderr).
"""
import json
import os
import struct
import sys


def packets(path):
    """(linktype, frame bytes) of every packet."""
    data = open(path, "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        linktype = struct.unpack(e + "I", data[20:24])[0]
        at = 24
        while at + 16 <= len(data):
            incl = struct.unpack(e + "I", data[at + 8:at + 12])[0]
            yield linktype, data[at + 16:at + 16 + incl]
            at += 16 + incl
        return
    if magic == b"\x0a\x0d\x0d\x0a":
        at, e, linktypes = 0, "<", []
        while at + 12 <= len(data):
            btype = struct.unpack(e + "I", data[at:at + 4])[0]
            if btype == 0x0A0D0D0A:
                e = "<" if data[at + 8:at + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                btype = 0x0A0D0D0A
                linktypes = []
            blen = struct.unpack(e + "I", data[at + 4:at + 8])[0]
            body = data[at + 8:at + blen - 4]
            if btype == 1:
                linktypes.append(struct.unpack(e + "H", body[:2])[0])
            elif btype == 6:
                iface, _, _, cap = struct.unpack(e + "IIII", body[:16])
                yield linktypes[iface], body[20:20 + cap]
            elif btype == 3:
                yield linktypes[0], body[4:]
            at += blen
        return
    raise ValueError(f"{path}: not a pcap or pcapng file")


def ip_payload(linktype, frame):
    """(src, dst, proto, payload) of an IPv4/IPv6 packet, or None."""
    if linktype == 1:  # Ethernet, with VLAN tags
        ethertype, at = struct.unpack(">H", frame[12:14])[0], 14
        while ethertype in (0x8100, 0x88A8):
            ethertype, at = struct.unpack(">H", frame[at + 2:at + 4])[0], at + 4
        frame = frame[at:]
    elif linktype == 113:  # Linux cooked
        frame = frame[16:]
    elif linktype == 0:  # BSD loopback
        frame = frame[4:]
    elif linktype not in (101, 12, 228, 229):
        return None
    if not frame:
        return None
    version = frame[0] >> 4
    if version == 4:
        ihl = (frame[0] & 15) * 4
        total = struct.unpack(">H", frame[2:4])[0]
        return frame[12:16], frame[16:20], frame[9], frame[ihl:total]
    if version == 6:
        plen = struct.unpack(">H", frame[4:6])[0]
        return frame[8:24], frame[24:40], frame[6], frame[40:40 + plen]
    return None


def ip_text(raw):
    import ipaddress
    return str(ipaddress.ip_address(raw))


def hello_prefix(stream):
    """The bytes from the start up to the end of the ClientHello message, or None if incomplete."""
    handshake, at = b"", 0
    while at + 5 <= len(stream):
        rtype, length = stream[at], struct.unpack(">H", stream[at + 3:at + 5])[0]
        if rtype != 0x16 or at + 5 + length > len(stream):
            return None
        handshake += stream[at + 5:at + 5 + length]
        at += 5 + length
        if len(handshake) >= 4 and handshake[0] == 1:
            need = 4 + (handshake[1] << 16 | handshake[2] << 8 | handshake[3])
            if len(handshake) >= need:
                return stream[:at]
    return None


def main():
    repo = sys.argv[1]
    out, missing, seen = [], 0, set()
    for name in sorted(os.listdir(os.path.join(repo, "python/test/testdata"))):
        capture = os.path.join(repo, "pcap", name[:-len(".json")])
        expected = json.load(open(os.path.join(repo, "python/test/testdata", name)))
        wanted = {}
        for entry in expected:
            if "JA4.1" in entry and not entry["JA4.1"].startswith(("q", "d")):
                key = (entry["src"], int(entry["srcport"]), entry["dst"], int(entry["dstport"]))
                wanted[key] = entry
        if not wanted or not os.path.exists(capture):
            continue
        streams = {}
        for linktype, frame in packets(capture):
            ip = ip_payload(linktype, frame)
            if not ip or ip[2] != 6 or len(ip[3]) < 20:
                continue
            src, dst, _, tcp = ip
            sport, dport = struct.unpack(">HH", tcp[:4])
            payload = tcp[(tcp[12] >> 4) * 4:]
            key = (ip_text(src), sport, ip_text(dst), dport)
            if key in wanted and payload:
                streams[key] = streams.get(key, b"") + payload
        for key, entry in wanted.items():
            hello = hello_prefix(streams.get(key, b""))
            if hello is None:
                missing += 1
                continue
            if hello in seen:
                continue
            seen.add(hello)
            out.append({"capture": name[:-len(".json")], "stream": entry["stream"], "ja4": entry["JA4.1"],
                        "ja4_r": entry.get("JA4_r.1"), "hello": hello.hex()})
    print(f"{len(out)} hellos extracted, {missing} streams without a complete hello in the capture", file=sys.stderr)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
