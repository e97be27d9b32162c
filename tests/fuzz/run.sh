#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS NAME...: run each libFuzzer harness build/fuzz/NAME for
# SECONDS on a corpus started from its seeds (tests/fuzz/seeds/NAME; for the recording
# reader, the recordings the unit tests write: whole, cut, damaged, with stacks), kept
# in build/fuzz/corpus/NAME so longer runs build on shorter ones. A crash leaves its
# input in build/fuzz/ and fails the run.
set -u
secs=$1; shift
build=${LS_BUILD:-build}
rc=0
for name in "$@"; do
	corpus="$build/fuzz/corpus/$name"
	mkdir -p "$corpus"
	cp -n tests/fuzz/seeds/"$name"/* "$corpus"/ 2>/dev/null
	if [ "$name" = record_fuzz ]; then
		for t in recfile_test replay_test; do
			LS_FUZZ_SEEDS=$corpus "$build/asan/tests/$t" >/dev/null 2>&1 ||
				{ echo "not ok - $name: its seed writer $t failed"; rc=1; continue 2; }
		done
	fi
	out=$("$build/fuzz/$name" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=1024 \
		-artifact_prefix="$build/fuzz/$name-" -print_final_stats=1 "$corpus" 2>&1)
	st=$?
	runs=$(printf '%s\n' "$out" | awk '/stat::number_of_executed_units/ {print $2}')
	if [ "$st" = 0 ]; then
		echo "ok - $name: ${runs:-?} runs in ${secs}s, no crash"
	else
		echo "not ok - $name: exit $st after ${runs:-?} runs"
		printf '%s\n' "$out" | grep -E 'ERROR|SUMMARY|artifact' | head -5 | sed 's/^/# /'
		rc=1
	fi
done
exit $rc
