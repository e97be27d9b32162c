#!/usr/bin/env bash
# tests/soak.sh [SECONDS]: `make soak` (not part of make test). serve (optimized build)
# attached to three loopdemos and a Node.js process, 1,000 concurrent clients
# (tests/tools/http_load.py: 70% /metrics, 30% /events, a 1/s scraper) on 127.0.0.1
# for SECONDS (default 600); prints serve's RSS and open descriptors at the start (after
# the first batch of load, a fifth of the run up to a minute) and at the end, and the
# request counts. Fails on a reset,
# an empty reply, a failed scrape of the 1/s scraper, or serve dying.
set -u
secs=${1:-600}
cd "$(dirname "$0")/.."
build=${LS_BUILD:-build}
tmp=$(mktemp -d /tmp/loopscope-soak.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
for a in "--block 20 --every 100" "--io" "--tick-starve 150 --every 2000"; do
	# shellcheck disable=SC2086
	"$build/loopdemo" $a >/dev/null 2>&1 &
	pids+=($!)
done
if command -v node >/dev/null; then
	node -e 'setInterval(() => { const a = []; for (let i = 0; i < 1e4; i++) a.push({ i }); }, 20)' &
	pids+=($!)
fi
sleep 0.5
args=()
for p in "${pids[@]}"; do args+=(-p "$p"); done
"$build/loopscope" serve "${args[@]}" --listen 127.0.0.1:0 2>"$tmp/serve.err" &
serve=$!
pids+=($serve)
for _ in $(seq 100); do grep -q listening "$tmp/serve.err" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\)\/.*/\1/p' "$tmp/serve.err")
[ -n "$port" ] || { echo "soak: serve did not start: $(cat "$tmp/serve.err")"; exit 1; }
mem() { awk '/^VmRSS/ {print $2 " kB"}' "/proc/$serve/status"; }
fds() { ls "/proc/$serve/fd" | wc -l; }
start=$(date +%s)
rss0= fd0= n=0
while [ $(( $(date +%s) - start )) -lt "$secs" ]; do
	left=$(( secs - ($(date +%s) - start) ))
	# Batches of a fifth of the run (10 to 60 s), so even a short run has a start and an end.
	batch=$(( secs / 5 < 10 ? 10 : secs / 5 > 60 ? 60 : secs / 5 ))
	batch=$(( left < batch ? left : batch ))
	[ "$batch" -ge 5 ] || break
	python3 tests/tools/http_load.py --port "$port" --clients 1000 --rounds 1000 --events-share 0.3 \
		--scraper --deadline "$batch" > "$tmp/batch-$n.json" || { echo "soak: the load tool failed"; exit 1; }
	kill -0 "$serve" 2>/dev/null || { echo "soak: serve died: $(tail -3 "$tmp/serve.err")"; exit 1; }
	if [ -z "$rss0" ]; then rss0=$(mem); fd0=$(fds); fi
	n=$((n + 1))
done
rss1=$(mem) fd1=$(fds)
python3 - "$tmp" "$n" "$secs" "$rss0" "$rss1" "$fd0" "$fd1" <<'PY'
import glob, json, sys
tmp, n, secs, rss0, rss1, fd0, fd1 = sys.argv[1:]
tot, scr, bad = {}, [0, 0], {}
for f in glob.glob(tmp + "/batch-*.json"):
    o = json.load(open(f))
    for k in ("metrics", "events"):
        for kind, v in o[k].items():
            tot[kind] = tot.get(kind, 0) + v
    scr[0] += o["scraper"]["ok"]; scr[1] += o["scraper"]["total"]
print("soak: %s s, %s batches of 1,000 clients: answers %s; 1/s scraper %d of %d" % (secs, n, tot, scr[0], scr[1]))
print("soak: serve RSS %s after the first batch -> %s at the end; open fds %s -> %s" % (rss0, rss1, fd0, fd1))
failed = {k: v for k, v in tot.items() if k not in ("ok", "busy")}
sys.exit(1 if failed or scr[0] != scr[1] else 0)
PY
