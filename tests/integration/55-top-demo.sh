#!/usr/bin/env bash
# timeout: 60
# `make demo` (tests/demo.sh) in a terminal: it starts loopdemo's default mix and opens
# loopscope top on it; q ends top and the demo, and leaves the terminal as it was.
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd tmux
source "$(dirname "$0")/5-top-tmux.bash"
DEMO_SH=$(cd "$(dirname "$0")/.." && pwd)/demo.sh

tmux_start 100 34
stty_before=$(tmux_stty)
tmux_keys "LS_BUILD=$LS_BUILD $DEMO_SH 2>$TMP/demo.err; echo DEMO_EXIT=\$?" Enter
check "make demo opens top on loopdemo" wait_screen 10 "loopscope top" "^ +[0-9]+ loopdemo +reference "
demo_pid=$(tmux_cap | awk '$2 == "loopdemo" && $3 == "reference" { print $1; exit }')
check "the demo's default mix shows up (iterations and drains)" \
	wait_screen 10 "^ +$demo_pid loopdemo +reference +[0-9.]+k? " "^microtask +[0-9.]+k? drains/s"
tmux_keys q
check "q ends make demo with status 0" wait_screen 5 "DEMO_EXIT=0\$"
check "the demo loop is gone too" wait_for 5 bash -c "! kill -0 $demo_pid 2>/dev/null"
check "the alternate screen is off" test "$(tmux_fmt '#{alternate_on}')" = 0
check "tty modes as before" test "$(tmux_stty)" = "$stty_before"
done_testing
