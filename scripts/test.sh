#!/usr/bin/env bash
# Everything the tests need on a fresh machine with a Docker Engine, then the tests.
# The end-to-end tests build the example's images from debian:bookworm-slim, which
# debian-base.sh makes locally when no registry can provide it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/debian-base.sh
cargo test --workspace --locked "$@"
