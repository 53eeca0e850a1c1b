#!/usr/bin/env bash
# Issue 11, items 4, 5, 9 and 10, with directory regions only:
#  - clean says what it looked at ("no store given" in zero-config use),
#    cleans every configured region (a server-replicated one: uploads only)
#    and removes empty backup directories (only those named like a backup
#    id, never through a link);
#  - an empty primary (an unmounted share) is suspect when the state dir
#    knows backups it does not list: list shows the union and says which
#    region lacks what, restore fails over;
#  - snapship hosts lists the hosts of a store, and "no backups of HOST"
#    names the others;
#  - hints name what was typed: --from, --to, [region NAME] path.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs

sv=$(mk_subvol ch-part)
"$GENDATA" "$sv" --json-bytes 2M --json-file-size 1M --small-files 50 --dirs 4 >/dev/null
mkdir -p "$TEST_TMP/a" "$TEST_TMP/b" "$TEST_TMP/c"
cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = chhost
[partition ch-part]
path = $sv
[region a]
store = file
path = $TEST_TMP/a
primary = yes
[region b]
store = file
path = $TEST_TMP/b
replication = agent
[region c]
store = file
path = $TEST_TMP/c
replication = server
replication_deadline = 1s
EOF
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

out=$("${S[@]}" backup --no-wait --json 2>"$TEST_TMP/err") || fail "backup 1: $(cat "$TEST_TMP/err")"
id1=$(jget 'd[0]["backup_id"]' <<<"$out")
# the second backup in a later second: ids of one second order by their
# random tails (hosts' "latest" and the lists below follow ids)
while [ "$(date -u +%Y%m%dT%H%M%SZ)" = "${id1:0:16}" ]; do sleep 0.1; done
out=$("${S[@]}" backup --no-wait --json 2>"$TEST_TMP/err") || fail "backup 2: $(cat "$TEST_TMP/err")"
id2=$(jget 'd[0]["backup_id"]' <<<"$out")
[ -f "$TEST_TMP/state/geo/chhost/ch-part/$id1.json" ] || fail "no replication state of $id1"

# ---- item 4: clean -----------------------------------------------------------
# zero-config, no store: says unfinished uploads were not looked for
out=$("$SNAPSHIP" --state-dir "$TEST_TMP/zstate" clean 2>&1) || fail "zero-config clean: $out"
grep -q "no store given: unfinished uploads were not looked for; pass --from STORE" <<<"$out" ||
	fail "zero-config clean does not say it looked at no store: $out"

# what an interrupted run leaves: a temp file in a new backup directory, and
# an empty backup directory; in every region
leftovers() {	# leftovers REGION
	local d="$TEST_TMP/$1/chhost/ch-part"
	mkdir -p "$d/20250101T000000Z-0a0b0c" "$d/20250101T000001Z-0a0b0d"
	head -c 4096 /dev/urandom >"$d/20250101T000000Z-0a0b0c/.data.tar.zst.tmp-0123456789abcdef"
}
for g in a b c; do leftovers $g; done
# not snapship's: a directory not named like a backup id, and a link named
# like one (to an empty directory outside the store): both stay
mkdir -p "$TEST_TMP/a/chhost/ch-part/keep-me" "$TEST_TMP/outside"
ln -s "$TEST_TMP/outside" "$TEST_TMP/a/chhost/ch-part/20250101T000002Z-0a0b0e"
# an orphaned object in the server region: not snapship's to judge there
mkdir -p "$TEST_TMP/c/chhost/ch-part/20250101T000003Z-0a0b0f"
echo x >"$TEST_TMP/c/chhost/ch-part/20250101T000003Z-0a0b0f/data.tar.zst"

out=$("${S[@]}" clean 2>&1) || fail "clean: $out"
echo "$out"
for g in a b; do
	grep -Eq "^region $g \(file:$TEST_TMP/$g\): removed 1 unfinished upload\(s\), 0 object\(s\) of backups without a manifest, 2 empty backup directories" <<<"$out" ||
		fail "clean does not say what it did in region $g: $out"
	[ -z "$(find "$TEST_TMP/$g/chhost/ch-part" -name '20250101T*' ! -type l)" ] ||
		fail "clean left empty backup directories in $g: $(ls "$TEST_TMP/$g/chhost/ch-part")"
done
grep -Eq "^region c \(file:$TEST_TMP/c\): removed 1 unfinished upload\(s\); backups without a manifest not looked for: replication = server" <<<"$out" ||
	fail "clean does not say what it did in the server region: $out"
[ -e "$TEST_TMP/c/chhost/ch-part/20250101T000003Z-0a0b0f/data.tar.zst" ] ||
	fail "clean removed an object in a server-replicated region"
[ -z "$(find "$TEST_TMP/c" -name '.*tmp-*')" ] || fail "clean left the temp file in c"
[ -d "$TEST_TMP/a/chhost/ch-part/keep-me" ] || fail "clean removed a directory not named like a backup id"
[ -L "$TEST_TMP/a/chhost/ch-part/20250101T000002Z-0a0b0e" ] && [ -d "$TEST_TMP/outside" ] ||
	fail "clean removed a link or went through it"
rm "$TEST_TMP/a/chhost/ch-part/20250101T000002Z-0a0b0e"
rmdir "$TEST_TMP/a/chhost/ch-part/keep-me"
rm -r "$TEST_TMP/c/chhost/ch-part/20250101T000003Z-0a0b0f"
[ -d "$TEST_TMP/a/chhost/ch-part/$id1" ] && [ -d "$TEST_TMP/b/chhost/ch-part/$id2" ] ||
	fail "clean removed a committed backup"

# ---- item 9: hosts -----------------------------------------------------------
out=$("$SNAPSHIP" hosts --from "$TEST_TMP/a") || fail "hosts --from: $out"
grep -Eq "^chhost +1 +2  $id2\$" <<<"$out" || fail "hosts: $out"
out=$("$SNAPSHIP" hosts --from "$TEST_TMP/a" --json) || fail "hosts --json: $out"
[ "$(jget 'd[0]["host"], d[0]["backups"], d[0]["latest"]' <<<"$out")" = "chhost 2 $id2" ] ||
	fail "hosts --json: $out"
out=$("$SNAPSHIP" --host newbox list --from "$TEST_TMP/a" 2>&1) || fail "list of newbox: $out"
grep -q "no backups of newbox on" <<<"$out" && grep -q "other hosts: chhost; pass --host NAME" <<<"$out" ||
	fail "no backups of newbox does not name host chhost: $out"
rc=0
out=$("$SNAPSHIP" --host newbox restore ch-part --from "$TEST_TMP/a" --to "$TEST_BTRFS/nb" 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q "other hosts: chhost" <<<"$out" || fail "restore for newbox: rc $rc, $out"

# ---- item 10: hints name what was typed ----------------------------------------
rc=0
out=$("$SNAPSHIP" list --from "$TEST_TMP/nowhere" 2>&1) || rc=$?
[ "$rc" != 0 ] && grep -q "or fix --from" <<<"$out" && ! grep -q -- "--to" <<<"$out" ||
	fail "list --from a missing directory: $out"
rc=0
out=$("$SNAPSHIP" backup "$sv" --to "$TEST_TMP/nowhere" 2>&1) || rc=$?
[ "$rc" != 0 ] && grep -q "or fix --to" <<<"$out" || fail "backup --to a missing directory: $out"
sed "s|path = $TEST_TMP/a\$|path = $TEST_TMP/nowhere|" "$TEST_TMP/snapship.conf" >"$TEST_TMP/bad.conf"
rc=0
out=$("$SNAPSHIP" --config "$TEST_TMP/bad.conf" list 2>&1) || rc=$?
[ "$rc" != 0 ] && grep -q "or fix \[region a\] path" <<<"$out" && ! grep -q -- "--to" <<<"$out" ||
	fail "a config region with a missing directory: $out"

# ---- item 5: an empty primary ------------------------------------------------
mv "$TEST_TMP/a/chhost" "$TEST_TMP/a.away"      # the share is gone; a looks empty
out=$("${S[@]}" list --json 2>"$TEST_TMP/err") || fail "list with an empty primary: $(cat "$TEST_TMP/err")"
cat "$TEST_TMP/err"
[ "$(jget 'len(d), d[0]["listed_from"]' <<<"$out")" = "2 b" ] || fail "list with an empty primary: $out"
grep -q "region a does not list 2 backup(s) this host committed" "$TEST_TMP/err" ||
	fail "list does not warn that a is suspect: $(cat "$TEST_TMP/err")"
grep -q "region a lacks 2 of the 2 backup(s) the regions list: ch-part/$id1, ch-part/$id2" "$TEST_TMP/err" ||
	fail "list does not say what a lacks: $(cat "$TEST_TMP/err")"
grep -q "region c lacks 2 of the 2" "$TEST_TMP/err" || fail "list does not say what c lacks: $(cat "$TEST_TMP/err")"
"${S[@]}" restore ch-part --to "$TEST_BTRFS/r1" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	fail "restore with an empty primary: $(cat "$TEST_TMP/err")"
grep -q "failed over.*region b" "$TEST_TMP/err" || fail "restore does not say it failed over: $(cat "$TEST_TMP/err")"
assert_trees_equal "$sv" "$TEST_BTRFS/r1"
mv "$TEST_TMP/a.away" "$TEST_TMP/a/chhost"
"${S[@]}" list >/dev/null 2>"$TEST_TMP/err" || fail "list with a back"
! grep -q "does not list" "$TEST_TMP/err" || fail "a warning with a back: $(cat "$TEST_TMP/err")"
no_snapship_snapshots "$TEST_BTRFS"
echo PASS
