#!/usr/bin/env bash
# Memory per client connection held open on the balancer, beside its peers: shoal (the
# product, `shoal up -d` on two testkit replicas), its data path alone, nginx, HAProxy
# and Caddy in front of the same replicas, each on core 0. For each proxy and mode,
# bench/conns.py opens COUNT connections and holds them HOLD seconds:
#   idle  one keep-alive request answered, then silent (an idle keep-alive client)
#   slow  half a request head, then silent (a slow client)
# Prints the proxy's resident memory (its children's included) before, with the
# connections open, and after they close, the kB per connection, and how many of
# them the proxy closed during the hold.
#
#   bench/conns.sh                      # 10000 connections, held 5 s
#   COUNT=2000 HOLD=40 bench/conns.sh   # long enough to see who cuts slow clients
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-10000}
HOLD=${HOLD:-5}
# The proxies inherit this: as many descriptors as the machine lets a process have.
ulimit -n "$(ulimit -Hn)"
. bench/testkit-context.sh
. bench/pinned.sh
. bench/peers.sh
trap 'stop_all; rm -rf "$work"' EXIT

testkit_project bench-conns 18800 1
pid[shoal]=$(control_plane bench-conns) port[shoal]=127.0.0.1:18800
taskset -a -p -c 0 "${pid[shoal]}" >/dev/null
mapfile -t backs < <(replicas bench-conns app)
start_peers least "${backs[@]}"

printf '%-9s %-5s %10s %10s %10s %8s %8s\n' proxy mode "before MB" "open MB" "after MB" "kB/conn" closed
for mode in idle slow; do
  for t in shoal datapath nginx haproxy caddy; do
    p=${pid[$t]}
    before=$(resident "$p")
    coproc client { taskset -c 1 python3 bench/conns.py "${port[$t]}" "$COUNT" "$mode" "$HOLD"; }
    read -r _ opened <&"${client[0]}"
    sleep 1
    open=$(resident "$p")
    read -r _ closed <&"${client[0]}"
    wait "$client_PID"
    sleep 2
    after=$(resident "$p")
    python3 -c "import sys; t,m,b,o,a,n,c=sys.argv[1:]; print(f'{t:<9} {m:<5} {int(b)/1024:10.1f} {int(o)/1024:10.1f} {int(a)/1024:10.1f} {(int(o)-int(b))/int(n):8.2f} {c:>8}')" \
      "$t" "$mode" "$before" "$open" "$after" "$opened" "$closed"
  done
done
