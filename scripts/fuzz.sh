#!/usr/bin/env bash
# Fuzzes for FUZZ_SECONDS per target (default 600): the Compose loader
# (crates/spec/tests/fuzz.rs: arbitrary bytes, the shared corpus mutated, random .env
# files and interpolations) and, with `proxy`, the balancer's request-framing check and
# its upstream response-head parser and body decoder (crates/proxy/tests/fuzz.rs). A
# failure prints the smallest input proptest found; the proxy's targets also keep it in
# crates/proxy/tests/corpus/<target>/ (commit it: the suite replays that corpus), the
# loader's become cases in crates/spec/tests/load.rs.
#
#   scripts/fuzz.sh                 # the loader's targets, 10 minutes each
#   scripts/fuzz.sh proxy           # the proxy's targets, 10 minutes each
#   FUZZ_SECONDS=60 scripts/fuzz.sh the_corpus_mutated
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-600}"
if [ "${1:-}" = proxy ]; then
  cargo build --release --locked -q -p shoal-proxy --tests
  for t in requests_built_from_the_framing_cases arbitrary_bytes \
    responses_built_from_the_framing_cases arbitrary_response_bytes \
    chunked_bodies_decode_to_what_was_encoded; do
    echo "fuzzing proxy $t for ${seconds}s" >&2
    FUZZ_SECONDS="$seconds" cargo test --release --locked -q -p shoal-proxy --test fuzz -- \
      --exact "$t" --nocapture
  done
  exit 0
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(arbitrary_bytes the_corpus_mutated env_files_and_interpolation)
cargo build --release --locked -q -p shoal-spec --tests
for t in "${targets[@]}"; do
  echo "fuzzing $t for ${seconds}s" >&2
  FUZZ_SECONDS="$seconds" cargo test --release --locked -q -p shoal-spec --test fuzz -- \
    --exact "$t" --nocapture
done
