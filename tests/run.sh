#!/usr/bin/env bash
# tests/run.sh TEST...: libuv-style runner. Each test is its own process with a
# timeout. Exit status 0 = pass, 77 = skip (needs something the machine lacks),
# anything else = fail. A test that prints TAP lines ("ok N - ...", "not ok N - ...")
# counts each line as one result. With CI=true a skip counts as a failure: CI machines
# have root, BPF, node and prometheus, so nothing may be skipped there.
# A test may set its own timeout with a line "# timeout: SECONDS" (default 120).
set -u
passed=0 failed=0 skipped=0
failures=()
logdir=${LS_BUILD:-build}/test-logs
mkdir -p "$logdir"
# cmocka speaks TAP, so every unit-test case is counted on its own.
export CMOCKA_MESSAGE_OUTPUT=TAP

# The log starts by naming the machine class (trap costs differ an order of magnitude
# between machines of our kind): `loopscope calibrate`, cached per boot. A machine
# where it cannot run says why on the same line; the tests still run.
calib_bin=${LS_BUILD:-build}/loopscope
if [ ! -x "$calib_bin" ]; then
	echo "machine: not calibrated: $calib_bin missing (run make)"
elif ! calib_out=$("$calib_bin" calibrate 2>&1); then
	echo "machine: not calibrated: $(echo "$calib_out" | tail -n 1)"
else
	echo "$calib_out"
fi

for t in "$@"; do
	name=$(basename "$t")
	limit=$(grep -m1 -oE '^(#|//) timeout: [0-9]+' "$t" 2>/dev/null | grep -oE '[0-9]+$')
	limit=${limit:-120}
	log="$logdir/$name.log"
	start=$EPOCHREALTIME
	timeout -k 5 "$limit" "$t" >"$log" 2>&1 </dev/null
	rc=$?
	secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	tap_ok=$(grep -cE '^ok [0-9]+' "$log")
	tap_fail=$(grep -cE '^not ok [0-9]+' "$log")
	if [ "$rc" = 77 ]; then
		reason=$(grep -m1 -E '^SKIP' "$log" || echo "SKIP (no reason given)")
		if [ "${CI:-}" = true ]; then
			echo "FAIL $name: skipped under CI=true: $reason"
			failed=$((failed + 1)); failures+=("$name")
		else
			echo "SKIP $name: $reason"
			skipped=$((skipped + 1))
		fi
		continue
	fi
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "FAIL $name: timed out after ${limit}s"
		tap_fail=$((tap_fail + 1))
	elif [ "$rc" != 0 ] && [ "$tap_fail" = 0 ]; then
		tap_fail=1   # crashed or failed without saying which check
	fi
	if [ "$tap_ok" = 0 ] && [ "$tap_fail" = 0 ]; then
		tap_ok=1     # a plain test that exited 0
	fi
	passed=$((passed + tap_ok))
	failed=$((failed + tap_fail))
	if [ "$tap_fail" -gt 0 ]; then
		echo "FAIL $name ($secs s, $tap_ok ok, $tap_fail failed; log: $log)"
		grep -E '^not ok|FAIL|ERROR|error|Assert|Sanitizer|runtime error' "$log" | head -20 | sed 's/^/    /'
		tail -n 15 "$log" | sed 's/^/    | /'
		failures+=("$name")
	else
		echo "PASS $name ($secs s, $tap_ok ok)"
	fi
done

[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" = 0 ]
