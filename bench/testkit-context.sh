# Sourced by the benchmarks that run testkit replicas under `shoal up`: builds the
# release shoal and the static testkit, and makes $work (with its own
# SHOAL_STATE_DIR) holding $work/context, a FROM scratch build context of testkit.
cargo build --release --locked -q -p shoal
RUSTFLAGS='-C target-feature=+crt-static' cargo build --locked -q -p shoal-testkit --release \
  --target x86_64-unknown-linux-gnu --target-dir target/static
work=$(mktemp -d)
export SHOAL_STATE_DIR="$work/state"
mkdir -p "$work/context"
cp target/static/x86_64-unknown-linux-gnu/release/testkit "$work/context/"
printf 'FROM scratch\nCOPY testkit /testkit\nENTRYPOINT ["/testkit"]\n' > "$work/context/Dockerfile"
