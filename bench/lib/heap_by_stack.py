#!/usr/bin/env python3
"""Diffs two heap_by_stack dumps (before.txt, after.txt in DIR, with maps.txt) and prints, per connection,
what the N connections opened between them hold: live allocations by allocating stack, symbolized with
addr2line and demangled with `swift demangle`."""
import collections
import subprocess
import sys

directory, n = sys.argv[1], int(sys.argv[2])
maps = []
for line in open(f"{directory}/maps.txt"):
    parts = line.split()
    if len(parts) >= 6 and "x" in parts[1]:
        low, high = (int(x, 16) for x in parts[0].split("-"))
        maps.append((low, high, int(parts[2], 16), parts[5]))


def load(name):
    counts = collections.Counter()
    for line in open(f"{directory}/{name}"):
        fields = line.split()
        counts[tuple(fields[1:])] += int(fields[0])
    return counts


before, after = load("before.txt"), load("after.txt")
added = {key: after[key] - before.get(key, 0) for key in after if after[key] - before.get(key, 0) > 0}
names = {}


def symbol(address):
    value = int(address, 16)
    if value not in names:
        names[value] = address
        for low, high, offset, path in maps:
            if low <= value < high:
                out = subprocess.run(["addr2line", "-f", "-e", path, hex(value - low + offset)], capture_output=True, text=True).stdout
                first = out.split("\n")[0]
                names[value] = first if first != "??" else f"{path.rsplit('/', 1)[-1]}+{hex(value - low + offset)}"
                break
    return names[value]


def frames(key):
    raw = [symbol(address) for address in key[1:]]
    demangled = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(raw), capture_output=True, text=True).stdout
    skip = ("malloc", "swift_slowAlloc", "swift_allocObject", "OPENSSL_malloc", "OPENSSL_zalloc", "OPENSSL_memdup", "OPENSSL_calloc")
    return [name for name in demangled.split("\n") if name and not any(s in name for s in skip)]


small = sum(count for key, count in added.items() if int(key[0], 16) == 0)
print(f"per connection: {small / n:.1f} live blocks under 1 KiB, and these of 1 KiB or more:")
for key, count in sorted(added.items(), key=lambda item: -int(item[0][0], 16) * item[1]):
    size = int(key[0], 16)
    if size and count / n >= 0.5:
        print(f"  {count / n:5.2f} x {size:6d} B  {' <- '.join(f[:70] for f in frames(key)[:4])}")
# Small blocks grouped by the first frame that names BoringSSL's or the gateway's own work.
groups = collections.Counter()
for key, count in added.items():
    if int(key[0], 16) == 0:
        chain = frames(key)
        in_x509 = any(word in f.lower() for f in chain for word in ("x509", "asn1", "obj_dup"))
        label = "BoringSSL: X509 objects of the peer's certificates (parsed and kept in the session)" if in_x509 else None
        groups[label or (chain[0][:90] if chain else "?")] += count
print("small blocks by origin (per connection):")
for label, count in groups.most_common(15):
    print(f"  {count / n:6.1f}  {label}")
