#!/usr/bin/env bash
# The load balancer side by side with its peers, on loopback, interleaved over rounds:
#   direct   wrk straight to one backend (the physical limit)
#   shoal    shoal's data path, one thread (crates/proxy/examples/standalone.rs)
#   nginx    one worker, least_conn, keepalive upstream
#   haproxy  nbthread 1, leastconn, http-reuse always
#   ceiling  with CEILING=1: the least work an HTTP/1.1 proxy can do (no timeouts,
#            retries, validation, metrics; crates/proxy/examples/ceiling.rs), to bound
#            what any data path reaches here; and uring, the same on io_uring
#            (monoio; crates/proxy/examples/ceiling_uring.rs)
# Every proxy is pinned to core 0; wrk, oha and the two testkit backends to core 1.
# Per target and round: throughput (wrk -t1 -c32), p50/p99 at a fixed rate (oha -q,
# latency corrected for coordinated omission), and the unloaded latency of one
# connection. Prints medians over the rounds and the ratios shoal/peer.
#
#   bench/lb.sh                 # 3 rounds of 10 s per measurement
#   ROUNDS=5 DURATION=20 RATE=6000 bench/lb.sh
#   CEILING=1 bench/lb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
RATE=${RATE:-5000}
work=$(mktemp -d)
. bench/pinned.sh
cleanup() {
  stop_pinned
  rm -rf "$work"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need haproxy; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx haproxy >/dev/null
fi
need oha || cargo install oha --locked >/dev/null 2>&1
# Two builds: naming examples would leave testkit's binary out.
cargo build --release --locked -q -p shoal-testkit
cargo build --release --locked -q -p shoal-proxy --example standalone --example ceiling --example ceiling_uring

T=target/release
backends 9101 9102

start 0 $T/examples/standalone --listen 127.0.0.1:8000 --backend 127.0.0.1:9101 --backend 127.0.0.1:9102 --threads 1
targets=(direct shoal nginx haproxy)
if [ -n "${CEILING:-}" ]; then
  start 0 $T/examples/ceiling --listen 127.0.0.1:8003 --backend 127.0.0.1:9101 --backend 127.0.0.1:9102
  start 0 $T/examples/ceiling_uring --listen 127.0.0.1:8004 --backend 127.0.0.1:9101 --backend 127.0.0.1:9102
  targets+=(ceiling uring)
fi

mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backends { least_conn; server 127.0.0.1:9101; server 127.0.0.1:9102; keepalive 128; }
  server {
    listen 127.0.0.1:8001;
    location / { proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
start 0 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"

cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:8002
  default_backend be
backend be
  balance leastconn
  http-reuse always
  server b1 127.0.0.1:9101
  server b2 127.0.0.1:9102
CONF
start 0 haproxy -f "$work/haproxy.cfg"

declare -A port=([direct]=9101 [shoal]=8000 [nginx]=8001 [haproxy]=8002 [ceiling]=8003 [uring]=8004)
for t in "${targets[@]}"; do
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:${port[$t]}/" >/dev/null && break; sleep 0.1; done
done

results="$work/results.tsv"
# The host's steal time on the proxies' core: a VM's core taken by its host for other
# guests. Rounds with much of it measure the host, not the proxies.
steal() { awk '/^cpu0 / {print $9}' /proc/stat; }
for round in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    url="http://127.0.0.1:${port[$t]}/"
    steal0=$(steal); t0=$(date +%s.%N)
    rps=$(taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" "$url" | awk '/Requests\/sec/ {print $2}')
    taskset -c 1 oha -z "${DURATION}s" -q "$RATE" -c 32 --latency-correction --no-tui --output-format json "$url" > "$work/fixed.json"
    taskset -c 1 oha -n 3000 -c 1 --no-tui --output-format json "$url" > "$work/one.json"
    stolen=$(python3 -c "import sys; s0,s1,t0,t1,hz=map(float,sys.argv[1:]); print(f'{(s1-s0)/hz/(t1-t0)*100:.0f}')" \
      "$steal0" "$(steal)" "$t0" "$(date +%s.%N)" "$(getconf CLK_TCK)")
    python3 - "$t" "$round" "$rps" "$work/fixed.json" "$work/one.json" "$stolen" >> "$results" <<'PY'
import json, sys
t, rnd, rps, fixed, one, stolen = sys.argv[1:]
f, o = json.load(open(fixed)), json.load(open(one))
ms = lambda v: v * 1000
print(t, rnd, rps, ms(f["latencyPercentiles"]["p50"]), ms(f["latencyPercentiles"]["p99"]),
      f["summary"]["successRate"], ms(o["latencyPercentiles"]["p50"]), stolen, sep="\t")
PY
    echo "round $round $t: $(tail -n1 "$results" | cut -f3-6) | 1 conn $(tail -n1 "$results" | cut -f7) ms | core 0 stolen $(tail -n1 "$results" | cut -f8) %" >&2
  done
done

python3 - "$results" "$RATE" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
rate = sys.argv[2]
med = {}
for t in ("direct", "shoal", "nginx", "haproxy", "ceiling", "uring"):
    mine = [r for r in rows if r[0] == t]
    if not mine:
        continue
    med[t] = [statistics.median(float(r[i]) for r in mine) for i in (2, 3, 4, 5, 6)]
print(f"medians over {len({r[1] for r in rows})} rounds")
print(f"{'target':<9} {'rps (wrk -c32)':>15} {'p50 ms @'+rate:>12} {'p99 ms @'+rate:>12} {'ok %':>6} {'1 conn p50 ms':>14}")
for t, (rps, p50, p99, ok, one) in med.items():
    print(f"{t:<9} {rps:>15.0f} {p50:>12.3f} {p99:>12.3f} {ok*100:>6.1f} {one:>14.3f}")
s = med["shoal"]
d = med["direct"]
for peer in [p for p in ("nginx", "haproxy", "direct", "ceiling", "uring") if p in med]:
    p = med[peer]
    print(f"shoal/{peer:<8} throughput {s[0]/p[0]:.2f}x   p99 {s[2]/p[2]:.2f}x   unloaded latency {s[4]/p[4]:.2f}x")
print(f"added unloaded latency (p50, one connection): shoal {(s[4]-d[4])*1000:.0f} us, nginx {(med['nginx'][4]-d[4])*1000:.0f} us, haproxy {(med['haproxy'][4]-d[4])*1000:.0f} us")
stolen = [float(r[7]) for r in rows]
print(f"host steal on core 0 per measurement: median {statistics.median(stolen):.0f} %, most {max(stolen):.0f} %")
PY
