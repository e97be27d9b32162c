#!/usr/bin/env bash
# timeout: 150
# 61-record-top-replay: `loopscope top --replay` in tmux on a recording of a stalling
# loop: the title says replay and of when; play, pause, step, speed and the jump to the
# next episode work; the end of the recording keeps the last screen until q; the
# terminal is restored. Recording needs root; the replay itself runs unprivileged.
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd tmux
need_cmd setpriv
source "$(dirname "$0")/5-top-tmux.bash"

# 6 s of a loop that stalls 150 ms in a timer every 1.5 s.
bg "$LOOPDEMO" --block 150 --every 1500 --duration 60
demo=$BG_PID
sleep 0.3
"$LOOPSCOPE" record -p "$demo" -d 6 -o "$TMP/t.lsr" 2>"$TMP/rec.err" || { cat "$TMP/rec.err"; exit 1; }
chmod 755 "$TMP"
chmod 644 "$TMP/t.lsr"
when=$(date -d "@$(stat -c %Y "$TMP/t.lsr")" '+%Y-%m-%d')

tmux_start 100 30
stty_before=$(tmux_stty)
TOP_WRAP="setpriv --reuid=65534 --regid=65534 --clear-groups"	# nobody: a replay needs no privilege
top_launch --replay "$TMP/t.lsr"
check "title: a replay, of when" wait_screen 5 "^ loopscope top REPLAY of $when [0-9:]+ .*PLAY 1x"
check "the recorded loop shows" wait_screen 5 " $demo loopdemo +reference"
check "footer: the replay keys" wait_screen 2 "p play/pause  \\. step  \\+/- speed  n next episode"
tmux_keys p
check "p pauses" wait_screen 3 "PAUSED 1x"
# The playback position, "+S.Ss" into the recording, after the speed.
pos() { tmux_cap | head -1 | grep -oE '[0-9]+x \+[0-9]+\.[0-9]s' | grep -oE '[0-9]+\.[0-9]'; }
pos1=$(pos)
sleep 1.5
pos2=$(pos)
check "paused: the position stands still ($pos1 = $pos2)" test -n "$pos1" -a "$pos1" = "$pos2"
tmux_keys .
check "step: one snapshot further (+$pos2 s -> later)" \
	wait_for 3 bash -c "p=\$(tmux -L $TOP_SOCK capture-pane -p -t t | head -1 | grep -oE 'x \+[0-9]+\.[0-9]s' | grep -oE '[0-9]+\.[0-9]'); awk -v a=\"\$p\" -v b=$pos2 'BEGIN { exit !(a > b && a < b + 1.3) }'"
tmux_keys n
check "n: jumps to the stall, its alert up" wait_screen 3 "$demo: stall(ed)? in timers"
check "n: the episode in the log" wait_screen 3 "stall +timers"
tmux_keys + +
check "+: faster (5x)" wait_screen 3 "PAUSED 5x"
tmux_keys -
check "-: slower (2x)" wait_screen 3 "PAUSED 2x"
tmux_keys + + + + + + +
check "+: at most 60x" wait_screen 3 "PAUSED 60x"
tmux_keys p
check "60x: plays to the end of the recording and stays" wait_screen 10 "END 60x"
sleep 1
check "the end keeps the screen" wait_screen 1 " $demo loopdemo +reference"
tmux_cap >"$TMP/screen.txt"
sed 's/^/#   |/' "$TMP/screen.txt"
tmux_keys q
check "q: exit status 0" wait_screen 5 "TOP_EXIT=0\$"
check "terminal restored" test "$(tmux_stty)" = "$stty_before"

# Bad input before the screen starts: one line, no screen.
tmux_keys clear Enter
printf 'not a recording\n' >"$TMP/bad.lsr"
chmod 644 "$TMP/bad.lsr"
top_launch --replay "$TMP/bad.lsr"
check "not a recording: exit 1" wait_screen 5 "TOP_EXIT=1\$"
check "not a recording: one line" \
	bash -c "[ \$(wc -l <'$TMP/top.err') = 1 ] && grep -q 'not a loopscope recording' '$TMP/top.err'"
tmux_keys clear Enter
top_launch --replay "$TMP/t.lsr" -p 1
check "--replay with -p: usage error 2" wait_screen 5 "TOP_EXIT=2\$"
done_testing
