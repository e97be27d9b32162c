#!/usr/bin/env bash
# timeout: 180
# 69-fuzz: every libFuzzer harness in tests/fuzz (HTTP parser, /events JSON reader, recording reader,
# web config parser; clang-14 -fsanitize=fuzzer,address,undefined) runs LS_FUZZ_TEST_TIME
# seconds (make test: 4) from its corpus (its seeds plus what earlier runs found, kept in
# build/fuzz/corpus) without a crash, a leak or a sanitizer report. The long runs are
# make fuzz's (FUZZ_TIME, 600 s each by default).
source "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")/../.."
for n in $(ls tests/fuzz/*_fuzz.c | sed 's|.*/||; s|\.c$||'); do
	[ -x "$LS_BUILD/fuzz/$n" ] || skip "no $LS_BUILD/fuzz/$n: run make test (it builds the harnesses)"
	out=$(LS_BUILD=$LS_BUILD tests/fuzz/run.sh "${LS_FUZZ_TEST_TIME:-4}" "$n")
	if [ $? = 0 ]; then ok "${out#ok - }"; else not_ok "${out#not ok - }"; fi
done
done_testing
