#!/usr/bin/env bash
# timeout: 240
# Safety: attach to and detach from a Node.js HTTP server 100 times while wrk keeps
# a bounded loopback load on it (4 connections, 5 s rounds). The server must never
# crash, no request may fail, and nothing of ours may stay in the kernel. Every tenth
# cycle uses the phases tier, every fifth the per-site uprobes (no uprobe_multi).
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd node
need_cmd wrk
need_cmd bpftool
NODEDIR=$(cd "$(dirname "$0")/../node" && pwd)
CYCLES=${CYCLES:-100}

bg node "$NODEDIR/server.js" 0 >"$TMP/server.out"
spid=$BG_PID
wait_for 10 grep -q listening "$TMP/server.out" || { not_ok "server did not start"; done_testing; }
port=$(awk '/listening/ { print $2 }' "$TMP/server.out")

# wrk prints its summary only at the end of a run: run it in rounds until told to stop.
bg bash -c "while [ ! -e '$TMP/stop' ]; do wrk -t1 -c4 -d5s 'http://127.0.0.1:$port/' || echo 'wrk failed'; done" >"$TMP/wrk.out" 2>&1
lpid=$BG_PID
sleep 1

fails=0
for i in $(seq "$CYCLES"); do
	tier=light multi=
	[ $((i % 10)) = 0 ] && tier=phases	# every tenth cycle the heavier tier
	[ $((i % 5)) = 0 ] && multi=1		# every fifth one perf-event uprobe per site
	if ! LOOPSCOPE_NO_UPROBE_MULTI=$multi "$LOOPSCOPE" stat -p "$spid" -d 0.1 -i 0.1 --json --probes "$tier" \
		>"$TMP/stat.json" 2>"$TMP/stat.err"; then
		fails=$((fails + 1))
		echo "# cycle $i ($tier) failed: $(head -c 300 "$TMP/stat.err")"
	fi
	kill -0 "$spid" 2>/dev/null || break
done
touch "$TMP/stop"
wait "$lpid"

check "$CYCLES attach/detach cycles all succeeded ($fails failed)" [ "$fails" = 0 ]
check "the server is alive after $CYCLES cycles" kill -0 "$spid"
rounds=$(grep -c 'requests in' "$TMP/wrk.out")
reqs=$(awk '/requests in/ { n += $1 } END { print n + 0 }' "$TMP/wrk.out")
check "wrk completed rounds ($rounds rounds, $reqs requests)" [ "$rounds" -ge 1 ] && [ "$reqs" -gt 1000 ]
check "no failed request (socket errors, non-2xx, wrk failure)" \
	bash -c "! grep -qE 'Socket errors|Non-2xx|wrk failed' '$TMP/wrk.out'"
grep -E 'Socket errors|Non-2xx|wrk failed' "$TMP/wrk.out" | sed 's/^/# /'
check "no nodeuv program left in the kernel" bash -c "! bpftool prog show 2>/dev/null | grep -qE 'name nu_'"
done_testing
