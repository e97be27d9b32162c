# tests/lib.sh: sourced by integration tests (bash). TAP output, skips, and cleanup
# of exactly the processes the test started (by PID, never by name).
set -u
LS_BUILD=${LS_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}
LOOPSCOPE=${LOOPSCOPE:-$LS_BUILD/asan/loopscope}	# the agent, under ASan+UBSan
LOOPDEMO=${LOOPDEMO:-$LS_BUILD/loopdemo}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
TMP=$(mktemp -d /tmp/loopscope-test.XXXXXX)
_tap_n=0
_tap_failed=0
_pids=()

ok() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }
not_ok() { _tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1)); echo "not ok $_tap_n - $*"; }
# check DESC CMD...: one TAP line for the command's success.
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# skip REASON: the whole test cannot run here (a failure under CI=true, see tests/run.sh).
skip() { echo "SKIP $*"; exit 77; }
need_root() { [ "$(id -u)" = 0 ] || skip "needs root (CAP_BPF, CAP_PERFMON)"; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || skip "needs $1"; }
# need_python: sets PYTHON to python3's own binary, resolved once and passed on to the
# children (on_node_matrix). A version manager's shim (pyenv's is a bash script that
# runs pyenv) costs a second or more a call on a loaded machine; a test that calls
# python per check or per attempt calls "$PYTHON" instead.
need_python() {
	[ -n "${LS_PYTHON:-}" ] && [ -x "$LS_PYTHON" ] ||
		LS_PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || skip "needs python3"
	export LS_PYTHON
	PYTHON=$LS_PYTHON
}
# bg CMD...: start in the background, remember the PID for cleanup; sets BG_PID.
bg() { "$@" & BG_PID=$!; _pids+=("$BG_PID"); }
# Float comparison helper: within A B TOL_REL TOL_ABS -> |A-B| <= max(TOL_REL*|B|, TOL_ABS)
within() { awk -v a="$1" -v b="$2" -v r="$3" -v t="$4" 'BEGIN { d = a - b; if (d < 0) d = -d; m = r * (b < 0 ? -b : b); if (t > m) m = t; exit !(d <= m) }'; }
# wait_for SECONDS CMD...: poll until CMD succeeds.
wait_for() { local end=$((SECONDS + $1)); shift; until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.1; done; }

_cleanup() {
	local p
	for p in "${_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${_pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap _cleanup EXIT
# done_testing: the exit status reflects the TAP lines.
done_testing() { echo "1..$_tap_n"; [ "$_tap_failed" = 0 ]; exit $?; }

# node_matrix [full]: the Node.js builds the Node tests run on, one "LABEL PATH" line
# each: the official builds of tests/node/versions in $LS_NODE_CACHE (make test
# installs them) and the system's node as "system". With "full", only the newest
# official build and the system's node (the tests too slow to run on every version).
# A version that is not installed is listed all the same: node_usable says so.
# LS_NODE_ONLY="18.20.8 system" keeps only those labels (a quicker run by hand).
node_matrix() {
	local line
	_node_matrix "$@" | while read -r line; do
		[ -z "${LS_NODE_ONLY:-}" ] || [[ " $LS_NODE_ONLY " == *" ${line%% *} "* ]] && echo "$line"
	done
}
_node_matrix() {
	local here cache v last=
	here=$(dirname "${BASH_SOURCE[0]}")
	cache=${LS_NODE_CACHE:-/var/cache/loopscope/node}
	while read -r v; do
		[[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || continue
		[ "${1:-}" = full ] || echo "$v $cache/$v/bin/node"
		last=$v
	done <"$here/node/versions"
	[ "${1:-}" = full ] && [ -n "$last" ] && echo "$last $cache/$last/bin/node"
	command -v node >/dev/null 2>&1 && echo "system $(command -v node)"
}

# node_usable LABEL PATH: 0 if PATH runs; else one line saying so, and under CI=true a
# failed check (make test installs the matrix; without a registry it is missing).
node_usable() {
	"$2" --version >/dev/null 2>&1 && return 0
	if [ "${CI:-}" = true ]; then
		not_ok "node $1: $2 does not run (make test installs it from the npm registry)"
	else
		echo "# SKIP node $1: $2 does not run (make test installs it from the npm registry)"
	fi
	return 1
}

# on_node_matrix [full] -- "$@": run the calling test once per Node.js build of the
# matrix (node_matrix), each a child with NODE (the binary) and NODE_LABEL set, and exit
# with their combined status. In the child it returns at once. For tests that keep
# state across their checks (a tmux session, a long-lived server).
on_node_matrix() {
	local rc=0 v path
	[ -n "${NODE_LABEL:-}" ] && return 0
	while read -r v path <&3; do
		node_usable "$v" "$path" || { [ "${CI:-}" = true ] && rc=1; continue; }
		echo "# node $v ($path)"
		NODE=$path NODE_LABEL=$v "$BASH" "$0" || rc=1
	done 3< <(node_matrix "${1:-}")
	exit $rc
}
