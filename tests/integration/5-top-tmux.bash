# tests/integration/5-top-tmux.bash: sourced by the 5x top tests (after tests/lib.sh).
# Runs `loopscope top` in a shell inside a private tmux server, reads the screen with
# capture-pane and types with send-keys. The server is killed on exit, which hangs up
# anything still running in it.
TOP_SOCK=loopscope-top-$$
TOP_PID=
tm() { tmux -L "$TOP_SOCK" -f /dev/null "$@"; }
trap 'tm kill-server 2>/dev/null; _cleanup' EXIT

# tmux_start COLS ROWS: a bare shell with a known prompt.
tmux_start() {
	tm new-session -d -s t -x "$1" -y "$2" "env PS1='PROMPT\$ ' bash --norc --noprofile" || return 1
	wait_screen 5 '^PROMPT\$'
}
tmux_cap() { tm capture-pane -p -t t; }
tmux_cap_raw() { tm capture-pane -p -N -t t; }
tmux_keys() { tm send-keys -t t "$@"; }
tmux_fmt() { tm display-message -p -t t "$1"; }
tmux_resize() { tm resize-window -t t -x "$1" -y "$2"; }

# tmux_stty: the pane's tty modes as `stty -g` prints them (only at the shell prompt).
tmux_stty() {
	local f	# a fresh name each time: this runs in $(...), so a counter would not stick
	f=$(mktemp -u "$TMP/stty.XXXXXX")
	tmux_keys "stty -g > $f" Enter
	wait_for 5 test -s "$f" && cat "$f"
}

# wait_screen SECONDS REGEX...: until every extended regex matches the screen.
wait_screen() {
	local end=$((SECONDS + $1)) cap re miss
	shift
	while :; do
		cap=$(tmux_cap)
		miss=
		for re in "$@"; do grep -qE -- "$re" <<<"$cap" || { miss=$re; break; }; done
		[ -z "$miss" ] && return 0
		if [ $SECONDS -ge $end ]; then
			echo "# screen lacks /$miss/:"
			sed 's/^/#   |/' <<<"$cap"
			return 1
		fi
		sleep 0.1
	done
}

# wait_screen_not SECONDS REGEX: until the regex no longer matches.
wait_screen_not() {
	local end=$((SECONDS + $1))
	while grep -qE -- "$2" <<<"$(tmux_cap)"; do
		[ $SECONDS -ge $end ] && { echo "# screen still has /$2/"; return 1; }
		sleep 0.1
	done
}

# top_launch ARGS...: start top in the pane (behind $TOP_WRAP, e.g. setpriv); sets TOP_PID. stderr goes to $TMP/top.err,
# and the shell prints TOP_EXIT=<status> when it ends.
top_launch() {
	rm -f "$TMP/top.pid"
	tmux_keys "sh -c 'echo \$\$ > $TMP/top.pid; exec ${TOP_WRAP:-} $LOOPSCOPE top $*' 2>$TMP/top.err; echo TOP_EXIT=\$?" Enter
	wait_for 5 test -s "$TMP/top.pid" || return 1
	TOP_PID=$(cat "$TMP/top.pid")
}

# The bpf links and programs the top process holds (from its fds), and whether any of
# them still exists in the kernel.
top_link_ids() { grep -h '^link_id:' /proc/"$TOP_PID"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -u; }
top_prog_ids() { grep -h '^prog_id:' /proc/"$TOP_PID"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -u; }
links_gone() {
	local now id
	now=$(bpftool -j link show | jq -r '.[].id')
	for id in $1; do grep -qx "$id" <<<"$now" && { echo "# link $id still attached"; return 1; }; done
	return 0
}
progs_gone() {
	local now id
	now=$(bpftool -j prog show | jq -r '.[].id')
	for id in $1; do grep -qx "$id" <<<"$now" && { echo "# prog $id still loaded"; return 1; }; done
	return 0
}
