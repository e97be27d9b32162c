#!/usr/bin/env bash
# timeout: 240
# 62-record-report: `loopscope report` on recordings of a reference loop with stalls and
# starvation, and of a Node.js process whose stall was sampled (stacks, a flame graph),
# rendered in headless Chromium (Debian's chromium): the pages load nothing from
# anywhere, render (the DOM has their sections and plots), the screenshot is not blank
# (non-background pixels counted by tests/lib.py's zlib PNG reader), and the console shows no
# error. REPORT_PNG=PATH keeps the screenshot (of the Node report).
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd chromium
need_cmd python3
need_cmd node

# A stall every second and a nextTick starvation every 1.5 s: 4 s hold both kinds.
bg "$LOOPDEMO" --block 150 --every 1000 --tick-starve 120 --every 1500 --io --duration 60
demo=$BG_PID
sleep 0.3
"$LOOPSCOPE" record -p "$demo" -d 4 -o "$TMP/r.lsr" 2>"$TMP/rec.err" || { cat "$TMP/rec.err"; exit 1; }
"$LOOPSCOPE" report "$TMP/r.lsr" -o "$TMP/report.html" 2>"$TMP/report.err"
check "report: exit 0" [ $? = 0 ]
check "report: nothing on stderr" test ! -s "$TMP/report.err"
html=$TMP/report.html
# Self-contained: no URL, script, stylesheet link or source but inline data.
selfcontained() { ! sed 's/src="data:image\/svg+xml;base64,[A-Za-z0-9+\/=]*"//g' "$1" | grep -qiE 'https?:|<script|<link|src=|url\(|@import'; }
check "self-contained: no URL, script, link, external source" selfcontained "$html"
check "the target and its runtime" grep -q "<td>$demo</td><td>loopdemo</td><td>reference</td>" "$html"
check "worst episodes: a stall in timers listed" grep -qE '</span>stall</td><td>timers</td><td>1[0-9][0-9]ms</td>' "$html"
check "worst episodes: a nextTick starvation listed" grep -q '</span>tick_starvation</td>' "$html"

# A Node.js process that blocks its loop for 700 ms in a synchronous callback: the stall
# sampler takes its stacks, the recording keeps them, the report draws them. The block
# starts on SIGUSR2 once the recorder has attached; the recorder stops (SIGINT) once the
# block is over.
bg node "$(dirname "$0")/../node/block.js" sync 700 0 >"$TMP/node.out"
nodepid=$BG_PID
"$LOOPSCOPE" record -p "$nodepid" -d 30 -o "$TMP/n.lsr" 2>"$TMP/nrec.err" &
nrec=$!
wait_for 30 grep -q "loopscope record: recording" "$TMP/nrec.err" || { cat "$TMP/nrec.err"; exit 1; }
kill -USR2 "$nodepid"
wait_for 30 grep -q "blocked sync" "$TMP/node.out" || echo "# block.js did not say it blocked"
kill -INT "$nrec"
wait "$nrec" || { cat "$TMP/nrec.err"; exit 1; }
"$LOOPSCOPE" report "$TMP/n.lsr" -o "$TMP/node.html" 2>"$TMP/nreport.err"
check "node report: exit 0" [ $? = 0 ]
nhtml=$TMP/node.html
check "node report: self-contained (the flame graph inline)" selfcontained "$nhtml"
check "node report: the stall has a flame graph" grep -q '<img class="flame" alt="flame graph of episode 1" src="data:image/svg+xml;base64,' "$nhtml"
check "node report: its stacks name the blocking function" grep -qE '^ +block +.*/tests/node/block\.js:[0-9]+$' "$nhtml"
check "node report: the flame graph is the writer's SVG" bash -c \
	"sed -n 's/.*src=\"data:image\/svg+xml;base64,\([^\"]*\)\".*/\1/p' '$nhtml' | head -1 | base64 -d | grep -q 'block .*block.js'"

# Chromium: no sandbox as root; its own profile in TMP, no network reachable anyway.
chrome() {
	timeout 90 chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$TMP/chrome" \
		--enable-logging=stderr --v=0 --window-size=1000,2600 "$@"
}
chrome --dump-dom "file://$html" >"$TMP/dom.html" 2>"$TMP/chrome1.err"
chrome --dump-dom "file://$nhtml" >"$TMP/ndom.html" 2>"$TMP/chrome3.err"
check "chromium: the node report renders with its flame graph" grep -q '<img class="flame"' "$TMP/ndom.html"
check "chromium: the page loads and renders (DOM has the sections)" \
	bash -c "grep -q '<h2>Episode timeline</h2>' '$TMP/dom.html' && grep -q '<h2>Worst episodes</h2>' '$TMP/dom.html'"
check "chromium: two plots (utilization, delay) and a timeline, as SVG" \
	bash -c "[ \$(grep -o '<svg class=\"chart\"' '$TMP/dom.html' | wc -l) = 3 ]"
png=${REPORT_PNG:-$TMP/report.png}
chrome --screenshot="$png" "file://$nhtml" >/dev/null 2>"$TMP/chrome2.err"
check "chromium: a screenshot" test -s "$png"
check "chromium: no console message or page error" \
	bash -c "! grep -hiE 'CONSOLE|Uncaught|SyntaxError|Failed to load|net::ERR' '$TMP/chrome1.err' '$TMP/chrome2.err' '$TMP/chrome3.err'"

# Count pixels that differ from the page's background (the top-left pixel), with the
# zlib-only PNG reader of tests/lib.py.
count=$(python3 -B - "$png" "$(dirname "$0")/.." <<'EOF'
import sys
sys.path.insert(0, sys.argv[2])
from lib import png_pixels
w, h, rows = png_pixels(sys.argv[1])
bg = rows[0][0]
print(sum(1 for r in rows for px in r if px != bg), w * h)
EOF
)
set -- $count
check "screenshot is not blank: ${1:-?} of ${2:-?} pixels differ from the background" \
	bash -c "[ -n '${1:-}' ] && [ ${1:-0} -gt $(( ${2:-0} / 100 )) ]"
done_testing
