#!/usr/bin/env bash
# The self-healing drill: 60 s of load at a fixed rate against the example's web
# service while a random web replica is SIGKILLed every 2 s. Prints requests sent,
# failed, and p50/p99 latency (oha, corrected for coordinated omission).
#
#   bench/drill.sh                      # 60 s at 500 rps, a kill every 2 s
#   DURATION=30 RATE=1000 bench/drill.sh
#
# The example runs as a project of its own (drill), on its own port, with an override
# that gives web a restart policy fit for being killed on purpose: restarts after
# 200 ms, doubling, reset after 5 s of being ready.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}
RATE=${RATE:-500}
PORT=${PORT:-18480}
need() { command -v "$1" >/dev/null 2>&1; }
need oha || cargo install oha --locked >/dev/null 2>&1
bash scripts/debian-base.sh
cargo build --release --locked -q -p shoal
shoal=(target/release/shoal -p drill -f examples/hello/compose.yaml -f "$(pwd)/bench/drill.override.yaml")
export HELLO_PORT=$PORT SHOAL_STATE_DIR
SHOAL_STATE_DIR=$(mktemp -d)
cleanup() {
  "${shoal[@]}" down -v >/dev/null 2>&1 || true
  rm -rf "$SHOAL_STATE_DIR"
}
trap cleanup EXIT
"${shoal[@]}" up -d

end=$((SECONDS + DURATION))
(
  while [ $SECONDS -lt $end ]; do
    sleep 2
    victim=$(docker ps -q --filter label=io.shoal.project=drill --filter label=io.shoal.service=web | shuf -n 1)
    [ -n "$victim" ] && docker kill -s KILL "$victim" >/dev/null 2>&1 && echo "killed $victim" >&2
  done
) &
killer=$!
oha -z "${DURATION}s" -q "$RATE" -c 32 --latency-correction --no-tui --output-format json \
  "http://127.0.0.1:$PORT/" > "$SHOAL_STATE_DIR/drill.json"
wait $killer || true
python3 - "$SHOAL_STATE_DIR/drill.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
codes = r.get("statusCodeDistribution", {})
errors = r.get("errorDistribution", {})
# oha cuts the requests still in flight when its duration ends: not failures.
cut = errors.pop("aborted due to deadline", 0)
total = sum(codes.values()) + sum(errors.values())
failed = sum(v for k, v in codes.items() if not k.startswith("2")) + sum(errors.values())
p = r["latencyPercentiles"]
print(f"requests sent {total}, failed {failed}, p50 {p['p50']*1000:.2f} ms, p99 {p['p99']*1000:.2f} ms ({cut} cut off by the end of the run)")
if errors: print("errors:", errors)
if failed: print("status codes:", codes)
PY
"${shoal[@]}" ps | tail -n 12
