#!/bin/sh
# bench/cpu-per-request.sh: issue 10 part 2, CPU per request of one node.
# Runs bench/cpureq for two builds in interleaved rounds (A B A B ...):
# one node pinned to SERVER_CPUS (default 0-1, the issue's two cores), the
# load generator pinned to BENCH_CPUS (default 2-9), issue-cc at 64 and
# 256 connections and introspect at 64; then the bare-Raft floor
# (bench/raftfloor) on the server's cores. Both builds are driven by A's
# tokend-bench, so the load generator is the same.
#
#   bench/cpu-per-request.sh A_BIN_DIR B_BIN_DIR
#
# A_BIN_DIR needs tokend and tokend-bench, B_BIN_DIR tokend; cpureq and
# raftfloor are built from this tree into a temporary directory. E.g.
#   git worktree add /tmp/base 485f2a7 && (cd /tmp/base && go build -o bin/ ./cmd/...)
#   go build -o bin/ ./cmd/... && bench/cpu-per-request.sh /tmp/base/bin bin
# Environment: ROUNDS (default 2), DURATION (default 6s). Linux only
# (/proc, taskset); needs at least 4 CPUs. Everything listens on
# 127.0.0.1 and stops when the script ends.
set -eu
A=$(cd "$1" && pwd)
B=$(cd "$2" && pwd)
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-6s}
SRV=${SERVER_CPUS:-0-1}
LOAD=${BENCH_CPUS:-2-9}
TOOLS=$(mktemp -d)
trap 'rm -rf "$TOOLS"' EXIT
go build -o "$TOOLS/" ./bench/cpureq ./bench/raftfloor
run() {
	"$TOOLS/cpureq" -srv-cpus "$SRV" -bench-cpus "$LOAD" -bench "$A/tokend-bench" -d "$DURATION" "$@"
}
uptime
i=1
while [ "$i" -le "$ROUNDS" ]; do
	for build in A B; do
		if [ "$build" = A ]; then bin=$A; else bin=$B; fi
		run -tokend "$bin/tokend" -label "$build" -scenario issue-cc -c 64
		run -tokend "$bin/tokend" -label "$build" -scenario issue-cc -c 256
		run -tokend "$bin/tokend" -label "$build" -scenario introspect -c 64 -tokens 20000
	done
	i=$((i + 1))
done
for flags in "-c 64" "-c 64 -batch" "-c 256"; do
	# shellcheck disable=SC2086 # the flags are words
	taskset -c "$SRV" "$TOOLS/raftfloor" -d 4s $flags
done
uptime
