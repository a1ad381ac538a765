#!/usr/bin/env bash
# Start or stop a three-node tokend cluster on 127.0.0.1 for development.
#   deploy/local-cluster.sh start   build must exist in bin/; data in .cluster/
#   deploy/local-cluster.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.cluster
bin=${TOKEND_BIN:-bin/tokend}

stop() {
  for pidfile in "$dir"/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

start() {
  [ -x "$bin" ] || { echo "missing $bin: run make build" >&2; exit 1; }
  mkdir -p "$dir"
  [ -f "$dir/cluster-key" ] || head -c32 /dev/urandom | base64 > "$dir/cluster-key"
  [ -f "$dir/admin-token" ] || head -c24 /dev/urandom | base64 | tr '+/' '-~' | tr -d '=' > "$dir/admin-token"
  key=$(cat "$dir/cluster-key"); admin=$(cat "$dir/admin-token")
  for i in 1 2 3; do
    # A node still running is left alone, so 'make cluster' after killing
    # one node restarts just that node on its data dir.
    if [ -f "$dir/node$i.pid" ] && kill -0 "$(cat "$dir/node$i.pid")" 2>/dev/null; then
      continue
    fi
    "$bin" serve --node-id "node$i" --data-dir "$dir/node$i" \
      --http-addr "127.0.0.1:$((8080 + i))" --raft-addr "127.0.0.1:$((8300 + i * 10))" \
      --gossip-addr "127.0.0.1:$((8301 + i * 10))" --join 127.0.0.1:8311 \
      --bootstrap-expect 3 --cluster-key "$key" --admin-token "$admin" \
      >>"$dir/node$i.log" 2>&1 &
    echo $! > "$dir/node$i.pid"
  done
  for i in 1 2 3; do
    url="http://127.0.0.1:$((8080 + i))"
    for _ in $(seq 1 300); do
      curl -fs "$url/readyz" >/dev/null 2>&1 && break
      sleep 0.1
    done
    curl -fs "$url/readyz" >/dev/null 2>&1 || { echo "node$i not ready; see $dir/node$i.log" >&2; stop; exit 1; }
  done
  cat <<MSG
tokend cluster is ready:
  node1  http://127.0.0.1:8081
  node2  http://127.0.0.1:8082
  node3  http://127.0.0.1:8083
  admin token:  $admin
  logs and data: $dir/   (make cluster-stop to stop, make clean to remove)
MSG
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
