#!/usr/bin/env bash
# The cost of metrics in the binary users run: two projects of two testkit replicas
# each, one with `--metrics off`, one with metrics on and scraped every second (as a
# Prometheus would), their control planes pinned to core 0, wrk on core 1. Rounds
# interleave the two; per round it prints requests/s and the control plane's CPU µs
# per proxied request (user + system, from /proc/PID/stat). Then both idle for
# IDLE seconds: CPU % and resident memory of each control plane.
#
#   bench/metrics.sh
#   ROUNDS=5 DURATION=8 CONNS=32 IDLE=30 bench/metrics.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}
IDLE=${IDLE:-30}
command -v wrk >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}
RUSTFLAGS='-C target-feature=+crt-static' cargo build --locked -q -p shoal-testkit --release \
  --target x86_64-unknown-linux-gnu --target-dir target/static
cargo build --release --locked -q -p shoal
work=$(mktemp -d)
export SHOAL_STATE_DIR=$work/state
mkdir -p "$work/ctx"
cp target/static/x86_64-unknown-linux-gnu/release/testkit "$work/ctx/"
printf 'FROM scratch\nCOPY testkit /testkit\nENTRYPOINT ["/testkit"]\n' > "$work/ctx/Dockerfile"
names=(bm-off bm-on)
ports=(18810 18811)
metrics_port=18812
for i in 0 1; do
  cat > "$work/${names[$i]}.yaml" <<EOF
services:
  app:
    build: $work/ctx
    deploy: {replicas: 2}
    ports: ["${ports[$i]}:8080"]
    stop_grace_period: 2s
EOF
done
shoal() { target/release/shoal -p "$1" -f "$work/$1.yaml" "${@:2}"; }
scraper=
cleanup() {
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
  for n in "${names[@]}"; do shoal "$n" down >/dev/null 2>&1 || true; done
  docker image rm bm-off-app bm-on-app >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
shoal bm-off up -d --metrics off >/dev/null
shoal bm-on up -d --metrics "127.0.0.1:$metrics_port" >/dev/null
pid_of() { pgrep -f -- "-p $1 .*--detached-child" | head -1; }
pids=($(pid_of bm-off) $(pid_of bm-on))
for p in "${pids[@]}"; do taskset -a -p -c 0 "$p" >/dev/null; done
( while sleep 1; do curl -s "http://127.0.0.1:$metrics_port/metrics" >/dev/null; done ) &
scraper=$!
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
labels=("metrics off" "metrics on, scraped 1/s")
for round in $(seq "$ROUNDS"); do
  for i in 0 1; do
    before=$(ticks "${pids[$i]}")
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:${ports[$i]}/")
    after=$(ticks "${pids[$i]}")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    python3 -c "import sys; r,l,rps,b,a,n,hz=sys.argv[1:]; print(f'round {r}  {l:<26} {float(rps):>8.0f} rps  {(int(a)-int(b))*1e6/int(hz)/int(n):6.2f} us/request')" \
      "$round" "${labels[$i]}" "$rps" "$before" "$after" "$n" "$hz"
  done
done
for i in 0 1; do b[$i]=$(ticks "${pids[$i]}"); done
sleep "$IDLE"
for i in 0 1; do
  a=$(ticks "${pids[$i]}")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/${pids[$i]}/status")
  python3 -c "import sys; l,b,a,hz,idle,rss=sys.argv[1:]; print(f'idle {l:<26} {(int(a)-int(b))/int(hz)/int(idle)*100:5.2f} % of a core, {int(rss)/1024:5.1f} MB resident')" \
    "${labels[$i]}" "${b[$i]}" "$a" "$hz" "$IDLE" "$rss"
done
