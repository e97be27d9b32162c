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
NODEDIR=$(cd "$(dirname "$0")/../node" && pwd)

# kinds JSONFILE: the episodes of the main loop but GC as KIND@PHASE in the order
# they started, comma-separated.
kinds() {
	python3 - "$1" <<'PY'
import json, sys
ks = []
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o["tid"] == o["pid"]:
        # a GC pause past the threshold is reported on its own (a loaded machine makes some)
        ks += [(e["start_s"], e["kind"] + "@" + e["phase"]) for e in o.get("episodes", []) if e["kind"] != "gc"]
print(",".join(k for _, k in sorted(ks)))
PY
}

# counters JSONFILE: ticks.starvation_episodes, microtasks.starvation_episodes and
# stall_episodes of the main loop, summed over the intervals (the schema shared with
# the reference loop).
counters() {
	python3 - "$1" <<'PY'
import json, sys
t = m = s = 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o["tid"] == o["pid"]:
        t += o["ticks"]["starvation_episodes"]
        m += o["microtasks"]["starvation_episodes"]
        s += o["stall_episodes"]
print(t, m, s)
PY
}

# run_delay PID: ns the process's main thread has waited for a CPU so far (schedstat).
run_delay() { awk '{ print $2 }' /proc/"$1"/task/"$1"/schedstat 2>/dev/null || echo 0; }

# one_node LABEL PATH: every check on one Node.js build.
one_node() {
	local v=$1 node=$2 attached rc ran got gotc want rd0 waited_ms
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
		# doing and is measured again, up to three times; the checks do not change.
		for attempt in 1 2 3; do
			# the highest CFS weight: neighbours stretch the blocks and starve the
			# stack sampler of samples of them
			bg nice -n -20 "$node" "$NODEDIR/block.js" seq 600 0 >"$TMP/block.out"
			pid=$BG_PID
			# node's default loop must exist before attach (the offsets are checked on it)
			wait_for 10 grep -q ready "$TMP/block.out"
			# (empty now: the redirection below happens in the child, after the wait began)
			: >"$TMP/$tier.json"
			"$LOOPSCOPE" stat -p "$pid" -i 0.5 --json --probes "$tier" >"$TMP/$tier.json" 2>"$TMP/$tier.err" &
			stat_pid=$!
			# block once the probes are live: the first interval's line says they are
			# (attaching can take seconds on a loaded machine); stop once the last block
			# is over and the loop polled again (stat reports the partial interval)
			attached=0
			wait_for 60 test -s "$TMP/$tier.json" && attached=1
			rd0=$(run_delay "$pid")
			kill -USR2 "$pid"
			wait_for 30 grep -q "blocked seq" "$TMP/block.out"
			sleep 0.5
			waited_ms=$(( ($(run_delay "$pid") - rd0) / 1000000 ))
			kill -INT "$stat_pid"
			wait "$stat_pid"
			rc=$?
			ran=0
			grep -q "blocked seq" "$TMP/block.out" && ran=1
			got=$(kinds "$TMP/$tier.json")
			gotc=$(counters "$TMP/$tier.json")
			kill "$pid"; wait "$pid" 2>/dev/null
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
	bg nice -n -20 "$node" "$NODEDIR/block.js" micro 800 0 >"$TMP/live.out"
	pid=$BG_PID
	wait_for 10 grep -q ready "$TMP/live.out"
	: >"$TMP/live.txt"
	"$LOOPSCOPE" stat -p "$pid" -d 4 -i 0.5 >"$TMP/live.txt" 2>&1 &
	stat_pid=$!
	wait_for 60 grep -q "^pid $pid" "$TMP/live.txt"
	kill -USR2 "$pid"
	wait "$stat_pid"
	check "$v: a microtask starvation is announced live: $(grep -m1 '^!' "$TMP/live.txt")" \
		grep -qE "^! pid $pid tid $pid: microtask_starvation.*running for" "$TMP/live.txt"
	kill "$pid"; wait "$pid" 2>/dev/null

	# A healthy server under load: no episode at the default threshold (100 ms).
	bg nice -n -20 "$node" "$NODEDIR/server.js" 0 >"$TMP/server.out"
	spid=$BG_PID
	wait_for 10 grep -q listening "$TMP/server.out" || { not_ok "$v: server did not start"; return; }
	port=$(awk '/listening/ { print $2 }' "$TMP/server.out")
	: >"$TMP/http.json"
	"$LOOPSCOPE" stat -p "$spid" -i 0.5 --json >"$TMP/http.json" 2>"$TMP/http.err" &
	stat_pid=$!
	# the load starts once the probes are live and stat stops when it is over
	check "$v http: stat attached" wait_for 60 test -s "$TMP/http.json"
	rd0=$(awk '{ print $2 }' "/proc/$spid/task/$spid/schedstat")
	wrk -t1 -c16 -d3s "http://127.0.0.1:$port/" >"$TMP/wrk.out"
	waited=$(( ($(awk '{ print $2 }' "/proc/$spid/task/$spid/schedstat") - rd0) / 1000000 ))
	kill -INT "$stat_pid"
	wait "$stat_pid"
	check "$v http: stat exits 0" [ $? = 0 ]
	read -r iters eps <<<"$(python3 -c '
import json, sys
o = [json.loads(l) for l in open(sys.argv[1])]
m = [x for x in o if x["tid"] == x["pid"]]
print(sum(x["iterations"] for x in m), sum(len(x.get("episodes", [])) + x["stall_episodes"] for x in m))
' "$TMP/http.json")"
	reqs=$(awk '/requests in/ { print $1 }' "$TMP/wrk.out")
	# 16 connections, one request in flight on each: an iteration serves 16 at most
	check "$v http: the loop iterated under load ($iters iterations for $reqs requests)" \
		[ $(( ${iters:-0} * 16 )) -ge "${reqs:-1}" ]
	# a server that waited 100 ms or more for a CPU did not poll meanwhile: a stall
	check "$v http: no episode on a healthy server (got ${eps:-?}; node waited $waited ms for a CPU)" \
		[ "${eps:-1}" = 0 -o "$waited" -ge 100 ]
	check "$v http: wrk got responses ($reqs)" [ "${reqs:-0}" -gt 1000 ]
	check "$v http: no socket errors or non-2xx" bash -c "! grep -qE 'Socket errors|Non-2xx' '$TMP/wrk.out'"
	kill "$spid"; wait "$spid" 2>/dev/null
}

# the list on fd 3: what one_node runs may read stdin
while read -r v path <&3; do
	node_usable "$v" "$path" && one_node "$v" "$path"
done 3< <(node_matrix)
done_testing
