#!/usr/bin/env bash
# timeout: 240
# loopscope profile on a running Node.js, in each format: the blocking functions of
# tests/node/stacks/app.js show up by name in the folded stacks, `go tool pprof -top`
# reads the .pb.gz, the .svg is one self-contained document, --stalls keeps only
# episode samples; bad outputs fail before anything is attached; a node without
# .symtab still gets JS frames (V8's metadata is in .dynsym too).
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd node
need_cmd go
need_cmd strip
APP=$(cd "$(dirname "$0")/../node/stacks" && pwd)/app.js

# app.js blocks for 160 ms every 410 ms, its six functions in turn: a cycle is 2.5 s,
# and each profile lasts one to two cycles
start_app() {	# start_app NODE: sets APP_PID once it is ready
	bg env BLOCK_MS=160 GAP_MS=250 "$1" "$APP" >"$TMP/app.out"
	APP_PID=$BG_PID
	wait_for 20 grep -q ready "$TMP/app.out"
}

# bad outputs: before attaching, so quickly and with the right status
"$LOOPSCOPE" profile -p 1 -d 1 -o "$TMP/x.txt" 2>"$TMP/err"; rc=$?
check "an unknown extension is bad usage (2): $(cat "$TMP/err")" [ "$rc" = 2 ]
check "it names the formats" grep -q "\.folded, \.svg or \.pb\.gz" "$TMP/err"

# the stripped copy is made meanwhile
strip -o "$TMP/node-stripped" "$(command -v node)" &
strip_pid=$!
start_app node || { not_ok "app did not start"; done_testing; }
"$LOOPSCOPE" profile -p "$APP_PID" -d 1 -o /nonexistent/dir/p.svg 2>"$TMP/err"; rc=$?
check "an unwritable -o fails (1): $(cat "$TMP/err")" [ "$rc" = 1 ]
check "before attaching (no progress line)" bash -c "! grep -q 'samples' '$TMP/err'"
"$LOOPSCOPE" profile -p 999999999 -d 1 -o "$TMP/p.folded" 2>"$TMP/err"; rc=$?
check "no such process fails (1)" [ "$rc" = 1 ]
check "and leaves no output file" [ ! -e "$TMP/p.folded" ]

# the three formats at once (nothing here is timed: the attaches may overlap)
"$LOOPSCOPE" profile -p "$APP_PID" -d 4 -o "$TMP/p.folded" 2>"$TMP/folded.err" &
folded_pid=$!
"$LOOPSCOPE" profile -p "$APP_PID" -d 2 -o "$TMP/p.pb.gz" 2>"$TMP/pb.err" &
pb_pid=$!
"$LOOPSCOPE" profile -p "$APP_PID" -d 2.5 --stalls -o "$TMP/p.svg" 2>"$TMP/svg.err" &
svg_pid=$!

wait "$folded_pid"; rc=$?
check "profile .folded exits 0 (rc=$rc)" [ "$rc" = 0 ]
check "a progress line and the file named" grep -q "wrote $TMP/p.folded" "$TMP/folded.err"
n=0
for fn in handleReport reconcile hashRows hotPath esmCrunch; do
	grep -q "$fn $APP:\|$fn file://" "$TMP/p.folded" && n=$((n + 1))
done
check "the blocking functions are named with their file in the folded stacks ($n of 5)" [ "$n" -ge 4 ]
check "folded lines are 'frames count'" awk 'NF < 2 || $NF !~ /^[0-9]+$/ { bad = 1 } END { exit bad }' "$TMP/p.folded"

wait "$pb_pid"; rc=$?
check "profile .pb.gz exits 0" [ "$rc" = 0 ]
go tool pprof -top "$TMP/p.pb.gz" >"$TMP/top.txt" 2>&1
check "go tool pprof -top reads it" grep -q "flat%" "$TMP/top.txt"

wait "$svg_pid"; rc=$?
check "profile --stalls .svg exits 0" [ "$rc" = 0 ]
check "--stalls counts episodes" grep -q "samples in [0-9]* episodes" "$TMP/svg.err"
check "the svg is one document with no network reference" \
	bash -c "grep -q '<svg' '$TMP/p.svg' && ! grep -q 'http://[^w]\|https://' '$TMP/p.svg'"
kill "$APP_PID"; wait "$APP_PID" 2>/dev/null

wait "$strip_pid"
start_app "$TMP/node-stripped" || { not_ok "stripped app did not start"; done_testing; }
"$LOOPSCOPE" profile -p "$APP_PID" -d 4 -o "$TMP/s.folded" 2>"$TMP/err"; rc=$?
check "a node without .symtab: profile exits 0" [ "$rc" = 0 ]
n=0
for fn in handleReport reconcile hashRows hotPath esmCrunch; do
	grep -q "$fn $APP:\|$fn file://" "$TMP/s.folded" && n=$((n + 1))
done
check "a node without .symtab: JS frames still named ($n of 5)" [ "$n" -ge 3 ]
done_testing
