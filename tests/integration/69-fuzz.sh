#!/usr/bin/env bash
# timeout: 180
# 69-fuzz: every libFuzzer harness in tests/fuzz (HTTP parser, /events JSON reader, recording reader,
# web config parser; clang-14 -fsanitize=fuzzer,address,undefined) runs LS_FUZZ_TEST_TIME
# seconds (make test: 4) from its corpus (its seeds plus what earlier runs found, kept in
# build/fuzz/corpus) without a crash, a leak or a sanitizer report. The long runs are
# make fuzz's (FUZZ_TIME, 600 s each by default).
# The harnesses run side by side, as many at once as there are CPUs (nothing else of the
# suite runs meanwhile), each with its own corpus; their results are reported in order.
source "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")/../.."
names=$(ls tests/fuzz/*_fuzz.c | sed 's|.*/||; s|\.c$||')
for n in $names; do
	[ -x "$LS_BUILD/fuzz/$n" ] || skip "no $LS_BUILD/fuzz/$n: run make test (it builds the harnesses)"
done
jobs=$(nproc 2>/dev/null || echo 1)
running=()
for n in $names; do
	if [ "${#running[@]}" -ge "$jobs" ]; then
		wait "${running[0]}"
		running=("${running[@]:1}")
	fi
	LS_BUILD=$LS_BUILD tests/fuzz/run.sh "${LS_FUZZ_TEST_TIME:-4}" "$n" >"$TMP/$n.out" 2>&1 &
	_pids+=("$!")
	running+=("$!")
done
for p in "${running[@]}"; do wait "$p"; done
for n in $names; do
	out=$(grep -E '^(not )?ok - ' "$TMP/$n.out" | head -1)
	case $out in
	"ok - "*) ok "${out#ok - }" ;;
	"not ok - "*) not_ok "${out#not ok - }"; grep '^#' "$TMP/$n.out" ;;
	*) not_ok "$n: no result ($(tail -c 300 "$TMP/$n.out"))" ;;
	esac
done
done_testing
