# Sourced by lb.sh, conns.sh and cpu.sh: processes pinned to a core and stopped when the
# script exits, the two testkit backends both put on core 1, and the CPU a process
# spent.

pids=()

# Stops every process `start` started.
stop_pinned() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

start() { # core, command...
  local core=$1; shift
  taskset -c "$core" "$@" >/dev/null 2>&1 &
  pids+=($!)
}

# Two testkit backends (one worker thread each) on core 1, at HTTP ports $1 and $2.
backends() {
  PORT=$1 TCP_PORT=$(($1 + 100)) WORKERS=1 NAME=b1 start 1 target/release/testkit
  PORT=$2 TCP_PORT=$(($2 + 100)) WORKERS=1 NAME=b2 start 1 target/release/testkit
}

# User + system CPU ticks of a process and its children (nginx's worker).
ticks() {
  local t=0 p
  for p in $1 $(pgrep -P "$1"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}
