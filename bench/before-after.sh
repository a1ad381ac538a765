#!/bin/bash
# bench/before-after.sh OLD_BIN NEW_BIN: every row of issue 10's table,
# an older build and a newer one side by side in one run on this machine,
# with the references they are judged against (BENCHMARKS.md, "Issue 10").
# OLD_BIN and NEW_BIN hold tokend and tokend-bench; NEW_BIN also etcdput
# (cd bench/etcdput && go build -o NEW_BIN/etcdput .). E.g.
#   git worktree add /tmp/old 485f2a7 && (cd /tmp/old && go build -o /tmp/old/bin/ ./cmd/...)
#   go build -o /tmp/new/ ./cmd/... && (cd bench/etcdput && go build -o /tmp/new/etcdput .)
#   bench/before-after.sh /tmp/old/bin /tmp/new
# Needs wrk, curl, jq and Debian's etcd-server; about 25 minutes (seeding
# 1 M tokens three times is most of it). Everything runs on 127.0.0.1 and
# is stopped at the end. Run from the repository root.
set -u
OLD=$(cd "$1" && pwd); NEW=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
echo "== start $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== /validate and /introspect, new build vs the reference servers (wrk -t2 -c64)"
BIN_DIR=$NEW ROUNDS=3 DURATION=5s "$here/validate-fastpath.sh" 2>&1 | tail -12
echo "== the old build's main port vs the same reference (old tokend, new tokend-bench for the references)"
mkdir -p "$OUT/mix" && cp "$OLD/tokend" "$OUT/mix/" && cp "$NEW/tokend-bench" "$OUT/mix/"
BIN_DIR=$OUT/mix ROUNDS=3 DURATION=5s TARGETS="main-validate main-introspect ref-validate" "$here/validate-fastpath.sh" 2>&1 | tail -8
echo "== issue-cc, one and three nodes, old/new interleaved (load: the new tokend-bench for both)"
printf '| nodes | conns | round | build | req/s | p50 | p99 |\n|---:|---:|---:|---|---:|---:|---:|\n'
for nodes in 1 3; do for c in 64 256; do for r in 1 2; do for b in old new; do
	d=$OLD; [ $b = new ] && d=$NEW
	j=$OUT/cc.json
	"$NEW/tokend-bench" --tokend "$d/tokend" --spawn $nodes --concurrency $c --warmup 2s --duration 6s \
		--quiet --json "$j" --plot "" issue-cc >/dev/null 2>"$OUT/err" || tail -5 "$OUT/err"
	jq -r --arg n $nodes --arg c $c --arg r $r --arg b $b \
		'"| \($n) | \($c) | \($r) | \($b) | \(.throughput_rps|floor) | \(.latency_us.p50_us/1000) ms | \(.latency_us.p99_us/1000) ms |"' "$j"
done; done; done; done
echo "== etcd (three members) vs the new build (three nodes)"
BIN=$NEW ROUNDS=1 DURATION=6s "$here/etcd-compare.sh" 2>&1 | tail -6
echo "== the load tool vs wrk"
"$NEW/tokend-bench" calibrate --connections 64,256 --duration 3s --rounds 3 2>&1 | tail -8
echo "== resident memory per live token, one real node, 1 M tokens"
for x in "$OLD 1000000" "$NEW 1000000" "$NEW 1000000 230MiB"; do
	# shellcheck disable=SC2086
	"$here/rss-node.sh" $x 2>&1 | tail -1
done
echo "== end $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg)"
