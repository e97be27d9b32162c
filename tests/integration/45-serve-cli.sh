#!/usr/bin/env bash
# timeout: 150
# 45-serve-cli: `loopscope serve` options and errors: usage errors exit 2 with one line,
# runtime failures (no such process, unsupported target, address in use, bad address)
# exit 1 with one line saying what to do, --help exits 0, and SIGINT ends it cleanly.
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd curl

# run_err WANT_RC PATTERN ARGS...: exit status and a one-line message matching PATTERN.
run_err() {
	local want=$1 pat=$2
	shift 2
	"$LOOPSCOPE" serve "$@" >"$TMP/out" 2>"$TMP/err"
	local rc=$? lines
	lines=$(wc -l <"$TMP/err")
	if [ "$rc" = "$want" ] && [ "$lines" -le 2 ] && grep -qE "$pat" "$TMP/err"; then
		ok "serve $* -> exit $rc: $(head -1 "$TMP/err")"
	else
		not_ok "serve $* -> exit $rc (want $want), stderr: $(head -3 "$TMP/err")"
	fi
}

"$LOOPSCOPE" serve --help >"$TMP/help" 2>&1
check "serve --help exits 0 and shows the usage" grep -q '^usage: loopscope serve' "$TMP/help"
check "loopscope --help lists serve" sh -c "'$LOOPSCOPE' --help | grep -q '^  serve '"

run_err 2 'nothing to watch' 
run_err 2 "bad PID 'abc'" -p abc
run_err 2 "unknown --compat 'foo'" -p 1 --compat foo
run_err 2 "interval '0' out of range" -p 1 -i 0
run_err 2 "unknown probe tier 'bogus'" -p 1 --probes bogus
run_err 2 "unexpected argument" -p 1 extra
run_err 2 'No such file or directory' --exe ./no/such/binary
run_err 1 'no such process' -p 999999
run_err 1 'not a supported target' -p $$
bg "$LOOPDEMO" --block 1 --every 100 --duration 30
DEMO=$BG_PID
sleep 0.3
run_err 1 'bad listen address' -p "$DEMO" --listen nowhere
bg "$LOOPSCOPE" serve -p "$DEMO" --listen 127.0.0.1:0 2>"$TMP/serve.err"
SERVE=$BG_PID
wait_for 20 grep -q 'listening on' "$TMP/serve.err"
PORT=$(grep -o '127\.0\.0\.1:[0-9]*' "$TMP/serve.err" | head -1 | cut -d: -f2)
run_err 1 "cannot listen on 127.0.0.1:$PORT: Address already in use; pick another port" -p "$DEMO" --listen "127.0.0.1:$PORT"
# Bind before attaching: a busy port is reported even when the PID does not exist,
# i.e. no attach was tried.
run_err 1 "cannot listen on 127.0.0.1:$PORT: Address already in use" -p 999999 --listen "127.0.0.1:$PORT"
run_err 1 'bad listen address' -p 999999 --listen nowhere
check "the first serve still answers after the second failed" sh -c \
	"curl -sf http://127.0.0.1:$PORT/metrics | grep -q '^loopscope_target_up{pid=\"$DEMO\",.*} 1'"
kill -INT "$SERVE"
wait "$SERVE"
rc=$?
check "SIGINT ends serve with exit 0 (rc $rc)" [ "$rc" = 0 ]

# -p X -p X is one target, as in stat.
bg "$LOOPSCOPE" serve -p "$DEMO" -p "$DEMO" --listen 127.0.0.1:0 2>"$TMP/serve2.err"
SERVE=$BG_PID
wait_for 20 grep -q 'listening on' "$TMP/serve2.err"
PORT2=$(grep -o '127\.0\.0\.1:[0-9]*' "$TMP/serve2.err" | head -1 | cut -d: -f2)
check "serve -p X -p X attaches once ($(head -c 120 "$TMP/serve2.err" | tr '\n' ' '))" sh -c \
	"curl -sf http://127.0.0.1:$PORT2/healthz | grep -q '^ok 1 attached'"
kill -TERM "$SERVE"
wait "$SERVE"

# IPv6 loopback, asked for explicitly.
bg "$LOOPSCOPE" serve -p "$DEMO" --listen '[::1]:0' 2>"$TMP/serve6.err"
SERVE=$BG_PID
wait_for 20 grep -q 'listening on http://\[::1\]:' "$TMP/serve6.err"
PORT6=$(grep -o '\]:[0-9]*/' "$TMP/serve6.err" | tr -dc 0-9)
check "--listen [::1]:0 serves over IPv6" sh -c "curl -sfg 'http://[::1]:$PORT6/healthz' | grep -q '^ok 1 attached'"
kill -TERM "$SERVE"
wait "$SERVE"
check "the demo is unharmed by attach and detach" kill -0 "$DEMO"

# --probes reaches the Node backend: the phases tier exports Node's phase series.
need_cmd node
bg node "$(dirname "$0")/../node/server.js" 0 >"$TMP/node.out"
NODEPID=$BG_PID
wait_for 10 grep -q listening "$TMP/node.out"
bg "$LOOPSCOPE" serve -p "$NODEPID" --probes phases --listen 127.0.0.1:0 -i 0.5 2>"$TMP/serven.err"
SERVE=$BG_PID
wait_for 20 grep -q 'listening on' "$TMP/serven.err"
PORTN=$(grep -o '127\.0\.0\.1:[0-9]*' "$TMP/serven.err" | head -1 | cut -d: -f2)
node_phases() { curl -sf "http://127.0.0.1:$PORTN/metrics" | grep -q "^loopscope_phase_duration_seconds_count{pid=\"$NODEPID\",.*runtime=\"node\".*phase=\"poll\"}"; }
check "serve --probes phases: Node's poll phase histogram is exported" wait_for 15 node_phases
# Node: not-polling spans come from their own histogram (delay adds the poll lateness):
# one sample per iteration in both, and not_polling never sums to more than delay.
curl -sf "http://127.0.0.1:$PORTN/metrics" >"$TMP/node.metrics"
check "Node: loopscope_not_polling_seconds has delay's count and a sum <= delay's ($(grep -E '^loopscope_(not_polling|eventloop_delay)_seconds_(sum|count)' "$TMP/node.metrics" | tr '\n' ' '))" \
	python3 -c '
import re, sys
t = open(sys.argv[1]).read()
v = lambda n: float(re.search(r"^%s\{[^}]*runtime=\"node\"[^}]*\} (\S+)$" % n, t, re.M).group(1))
c1, c2 = v("loopscope_not_polling_seconds_count"), v("loopscope_eventloop_delay_seconds_count")
s1, s2 = v("loopscope_not_polling_seconds_sum"), v("loopscope_eventloop_delay_seconds_sum")
sys.exit(0 if c1 == c2 and c1 > 0 and s1 <= s2 and s1 > 0 else 1)' "$TMP/node.metrics"
kill -TERM "$SERVE"
wait "$SERVE"
check "serve --probes phases ends cleanly (rc $?)" [ $? = 0 ]
done_testing
