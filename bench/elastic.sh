#!/usr/bin/env bash
# The elasticity benchmark (issue #5): shoal's autoscaler against HPA and KPA
# emulations driving the same actuator, on three scenarios of offered load:
#   A) a 10x step for 5 minutes, then back down; B) noisy steady load, the rate redrawn
#   every 5 s within ±25 %, 10 minutes; C) 60 s high / 60 s low for 10 minutes.
# A and C run the policies one after another (projects elastic-shoal, -hpa, -kpa), B
# side by side; about 75 minutes in all. Prints one line of measurements per scenario
# and policy, then the table (see bench/elastic.py for the workload and what each
# column means). --trace adds the 25 s after each step, second by second.
#
#   bench/elastic.sh                       # everything
#   SCENARIOS=A SCALE=0.2 bench/elastic.sh # a quick trial: scenario A at a fifth
#   OUT=/tmp/elastic bench/elastic.sh      # keep the series, oha's CSVs, the logs
set -euo pipefail
cd "$(dirname "$0")/.."
need() { command -v "$1" >/dev/null 2>&1; }
need oha || cargo install oha --locked >/dev/null 2>&1
export PATH="$HOME/.cargo/bin:$PATH"
. bench/testkit-context.sh
cleanup() {
  for p in shoal hpa kpa; do
    target/release/shoal -p "elastic-$p" down >/dev/null 2>&1 || true
    docker image rm "elastic-$p-app" >/dev/null 2>&1 || true
  done
  if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && cp -r "$work"/. "$OUT"/; fi
  rm -rf "$work"
}
trap cleanup EXIT
python3 bench/elastic.py --shoal target/release/shoal --context "$work/context" --work "$work" \
  --scenarios "${SCENARIOS:-A,B,C}" --scale "${SCALE:-1}" "$@"
