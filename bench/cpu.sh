#!/usr/bin/env bash
# CPU time per request of proxy builds side by side: the measure for a change to the
# data path, steadier than throughput on a noisy machine (a core's time is counted
# whether or not the other core keeps up).
#
#   bench/cpu.sh BINARY...     # each takes --listen ADDR --backend ADDR --backend ADDR
#
# Each binary is pinned to core 0 with its own port; wrk (-t1 -cCONNS) and two testkit
# backends share core 1. Rounds interleave the binaries; per round and binary it
# prints requests/s and the proxy's user+system CPU µs per request (from
# /proc/PID/stat). To compare with an earlier commit:
#
#   git worktree add /tmp/before <commit>
#   cargo build --release -p shoal-proxy --example standalone \
#     --manifest-path /tmp/before/Cargo.toml --target-dir /tmp/before-target
#   cargo build --release -p shoal-proxy --example standalone --example ceiling
#   bench/cpu.sh /tmp/before-target/release/examples/standalone \
#     target/release/examples/standalone target/release/examples/ceiling
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}   # CONNS=1: one connection, the unloaded path
[ $# -gt 0 ] || { sed -n 2,18p "$0"; exit 2; }
command -v wrk >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}
cargo build --release --locked -q -p shoal-testkit

. bench/pinned.sh
trap stop_pinned EXIT
backends 9111 9112
proxies=()
bins=("$@")
for i in "${!bins[@]}"; do
  start 0 "${bins[$i]}" --listen "127.0.0.1:$((8020 + i))" --backend 127.0.0.1:9111 --backend 127.0.0.1:9112
  proxies+=("${pids[-1]}")
done
sleep 1
hz=$(getconf CLK_TCK)
for round in $(seq "$ROUNDS"); do
  i=0
  for bin in "$@"; do
    pid=${proxies[$i]}
    before=$(ticks "$pid")
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$((8020 + i))/")
    after=$(ticks "$pid")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    python3 -c "import sys; r,b,rps,t,a,n,hz=sys.argv[1:]; print(f'round {r}  {b:<50} {float(rps):>8.0f} rps  {(int(a)-int(t))*1e6/int(hz)/int(n):6.2f} us/request')" \
      "$round" "$bin" "$rps" "$before" "$after" "$n" "$hz"
    i=$((i + 1))
  done
done
