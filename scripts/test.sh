#!/usr/bin/env bash
# Everything the tests need on a fresh machine with a Docker Engine, then the tests.
# The end-to-end tests build the examples' images from debian:bookworm-slim and
# python:3.11-slim, which debian-base.sh and python-base.sh make locally when no
# registry can provide them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/debian-base.sh
# examples/flask starts FROM python:3.11-slim, made from the Debian base where no
# registry provides it.
bash scripts/python-base.sh
# promtool checks the metrics exposition (Debian's prometheus package).
if ! command -v promtool >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# kubernetes-validate (PyPI) checks the Kubernetes export offline, strict, against the
# API version the binary writes for.
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check 'kubernetes-validate>=1.33' >/dev/null
fi
# The testkit image is FROM scratch: its binary must be static.
RUSTFLAGS='-C target-feature=+crt-static' cargo build --locked -p shoal-testkit --release \
  --target x86_64-unknown-linux-gnu --target-dir target/static
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run: cargo prints one per test binary, the last of
# which (doc-tests) often counts none.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
