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
# The goal (issue 10): fast-validate >= 1.5x ref-validate. Needs go, wrk,
# curl; everything it starts is stopped on exit.
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
admin="bench-admin-token-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$admin" >"$work/admin-token"
chmod 600 "$work/admin-token"
"$work/tokend" serve --node-id fastpath --data-dir "$work/data" \
	--http-addr 127.0.0.1:0 --validate-addr 127.0.0.1:0 --gossip-addr 127.0.0.1:0 --raft-addr 127.0.0.1:0 \
	--admin-token-file "$work/admin-token" --log-level info >"$work/tokend.log" 2>&1 &
pids+=($!)
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
declare -A url
url[main-validate]="http://$main/validate"
url[fast-validate]="http://$fast/validate"
url[main-introspect]="http://$main/introspect"
for kind in validate fasthttp-validate fixed fasthttp-fixed; do
	"$work/tokend-bench" baseline-server --kind "$kind" --token "$tok" >"$work/ref-$kind.out" 2>&1 &
	pids+=($!)
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

declare -A results
echo "load before: $(uptime)" >&2
for r in $(seq "$ROUNDS"); do
	for t in $TARGETS; do
		args=(-t"$THREADS" -c"$CONNS" -d"$DURATION" -H "Authorization: Bearer $tok")
		[ "$t" = main-introspect ] && args=(-t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$work/introspect.lua")
		out=$(wrk "${args[@]}" "${url[$t]}")
		rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
		if grep -q 'Non-2xx' <<<"$out"; then rps="$rps!"; fi
		results[$t]="${results[$t]:-} $rps"
		echo "round $r $t: $rps req/s" >&2
	done
done
echo "load after: $(uptime)" >&2

median() { tr ' ' '\n' | sed '/^$/d; s/!$//' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
printf '\nwrk -t%s -c%s -d%s, %s interleaved rounds (req/s; ! = non-2xx answers)\n\n' "$THREADS" "$CONNS" "$DURATION" "$ROUNDS"
printf '| %-18s | %9s | %s\n' target median rounds
printf '|%s|%s|%s\n' "--------------------" "-----------" "---------"
ref=$(median <<<"${results[ref-validate]:-0}")
for t in $TARGETS; do
	m=$(median <<<"${results[$t]}")
	ratio=""
	[ "${ref:-0}" -gt 0 ] && ratio=$(awk -v a="$m" -v b="$ref" 'BEGIN {printf " (%.2fx ref-validate)", a/b}')
	printf '| %-18s | %9s | %s%s\n' "$t" "$m" "${results[$t]# }" "$ratio"
done
