#!/usr/bin/env bash
# timeout: 120
# 23-install: `make install` puts loopscope, loopdemo and the man page under PREFIX
# (and DESTDIR), and the installed agent runs.
source "$(dirname "$0")/../lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)

make -s -C "$SRC" install PREFIX=/opt/lstest DESTDIR="$TMP/root" >"$TMP/make.log" 2>&1; rc=$?
check "make install PREFIX=/opt/lstest DESTDIR=... exits 0 (rc $rc)" [ "$rc" = 0 ]
P=$TMP/root/opt/lstest
check "bin/loopscope installed, executable" test -x "$P/bin/loopscope"
check "bin/loopdemo installed, executable" test -x "$P/bin/loopdemo"
check "share/man/man1/loopscope.1 installed" test -f "$P/share/man/man1/loopscope.1"
check "the man page is loopscope(1) and documents stat" \
	bash -c "grep -q '^.TH LOOPSCOPE 1' '$P/share/man/man1/loopscope.1' && grep -q 'STAT OPTIONS' '$P/share/man/man1/loopscope.1'"
check "the installed agent runs (--version)" bash -c "'$P/bin/loopscope' --version | grep -q '^loopscope '"
check "the installed agent lists stat (--help)" bash -c "'$P/bin/loopscope' --help | grep -q '^  stat '"
check "nothing installed outside DESTDIR" bash -c "[ ! -e /opt/lstest ]"
done_testing
