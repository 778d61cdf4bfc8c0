#!/usr/bin/env bash
# Fuzzes the Compose loader (crates/spec/tests/fuzz.rs) for FUZZ_SECONDS per target
# (default 600): arbitrary bytes, the shared corpus mutated, random .env files and
# interpolations. A failure prints the smallest input proptest found; put it in
# crates/spec/tests/load.rs as a regression case.
#
#   scripts/fuzz.sh                 # every target, 10 minutes each
#   FUZZ_SECONDS=60 scripts/fuzz.sh the_corpus_mutated
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-600}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(arbitrary_bytes the_corpus_mutated env_files_and_interpolation)
cargo build --release --locked -q -p shoal-spec --tests
for t in "${targets[@]}"; do
  echo "fuzzing $t for ${seconds}s" >&2
  FUZZ_SECONDS="$seconds" cargo test --release --locked -q -p shoal-spec --test fuzz -- \
    --exact "$t" --nocapture
done
