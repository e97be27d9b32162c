#!/usr/bin/env bash
# timeout: 60
# 24-calibrate: `loopscope calibrate` measures this machine's probe-hit floor, caches it
# per boot, leaves nothing attached, and refuses bad input in one line. No figure is
# compared with a constant: only with each other (a USDT hit and an emulated uprobe hit
# are both a trap into an empty BPF program).
source "$(dirname "$0")/../lib.sh"
need_root
need_cmd jq
need_cmd bpftool
CACHE=/run/loopscope/calib.json
# jt FILTER FILE [ARGS...]: the jq filter holds, quietly.
jt() { local f=$1 file=$2; shift 2; jq -e "$@" "$f" "$file" >/dev/null; }

"$LOOPSCOPE" calibrate --refresh --json >"$TMP/a.json" 2>"$TMP/a.err"
check "calibrate --refresh --json exits 0 ($(head -c 200 "$TMP/a.err"))" [ $? = 0 ]
check "it measured (cached false) and says which boot: $(jq -c '{cached, boot_id}' "$TMP/a.json")" \
	jt '.cached == false and .boot_id == $b' "$TMP/a.json" --arg b "$(cat /proc/sys/kernel/random/boot_id)"
check "every figure is positive: $(jq -c '{usdt_hit_ns, usdt_nop5_hit_ns, uprobe_hit_ns, syscall_ns, tp_pair_ns, loop_ns}' "$TMP/a.json")" \
	jt '[.usdt_hit_ns, .usdt_nop5_hit_ns, .uprobe_hit_ns, .syscall_ns, .tp_pair_ns, .loop_ns] | all(. > 0)' "$TMP/a.json"
check "a USDT hit and an emulated uprobe hit cost alike (within 2x of each other)" \
	jt '(.usdt_hit_ns / .uprobe_hit_ns) as $r | $r > 0.5 and $r < 2' "$TMP/a.json"
check "CPU model and kernel named: $(jq -c '{cpu_model, cpu_family, kernel}' "$TMP/a.json")" \
	jt '.kernel == $k and (.cpu_model | length) > 0' "$TMP/a.json" --arg k "$(uname -r)"
check "nothing stays loaded after it exits" \
	bash -c '! bpftool prog show 2>/dev/null | grep -qE "name calib_(usdt|uprobe|sys_enter|sys_exit)"'

"$LOOPSCOPE" calibrate --json >"$TMP/b.json" 2>"$TMP/b.err"
check "a second run reads this boot's cache: same figures, cached true" \
	jt '.cached == true and .usdt_hit_ns == $a[0].usdt_hit_ns and .tp_pair_ns == $a[0].tp_pair_ns' \
		"$TMP/b.json" --slurpfile a "$TMP/a.json"
check "the cache is $CACHE, readable by everyone" [ "$(stat -c %a "$CACHE")" = 644 ]

line=$("$LOOPSCOPE" calibrate)
check "the line names the machine: '$(head -n 1 <<<"$line")'" \
	grep -qE '^machine: .+, kernel .+, usdt hit [0-9.]+ us, uprobe hit [0-9.]+ us, syscall [0-9.]+ us, tracepoint pair -?[0-9.]+ us$' <<<"$(head -n 1 <<<"$line")"
check "the second line gives the single-stepped hit and the hit on a 5-byte nop: '$(sed -n 2p <<<"$line")'" \
	grep -qE '^single-stepped uprobe hit [0-9.]+ us .*; usdt hit on a 5-byte nop [0-9.]+ us ' <<<"$(sed -n 2p <<<"$line")"

# A cache from another boot (or a damaged one) is measured over, not trusted.
jq '.boot_id = "00000000-0000-0000-0000-000000000000" | .usdt_hit_ns = 1' "$TMP/a.json" >"$CACHE"
"$LOOPSCOPE" calibrate --json >"$TMP/c.json"
check "another boot's cache is not used" jt '.cached == false and .usdt_hit_ns != 1' "$TMP/c.json"
echo '{"version": 1, "boot_id": ' >"$CACHE"
"$LOOPSCOPE" calibrate --json >"$TMP/d.json"
check "a damaged cache is measured over" jt '.cached == false' "$TMP/d.json"

"$LOOPSCOPE" calibrate --cpu 0 --json >"$TMP/e.json"
check "--cpu 0 measures pinned to CPU 0, not cached: $(jq -c '{cpu, cached}' "$TMP/e.json")" \
	jt '.cpu == 0 and .cached == false' "$TMP/e.json"

# bad input: one line, the right status
bad() {	# bad STATUS ARGS...: exit STATUS with one line on stderr
	local want=$1 rc
	shift
	"$LOOPSCOPE" calibrate "$@" >"$TMP/bad.out" 2>"$TMP/bad.err"
	rc=$?
	check "calibrate $* exits $want with one line ($(head -c 160 "$TMP/bad.err"))" \
		bash -c "[ $rc = $want ] && [ \$(wc -l <'$TMP/bad.err') = 1 ] && [ ! -s '$TMP/bad.out' ]"
}
bad 2 --cpu x
bad 2 --cpu -1
bad 2 --frobnicate
bad 2 extra
bad 1 --cpu 4095
if command -v setpriv >/dev/null; then
	setpriv --reuid=65534 --regid=65534 --clear-groups "$LOOPSCOPE" calibrate --refresh >"$TMP/np.out" 2>"$TMP/np.err"
	rc=$?
	check "unprivileged --refresh: exit 1, says to run as root ($(cat "$TMP/np.err"))" \
		bash -c "[ $rc = 1 ] && grep -q 'as root' '$TMP/np.err'"
fi
"$LOOPSCOPE" calibrate --refresh >/dev/null	# leave a good cache behind
done_testing
