#!/usr/bin/env bash
# timeout: 600
# Node.js stalls told apart from outside by stack samples: a recursive
# process.nextTick, a recursive promise chain and one long synchronous callback, in
# turn in one process, each give exactly one episode of the right kind and phase, in
# both probe tiers; an episode is announced while it runs; a healthy
# HTTP server under bounded loopback load gives none. On every Node.js build of the
# matrix (tests/lib.sh node_matrix).
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd wrk
need_python
NODEDIR=$(cd "$(dirname "$0")/../node" && pwd)

# kinds JSONFILE PID: the episodes of PID's main loop but GC as KIND@PHASE in the
# order they started, comma-separated.
kinds() {
	"$PYTHON" - "$1" "$2" <<'PY'
import json, sys
ks = []
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o["pid"] == int(sys.argv[2]) and o["tid"] == o["pid"]:
        # a GC pause past the threshold is reported on its own (a loaded machine makes some)
        ks += [(e["start_s"], e["kind"] + "@" + e["phase"]) for e in o.get("episodes", []) if e["kind"] != "gc"]
print(",".join(k for _, k in sorted(ks)))
PY
}

# counters JSONFILE PID: ticks.starvation_episodes, microtasks.starvation_episodes and
# stall_episodes of PID's main loop, summed over the intervals (the schema shared with
# the reference loop).
counters() {
	"$PYTHON" - "$1" "$2" <<'PY'
import json, sys
t = m = s = 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o["pid"] == int(sys.argv[2]) and o["tid"] == o["pid"]:
        t += o["ticks"]["starvation_episodes"]
        m += o["microtasks"]["starvation_episodes"]
        s += o["stall_episodes"]
print(t, m, s)
PY
}

# run_delay PID: ns the process's main thread has waited for a CPU so far (schedstat).
run_delay() { awk '{ print $2 }' /proc/"$1"/task/"$1"/schedstat 2>/dev/null || echo 0; }

# has_line FILE PID: FILE (stat --json) has a line of PID: its probes are live.
has_line() { grep -q "^{\"pid\":$2," "$1"; }

# node_up NAME ARGS...: a node of the build under test at the highest CFS weight
# (neighbours stretch the blocks and starve the stack sampler of samples of them),
# started in the background; its output in $TMP/NAME.out; sets BG_PID.
node_up() {
	local name=$1; shift
	bg nice -n -20 "$node" "$@" >"$TMP/$name.out"
}

# stat_up NAME TIER PID...: stat --json (TIER; text for "text") on the PIDs in the
# background, its output in $TMP/NAME.json (or .txt), stderr in $TMP/NAME.err; sets
# STAT_PID. Started once each node is ready: node's default loop must exist before
# attach (the offsets are checked on it).
stat_up() {
	local name=$1 tier=$2 p args=()
	shift 2
	for p; do args+=(-p "$p"); done
	if [ "$tier" = text ]; then
		: >"$TMP/$name.txt"
		"$LOOPSCOPE" stat "${args[@]}" -i 0.5 >"$TMP/$name.txt" 2>&1 &
	else
		: >"$TMP/$name.json"
		"$LOOPSCOPE" stat "${args[@]}" -i 0.25 --json --probes "$tier" >"$TMP/$name.json" 2>"$TMP/$name.err" &
	fi
	STAT_PID=$!
}

# seq_run TIER PID STAT_PID: the three blocks of block.js seq (PID) under the stat
# (STAT_PID, attached or attaching) of TIER; sets attached, waited_ms, and for the
# light tier (whose stat also watches the HTTP server) runs the server's load once the
# blocks are over. Leaves the stat running.
seq_run() {
	local tier=$1 pid=$2 rd0
	# block once the probes are live: the first interval's line says they are
	# (attaching can take seconds on a loaded machine)
	attached=0
	wait_for 60 has_line "$TMP/$tier.json" "$pid" && attached=1
	rd0=$(run_delay "$pid")
	kill -USR2 "$pid"
	wait_for 30 grep -q "blocked seq" "$TMP/$tier.out"
	# the last block (a stall in either tier) ends when the loop polls again: stat
	# prints the episode with the interval it ended in (an episode still in the ring
	# buffer at Ctrl-C would be missed)
	wait_for 5 grep -q "^{\"pid\":$pid,.*\"kind\":\"stall\"" "$TMP/$tier.json"
	waited_ms=$(( ($(run_delay "$pid") - rd0) / 1000000 ))
}

# seq_verdicts TIER PID STAT_PID: stops the stat; sets rc, ran, got, gotc.
seq_verdicts() {
	local tier=$1 pid=$2
	kill -INT "$3"
	wait "$3"
	rc=$?
	ran=0
	grep -q "blocked seq" "$TMP/$tier.out" && ran=1
	got=$(kinds "$TMP/$tier.json" "$pid")
	gotc=$(counters "$TMP/$tier.json" "$pid")
	kill "$pid"; wait "$pid" 2>/dev/null
}

# http_load SERVER_PID PORT: wrk against the healthy server while the light stat
# watches it; the lines stat writes from then on go to $TMP/http.json (after the stat
# stopped); sets n0 (lines before) and waited (ms the server waited for a CPU).
http_load() {
	local rd0
	n0=$(wc -l <"$TMP/light.json")
	rd0=$(run_delay "$1")
	wrk -t1 -c16 -d1s "http://127.0.0.1:$2/" >"$TMP/wrk.out"
	waited=$(( ($(run_delay "$1") - rd0) / 1000000 ))
}

# one_node LABEL PATH: every check on one Node.js build. The processes start and the
# three stats (light on block.js seq and the HTTP server, phases on another block.js
# seq, text on block.js micro) attach at once; the workloads then run one after the
# other, each alone on the CPUs but for the idle processes and agents.
one_node() {
	local v=$1 node=$2 attached rc ran got gotc want waited_ms tier attempt
	local lpid ppid mpid spid port lstat pstat mstat n0=0 waited=0 http_ok=1 iters eps reqs
	node_up light "$NODEDIR/block.js" seq 450 0 200; lpid=$BG_PID
	node_up phases "$NODEDIR/block.js" seq 450 0 200; ppid=$BG_PID
	node_up live "$NODEDIR/block.js" micro 800 0; mpid=$BG_PID
	node_up server "$NODEDIR/server.js" 0; spid=$BG_PID
	wait_for 10 grep -q listening "$TMP/server.out" || { not_ok "$v: server did not start"; http_ok=0; }
	port=$(awk '/listening/ { print $2 }' "$TMP/server.out")
	wait_for 10 grep -q ready "$TMP/light.out"
	if [ "$http_ok" = 1 ]; then stat_up light light "$lpid" "$spid"; else stat_up light light "$lpid"; fi
	lstat=$STAT_PID
	wait_for 10 grep -q ready "$TMP/phases.out"
	stat_up phases phases "$ppid"; pstat=$STAT_PID
	wait_for 10 grep -q ready "$TMP/live.out"
	stat_up live text "$mpid"; mstat=$STAT_PID

	for tier in light phases; do
		# The first block starts in the SIGUSR2 handler, which libuv's signal watcher
		# runs in the poll phase, the other two from timers; light does not know phases.
		if [ "$tier" = phases ]; then
			want=tick_starvation@poll,microtask_starvation@timers,stall@timers
		else
			want=tick_starvation@none,microtask_starvation@none,stall@none
		fi
		# The kind comes from stack samples of the loop thread while it runs: a run in
		# which node waited for a CPU (> 50 ms) and got a wrong result is the machine's
		# doing and is measured again (a new process and stat), up to three times; the
		# checks do not change.
		for attempt in 1 2 3; do
			if [ "$attempt" -gt 1 ]; then
				node_up "$tier" "$NODEDIR/block.js" seq 450 0 200
				[ "$tier" = light ] && lpid=$BG_PID || ppid=$BG_PID
				wait_for 10 grep -q ready "$TMP/$tier.out"
				stat_up "$tier" "$tier" "$BG_PID"
				[ "$tier" = light ] && lstat=$STAT_PID || pstat=$STAT_PID
			fi
			if [ "$tier" = light ]; then
				seq_run light "$lpid"
				# the healthy server's load, once, under the first light stat
				if [ "$attempt" = 1 ] && [ "$http_ok" = 1 ]; then
					check "$v http: stat attached" has_line "$TMP/light.json" "$spid"
					http_load "$spid" "$port"
				fi
				seq_verdicts light "$lpid" "$lstat"
				if [ "$attempt" = 1 ] && [ "$http_ok" = 1 ]; then
					check "$v http: stat exits 0" [ "$rc" = 0 ]
					tail -n +$((n0 + 1)) "$TMP/light.json" >"$TMP/http.json"
				fi
			else
				seq_run phases "$ppid"
				seq_verdicts phases "$ppid" "$pstat"
			fi
			[ "$rc" = 0 ] && [ "$ran" = 1 ] && [ "$got" = "$want" ] && [ "$gotc" = "1 1 1" ] && break
			[ "$waited_ms" -le 50 ] && break
			echo "# $v $tier: got '$got' ($gotc) while node waited $waited_ms ms for a CPU; again"
		done
		echo "# $v $tier: node waited $waited_ms ms for a CPU during the blocks"
		check "$v $tier: stat attached" [ "$attached" = 1 ]
		check "$v $tier: stat exits 0 (rc=$rc: $(head -c 200 "$TMP/$tier.err"))" [ "$rc" = 0 ]
		check "$v $tier: the three blocks ran while attached" [ "$ran" = 1 ]
		check "$v $tier: one episode per block, in order: $want (got '$got')" [ "$got" = "$want" ]
		check "$v $tier: ticks/microtasks.starvation_episodes, stall_episodes = 1 1 1 (got '$gotc')" \
			[ "$gotc" = "1 1 1" ]
	done

	# An episode is announced while it runs (the stack sampler opens it past the
	# threshold), not only when the loop polls again.
	wait_for 60 grep -q "^pid $mpid" "$TMP/live.txt"
	kill -USR2 "$mpid"
	# the announcement comes a threshold (100 ms) into the 800 ms block: stop once it
	# is there (or the block is long over)
	wait_for 4 grep -qE "^! pid $mpid tid $mpid: microtask_starvation.*running for" "$TMP/live.txt"
	kill -INT "$mstat"
	wait "$mstat"
	check "$v: a microtask starvation is announced live: $(grep -m1 '^!' "$TMP/live.txt")" \
		grep -qE "^! pid $mpid tid $mpid: microtask_starvation.*running for" "$TMP/live.txt"
	kill "$mpid"; wait "$mpid" 2>/dev/null

	# A healthy server under load (run above, under the light stat): no episode at the
	# default threshold (100 ms) over the intervals of the load.
	if [ "$http_ok" = 1 ]; then
		read -r iters eps <<<"$("$PYTHON" -c '
import json, sys
o = [json.loads(l) for l in open(sys.argv[1])]
m = [x for x in o if x["pid"] == int(sys.argv[2]) and x["tid"] == x["pid"]]
print(sum(x["iterations"] for x in m), sum(len(x.get("episodes", [])) + x["stall_episodes"] for x in m))
' "$TMP/http.json" "$spid")"
		reqs=$(awk '/requests in/ { print $1 }' "$TMP/wrk.out")
		# 16 connections, one request in flight on each: an iteration serves 16 at most
		check "$v http: the loop iterated under load ($iters iterations for $reqs requests)" \
			[ $(( ${iters:-0} * 16 )) -ge "${reqs:-1}" ]
		# a server that waited 100 ms or more for a CPU did not poll meanwhile: a stall
		check "$v http: no episode on a healthy server (got ${eps:-?}; node waited $waited ms for a CPU)" \
			[ "${eps:-1}" = 0 -o "$waited" -ge 100 ]
		check "$v http: wrk got responses ($reqs)" [ "${reqs:-0}" -gt 1000 ]
		check "$v http: no socket errors or non-2xx" bash -c "! grep -qE 'Socket errors|Non-2xx' '$TMP/wrk.out'"
	fi
	kill "$spid"; wait "$spid" 2>/dev/null
}

# the list on fd 3: what one_node runs may read stdin
while read -r v path <&3; do
	node_usable "$v" "$path" && one_node "$v" "$path"
done 3< <(node_matrix)
done_testing
