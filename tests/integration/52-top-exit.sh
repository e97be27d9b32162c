#!/usr/bin/env bash
# timeout: 120
# Every way out of loopscope top restores the terminal and leaves nothing attached:
# the target exiting, SIGTERM, Ctrl-C, a crash signal; and the errors before the
# screen starts (no such PID, not a terminal, bad options) are one plain line.
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd tmux
need_cmd bpftool
need_cmd jq
source "$(dirname "$0")/5-top-tmux.bash"

tmux_start 100 30
stty_before=$(tmux_stty)

# restored WHAT STATUS: top ended with STATUS, the terminal is as before, no link or
# program it held is left.
restored() {
	local what=$1 want=$2
	check "$what: exit status $want" wait_screen 8 "TOP_EXIT=$want\$"
	check "$what: alternate screen off" test "$(tmux_fmt '#{alternate_on}')" = 0
	check "$what: cursor visible" test "$(tmux_fmt '#{cursor_flag}')" = 1
	local now; now=$(tmux_stty)
	check "$what: tty modes as before" test "$now" = "$stty_before"
	[ "$now" = "$stty_before" ] || printf "# before: %s\n# after:  %s\n" "$stty_before" "$now"
	check "$what: no bpf link left" links_gone "$links"
	check "$what: no bpf program left" progs_gone "$progs"
	tmux_keys clear Enter
}

# up PID: wait until top shows PID and remember what it holds in the kernel.
up() {
	wait_screen 10 "$1 loopdemo +reference" || return 1
	links=$(top_link_ids)
	progs=$(top_prog_ids)
	[ -n "$links" ] && [ -n "$progs" ]
}

# 1. The target exits: top says so, then leaves by itself.
bg "$LOOPDEMO" --block 20 --every 100 --duration 3
DEMO=$BG_PID
top_launch -p "$DEMO"
check "target exit: top is up and holds links" up "$DEMO"
check "target exit: the 'target exited' alert shows" wait_screen 8 "$DEMO: target exited"
restored "target exit" 0
check "target exit: top said why on stderr" grep -q "target $DEMO (loopdemo) exited" "$TMP/top.err"
wait "$DEMO" 2>/dev/null

bg "$LOOPDEMO" --block 20 --every 100 --duration 100
DEMO=$BG_PID

# 2. SIGTERM.
top_launch -p "$DEMO"
check "SIGTERM: top is up" up "$DEMO"
kill -TERM "$TOP_PID"
restored "SIGTERM" 143	# 128 + 15, the shell's convention; q alone gives 0
check "SIGTERM: one line naming the signal" grep -qx 'loopscope top: stopped by SIGTERM' "$TMP/top.err"

# 3. Ctrl-C.
top_launch -p "$DEMO"
check "Ctrl-C: top is up" up "$DEMO"
tmux_keys C-c
restored "Ctrl-C" 130	# SIGINT: 128 + 2

# 4. A crash signal: the tty is reset from the handler, then top dies of the signal.
top_launch -p "$DEMO"
check "SIGSEGV: top is up" up "$DEMO"
kill -SEGV "$TOP_PID"
restored "SIGSEGV" 139
check "the demo loop survived all of it" kill -0 "$DEMO"

# 5. Colour, and NO_COLOR: capture-pane -e shows the attributes as SGR sequences.
sgr_colour() { tm capture-pane -p -e -t t | grep -qE $'\e\\[([0-9;]*;)?(3[0-7]|4[0-7]|38|48)(;[0-9;]*)?m'; }
sgr_reverse() { tm capture-pane -p -e -t t | grep -qE $'\e\\[([0-9;]*;)?7(;[0-9;]*)?m'; }
top_launch -p "$DEMO"
check "colour: top is up" up "$DEMO"
check "colour: the screen uses colours" sgr_colour
tmux_keys q
check "colour: q exits" wait_screen 5 "TOP_EXIT=0\$"
tmux_keys clear Enter
TOP_WRAP="env NO_COLOR=1"
top_launch -p "$DEMO"
check "NO_COLOR: top is up" up "$DEMO"
no_sgr_colour() { ! sgr_colour; }
check "NO_COLOR: no colour at all" no_sgr_colour
check "NO_COLOR: reverse video still marks the title and selection" sgr_reverse
tmux_keys q
check "NO_COLOR: q exits" wait_screen 5 "TOP_EXIT=0\$"
TOP_WRAP=
tmux_keys clear Enter

# 6. Errors before the screen: one line, non-zero, the screen never taken.
tmux_keys "$LOOPSCOPE top -p 4194303 2>$TMP/e1; echo NOPID_EXIT=\$?" Enter
check "no such PID: exit 1" wait_screen 8 "NOPID_EXIT=1\$"
check "no such PID: one line naming the PID" bash -c "[ \$(wc -l <'$TMP/e1') = 1 ] && grep -q 4194303 '$TMP/e1'"
check "no such PID: nothing left on the alternate screen" test "$(tmux_fmt '#{alternate_on}')" = 0
"$LOOPSCOPE" top -p "$DEMO" </dev/null >/dev/null 2>"$TMP/e2"
check "not a terminal: exit 2 with a hint" test $? = 2 -a -n "$(grep stat "$TMP/e2")"
"$LOOPSCOPE" top -p "$DEMO" -i 10 2>"$TMP/e3"
check "interval out of range: exit 2" test $? = 2 -a -n "$(grep -i range "$TMP/e3")"
"$LOOPSCOPE" top 2>"$TMP/e4"
check "neither -p nor --connect: exit 2" test $? = 2 -a -n "$(grep -e '--connect' "$TMP/e4")"
"$LOOPSCOPE" top --help >"$TMP/h"
check "--help: exit 0 and lists the keys" test $? = 0 -a -n "$(grep -i 'q quit' "$TMP/h")"
check "--help: documents the exit statuses" grep -q 'Ctrl-C 130,' "$TMP/h"
check "--help: documents SIGTERM's" grep -q 'SIGTERM 143' "$TMP/h"
done_testing
