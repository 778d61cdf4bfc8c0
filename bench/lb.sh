#!/usr/bin/env bash
# The load balancer where users meet it, side by side with its peers, interleaved over
# rounds. For each kind of backend (KINDS, both by default):
#   testkit  two testkit replicas (one worker thread each) of a compose project
#   hello    the example's three web replicas (examples/hello, PostgreSQL beside them)
# these targets run in front of the same replica containers:
#   direct    wrk straight to one replica (no proxy)
#   shoal     the product: `shoal up -d` on the compose file, SHOAL_PROXY_THREADS=1
#   shoal-2w  testkit only: a second project with SHOAL_PROXY_THREADS=2, its process
#             on both cores, in front of two replicas of its own
#   datapath  shoal's data path alone (crates/proxy/examples/standalone.rs, one thread)
#   nginx     one worker, keepalive upstream
#   haproxy   nbthread 1, http-reuse always
#   caddy     Debian's Caddy, reverse_proxy (Go; on one core it runs one P)
#   ceiling   with CEILING=1: the least work an HTTP/1.1 proxy can do
#             (crates/proxy/examples/ceiling.rs); uring, the same on io_uring
#             (monoio; crates/proxy/examples/ceiling_uring.rs)
# The balancing is the file's: least-request (peers: least connections) for testkit,
# round robin for hello (the example's `x-shoal.lb`). Every proxy's process, shoal's
# whole control plane with it, is pinned to core 0; wrk, oha and the replica
# containers to core 1. Per kind, target and round: throughput (wrk -t1 -c32) with the
# proxy's CPU µs per request (user + system from /proc/PID/stat, its children
# included), p50/p99 at a fixed rate (oha -q, latency corrected for coordinated
# omission), the unloaded latency of one connection, and the host's steal time on
# core 0. Prints per kind the medians over rounds and the ratios to the peers.
#
#   bench/lb.sh                                   # 3 rounds of 8 s per measurement
#   ROUNDS=5 DURATION=10 RATE=6000 KINDS=testkit bench/lb.sh
#   CEILING=1 bench/lb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
RATE=${RATE:-5000}
KINDS=${KINDS:-testkit hello}

[[ " $KINDS " == *" hello "* ]] && bash scripts/debian-base.sh >/dev/null
. bench/testkit-context.sh
. bench/pinned.sh
. bench/peers.sh
trap 'stop_all; rm -rf "$work"' EXIT

# Brings up the kind's project(s) and the peers in front of the same replicas; fills
# `port` and `pid` per target and `targets`.
start_kind() {
  local backs
  port=() pid=()
  if [ "$1" = testkit ]; then
    testkit_project bench-lb 18800 1
    testkit_project bench-lb-2w 18809 2
    replicas bench-lb-2w app >/dev/null
    pid[shoal-2w]=$(control_plane bench-lb-2w) port[shoal-2w]=127.0.0.1:18809
    taskset -a -p -c 0,1 "${pid[shoal-2w]}" >/dev/null
    pid[shoal]=$(control_plane bench-lb)
    mapfile -t backs < <(replicas bench-lb app)
    start_peers least "${backs[@]}"
    targets=(direct shoal shoal-2w)
  else
    hello_project bench-lb-hello 18800
    pid[shoal]=$(control_plane bench-lb-hello)
    mapfile -t backs < <(replicas bench-lb-hello web)
    start_peers rr "${backs[@]}"
    targets=(direct shoal)
  fi
  taskset -a -p -c 0 "${pid[shoal]}" >/dev/null
  port[shoal]=127.0.0.1:18800 port[direct]=${backs[0]}
  targets+=(datapath nginx haproxy caddy ${CEILING:+ceiling uring})
  for _ in $(seq 100); do curl -fs "http://${port[shoal]}/" >/dev/null && break; sleep 0.1; done
}

# The host's steal time on the proxies' core: a VM's core taken by its host for other
# guests. Measurements with much of it measure the host, not the proxies.
steal() { awk '/^cpu0 / {print $9}' /proc/stat; }
results="$work/results.tsv"
hz=$(getconf CLK_TCK)
for kind in $KINDS; do
  start_kind "$kind"
  for round in $(seq "$ROUNDS"); do
    for t in "${targets[@]}"; do
      url="http://${port[$t]}/"
      steal0=$(steal) t0=$(date +%s.%N)
      p=${pid[$t]:-}
      c0=$([ -n "$p" ] && ticks "$p" || echo 0)
      out=$(taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" "$url")
      c1=$([ -n "$p" ] && ticks "$p" || echo 0)
      taskset -c 1 oha -z "${DURATION}s" -q "$RATE" -c 32 --latency-correction --no-tui --output-format json "$url" > "$work/fixed.json"
      taskset -c 1 oha -n 3000 -c 1 --no-tui --output-format json "$url" > "$work/one.json"
      python3 - "$kind" "$t" "$round" "$out" "$c0" "$c1" "$hz" "$work/fixed.json" "$work/one.json" \
        "$steal0" "$(steal)" "$t0" "$(date +%s.%N)" "${p:+cpu}" >> "$results" <<'PY'
import json, re, sys
kind, t, rnd, out, c0, c1, hz, fixed, one, s0, s1, t0, t1, cpu = sys.argv[1:]
n = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
us = (int(c1) - int(c0)) * 1e6 / int(hz) / n if cpu else float("nan")
f, o = json.load(open(fixed)), json.load(open(one))
stolen = (float(s1) - float(s0)) / int(hz) / (float(t1) - float(t0)) * 100
print(kind, t, rnd, rps, us, f["latencyPercentiles"]["p50"] * 1000, f["latencyPercentiles"]["p99"] * 1000,
      f["summary"]["successRate"], o["latencyPercentiles"]["p50"] * 1000, stolen, sep="\t")
PY
      tail -n1 "$results" | awk -F'\t' '{printf "%s round %s %-9s %7.0f rps %6.2f us/req | @rate p50 %.3f p99 %.3f ms ok %.3f | 1 conn %.3f ms | steal %.0f %%\n", $1, $3, $2, $4, $5, $6, $7, $8, $9, $10}' >&2
    done
  done
  stop_all
done

python3 - "$results" "$RATE" <<'PY'
import math, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
rate = sys.argv[2]
for kind in dict.fromkeys(r[0] for r in rows):
    mine = [r for r in rows if r[0] == kind]
    med = {}
    for t in dict.fromkeys(r[1] for r in mine):
        med[t] = [statistics.median(float(r[i]) for r in mine if r[1] == t) for i in range(3, 10)]
    print(f"\n{kind}: medians over {len({r[2] for r in mine})} rounds")
    print(f"{'target':<9} {'rps':>7} {'CPU us/req':>10} {'p50 ms @'+rate:>12} {'p99 ms @'+rate:>12} {'ok %':>6} {'1 conn ms':>9} {'steal %':>7}")
    for t, (rps, us, p50, p99, ok, one, st) in med.items():
        cpu = "-" if math.isnan(us) else f"{us:.2f}"
        print(f"{t:<9} {rps:>7.0f} {cpu:>10} {p50:>12.3f} {p99:>12.3f} {ok*100:>6.1f} {one:>9.3f} {st:>7.0f}")
    d = med["direct"]
    for me in ("shoal", "datapath"):
        s = med[me]
        for peer in ("haproxy", "nginx", "caddy"):
            p = med[peer]
            print(f"{me}/{peer:<8} rps {s[0]/p[0]:.2f}x  CPU/req {s[1]/p[1]:.2f}x  p99 {s[3]/p[3]:.2f}x  unloaded {s[5]/p[5]:.2f}x")
    added = ", ".join(f"{t} {(med[t][5]-d[5])*1000:.0f} us" for t in med if t != "direct")
    print(f"added unloaded latency (one connection, p50): {added}")
    if "shoal-2w" in med:
        two, one = med["shoal-2w"], med["shoal"]
        print(f"2 workers / 1 worker: rps {two[0]/one[0]:.2f}x  CPU/req {two[1]/one[1]:.2f}x")
PY
