#!/usr/bin/env bash
# timeout: 240
# 60-record-live: `loopscope record` on a live reference loop, read back by
# `stat --replay`: the same blocks as a live `stat` on the same target at the same
# time (interval headers, episodes, iteration counts side by side); a recorder killed
# with SIGKILL leaves a file readable up to its last block; a full disk (a small tmpfs)
# and an unwritable path are one line, exit 1, and the recording so far stays readable;
# progress goes to stderr on a terminal.
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd jq
need_cmd script

# A loop that stalls 150 ms in a timer every second, plus its own I/O. SCHED_FIFO (as
# every workload checked against the time it asks for): a preempted 150 ms block is
# 200 ms long on a loaded machine. chrt execs loopdemo, so the PID is loopdemo's.
bg chrt -f 10 "$LOOPDEMO" --block 150 --every 1000 --io --duration 120
demo=$BG_PID
sleep 0.5

# ---- record and live stat side by side, 5 s (5 stalls), JSON
"$LOOPSCOPE" stat -p "$demo" -d 5 --json >"$TMP/live.json" 2>"$TMP/live.err" &
live=$!
"$LOOPSCOPE" record -p "$demo" -d 5 -o "$TMP/a.lsr" 2>"$TMP/rec.err"
rc=$?
wait "$live"
check "record: exit 0 after -d ($(tail -1 "$TMP/rec.err"))" [ "$rc" = 0 ]
"$LOOPSCOPE" stat --replay "$TMP/a.lsr" --json >"$TMP/replay.json" 2>"$TMP/replay.err"
check "stat --replay: exit 0" [ $? = 0 ]
n_live=$(wc -l <"$TMP/live.json") n_rep=$(wc -l <"$TMP/replay.json")
check "stat --replay: as many interval lines as live ($n_rep vs $n_live, +-1)" within "$n_rep" "$n_live" 0 1
it_live=$(jq -s 'map(.iterations) | add' "$TMP/live.json")
it_rep=$(jq -s 'map(.iterations) | add' "$TMP/replay.json")
check "stat --replay: iterations match live within 15% ($it_rep vs $it_live)" within "$it_rep" "$it_live" 0.15 0
st_live=$(jq -s '[.[].episodes[] | select(.kind == "stall")] | length' "$TMP/live.json")
st_rep=$(jq -s '[.[].episodes[] | select(.kind == "stall")] | length' "$TMP/replay.json")
check "stat --replay: the stalls live stat saw ($st_rep vs $st_live, +-1 at the edges)" \
	bash -c "[ $st_live -ge 3 ] && [ $((st_rep - st_live)) -le 1 ] && [ $((st_live - st_rep)) -le 1 ]"
d_rep=$(jq -s '[.[].episodes[] | select(.kind == "stall") | .duration_s] | max' "$TMP/replay.json")
check "stat --replay: a stall lasted about 150 ms ($d_rep s)" within "$d_rep" 0.15 0.3 0

# ---- text blocks: the same layout as live
"$LOOPSCOPE" stat --replay "$TMP/a.lsr" >"$TMP/replay.txt" 2>/dev/null
# one whole 1 s block, then the last part block
"$LOOPSCOPE" stat -p "$demo" -d 1.5 >"$TMP/live.txt" 2>/dev/null
head_re="^pid $demo \\(loopdemo\\) tid $demo loopdemo, reference loop, 1\\.0[0-9] s$"
check "stat --replay text: the live block header" grep -qE "$head_re" "$TMP/replay.txt"
check "stat live text: the same header" grep -qE "$head_re" "$TMP/live.txt"
for line in "  iterations " "  phase        share     count" "  delay          p50" "  episodes       "; do
	check "stat --replay text: has '$line' as live does" \
		bash -c "grep -qF -- '$line' '$TMP/replay.txt' && grep -qF -- '$line' '$TMP/live.txt'"
done
check "stat --replay text: a stall listed" grep -qE '^    stall in timers: 1[0-9][0-9]\.[0-9]+ ms( \([0-9]+ samples\))?$' "$TMP/replay.txt"

# ---- SIGKILL: readable to the last block (written within 5 s), no end mark
# Kill it once 5 intervals read, at most 9 s after its first block reached the file
# (attaching takes a while on a loaded machine): with a block at least every 5 s, 5 or
# more intervals must read by then.
"$LOOPSCOPE" record -p "$demo" -o "$TMP/k.lsr" 2>/dev/null &
rec=$!
head_size=
wait_for 30 test -s "$TMP/k.lsr" && head_size=$(stat -c %s "$TMP/k.lsr")
wait_for 30 bash -c "[ \$(stat -c %s '$TMP/k.lsr') -gt ${head_size:-0} ]"
five() { [ "$("$LOOPSCOPE" stat --replay "$TMP/k.lsr" --json 2>/dev/null | wc -l)" -ge 5 ]; }
wait_for 9 five
kill -KILL "$rec"
wait "$rec" 2>/dev/null
"$LOOPSCOPE" stat --replay "$TMP/k.lsr" --json >"$TMP/k.json" 2>"$TMP/k.err"
rc=$?
nk=$(wc -l <"$TMP/k.json")
check "SIGKILL: stat --replay reads the cut recording (exit $rc, $nk intervals, killed <= 9 s after the first block)" \
	bash -c "[ $rc = 0 ] && [ $nk -ge 5 ]"
"$LOOPSCOPE" report "$TMP/k.lsr" -o "$TMP/k.html" 2>/dev/null
check "SIGKILL: report says the recorder was stopped abruptly" grep -q "no end mark" "$TMP/k.html"

# ---- unwritable: one line, exit 1, nothing attached, the target unharmed
"$LOOPSCOPE" record -p "$demo" -o /dev/full -d 2 2>"$TMP/full.err"
rc=$?
check "/dev/full: exit 1" [ "$rc" = 1 ]
check "/dev/full: one line saying why ($(head -1 "$TMP/full.err"))" \
	bash -c "[ \$(wc -l <'$TMP/full.err') = 1 ] && grep -q 'No space left on device' '$TMP/full.err'"
"$LOOPSCOPE" record -p "$demo" -o "$TMP/no/such/dir/x.lsr" -d 2 2>"$TMP/nodir.err"
check "missing directory: exit 1, one line" bash -c "[ $? = 1 ] && [ \$(wc -l <'$TMP/nodir.err') = 1 ]"
"$LOOPSCOPE" record -p $$ -o "$TMP/sh.lsr" -d 2 2>"$TMP/sh.err"
check "not a loop (this shell): exit 1, one line, no file left" \
	bash -c "[ $? = 1 ] && [ \$(wc -l <'$TMP/sh.err') = 1 ] && [ ! -e '$TMP/sh.lsr' ]"
check "the target still runs" kill -0 "$demo"

# ---- disk full mid-recording: a 64 KiB tmpfs, snapshots every 0.1 s
mkdir -p "$TMP/small"
if mount -t tmpfs -o size=64k tmpfs "$TMP/small"; then
	timeout 120 "$LOOPSCOPE" record -p "$demo" -i 0.1 -o "$TMP/small/f.lsr" 2>"$TMP/df.err"
	rc=$?
	check "disk full: exit 1 ($(tail -1 "$TMP/df.err"))" [ "$rc" = 1 ]
	check "disk full: one line (after the start line) saying so" \
		bash -c "[ \$(grep -c 'loopscope record:' '$TMP/df.err') = 2 ] && grep -q 'No space left on device; the recording keeps its first' '$TMP/df.err'"
	"$LOOPSCOPE" stat --replay "$TMP/small/f.lsr" --json >"$TMP/df.json" 2>"$TMP/df.rerr"
	rc=$?
	check "disk full: the recording so far reads to its end (exit $rc, $(wc -l <"$TMP/df.json") intervals, $(cat "$TMP/df.rerr"))" \
		bash -c "[ $rc = 0 ] && [ \$(wc -l <'$TMP/df.json') -ge 10 ] && [ ! -s '$TMP/df.rerr' ]"
	umount "$TMP/small"
else
	not_ok "disk full: cannot mount a tmpfs"
fi

# ---- --exe: a process started after the recorder is recorded too
# (started once the recorder's first scan of /proc attached the loop already running,
# the recorder stopped with SIGINT once the late one has exited)
"$LOOPSCOPE" record --exe "$LOOPDEMO" -o "$TMP/e.lsr" 2>"$TMP/e.err" &
rec=$!
wait_for 30 grep -q "attached to $demo (" "$TMP/e.err"
"$LOOPDEMO" --block 120 --every 1000 --duration 3 >/dev/null 2>&1 &
late=$!
wait "$late"
kill -INT "$rec"
wait "$rec"
check "--exe: exit 0" [ $? = 0 ]
check "--exe: attached to the late starter" grep -q "attached to $late (" "$TMP/e.err"
"$LOOPSCOPE" stat --replay "$TMP/e.lsr" >"$TMP/e.txt" 2>/dev/null
check "--exe: its blocks and stalls are in the recording" \
	bash -c "grep -q '^pid $late (loopdemo)' '$TMP/e.txt' && grep -q 'stall in timers' '$TMP/e.txt'"

# ---- usage errors: status 2, one line
for args in "-p $demo" "-o $TMP/u.lsr" "-p $demo -o $TMP/u.lsr -i 0" "--exe relative/path -o $TMP/u.lsr" \
	"-p $demo -o $TMP/u.lsr extra"; do
	"$LOOPSCOPE" record $args 2>"$TMP/u.err"
	rc=$?
	check "usage error '$args': status 2, one line ($(head -1 "$TMP/u.err"))" \
		bash -c "[ $rc = 2 ] && [ \$(wc -l <'$TMP/u.err') = 1 ]"
done
check "usage errors created no file" test ! -e "$TMP/u.lsr"

# ---- progress on a terminal (script gives stderr a pty), none in a pipe
script -qfec "$LOOPSCOPE record -p $demo -d 1.5 -o $TMP/p.lsr" "$TMP/tty.out" >/dev/null 2>&1
check "progress on a terminal: elapsed, episodes, bytes" \
	grep -qE '00:00:0[0-9]  [0-9]+ episode records  [0-9.]+ KiB  -> ' "$TMP/tty.out"
check "no progress line when stderr is not a terminal" bash -c "! grep -q 'KiB  ->' '$TMP/rec.err'"
done_testing
