#!/bin/sh
# bench/rss-node.sh BIN_DIR TOKENS [MEMORY_LIMIT]: resident memory per live
# token of one real tokend node. Starts BIN_DIR/tokend on 127.0.0.1:18555
# (a temporary data directory, no cluster key), seeds TOKENS live access
# tokens through HTTP with BIN_DIR/tokend-bench (so Raft, the log, its
# snapshots and the HTTP stack are all in the figure), then prints RSS now
# and at its peak (VmHWM: snapshots run every --snapshot-threshold entries
# while seeding), anonymous RSS and the Go heap in use, per live token.
# MEMORY_LIMIT is passed as --memory-limit (e.g. 230MiB). Linux only.
set -eu
BIN=$1; N=$2; LIM=${3:-}
D=$(mktemp -d); PORT=${PORT:-18555}
ADMIN=rss-admin-token-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
extra=""; [ -n "$LIM" ] && extra="--memory-limit $LIM"
# shellcheck disable=SC2086
TOKEND_ADMIN_TOKEN=$ADMIN "$BIN/tokend" serve --node-id rss --data-dir "$D/data" --http-addr 127.0.0.1:$PORT $extra >"$D/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.2; done
start=$(date +%s)
"$BIN/tokend-bench" --target http://127.0.0.1:$PORT --admin-token "$ADMIN" --tokens "$N" --duration 3s --warmup 0s \
	--quiet --json "" --plot "" validate >/dev/null 2>"$D/bench.err" || { tail "$D/bench.err"; exit 1; }
secs=$(( $(date +%s) - start ))
m=$(curl -s -H "Authorization: Bearer $ADMIN" http://127.0.0.1:$PORT/metrics)
num() { echo "$m" | awk -v k="$1" '$1 == k {printf "%d", $2}'; }
live=$(num tokend_live_tokens); rss=$(num process_resident_memory_bytes); heap=$(num go_memstats_heap_inuse_bytes)
hwm=$(awk '/VmHWM/{printf "%d", $2*1024}' /proc/$PID/status)
anon=$(awk '/RssAnon/{printf "%d", $2*1024}' /proc/$PID/status)
echo "tokens=$N limit=${LIM:-none} seeded_in=${secs}s live=$live rss=$((rss/1048576))MiB ($((rss/live)) B/token) peak=$((hwm/1048576))MiB ($((hwm/live)) B/token) anon=$((anon/live)) B/token heap_inuse=$((heap/live)) B/token"
