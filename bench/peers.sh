# Sourced by lb.sh and conns.sh (after testkit-context.sh and pinned.sh): shoal
# projects whose replicas the proxies share, and the peers started in front of them.
# Every proxy and shoal's control plane run on core 0, the replicas on core 1.

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need haproxy || ! need caddy; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx haproxy caddy >/dev/null
  # The packages start their own services on the usual ports; these scripts run their own.
  systemctl stop nginx haproxy caddy 2>/dev/null || true
fi
export PATH="$HOME/.cargo/bin:$PATH"
need oha || cargo install oha --locked >/dev/null 2>&1
cargo build --release --locked -q -p shoal-proxy --example standalone --example ceiling --example ceiling_uring

T=target/release
projects=()
declare -A port=() pid=()
shoal() { $T/shoal -p "$@"; }

# Stops the peers and takes the projects down.
stop_all() {
  stop_pinned
  pids=()
  for p in "${projects[@]}"; do shoal "$p" down -v >/dev/null 2>&1 || true; done
  for p in "${projects[@]}"; do
    docker image rm $(docker image ls -q --filter "reference=$p-*") >/dev/null 2>&1 || true
  done
  projects=()
}

# A project of two testkit replicas (one worker thread each) on 127.0.0.1:PORT, up
# with SHOAL_PROXY_THREADS=THREADS.
testkit_project() { # name, port, threads
  cat > "$work/$1.yaml" <<EOF
services:
  app:
    build: $work/context
    environment: {WORKERS: "1"}
    deploy: {replicas: 2}
    ports: ["127.0.0.1:$2:8080"]
    stop_grace_period: 2s
EOF
  projects+=("$1")
  SHOAL_PROXY_THREADS=$3 shoal "$1" -f "$work/$1.yaml" up -d >/dev/null
}

# The example (examples/hello: three web replicas, PostgreSQL) on 127.0.0.1:PORT.
hello_project() { # name, port
  projects+=("$1")
  HELLO_PORT=$2 SHOAL_PROXY_THREADS=1 shoal "$1" -f examples/hello/compose.yaml up -d >/dev/null
}

# The pid of a project's control plane.
control_plane() { pgrep -f -- "-p $1 .*--detached-child" | head -1; }

# The replicas of a project's service as addresses on its network, moved to core 1.
replicas() { # project, service
  local ids
  ids=$(docker ps -q --filter "label=io.shoal.project=$1" --filter "label=io.shoal.service=$2")
  docker update --cpuset-cpus 1 $ids >/dev/null
  docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' $ids | sed 's/$/:8080/'
}

# Resident kB of a process and its children.
resident() {
  local kb=0 p
  for p in $1 $(pgrep -P "$1"); do kb=$((kb + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done
  echo "$kb"
}

# shoal's data path alone, nginx, HAProxy and Caddy on core 0 in front of BACKENDS,
# ports 18801-18804 (with CEILING=1, the ceiling on 18805 and on io_uring on 18806). STRATEGY: least or rr.
# Sets port[] and pid[] of each.
start_peers() { # strategy, backends...
  local strategy=$1 b i
  shift
  local backs=("$@") args=() lb
  if [ "$strategy" = least ]; then lb=(least_conn leastconn least_conn least_request); else lb=("" roundrobin round_robin round_robin); fi
  for b in "${backs[@]}"; do args+=(--backend "$b"); done
  start 0 $T/examples/standalone --listen 127.0.0.1:18801 "${args[@]}" --threads 1 --strategy "${lb[3]}"
  pid[datapath]=${pids[-1]} port[datapath]=127.0.0.1:18801

  mkdir -p "$work/nginx/logs"
  cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 11000; }
http {
  access_log off;
  upstream backends { ${lb[0]:+${lb[0]};} $(printf 'server %s; ' "${backs[@]}") keepalive 128; }
  server {
    listen 127.0.0.1:18802 backlog=4096;
    location / { proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  start 0 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"
  pid[nginx]=${pids[-1]} port[nginx]=127.0.0.1:18802

  {
    printf 'global\n  nbthread 1\n  maxconn 11000\n  no strict-limits\n'
    printf 'defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n'
    printf 'frontend fe\n  bind 127.0.0.1:18803\n  default_backend be\n'
    printf 'backend be\n  balance %s\n  http-reuse always\n' "${lb[1]}"
    for i in "${!backs[@]}"; do printf '  server b%d %s\n' "$i" "${backs[$i]}"; done
  } > "$work/haproxy.cfg"
  start 0 haproxy -f "$work/haproxy.cfg"
  pid[haproxy]=${pids[-1]} port[haproxy]=127.0.0.1:18803

  cat > "$work/Caddyfile" <<CONF
{
  admin off
  auto_https off
}
http://127.0.0.1:18804 {
  reverse_proxy ${backs[*]} {
    lb_policy ${lb[2]}
  }
}
CONF
  HOME=$work start 0 caddy run --config "$work/Caddyfile" --adapter caddyfile
  pid[caddy]=${pids[-1]} port[caddy]=127.0.0.1:18804

  if [ -n "${CEILING:-}" ]; then
    start 0 $T/examples/ceiling --listen 127.0.0.1:18805 "${args[@]}"
    pid[ceiling]=${pids[-1]} port[ceiling]=127.0.0.1:18805
    start 0 $T/examples/ceiling_uring --listen 127.0.0.1:18806 "${args[@]}"
    pid[uring]=${pids[-1]} port[uring]=127.0.0.1:18806
  fi
  for t in datapath nginx haproxy caddy ${CEILING:+ceiling uring}; do
    for _ in $(seq 100); do curl -fs "http://${port[$t]}/" >/dev/null && break; sleep 0.1; done
    curl -fs "http://${port[$t]}/" >/dev/null || { echo "$t does not answer on ${port[$t]}" >&2; exit 1; }
  done
}
