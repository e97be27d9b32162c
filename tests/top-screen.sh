#!/usr/bin/env bash
# tests/top-screen.sh [SECONDS] [COLS] [ROWS]: the README's screen of `loopscope top`.
# Starts loopdemo with its default realistic mix, opens `loopscope top` on it in a
# private tmux server (COLS x ROWS, default 80x24), waits SECONDS (default 8), prints
# the screen as capture-pane sees it, then quits top and stops the demo. On stderr: the
# CPU time top itself used meanwhile (from /proc). Needs root.
set -u
BUILD=${LS_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
secs=${1:-8} cols=${2:-80} rows=${3:-24}
sock=loopscope-screen-$$
demo=
cleanup() {
	tmux -L "$sock" kill-server 2>/dev/null
	[ -n "$demo" ] && kill "$demo" 2>/dev/null && wait "$demo" 2>/dev/null
}
trap cleanup EXIT
for f in "$BUILD/loopdemo" "$BUILD/loopscope"; do
	[ -x "$f" ] || { echo "top-screen: $f is missing; run 'make' first" >&2; exit 1; }
done
command -v tmux >/dev/null || { echo "top-screen: needs tmux" >&2; exit 1; }
"$BUILD/loopdemo" --duration $((secs + 30)) >/dev/null 2>&1 &
demo=$!
tmux -L "$sock" -f /dev/null new-session -d -s s -x "$cols" -y "$rows" \
	"exec $BUILD/loopscope top -p $demo" || exit 1
top=$(tmux -L "$sock" display-message -p -t s '#{pane_pid}')
sleep "$secs"
tmux -L "$sock" capture-pane -p -t s
# utime + stime (fields 14, 15 of /proc/PID/stat) in clock ticks
ticks=$(awk '{ print $14 + $15 }' /proc/"$top"/stat)
awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v s="$secs" \
	'BEGIN { printf "top-screen: loopscope top used %.2f s of CPU in %d s (%.1f%% of one core)\n", t / hz, s, 100 * t / hz / s }' >&2
tmux -L "$sock" send-keys -t s q
sleep 0.5
