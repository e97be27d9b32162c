#!/usr/bin/env bash
# tests/tools/neighbour.sh CMD [ARGS...]: run CMD while a neighbour keeps about one CPU
# busy: a Node.js HTTP server (tests/node/server.js) under wrk (one thread, 8
# connections) on 127.0.0.1, restarted in 10-minute rounds, stopped by PID when CMD
# ends (at most 90 minutes). Prints the neighbour's request rate of each round to
# stderr and exits with CMD's status. How the suite was run loaded (issue 14):
#   CI=true tests/tools/neighbour.sh bash .ci/run
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: neighbour.sh CMD [ARGS...]" >&2; exit 2; }
for t in node wrk; do command -v $t >/dev/null || { echo "neighbour: needs $t (apt-get install $t)" >&2; exit 2; }; done
tmp=$(mktemp -d /tmp/loopscope-neighbour.XXXXXX)
node "$ROOT/tests/node/server.js" 0 >"$tmp/srv.out" 2>&1 &
srv=$!
for _ in $(seq 100); do grep -q listening "$tmp/srv.out" && break; sleep 0.1; done
port=$(awk '/listening/ { print $2 }' "$tmp/srv.out")
[ -n "$port" ] || { echo "neighbour: the server did not start: $(cat "$tmp/srv.out")" >&2; kill "$srv"; exit 2; }
(
	end=$((SECONDS + 5400))
	while [ $SECONDS -lt $end ]; do
		wrk -t1 -c8 -d600s "http://127.0.0.1:$port/" >"$tmp/wrk.out" 2>&1
		echo "neighbour: $(awk '/Requests\/sec/ { print $2 }' "$tmp/wrk.out") req/s over the last round" >&2
	done
) &
load=$!
stop() {
	pkill -P "$load" 2>/dev/null	# the running wrk, by its parent's PID
	kill "$load" "$srv" 2>/dev/null
	wait "$load" "$srv" 2>/dev/null
	rm -rf "$tmp"
}
trap stop EXIT
echo "neighbour: server pid $srv on 127.0.0.1:$port under wrk -t1 -c8 (pid $load's child)" >&2
"$@"
