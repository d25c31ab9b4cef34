#!/usr/bin/env python3
"""Writes Tests/Fixtures/ja3-vectors.json: the JA3 of every ClientHello in Tests/Fixtures/ja4-vectors.json (FoxIO's
captures), as Salesforce's reference implementation computes it (PyPI `pyja3` 1.0.0, its `process_pcap` on a
one-packet capture of the hello), keyed by capture and stream, so that JA3FingerprintTests checks the gateway against an implementation it
shares nothing with.

    python3 -m venv /tmp/ja3 && /tmp/ja3/bin/pip install pyja3==1.0.0 dpkt
    /tmp/ja3/bin/python scripts/ja3-vectors.py
"""
import io, json, pathlib

import dpkt
from ja3.ja3 import process_pcap

root = pathlib.Path(__file__).resolve().parent.parent
vectors = json.loads((root / "Tests/Fixtures/ja4-vectors.json").read_text())
out = []
for vector in vectors:
    hello = bytes.fromhex(vector["hello"])
    tcp = dpkt.tcp.TCP(sport=40000, dport=443, flags=dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, data=hello)
    ip = dpkt.ip.IP(src=b"\x7f\x00\x00\x01", dst=b"\x7f\x00\x00\x01", p=dpkt.ip.IP_PROTO_TCP, data=tcp)
    eth = dpkt.ethernet.Ethernet(src=b"\x00" * 6, dst=b"\x00" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
    pcap = io.BytesIO()
    writer = dpkt.pcap.Writer(pcap, snaplen=262144)
    writer.writepkt(bytes(eth), ts=0)
    pcap.seek(0)
    results = process_pcap(dpkt.pcap.Reader(pcap), any_port=True)
    if len(results) != 1:
        print(f"skipped {vector['capture']} stream {vector['stream']}: pyja3 found {len(results)} hellos")
        continue
    out.append({"capture": vector["capture"], "stream": vector["stream"], "ja3": results[0]["ja3_digest"],
                "ja3_full": results[0]["ja3"]})
(root / "Tests/Fixtures/ja3-vectors.json").write_text(json.dumps(out, indent=1) + "\n")
print(f"{len(out)} of {len(vectors)} hellos")
