#!/usr/bin/env bash
# Errors are clear and clean (design §1 step 7, §5): every failing backup
# exits 1 (runtime) or 2 (usage/config), says what is wrong in words an
# operator can act on, and leaves no snapshot, no journal entry, no visible
# backup and no temporary object in the store.  Covered:
#   - bad sources: missing path, a file, not on btrfs, a plain directory on
#     btrfs, --snapshot-dir on another filesystem;
#   - no privileges (as user nobody): permission/root named;
#   - a missing store directory; bad config files (unknown key/section, bad
#     value: file:line and key, exit 2); usage errors (exit 2);
#   - injected faults (SNAPSHIP_FAULT) at every stage of a backup;
#   - a failed snapshot release: the snapshot stays in the journal and
#     `snapship clean` removes it;
#   - a crash (kill -9 mid-stream of a rate-limited backup): the snapshot and
#     its journal entry stay, nothing is visible under a final name, and
#     `snapship clean` / the next backup removes the snapshot.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 setpriv
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"

state=$TEST_TMP/state
store=$TEST_TMP/store
mkdir -p "$store"
part=$(mk_subvol err-part)
bind=""
bgpid=""

cleanup() {
	[ -n "$bgpid" ] && kill -9 "$bgpid" 2>/dev/null && wait "$bgpid" 2>/dev/null
	if [ -n "$bind" ]; then
		umount "$bind" 2>/dev/null || umount -l "$bind" 2>/dev/null
		rmdir "$bind" 2>/dev/null
	fi
	"$SNAPSHIP" --state-dir "$state" clean >/dev/null 2>&1
	local sv
	for sv in "$TEST_BTRFS/err-nobody/part" "$part"; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT

"$GENDATA" "$part" --json-bytes 8M --json-file-size 2M --small-files 100 --seed 2 >/dev/null

backups() {	# number of committed backups of err-part, via list --json
	"$SNAPSHIP" list --from "$store" err-part --json |
		python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

# clean_state WHAT [STATE] [STORE]: nothing left behind after WHAT
clean_state() {
	local what=$1 st=${2:-$state} sto=${3:-$store} left
	no_snapship_snapshots "$TEST_BTRFS"
	if [ -d "$st/journal" ] && [ -n "$(ls -A "$st/journal")" ]; then
		fail "$what: journal not empty: $(ls -A "$st/journal")"
	fi
	left=$(find "$sto" -name '.*tmp-*' -o -name '*.tmp' 2>/dev/null)
	[ -z "$left" ] || fail "$what: temporary objects left in the store: $left"
}

# expect_fail CODE REGEX WHAT -- CMD...: CMD exits CODE, stderr matches REGEX
# (extended, case-insensitive), nothing is left behind, no backup appears.
expect_fail() {
	local code=$1 re=$2 what=$3 rc=0 before
	shift 4
	before=$(backups)
	"$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	echo "-- $what: exit $rc: $(head -c 600 "$TEST_TMP/err")"
	[ "$rc" = "$code" ] || { cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "$what: exit $rc, expected $code"; }
	grep -qiE -- "$re" "$TEST_TMP/err" || fail "$what: the message does not match /$re/"
	[ "$(backups)" = "$before" ] || fail "$what: a new backup is listed after the failure"
	clean_state "$what"
}

S=("$SNAPSHIP" --state-dir "$state")

# ---- bad sources ------------------------------------------------------------------

expect_fail 1 'does not exist|no such file' "missing path" -- \
	"${S[@]}" backup "$TEST_BTRFS/no-such-partition" --to "$store"
printf 'x\n' >"$TEST_BTRFS/a-file"
expect_fail 1 'not a directory' "a file, not a directory" -- \
	"${S[@]}" backup "$TEST_BTRFS/a-file" --to "$store" --name err-part
rm "$TEST_BTRFS/a-file"
mkdir -p "$TEST_TMP/not-btrfs"
[ "$(stat -f -c %T "$TEST_TMP/not-btrfs")" != btrfs ] || skip "TEST_TMP is on btrfs"
expect_fail 1 'btrfs' "not on btrfs" -- \
	"${S[@]}" backup "$TEST_TMP/not-btrfs" --to "$store" --name err-part
mkdir -p "$TEST_BTRFS/plain-dir"
expect_fail 1 'subvolume' "plain directory on btrfs" -- \
	"${S[@]}" backup "$TEST_BTRFS/plain-dir" --to "$store" --name err-part
rmdir "$TEST_BTRFS/plain-dir"
expect_fail 1 'same filesystem|other filesystem|different filesystem' "--snapshot-dir on another filesystem" -- \
	"${S[@]}" backup "$part" --to "$store" --snapshot-dir "$TEST_TMP/snaps/here"
[ ! -e "$TEST_TMP/snaps" ] || fail "--snapshot-dir on another filesystem: $TEST_TMP/snaps was created anyway"
expect_fail 1 'inside|outside' "--snapshot-dir inside the partition" -- \
	"${S[@]}" backup "$part" --to "$store" --snapshot-dir "$part/.snaps"
[ ! -e "$part/.snaps" ] || fail "--snapshot-dir inside the partition: $part/.snaps was created anyway"
expect_fail 1 'create it' "store directory missing" -- \
	"${S[@]}" backup "$part" --to "$TEST_TMP/no-store"
[ ! -e "$TEST_TMP/no-store" ] || fail "a missing store directory was created"

# ---- no privileges -------------------------------------------------------------------
# TEST_TMP and TEST_BTRFS may sit under a 0700 directory, so give user nobody
# a world-traversable view of a btrfs area through a bind mount under /tmp.

btrfs subvolume create "$TEST_BTRFS/err-nobody" >/dev/null
btrfs subvolume create "$TEST_BTRFS/err-nobody/part" >/dev/null
printf 'data\n' >"$TEST_BTRFS/err-nobody/part/file"
bind=$(mktemp -d /tmp/nobody-view.XXXXXX)
chmod 755 "$bind"
mount --bind "$TEST_BTRFS/err-nobody" "$bind"
mkdir -m 1777 "$bind/state" "$bind/store"
as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
nobody_ok() {
	no_snapship_snapshots "$bind"
	if [ -d "$bind/state/journal" ] && [ -n "$(ls -A "$bind/state/journal")" ]; then
		fail "as nobody: journal not empty: $(ls -A "$bind/state/journal")"
	fi
	[ -z "$(find "$bind/store" -mindepth 1)" ] || fail "as nobody: the store is not empty"
}
rc=0
"${as_nobody[@]}" "$SNAPSHIP" --state-dir "$bind/state" backup "$bind/part" --to "$bind/store" \
	>"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
echo "-- nobody, snapshot directory not writable: exit $rc: $(cat "$TEST_TMP/err")"
[ "$rc" = 1 ] || fail "as nobody: exit $rc, expected 1"
grep -qiE 'permission|not permitted|root' "$TEST_TMP/err" || fail "as nobody: the message names neither permission nor root"
nobody_ok
mkdir -m 1777 "$bind/.snapship"
rc=0
"${as_nobody[@]}" "$SNAPSHIP" --state-dir "$bind/state" backup "$bind/part" --to "$bind/store" \
	>"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
echo "-- nobody, snapshot directory writable: exit $rc: $(cat "$TEST_TMP/err")"
[ "$rc" = 1 ] || fail "as nobody (writable snapshot dir): exit $rc, expected 1"
grep -qiE 'permission|not permitted|root|CAP_SYS_ADMIN' "$TEST_TMP/err" ||
	fail "as nobody (writable snapshot dir): the message names neither permission nor root"
nobody_ok
rc=0
"${as_nobody[@]}" "$SNAPSHIP" --state-dir "$bind/no-access/state" backup "$bind/part" --to "$bind/store" \
	>"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
echo "-- nobody, state directory not creatable: exit $rc: $(cat "$TEST_TMP/err")"
[ "$rc" = 1 ] || fail "as nobody (state dir): exit $rc, expected 1"
grep -qiE 'permission|root' "$TEST_TMP/err" && grep -q 'state' "$TEST_TMP/err" ||
	fail "as nobody (state dir): the message names neither the state directory nor permission/root"
nobody_ok
umount "$bind"
rmdir "$bind"
bind=""
btrfs subvolume delete "$TEST_BTRFS/err-nobody/part" "$TEST_BTRFS/err-nobody" >/dev/null

# ---- config and usage errors (exit 2) --------------------------------------------------

conf=$TEST_TMP/bad.conf
good_conf() {
	printf '[agent]\nstate_dir = %s\n\n[partition err-part]\npath = %s\n\n[region local]\nstore = file\npath = %s\n' \
		"$state" "$part" "$store"
}
good_conf >"$conf"
"$SNAPSHIP" --config "$conf" config check >/dev/null || fail "the good config is rejected"
# unknown key on line 3
{ printf '[agent]\nstate_dir = %s\ncompresion_level = 3\n' "$state"; good_conf | tail -n +3; } >"$conf"
expect_fail 2 "bad.conf:3.*compresion_level" "unknown key (config check)" -- "$SNAPSHIP" --config "$conf" config check
expect_fail 2 "bad.conf:3.*compresion_level" "unknown key (backup)" -- "$SNAPSHIP" --config "$conf" backup
# unknown section, bad value, missing path
{ good_conf; printf '\n[partiton typo]\npath = /x\n'; } >"$conf"
expect_fail 2 "bad.conf:[0-9]+.*partiton typo" "unknown section" -- "$SNAPSHIP" --config "$conf" backup
{ good_conf; printf '[agent]\ncompression_level = 99\n'; } >"$conf"
expect_fail 2 "bad.conf:[0-9]+.*compression_level" "bad value" -- "$SNAPSHIP" --config "$conf" backup
{ good_conf; printf '[agent]\nmax_read_rate = fast\n'; } >"$conf"
expect_fail 2 "bad.conf:[0-9]+.*max_read_rate" "bad size" -- "$SNAPSHIP" --config "$conf" backup
printf '[partition p]\nsnapshot_dir = /x\n' >"$conf"
expect_fail 2 "path" "partition without path" -- "$SNAPSHIP" --config "$conf" config check
expect_fail 2 "bad.conf|no such|cannot read" "missing config file" -- "$SNAPSHIP" --config "$TEST_TMP/nope.conf" backup
# A line longer than libinih's default 200-byte buffer: it must be taken
# whole, or refused as too long -- never split, with its tail read as a
# line of its own (here the tail would be "path = /nonexistent-split").
pad=$(printf 'x%.0s' $(seq 1 178))
{
	printf '[agent]\nstate_dir = %s\n\n[partition err-part]\npath = %s\n' "$state" "$part"
	printf 'pre_snapshot = true #%spath = /nonexistent-split\n' "$pad"
	printf '\n[region local]\nstore = file\npath = %s\n' "$store"
} >"$conf"
rc=0
"$SNAPSHIP" --config "$conf" config check >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
echo "-- a 224-byte config line: exit $rc: $(cat "$TEST_TMP/out" "$TEST_TMP/err")"
grep -q 'nonexistent-split' "$TEST_TMP/out" "$TEST_TMP/err" &&
	fail "a long config line was split and its tail parsed as 'path = /nonexistent-split'"
if [ "$rc" = 0 ]; then
	grep -qF "$part ok" "$TEST_TMP/out" || fail "a long config line: the partition path is not $part"
else
	[ "$rc" = 2 ] && grep -qiE 'bad.conf:6.*(too long|long)' "$TEST_TMP/err" ||
		fail "a long config line is refused without saying bad.conf:6 is too long"
fi
rm -f "$conf"
expect_fail 2 'PATH|usage' "backup without PATH" -- "${S[@]}" backup --to "$store"
expect_fail 2 'unknown command' "unknown command" -- "${S[@]}" bakup "$part" --to "$store"
expect_fail 2 'level' "bad --level" -- "${S[@]}" backup "$part" --to "$store" --level 42
# a config with regions but no partition: nothing to back up is a usage error
printf '[agent]\nstate_dir = %s\n\n[region local]\nstore = file\npath = %s\n' "$state" "$store" >"$conf"
expect_fail 2 'no \[partition\] sections' "config without partitions" -- "$SNAPSHIP" --config "$conf" backup
# --to=STORE is the zero-config form as --to STORE is
mkdir -p "$TEST_TMP/eq-store"
"$SNAPSHIP" --state-dir "$state" backup "$part" --to="$TEST_TMP/eq-store" --name eq-part >"$TEST_TMP/out" 2>&1 ||
	{ cat "$TEST_TMP/out"; fail "backup PATH --to=STORE failed"; }
"$SNAPSHIP" list eq-part --from "$TEST_TMP/eq-store" | grep -q eq-part || fail "backup --to=STORE stored nothing under eq-part"

# ---- injected faults at every stage --------------------------------------------------------

for f in store.put_begin store.write store.write@3 store.commit store.commit@2 \
	framer.finish backup.manifest pack.read pack.read@4 cow.freeze; do
	expect_fail 1 'injected fault|input/output error' "fault $f" -- \
		env SNAPSHIP_FAULT="$f" "${S[@]}" backup "$part" --to "$store"
	[ -z "$(find "$store" -name '*.zst' -o -name manifest.json)" ] ||
		fail "fault $f: objects of the failed backup are left in the store: $(find "$store" -type f)"
done
# a fault with an errno: the message names it
expect_fail 1 'no space' "fault store.write ENOSPC" -- \
	env SNAPSHIP_FAULT=store.write@2:28 "${S[@]}" backup "$part" --to "$store"

# a good backup still works after all that
"${S[@]}" backup "$part" --to "$store" >/dev/null || fail "a backup after the faults fails"
[ "$(backups)" = 1 ] || fail "expected 1 backup after the faults, list shows $(backups)"
clean_state "the good backup"

# ---- the release fails: the journal keeps the snapshot, clean removes it -----------------------

rc=0
SNAPSHIP_FAULT=cow.release "${S[@]}" backup "$part" --to "$store" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
echo "-- fault cow.release: exit $rc: $(cat "$TEST_TMP/err")"
[ "$rc" = 1 ] || fail "fault cow.release: exit $rc, expected 1"
grep -qi 'release' "$TEST_TMP/err" || fail "fault cow.release: the message does not say the release failed"
[ "$(backups)" = 1 ] || fail "fault cow.release: the backup is listed although its snapshot was not released"
compgen -G "$TEST_BTRFS/.snapship/snapship-err-part-*" >/dev/null ||
	fail "fault cow.release: no snapshot left (the release was supposed to fail)"
[ -n "$(ls -A "$state/journal")" ] || fail "fault cow.release: the snapshot left is not in the journal"
out=$("${S[@]}" clean) || fail "snapship clean failed: $out"
echo "clean: $out"
grep -q 'removed 1 ' <<<"$out" || fail "snapship clean did not report removing 1 snapshot: $out"
clean_state "clean after a failed release"

# ---- a crash mid-stream ------------------------------------------------------------------------

crash_conf=$TEST_TMP/crash.conf
printf '[agent]\nstate_dir = %s\nmax_read_rate = 2M\nmax_chain = 0\n\n[partition err-part]\npath = %s\n\n[region local]\nstore = file\npath = %s\n' \
	"$state" "$part" "$store" >"$crash_conf"

# crash ENDED: start a slow backup, kill -9 it once data is flowing
crash() {
	local t
	"$SNAPSHIP" --config "$crash_conf" backup err-part >"$TEST_TMP/crash.out" 2>"$TEST_TMP/crash.err" &
	bgpid=$!
	# wait until the data object is being written (a temp file in the store)
	for t in $(seq 1 100); do
		[ -n "$(find "$store" -name '.data.tar.zst.tmp-*' -size +0 2>/dev/null)" ] && break
		kill -0 "$bgpid" 2>/dev/null || break
		sleep 0.05
	done
	if ! kill -0 "$bgpid" 2>/dev/null; then
		wait "$bgpid" || true
		bgpid=""
		cat "$TEST_TMP/crash.out" "$TEST_TMP/crash.err"
		fail "crash: the rate-limited backup ended before it could be killed"
	fi
	sleep 0.3
	kill -9 "$bgpid"
	wait "$bgpid" 2>/dev/null || true
	bgpid=""
	cat "$TEST_TMP/crash.err"
	compgen -G "$TEST_BTRFS/.snapship/snapship-err-part-*" >/dev/null ||
		fail "crash: no snapshot left after kill -9 (the test killed it too late?)"
	[ -n "$(ls -A "$state/journal" 2>/dev/null)" ] || fail "crash: the snapshot left by kill -9 is not in the journal"
	grep -q '^snapshot=/' "$state/journal"/*.journal || fail "crash: the journal entry has no snapshot= line"
	[ "$(backups)" = 1 ] || fail "crash: the killed backup is listed"
	local finals
	finals=$(find "$store" -name data.tar.zst -newer "$crash_conf" -o -name index.jsonl.zst -newer "$crash_conf")
	[ -z "$finals" ] || fail "crash: a half object is visible under its final name: $finals"
}

crash
[ -n "$(find "$store" -name '.*tmp-*')" ] || fail "crash: expected the killed run's temp objects in the store"
out=$("${S[@]}" clean --from "$store") || fail "snapship clean failed after a crash: $out"
echo "clean: $out"
grep -q 'removed 1 ' <<<"$out" || fail "snapship clean did not remove the crashed backup's snapshot: $out"
grep -q 'and [1-9][0-9]* unfinished upload' <<<"$out" || fail "snapship clean did not remove the crashed backup's temp objects: $out"
no_snapship_snapshots "$TEST_BTRFS"
[ -z "$(ls -A "$state/journal")" ] || fail "clean left journal entries: $(ls -A "$state/journal")"
left=$(find "$store" -name '.*tmp-*')
[ -z "$left" ] || fail "clean --from left temp objects: $left"

crash
touch "$crash_conf"	# newer than the crashed attempt's files
"${S[@]}" backup "$part" --to "$store" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "the backup after a crash failed"; }
cat "$TEST_TMP/err"
grep -qi 'removed 1 snapshot' "$TEST_TMP/err" || fail "the next backup did not say it removed the crashed run's snapshot"
left=$(find "$store" -name '.*tmp-*')
[ -z "$left" ] || fail "the next backup left the crashed run's temp objects: $left"
no_snapship_snapshots "$TEST_BTRFS"
[ -z "$(ls -A "$state/journal")" ] || fail "journal entries left after the recovering backup: $(ls -A "$state/journal")"
[ "$(backups)" = 2 ] || fail "expected 2 backups after the recovering backup, list shows $(backups)"
"$SNAPSHIP" verify --from "$store" err-part >/dev/null || fail "verify fails after crash recovery"

# a run that died between its objects and its manifest left an uncommitted
# backup directory: clean removes it, and nothing else
good=$(find "$store" -name manifest.json | head -1)
gdir=$(dirname "$good")
odir="$(dirname "$gdir")/20200101T000000Z-0a0b0c"
mkdir -p "$odir"
cp "$gdir/data.tar.zst" "$gdir/index.jsonl.zst" "$odir/"
before=$(backups)
out=$("${S[@]}" clean --from "$store") || fail "clean failed: $out"
[ ! -e "$odir/data.tar.zst" ] || fail "clean left the uncommitted backup's data: $out"
[ -e "$gdir/data.tar.zst" ] && [ -e "$gdir/manifest.json" ] || fail "clean removed a committed backup's objects"
[ "$(backups)" = "$before" ] || fail "clean changed the list of backups"
grep -q 'and 2 unfinished upload' <<<"$out" || fail "clean did not count the 2 orphaned objects: $out"

echo "errors ok"
