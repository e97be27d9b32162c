#!/usr/bin/env bash
# timeout: 480
# Safety: attach to and detach from a Node.js HTTP server 50 times while wrk keeps
# a bounded loopback load on it (4 connections, 5 s rounds). The server must never
# crash, no request may fail, and no breakpoint of ours may stay in the server's code.
# Every tenth cycle uses the phases tier, every tenth (others) the per-site uprobes
# (no uprobe_multi). On the newest official Node.js build and on the system's node
# (tests/lib.sh node_matrix full): 100 cycles in all.
# The server and wrk run at nice 10: they still take every CPU the agent leaves, so
# every attach and detach happens while requests are being served, but on a 2-core
# machine they no longer starve the agent itself (that tripled the time of a cycle).
# The cycles use the optimized agent (what is tested is the server's safety; ASan's
# start-up and ELF parse made a cycle 0.75 s instead of 0.45); the first attach, whose
# breakpoints are looked for, is the ASan build's.
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd wrk
need_cmd nm
# The two builds run side by side (each its own server, wrk and agent; a cycle spends
# about half its time waiting in the kernel, so the other build's cycles fill it), each
# child's output kept and printed whole when both are done. (tests/lib.sh's
# on_node_matrix, but concurrent.)
if [ -z "${NODE_LABEL:-}" ]; then
	rc=0 runs=()
	while read -r v path <&3; do
		node_usable "$v" "$path" || { [ "${CI:-}" = true ] && rc=1; continue; }
		NODE=$path NODE_LABEL=$v "$BASH" "$0" >"$TMP/run.$v" 2>&1 &
		_pids+=("$!")
		runs+=("$! $v $path")
	done 3< <(node_matrix full)
	for r in "${runs[@]}"; do
		read -r p v path <<<"$r"
		wait "$p" || rc=1
		echo "# node $v ($path)"
		cat "$TMP/run.$v"
	done
	exit $rc
fi
NODEDIR=$(cd "$(dirname "$0")/../node" && pwd)
CYCLES=${CYCLES:-50}
AGENT=${LOOPSCOPE_RELEASE:-$LS_BUILD/loopscope}

bg nice -n 10 "$NODE" "$NODEDIR/server.js" 0 >"$TMP/server.out"
spid=$BG_PID
wait_for 10 grep -q listening "$TMP/server.out" || { not_ok "server did not start"; done_testing; }
port=$(awk '/listening/ { print $2 }' "$TMP/server.out")

# wrk prints its summary only at the end of a run (or on SIGINT): run it in rounds until
# told to stop, the running round's PID in wrk.pid.
bg bash -c "while [ ! -e '$TMP/stop' ]; do nice -n 10 wrk -t1 -c4 -d5s 'http://127.0.0.1:$port/' & echo \$! >'$TMP/wrk.pid'; wait \$! || echo 'wrk failed'; done" >"$TMP/wrk.out" 2>&1
lpid=$BG_PID
# the load is on once wrk's 4 connections are established
conns() { [ "$(ss -Htn state established "( dport = :$port )" | wc -l)" -ge 4 ]; }
wait_for 10 conns || echo "# wrk's connections not seen after 10 s"
# stop_wrk: end the round running now with SIGINT (it prints its summary) and the loop.
stop_wrk() {
	local p
	touch "$TMP/stop"
	while kill -0 "$lpid" 2>/dev/null; do
		p=$(cat "$TMP/wrk.pid" 2>/dev/null)
		[ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = wrk ] && kill -INT "$p" 2>/dev/null
		sleep 0.1
	done
	wait "$lpid"
}

# The probed functions' addresses and sizes, from the server's executable, once (nm on
# node's ~100 MB binary takes a second).
nm -S "/proc/$spid/exe" | awk '$3 ~ /^[tT]$/ && ($4 == "uv_run" || $4 == "uv__run_timers" ||
	index($4, "_ZN2v88internal4Heap14CollectGarbageENS0_15AllocationSpace") == 1) { print $1, $2 }' >"$TMP/syms"
# patched PID: how many bytes of the probed functions differ between the process's
# memory and its executable (a uprobe is an int3 written into the process's page).
patched() {
	python3 - "$1" "$TMP/syms" <<'PY'
import sys
pid = sys.argv[1]
exe = "/proc/%s/exe" % pid
syms = [tuple(int(x, 16) for x in line.split()) for line in open(sys.argv[2])]
maps = []
for line in open("/proc/%s/maps" % pid):
    f = line.split()
    if len(f) >= 6 and "x" in f[1]:
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        maps.append((lo, hi, int(f[2], 16), f[5]))
diff = 0
with open("/proc/%s/mem" % pid, "rb") as mem, open(exe, "rb") as img:
    for addr, size in syms:
        m = [x for x in maps if x[0] <= addr < x[1]]
        if not m:
            continue
        lo, hi, off, path = m[0]
        mem.seek(addr)
        img.seek(addr - lo + off)
        a, b = mem.read(size), img.read(size)
        diff += sum(1 for x, y in zip(a, b) if x != y)
print(diff if len(syms) == 3 else -1)
PY
}
check "the probed functions are pristine before any attach" [ "$(patched "$spid")" = 0 ]
# The ASan agent parses node's ~100 MB binary before it attaches, which can take a few
# seconds on a loaded machine: look for the breakpoints until they appear (or 15 s).
"$LOOPSCOPE" stat -p "$spid" -d 20 -i 20 --json --probes phases >/dev/null 2>&1 &
statpid=$!
attached=0
for _ in $(seq 150); do
	attached=$(patched "$spid")
	[ "$attached" -gt 0 ] && break
	sleep 0.1
done
kill -INT "$statpid" 2>/dev/null
wait "$statpid"
check "while attached (phases) the check sees our breakpoints ($attached bytes)" [ "$attached" -gt 0 ]

fails=0
t0=$EPOCHREALTIME
for i in $(seq "$CYCLES"); do
	tier=light multi=
	[ $((i % 10)) = 0 ] && tier=phases	# the heavier tier
	[ $((i % 10)) = 5 ] && multi=1		# one perf-event uprobe per site
	if ! LOOPSCOPE_NO_UPROBE_MULTI=$multi "$AGENT" stat -p "$spid" -d 0.1 -i 0.1 --json --probes "$tier" \
		>"$TMP/stat.json" 2>"$TMP/stat.err"; then
		fails=$((fails + 1))
		echo "# cycle $i ($tier) failed: $(head -c 300 "$TMP/stat.err")"
	fi
	kill -0 "$spid" 2>/dev/null || break
done
echo "# $CYCLES cycles in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
stop_wrk

check "$CYCLES attach/detach cycles all succeeded ($fails failed)" [ "$fails" = 0 ]
check "the server is alive after $CYCLES cycles" kill -0 "$spid"
rounds=$(grep -c 'requests in' "$TMP/wrk.out")
reqs=$(awk '/requests in/ { n += $1 } END { print n + 0 }' "$TMP/wrk.out")
check "wrk completed rounds ($rounds rounds, $reqs requests)" bash -c "[ '$rounds' -ge 1 ] && [ '$reqs' -gt 0 ]"
check "no failed request (socket errors, non-2xx, wrk failure)" \
	bash -c "! grep -qE 'Socket errors|Non-2xx|wrk failed' '$TMP/wrk.out'"
grep -E 'Socket errors|Non-2xx|wrk failed' "$TMP/wrk.out" | sed 's/^/# /'
check "no breakpoint left in the server's uv_run, uv__run_timers, Heap::CollectGarbage" \
	[ "$(patched "$spid")" = 0 ]
done_testing
