#!/usr/bin/env bash
# Start or stop a three-node tokend cluster on 127.0.0.1 for development.
#   deploy/local-cluster.sh start   build must exist in bin/; data in .cluster/
#   deploy/local-cluster.sh stop
#
# Ports (node i = 1, 2, 3):
#   808i        OAuth HTTP; also the admin API, /cluster/status and /metrics
#               (no --admin-addr here, so the printed hints and the README's
#               --addr http://127.0.0.1:808i work as they are)
#   83i0        internal port: Raft and node-to-node calls, TLS 1.3 with
#               client certificates derived from the cluster key
#   83i1        gossip (memberlist), encrypted with the cluster key
#
# One issuer for the whole cluster: every node announces the same iss in
# metadata, introspection and authorization responses, and tokend refuses
# to start a cluster node without --issuer. Here it is node1's URL,
# http://127.0.0.1:8081; set TOKEND_ISSUER to use another (e.g. the URL of
# a proxy in front of the three nodes).
#
# Secrets never appear on a command line: the cluster key and the admin
# token are generated once into .cluster/cluster-key and .cluster/admin-token
# (mode 0600, .cluster/ itself 0700) and passed with --cluster-key-file and
# --admin-token-file. An admin token shorter than 32 bytes (from an older
# version of this script) is replaced.
set -euo pipefail
umask 077
cd "$(dirname "$0")/.."
dir=.cluster
bin=${TOKEND_BIN:-bin/tokend}
keyfile=$dir/cluster-key
tokenfile=$dir/admin-token
issuer=${TOKEND_ISSUER:-http://127.0.0.1:8081}

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

# secrets creates the key and token files when missing (or, for the token,
# too short) and tightens the modes of files left by older versions.
secrets() {
  mkdir -p "$dir"
  chmod 700 "$dir"
  if [ ! -s "$keyfile" ]; then
    head -c32 /dev/urandom | base64 > "$keyfile.tmp"
    mv "$keyfile.tmp" "$keyfile"
  fi
  local token=""
  [ -f "$tokenfile" ] && token=$(tr -d '[:space:]' < "$tokenfile")
  if [ "${#token}" -lt 32 ]; then
    # 32 random bytes, base64url without padding: 43 characters.
    token=$(head -c32 /dev/urandom | base64 | tr '+/' '-~' | tr -d '=\n')
    printf '%s' "$token" > "$tokenfile.tmp"
    mv "$tokenfile.tmp" "$tokenfile"
  fi
  chmod 600 "$keyfile" "$tokenfile"
}

start() {
  [ -x "$bin" ] || { echo "missing $bin: run make build" >&2; exit 1; }
  secrets
  for i in 1 2 3; do
    # A node still running is left alone, so 'make cluster' after killing
    # one node restarts just that node on its data dir.
    if [ -f "$dir/node$i.pid" ] && kill -0 "$(cat "$dir/node$i.pid")" 2>/dev/null; then
      continue
    fi
    "$bin" serve --node-id "node$i" --data-dir "$dir/node$i" \
      --http-addr "127.0.0.1:$((8080 + i))" --raft-addr "127.0.0.1:$((8300 + i * 10))" \
      --gossip-addr "127.0.0.1:$((8301 + i * 10))" --join 127.0.0.1:8311 \
      --bootstrap-expect 3 --issuer "$issuer" --cluster-key-file "$keyfile" --admin-token-file "$tokenfile" \
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
  issuer: $issuer   (the same on every node)
  admin token:  $(cat "$tokenfile")   (also in $tokenfile)
  logs and data: $dir/   (make cluster-stop to stop, make clean to remove)
MSG
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
