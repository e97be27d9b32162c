#!/usr/bin/env bash
# 64-record-fuzz.sh: the recording reader under libFuzzer (tests/fuzz/record_fuzz.c)
# for a bounded time; `make fuzz FUZZ_SECONDS=600` is the long run.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
[ -x "$LS_BUILD/fuzz/record_fuzz" ] || skip "needs $LS_BUILD/fuzz/record_fuzz (make test builds it)"
check "record reader: no crash, leak or hang in ${FUZZ_SECONDS:-25}s of fuzzing" \
	env FUZZ_SECONDS="${FUZZ_SECONDS:-25}" "$(dirname "$0")/../fuzz/run.sh"
done_testing
