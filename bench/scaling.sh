#!/bin/sh
# bench/scaling.sh: issue 10 part 6, scaling on many cores. One node and
# three nodes, each node pinned to its own cores with taskset, the load
# generator pinned to the remaining cores, validate and issue-cc; prints
# req/s per row and the three-node/one-node ratios.
#
#   bench/scaling.sh [BIN_DIR]        (default bin; needs tokend, tokend-bench)
#
# Environment: CORES_PER_NODE (default 1), DURATION (default 8s),
# CONCURRENCY (default 256), TOKENS (default 20000). Needs at least
# 3*CORES_PER_NODE+2 CPUs. Everything listens on 127.0.0.1 only and stops
# when the script ends. The load generator must have clearly more cores
# than the three nodes together, or it is what the three-node rows
# measure: on 16 CPUs, 2 cores per node leaves it 10 and it tops out near
# 115k validations/s; 1 core per node leaves it 13.
set -eu
BIN=${1:-bin}
BIN=$(cd "$BIN" && pwd)
CPN=${CORES_PER_NODE:-1}
DURATION=${DURATION:-8s}
CONC=${CONCURRENCY:-256}
TOKENS=${TOKENS:-20000}
NCPU=$(nproc)
if [ "$NCPU" -lt $((3 * CPN + 2)) ]; then
	echo "scaling.sh: $NCPU CPUs; need at least $((3 * CPN + 2))" >&2
	exit 2
fi
LOAD="$((3 * CPN))-$((NCPU - 1))"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# tokend-bench --spawn runs --tokend once per node with --node-id nN; this
# wrapper pins node N to its own CPN cores.
cat >"$WORK/tokend" <<WRAP
#!/bin/sh
n=1
prev=
for a in "\$@"; do
	[ "\$prev" = --node-id ] && n=\${a#n}
	prev=\$a
done
first=\$(( (n - 1) * $CPN ))
exec taskset -c "\$first-\$((first + $CPN - 1))" "$BIN/tokend" "\$@"
WRAP
chmod +x "$WORK/tokend"

echo "# scaling: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $CPN cores per node, load on CPUs $LOAD, $CONC connections, $DURATION"
echo "| scenario | nodes | req/s |"
echo "|---|---:|---:|"
run() { # scenario nodes
	out=$(cd "$WORK" && taskset -c "$LOAD" "$BIN/tokend-bench" --tokend "$WORK/tokend" --spawn "$2" \
		--concurrency "$CONC" --warmup 2s --duration "$DURATION" --tokens "$TOKENS" \
		--quiet --json "$WORK/$1-$2.json" --plot "" "$1" 2>&1) || { echo "$out" >&2; exit 1; }
	rps=$(sed -n 's/.*"throughput_rps": *\([0-9.]*\).*/\1/p' "$WORK/$1-$2.json" | head -1)
	echo "| $1 | $2 | ${rps:-?} |"
	eval "R_$(echo "$1" | tr -c 'a-z0-9\n' _)_$2=${rps:-0}"
}
for s in validate issue-cc; do
	run "$s" 1
	run "$s" 3
done
awk -v v1="$R_validate_1" -v v3="$R_validate_3" -v i1="$R_issue_cc_1" -v i3="$R_issue_cc_3" 'BEGIN {
	if (v1 > 0) printf "validate: 3 nodes / 1 node = %.2fx (goal >= 2.7x)\n", v3 / v1
	if (i1 > 0) printf "issue-cc: 3 nodes / 1 node = %.2fx\n", i3 / i1
}'
