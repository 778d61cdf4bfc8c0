#!/usr/bin/env bash
# The rollout benchmark: the example under a fixed-rate load for 60 s with one update
# of its web service in the middle, as shoal rolls it (start-first, then stop-first)
# and as docker-compose 1.29.2 recreates it; then a replica's exit-to-running time
# beside a plain `docker run --restart always` container. See bench/rollout.py.
#
#   bench/rollout.sh
#   bench/rollout.sh --rate 1000 --duration 40 --update-at 15
set -euo pipefail
cd "$(dirname "$0")/.."
need() { command -v "$1" >/dev/null 2>&1; }
need oha || cargo install oha --locked >/dev/null 2>&1
need docker-compose || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }
bash scripts/debian-base.sh
cargo build --release --locked -q -p shoal
exec python3 bench/rollout.py "$@"
