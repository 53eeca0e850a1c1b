#!/usr/bin/env bash
# The adaptive low-impact mode end to end, on synthetic pressure: a fake
# cgroup directory (pressure_cgroup) whose io.pressure `some total=` a
# background loop raises far faster than time passes (stalled all the
# time), so the mode must hold the reader at its floor: the backup still
# completes, says it was held back, and status --json's last_slowed_seconds
# is > 0.  With low_impact = off it is 0; a pressure_cgroup that cannot be
# read only costs a warning.  (No timing asserted: only whether the mode
# engaged; the measured times are printed.)
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
sv=$(mk_subvol li)
head -c $((24 << 20)) /dev/urandom >"$sv/big"
echo small >"$sv/small"
cg=$TEST_TMP/cg
mkdir -p "$cg" "$TEST_TMP/state"

conf() {   # EXTRA_AGENT_LINE
	printf '[agent]\nhost = lihost\nstate_dir = %s\n%s\n[partition li]\npath = %s\n' \
		"$TEST_TMP/state" "$1" "$sv" >"$TEST_TMP/li.conf"
}

# io: +10 s of stall every 0.05 s; cpu: calm
pressure_loop() {
	local t=0
	while [ ! -e "$cg/stop" ]; do
		t=$((t + 10000000))
		printf 'some avg10=99.00 avg60=99.00 avg300=99.00 total=%s\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n' "$t" >"$cg/io.tmp"
		mv "$cg/io.tmp" "$cg/io.pressure"
		sleep 0.05
	done
}
printf 'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n' >"$cg/cpu.pressure"
pressure_loop &
ploop=$!
stop_pressure() { touch "$cg/stop"; wait "$ploop" 2>/dev/null || true; }
trap stop_pressure EXIT
sleep 0.2

slowed() {   # STORE: last_slowed_seconds of li
	"$SNAPSHIP" --config "$TEST_TMP/li.conf" status --from "$1" --json |
		python3 -c 'import json,sys; d=json.load(sys.stdin); r=[p for p in (d if isinstance(d, list) else d["partitions"]) if p["partition"] == "li"]; print(r[0]["last_slowed_seconds"])'
}

# 1. under (synthetic) pressure: held back, finished
conf "pressure_cgroup = $cg"
mkdir -p "$TEST_TMP/s1"
t0=$(date +%s.%N)
timeout 120 "$SNAPSHIP" --config "$TEST_TMP/li.conf" -v backup li --to "$TEST_TMP/s1" \
	>"$TEST_TMP/out1" 2>&1 || fail "backup under pressure failed: $(tail -5 "$TEST_TMP/out1")"
t1=$(date +%s.%N)
grep -q "the low-impact mode held the backup back" "$TEST_TMP/out1" ||
	fail "no held-back line under pressure: $(tail -5 "$TEST_TMP/out1")"
s1=$(slowed "$TEST_TMP/s1")
python3 -c "import sys; sys.exit(0 if float('$s1') > 0 else 1)" ||
	fail "last_slowed_seconds is $s1 after a backup held at the floor"
"$SNAPSHIP" --config "$TEST_TMP/li.conf" status --from "$TEST_TMP/s1" >"$TEST_TMP/st1" 2>&1 || true
grep -q "^li: the last backup was held back" "$TEST_TMP/st1" ||
	fail "status does not say the backup was held back: $(cat "$TEST_TMP/st1")"
echo "under pressure: wall $(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}') s, slowed $s1 s"
"$SNAPSHIP" --config "$TEST_TMP/li.conf" restore li --from "$TEST_TMP/s1" --to "$TEST_BTRFS/li-r" \
	>"$TEST_TMP/out" 2>&1 || fail "restore failed: $(cat "$TEST_TMP/out")"
assert_trees_equal "$sv" "$TEST_BTRFS/li-r"

# 2. low_impact = off: never held back
conf "low_impact = off"
mkdir -p "$TEST_TMP/s2"
"$SNAPSHIP" --config "$TEST_TMP/li.conf" -v backup li --to "$TEST_TMP/s2" \
	>"$TEST_TMP/out2" 2>&1 || fail "backup with low_impact = off failed: $(tail -5 "$TEST_TMP/out2")"
! grep -q "held the backup back" "$TEST_TMP/out2" || fail "low_impact = off held the backup back"
s2=$(slowed "$TEST_TMP/s2")
[ "$s2" = 0 ] || [ "$s2" = 0.0 ] || fail "last_slowed_seconds is $s2 with low_impact = off"

# 3. an unreadable pressure_cgroup: a warning, the backup goes on
conf "pressure_cgroup = $TEST_TMP/no-such-cgroup"
mkdir -p "$TEST_TMP/s3"
"$SNAPSHIP" --config "$TEST_TMP/li.conf" backup li --to "$TEST_TMP/s3" \
	>"$TEST_TMP/out3" 2>&1 || fail "backup with an unreadable pressure_cgroup failed: $(tail -5 "$TEST_TMP/out3")"
grep -q "cannot read $TEST_TMP/no-such-cgroup/io.pressure" "$TEST_TMP/out3" ||
	fail "no warning about the unreadable pressure_cgroup: $(cat "$TEST_TMP/out3")"
no_snapship_snapshots "$TEST_BTRFS"
stop_pressure
trap - EXIT
echo PASS
