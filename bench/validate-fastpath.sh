#!/usr/bin/env bash
# validate-fastpath.sh measures GET /validate on tokend's main listener
# (net/http) and on --validate-addr (fasthttp, package gateway), POST
# /introspect, and the reference servers they are judged against, with wrk
# in interleaved rounds so that a noisy machine slows every target alike.
#
#   bench/validate-fastpath.sh            # 3 rounds of 5 s per target
#   ROUNDS=5 DURATION=10s bench/validate-fastpath.sh
#   TARGETS="main-validate fast-validate ref-validate" bench/validate-fastpath.sh
#   BIN_DIR=bin bench/validate-fastpath.sh   # use built tokend and tokend-bench
#
# Targets (all on 127.0.0.1, one tokend node, one valid token):
#   main-validate     tokend --http-addr     GET /validate
#   fast-validate     tokend --validate-addr GET /validate
#   main-introspect   tokend --http-addr     POST /introspect (the token's own client, HTTP Basic)
#   ref-validate      minimal validating net/http handler (SHA-256, locked map, the headers)
#   ref-fast-validate the same on fasthttp
#   ref-fixed         minimal net/http handler, fixed 163-byte body
#   ref-fast-fixed    minimal fasthttp handler, fixed 163-byte body
#
# The goal (issue 10): fast-validate >= 1.5x ref-validate. Besides requests
# per second, the table gives each server's CPU time per request (from
# /proc, Linux), which moves far less than throughput when other work
# shares the cores. Needs go, wrk, curl; everything it starts is stopped
# on exit.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
TARGETS=${TARGETS:-"main-validate fast-validate main-introspect ref-validate ref-fast-validate ref-fixed ref-fast-fixed"}

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/validate-fastpath.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${BIN_DIR:-}" ]; then # binaries built already (this tree's)
	cp "$BIN_DIR/tokend" "$BIN_DIR/tokend-bench" "$work/"
else
	echo "building into $work" >&2
	(cd "$root" && go build -o "$work/" ./cmd/tokend ./cmd/tokend-bench)
fi

# wait_line FILE PATTERN: the first line of FILE matching PATTERN, within 30 s.
wait_line() {
	for _ in $(seq 300); do
		if line=$(grep -m1 -E "$2" "$1" 2>/dev/null); then
			echo "$line"
			return 0
		fi
		sleep 0.1
	done
	echo "timed out waiting for '$2' in $1:" >&2
	tail -20 "$1" >&2
	return 1
}

# One node, no cluster key (Raft in memory, no internal port), loopback only.
# The fast listener only when a target uses it, so that an older build
# without --validate-addr can be measured on its main port (BIN_DIR).
fastflag=()
case " $TARGETS " in *" fast-validate "*) fastflag=(--validate-addr 127.0.0.1:0) ;; esac
admin="bench-admin-token-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$admin" >"$work/admin-token"
chmod 600 "$work/admin-token"
"$work/tokend" serve --node-id fastpath --data-dir "$work/data" \
	--http-addr 127.0.0.1:0 "${fastflag[@]}" --gossip-addr 127.0.0.1:0 --raft-addr 127.0.0.1:0 \
	--admin-token-file "$work/admin-token" --log-level info >"$work/tokend.log" 2>&1 &
pids+=($!)
tokend_pid=$!
line=$(wait_line "$work/tokend.log" 'msg="tokend serving"')
main=$(sed -n 's/.* http=http:\/\/\([^ ]*\).*/\1/p' <<<"$line")
fast=$(sed -n 's/.* validate=http:\/\/\([^ ]*\).*/\1/p' <<<"$line")
for _ in $(seq 300); do
	curl -fs "http://$main/readyz" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fs "http://$main/readyz" >/dev/null || { echo "tokend did not become ready" >&2; tail -20 "$work/tokend.log" >&2; exit 1; }

# A confidential client and one access token for it.
reg=$(curl -fs -X POST "http://$main/admin/clients" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
	-d '{"name":"fastpath bench","grant_types":["client_credentials"],"scopes":["read"]}')
cid=$(sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p' <<<"$reg")
secret=$(sed -n 's/.*"client_secret":"\([^"]*\)".*/\1/p' <<<"$reg")
tok=$(curl -fs -u "$cid:$secret" -d grant_type=client_credentials -d scope=read "http://$main/token" |
	sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$tok" ] || { echo "could not issue a token" >&2; exit 1; }
basic=$(printf '%s:%s' "$cid" "$secret" | base64 -w0)
cat >"$work/introspect.lua" <<EOF
wrk.method = "POST"
wrk.body = "token=$tok"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $basic"
EOF

# The reference servers, each a process of its own like tokend.
declare -A url pid
url[main-validate]="http://$main/validate"
url[fast-validate]="http://$fast/validate"
url[main-introspect]="http://$main/introspect"
pid[main-validate]=$tokend_pid pid[fast-validate]=$tokend_pid pid[main-introspect]=$tokend_pid
declare -A refname=([validate]=ref-validate [fasthttp-validate]=ref-fast-validate [fixed]=ref-fixed [fasthttp-fixed]=ref-fast-fixed)
for kind in validate fasthttp-validate fixed fasthttp-fixed; do
	"$work/tokend-bench" baseline-server --kind "$kind" --token "$tok" >"$work/ref-$kind.out" 2>&1 &
	pids+=($!)
	pid[${refname[$kind]}]=$!
done
url[ref-validate]="$(wait_line "$work/ref-validate.out" '^http://')/validate"
url[ref-fast-validate]="$(wait_line "$work/ref-fasthttp-validate.out" '^http://')/validate"
url[ref-fixed]="$(wait_line "$work/ref-fixed.out" '^http://')/"
url[ref-fast-fixed]="$(wait_line "$work/ref-fasthttp-fixed.out" '^http://')/"

# Every target must answer 200 before it is measured.
for t in $TARGETS; do
	case $t in
	main-introspect) code=$(curl -s -o /dev/null -w '%{http_code}' -u "$cid:$secret" -d "token=$tok" "${url[$t]}") ;;
	*) code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "${url[$t]}") ;;
	esac
	[ "$code" = 200 ] || { echo "$t: ${url[$t]} answered $code" >&2; exit 1; }
done

# cpu_ticks PID: the user and system CPU time the process has used, in
# clock ticks (0 where there is no /proc). Server CPU per request is far
# steadier than requests per second on a machine shared with other work.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

declare -A results cpu
echo "load before: $(uptime)" >&2
for r in $(seq "$ROUNDS"); do
	for t in $TARGETS; do
		args=(-t"$THREADS" -c"$CONNS" -d"$DURATION" -H "Authorization: Bearer $tok")
		[ "$t" = main-introspect ] && args=(-t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$work/introspect.lua")
		c0=$(cpu_ticks "${pid[$t]}")
		out=$(wrk "${args[@]}" "${url[$t]}")
		c1=$(cpu_ticks "${pid[$t]}")
		rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
		n=$(awk '/ requests in / {print $1}' <<<"$out")
		us=$(awk -v a="$c0" -v b="$c1" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", (n > 0) ? (b - a) / hz * 1e6 / n : 0}')
		if grep -q 'Non-2xx' <<<"$out"; then rps="$rps!"; fi
		results[$t]="${results[$t]:-} $rps"
		cpu[$t]="${cpu[$t]:-} $us"
		echo "round $r $t: $rps req/s, $us µs of server CPU a request" >&2
	done
done
echo "load after: $(uptime)" >&2

median() { tr ' ' '\n' | sed '/^$/d; s/!$//' | sort -g | awk '{a[NR]=$1} END {printf "%.1f", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf '\nwrk -t%s -c%s -d%s, %s interleaved rounds; medians; ! = non-2xx answers\n' "$THREADS" "$CONNS" "$DURATION" "$ROUNDS"
printf 'the x columns compare with ref-validate, the goal row'"'"'s yardstick (CPU: its CPU a request over this one'"'"'s)\n\n'
printf '| %-17s | %8s | %6s | %11s | %6s | %s |\n' target req/s x "CPU µs/req" x "rounds (req/s)"
printf '|%s|%s|%s|%s|%s|%s|\n' "-------------------" "----------" "--------" "-------------" "--------" "----------------"
ref=$(median <<<"${results[ref-validate]:-0}")
refcpu=$(median <<<"${cpu[ref-validate]:-0}")
for t in $TARGETS; do
	m=$(median <<<"${results[$t]}")
	c=$(median <<<"${cpu[$t]}")
	x=$(awk -v a="$m" -v b="$ref" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')
	xc=$(awk -v a="$c" -v b="$refcpu" 'BEGIN {if (a > 0) printf "%.2f", b / a; else print "-"}')
	printf '| %-17s | %8.0f | %6s | %11s | %6s | %s |\n' "$t" "$m" "$x" "$c" "$xc" "${results[$t]# }"
done
