#!/usr/bin/env bash
# What an idle mTLS connection holds on the gateway's heap, by the call stack that allocated it.
#   BENCH_KEEP_WORK=1 BENCH_WORK=/tmp/w bench/run profile    # once: binaries, config, PKI, backend in /tmp/w
#   bench/lib/heap_by_stack.sh /tmp/w [N]                     # N idle connections (default 1000)
# Starts the backend and the gateway (one event loop) with the heap_by_stack shim, opens and closes 200
# connections (warm-up), dumps the live heap, opens N idle connections (one GET each, bench/lib/idle_clients.py),
# dumps it again, and prints what the N connections added, per connection, by allocating stack.
set -euo pipefail
work=${1:?usage: heap_by_stack.sh WORK_DIR [N]}
n=${2:-1000}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
cc -O2 -shared -fPIC -o "$out/heap_by_stack.so" "$here/heap_by_stack.c" -lpthread
port=$(sed -n 's/^    address: "127.0.0.1:\([0-9]*\)".*/\1/p' "$work/gateway/gateway.yaml" | head -1)
admin=$(sed -n 's/^admin: { address: "\(127.0.0.1:[0-9]*\)".*/\1/p' "$work/gateway/gateway.yaml")
nginx -c "$work/backend/nginx.conf" > /dev/null 2>&1 &
sleep 0.3
LD_PRELOAD="$out/heap_by_stack.so" LIVE_OUT="$out/dump.txt" "$work/bin/gateway" run --config "$work/gateway/gateway.yaml" --threads 1 > "$out/gateway.log" 2>&1 &
gateway=$!
trap 'kill $gateway 2>/dev/null; pkill -f "nginx -c $work/backend" || true' EXIT
for _ in $(seq 1 120); do curl -s -o /dev/null "http://$admin/healthz" && break; sleep 0.5; done
clients() {
  python3 "$here/idle_clients.py" --port "$port" -n "$1" --cert "$work/pki/client.pem" --key "$work/pki/client.key" --ca "$work/pki/ca.pem"
}
dump() { kill -USR2 $gateway; sleep 1; cp "$out/dump.txt" "$out/$1"; }
coproc warm { clients 200; }
read -r line <&"${warm[0]}"; echo "warm-up: ${line:0:100}"; echo close >&"${warm[1]}"; sleep 2
dump before.txt
coproc idle { clients "$n"; }
read -r line <&"${idle[0]}"; echo "idle: ${line:0:100}"
sleep 3
dump after.txt
cp "/proc/$gateway/maps" "$out/maps.txt"
echo close >&"${idle[1]}"
python3 "$here/heap_by_stack.py" "$out" "$n"
