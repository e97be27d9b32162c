#!/usr/bin/env bash
# timeout: 150
# loopscope top --connect: an unprivileged top (uid nobody) shows what a root
# `loopscope serve` streams on /events, alerts on a stall from the stream, stays
# responsive when the stream stalls mid-line, and leaves cleanly when the server goes.
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd tmux
need_cmd curl
need_cmd setpriv
source "$(dirname "$0")/5-top-tmux.bash"

PORT=$((20000 + $$ % 20000))
SLOW_PORT=$((PORT + 1))

bg "$LOOPDEMO" --block 300 --every 2000 --duration 80
DEMO=$BG_PID
bg "$LOOPSCOPE" serve -p "$DEMO" --listen "127.0.0.1:$PORT" -i 0.5
SERVE=$BG_PID
check "serve is up" wait_for 10 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null

tmux_start 100 34
stty_before=$(tmux_stty)
TOP_WRAP="setpriv --reuid=65534 --regid=65534 --clear-groups"
top_launch --connect "127.0.0.1:$PORT"
check "top runs as nobody" test "$(stat -c %u /proc/"$TOP_PID")" = 65534
check "top shows the streamed target and its phases" \
	wait_screen 10 "source 127.0.0.1:$PORT" "$DEMO loopdemo +reference" "^[ >]timers .*%" "^[ >]close .*%"
check "top holds no bpf object (the server does the tracing)" test -z "$(top_link_ids)$(top_prog_ids)"
# live while the 300 ms stall runs, then as the recent alert: a loaded machine's screen
# polls can miss the live one
check "a stall alert comes through the stream" \
	wait_screen 8 "^( !! $DEMO: stalled in timers for [0-9]+ms| +$DEMO: stall in timers for [0-9]+ms, [0-9.]+m?s ago)"
check "the stall's episode reaches the log" wait_screen 5 "^[0-9:.]+ +$DEMO loopdemo +stall +timers +(29[0-9]|30[0-9]|31[0-9])ms"

# The server goes away: top says so and leaves, with the terminal restored.
kill "$SERVE"
check "server gone: top exits 1" wait_screen 8 "TOP_EXIT=1\$"
check "server gone: the reason is one line" grep -q "stream closed" "$TMP/top.err"
check "server gone: alternate screen off" test "$(tmux_fmt '#{alternate_on}')" = 0
check "server gone: tty modes as before" test "$(tmux_stty)" = "$stty_before"

# A stream that stops in the middle of a line never freezes the screen: a fake server
# sends the response head, one real snapshot line, half of another, then nothing.
bg "$LOOPSCOPE" serve -p "$DEMO" --listen "127.0.0.1:$PORT" -i 0.5
SERVE=$BG_PID
wait_for 10 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
# a snapshot with the demo in it (the first ones may come before serve has attached)
curl -sN --max-time 30 "http://127.0.0.1:$PORT/events" | grep -m1 -E "\"type\":\"snapshot\".*\"pid\":$DEMO[,}]" >"$TMP/snap.json"
check "captured a snapshot line with the demo from serve" test -s "$TMP/snap.json"
cat >"$TMP/fake.py" <<'EOF'
import os, socket, sys, time
port, snap = int(sys.argv[1]), open(sys.argv[2], "rb").read()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(1); s.settimeout(90)
c, _ = s.accept()
c.recv(4096)
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n")
c.sendall(snap)
if sys.argv[3] == "stall":
    c.sendall(snap[: len(snap) // 2])
else:   # "bad": a snapshot line of a version nobody knows, once the test says top is up
    while not os.path.exists(sys.argv[4]):
        time.sleep(0.05)
    c.sendall(b'{"type":"snapshot","v":99}\n')
time.sleep(30)   # the test ends it earlier
EOF
bg python3 "$TMP/fake.py" "$SLOW_PORT" "$TMP/snap.json" stall	# (a heredoc would not reach a background job)
FAKE=$BG_PID
wait_for 30 bash -c "ss -ltn | grep -q ':$SLOW_PORT '"	# python starts slowly under load

top_launch --connect "127.0.0.1:$SLOW_PORT"
check "stalled stream: the first snapshot is shown" wait_screen 20 "$DEMO loopdemo +reference" ||
	sed 's/^/# top.err: /' "$TMP/top.err"
sleep 1
tmux_keys h
check "stalled stream: keys still work (help opens)" wait_screen 10 "pause / resume"
tmux_keys x
check "stalled stream: help closes" wait_screen_not 10 "pause / resume"
tmux_keys q
check "stalled stream: q exits with 0 while the stream stays stalled" wait_screen 10 "TOP_EXIT=0\$"
check "stalled stream: tty modes as before" test "$(tmux_stty)" = "$stty_before"
check "top's stderr is clean (no sanitizer report)" bash -c "! grep -qiE 'sanitizer|runtime error' '$TMP/top.err'"

kill "$FAKE" 2>/dev/null; wait "$FAKE" 2>/dev/null

# A source that fails (a line it cannot read) ends top with status 1, the tty restored.
bg python3 "$TMP/fake.py" "$SLOW_PORT" "$TMP/snap.json" bad "$TMP/go"
FAKE=$BG_PID
wait_for 30 bash -c "ss -ltn | grep -q ':$SLOW_PORT '"	# python starts slowly under load
tmux_keys clear Enter
top_launch --connect "127.0.0.1:$SLOW_PORT"
check "bad line: top is up first" wait_screen 20 "$DEMO loopdemo +reference"
touch "$TMP/go"	# now the bad line
check "bad line: top exits 1" wait_screen 10 "TOP_EXIT=1\$"
check "bad line: one line saying the source failed" grep -q "source failed" "$TMP/top.err"
check "bad line: tty modes as before" test "$(tmux_stty)" = "$stty_before"
kill "$FAKE" 2>/dev/null; wait "$FAKE" 2>/dev/null

# Bad addresses fail before the screen, in one line.
tmux_keys clear Enter
tmux_keys "$LOOPSCOPE top --connect nonsense 2>$TMP/e1; echo BADADDR_EXIT=\$?" Enter
check "bad address: exit 1" wait_screen 5 "BADADDR_EXIT=1\$"
check "bad address: one line saying what to give" bash -c "[ \$(wc -l <'$TMP/e1') = 1 ] && grep -q HOST:PORT '$TMP/e1'"
tmux_keys clear Enter
tmux_keys "$LOOPSCOPE top --connect 127.0.0.1:$SLOW_PORT 2>$TMP/e2; echo REFUSED_EXIT=\$?" Enter
check "nothing listening: exit 1" wait_screen 5 "REFUSED_EXIT=1\$"
check "nothing listening: one line naming serve" bash -c "[ \$(wc -l <'$TMP/e2') = 1 ] && grep -q 'loopscope serve' '$TMP/e2'"
done_testing
