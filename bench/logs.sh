#!/usr/bin/env bash
# The log store benchmark (issue #13), on the binary users run (`shoal up`):
#   ingest: a testkit replica prints LINES padded lines as fast as it can; the control
#     plane (pinned to one core) stores them. Reported: lines/s stored and the
#     control plane's CPU µs per line (from /proc), live and on catch-up (the store
#     removed and refilled from the engine's copy), beside `docker logs` reading the
#     same lines to /dev/null (what the engine serves at best).
#   search: a rare pattern over the stored lines (about 1 GB at the defaults) with
#     `shoal logs --grep`, against `docker logs | grep` on the same container
#     (json-file driver) and `grep` on a plain file of the same lines; interleaved
#     over ROUNDS rounds, medians and ratios.
#
#   bench/logs.sh                      # 5.5M lines of ~190 bytes (~1 GB), 3 rounds
#   LINES=500000 ROUNDS=1 bench/logs.sh  # a quick trial
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/testkit-context.sh
cleanup() {
  target/release/shoal -p bench-logs -f "$work/compose.yaml" down -v >/dev/null 2>&1 || true
  docker image rm bench-logs-app >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
python3 bench/logs.py --shoal target/release/shoal --work "$work" \
  --lines "${LINES:-5500000}" --rounds "${ROUNDS:-3}"
