#!/usr/bin/env bash
# tests/fuzz/run.sh: run every libFuzzer harness in $LS_BUILD/fuzz for FUZZ_SECONDS
# each (default 25), from seeds the unit tests write (recfile_test leaves its
# recordings in LS_FUZZ_SEEDS), keeping the grown corpus in $LS_BUILD/fuzz/corpus/NAME.
# A crash leaves its input in $LS_BUILD/fuzz/ (crash-*, leak-*, timeout-*) and fails.
#   make fuzz FUZZ_SECONDS=600     the long run
set -u
BUILD=${LS_BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}
secs=${FUZZ_SECONDS:-25}
status=0
for f in "$BUILD"/fuzz/*_fuzz; do
	[ -x "$f" ] || { echo "fuzz: no harness in $BUILD/fuzz; run 'make test' or 'make fuzz'" >&2; exit 1; }
	name=$(basename "$f" _fuzz)
	corpus=$BUILD/fuzz/corpus/$name
	mkdir -p "$corpus"
	case $name in
	record)
		# The unit tests' recordings: whole, cut, damaged, level-0 zlib, with stacks.
		for t in recfile_test replay_test; do
			LS_FUZZ_SEEDS=$corpus "$BUILD/asan/tests/$t" >/dev/null 2>&1 || { echo "fuzz: $t failed" >&2; exit 1; }
		done
		;;
	esac
	echo "# fuzzing $name for ${secs}s ($(ls "$corpus" | wc -l) inputs in $corpus)"
	(cd "$BUILD/fuzz" && "$f" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
		"$corpus" 2>"$BUILD/fuzz/$name.log")
	rc=$?
	grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$BUILD/fuzz/$name.log" | sed 's/^/# /'
	if [ $rc -ne 0 ]; then
		echo "fuzz: $name failed (status $rc); see $BUILD/fuzz/$name.log" >&2
		grep -E 'ERROR|SUMMARY|Test unit written' "$BUILD/fuzz/$name.log" | head -5 >&2
		status=1
	fi
done
exit $status
