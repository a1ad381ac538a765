#!/usr/bin/env bash
# etcd-compare.sh: tokend's write path next to etcd's, on this machine.
#
# Starts a three-member etcd cluster (Debian's etcd-server; members on
# 127.0.0.1 ports, data in a temporary directory), then for each client
# count runs, interleaved and back to back:
#   - bench/etcdput: 64-byte puts from N concurrent clients (closed loop);
#   - tokend-bench --spawn 3 --concurrency N issue-cc: one token issue per
#     request, i.e. one Raft write on three fresh tokend nodes.
# Both are one replicated, fsynced write acknowledged after a quorum has
# it. Everything is stopped and removed on exit (also on Ctrl-C), and one
# table is printed at the end.
#
# Usage: bench/etcd-compare.sh            (from the repository root)
# Environment:
#   CLIENTS="64 256"  client counts      DURATION=10s  measured phase per run
#   WARMUP=2s         discarded phase    ROUNDS=1      repeats of the interleaving
#   ETCD=etcd         etcd binary        BIN=          directory holding tokend,
#                                                      tokend-bench and etcdput
#                                                      (built into a temp dir if unset)
set -euo pipefail

CLIENTS=${CLIENTS:-"64 256"}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-1}
ETCD=${ETCD:-etcd}

die() { echo "etcd-compare: $*" >&2; exit 1; }
command -v "$ETCD" >/dev/null || die "no etcd binary ($ETCD); on Debian: apt-get install etcd-server"
command -v jq >/dev/null || die "jq is needed to read tokend-bench's JSON"
if [ ! -f go.mod ] || [ ! -d bench/etcdput ]; then die "run from the repository root"; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/etcd-compare.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${BIN:-}" ]; then
	BIN=$WORK/bin
	echo "building tokend, tokend-bench and etcdput into $BIN" >&2
	go build -o "$BIN/" ./cmd/tokend ./cmd/tokend-bench
	(cd bench/etcdput && go build -o "$BIN/etcdput" .)
fi

# free_port prints a TCP port on 127.0.0.1 that nothing listens on and
# that is not among the ports given.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 30000))
		case " $* " in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

CLUSTER="" ENDPOINTS=""
CPORT=() PPORT=()
for i in 1 2 3; do
	CPORT[i]=$(free_port "${CPORT[@]}" "${PPORT[@]}")
	PPORT[i]=$(free_port "${CPORT[@]}" "${PPORT[@]}")
	CLUSTER+="${CLUSTER:+,}m$i=http://127.0.0.1:${PPORT[$i]}"
	ENDPOINTS+="${ENDPOINTS:+,}127.0.0.1:${CPORT[$i]}"
done
for i in 1 2 3; do
	"$ETCD" --name "m$i" --data-dir "$WORK/m$i" \
		--listen-client-urls "http://127.0.0.1:${CPORT[$i]}" --advertise-client-urls "http://127.0.0.1:${CPORT[$i]}" \
		--listen-peer-urls "http://127.0.0.1:${PPORT[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$i]}" \
		--initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token "etcd-compare-$$" \
		>"$WORK/m$i.log" 2>&1 &
	PIDS+=($!)
done
"$BIN/etcdput" --endpoints "$ENDPOINTS" --probe --ready 30s >&2 || { tail -5 "$WORK"/m*.log >&2; die "etcd cluster did not take a put within 30s"; }
ETCD_VERSION=$("$ETCD" --version | sed -n 's/^etcd Version: //p')
echo "etcd $ETCD_VERSION cluster up: $ENDPOINTS" >&2

ms() { awk -v us="$1" 'BEGIN { printf "%.2fms", us / 1000 }'; }

ROWS=()
for round in $(seq "$ROUNDS"); do
	for c in $CLIENTS; do
		echo "== round $round, $c clients: etcd put" >&2
		line=$("$BIN/etcdput" --endpoints "$ENDPOINTS" --clients "$c" --warmup "$WARMUP" --duration "$DURATION")
		echo "$line" >&2
		rate=$(sed -n 's/.* req\/s=\([0-9.]*\).*/\1/p' <<<"$line")
		p50=$(sed -n 's/.* p50=\([^ ]*\).*/\1/p' <<<"$line")
		p99=$(sed -n 's/.* p99=\([^ ]*\).*/\1/p' <<<"$line")
		errs=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")
		ROWS+=("$(printf '%-30s %7s %10s %10s %10s %7s' "etcd $ETCD_VERSION put 64B" "$c" "$rate" "$p50" "$p99" "$errs")")

		echo "== round $round, $c clients: tokend issue-cc" >&2
		"$BIN/tokend-bench" --tokend "$BIN/tokend" --spawn 3 --concurrency "$c" --warmup "$WARMUP" --duration "$DURATION" \
			--quiet --json "$WORK/tokend.json" --plot "" issue-cc >&2
		read -r rate p50 p99 errs < <(jq -r '[(.throughput_rps|round), .latency_us.p50_us, .latency_us.p99_us, .errors] | @tsv' "$WORK/tokend.json")
		ROWS+=("$(printf '%-30s %7s %10s %10s %10s %7s' "tokend issue-cc (3 nodes)" "$c" "$rate" "$(ms "$p50")" "$(ms "$p99")" "$errs")")
	done
done

echo
echo "three members/nodes on this machine, data in $(df -P "$WORK" | awk 'NR==2 { print $1 }') ($(stat -f -c %T "$WORK")), closed loop, $DURATION measured after $WARMUP warmup; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-30s %7s %10s %10s %10s %7s\n' "system" "clients" "req/s" "p50" "p99" "errors"
printf '%s\n' "${ROWS[@]}"
