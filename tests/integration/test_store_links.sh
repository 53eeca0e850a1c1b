#!/usr/bin/env bash
# Links planted in a directory store are never followed (issue 9 items 1,
# 8, 9): snapship runs as root and others may write to the store, so
#   (a) a symlink named like a backup id without a manifest, pointing at a
#       canary directory that holds files named like snapship's objects and
#       temp files: `clean` and `backup` (which cleans first) delete nothing
#       there, and say that they found a link;
#   (b) a link that loops (loop -> .) in the partition and host directories
#       does not make list, restore, verify or backup fail (ELOOP); a link
#       named with control characters is reported with them escaped;
#   (c) a manifest.json that is a symlink to a secret file: list, restore
#       --id and verify never print the secret (nor read it as a manifest);
#   (d) a partition directory that is a symlink (host/part -> elsewhere): its
#       backups are not listed, and a backup of that partition writes nothing
#       there (it fails, naming the link);
#   (e) hostile shapes (20k empty backup directories, a 1000-deep chain of
#       directories) are listed within a bound (timeout 60 s).
# The canary directories are compared file by file before and after.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 sha256sum timeout
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"

host=lnkhost
state=$TEST_TMP/state
store=$TEST_TMP/store
hdir=$store/$host
mkdir -p "$store"
part=$(mk_subvol lnk-part)
trap 'btrfs subvolume delete "$part" >/dev/null 2>&1 || true' EXIT
S=(timeout 60 "$SNAPSHIP" --host "$host" --state-dir "$state")

"$GENDATA" "$part" --json-bytes 2M --json-file-size 1M --small-files 50 --seed 9 >/dev/null
"${S[@]}" backup "$part" --to "$store" >/dev/null || fail "the first backup failed"
good=$(find "$hdir/lnk-part" -name manifest.json)
[ "$(wc -l <<<"$good")" = 1 ] || fail "expected one backup, found: $good"
good_id=$(basename "$(dirname "$good")")

# describe DIR: every entry below DIR with type, size, mode and content hash
describe() {
	(cd "$1" && find . -printf '%p %y %s %m %l\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

# The canary: what an attacker would like root to delete.
canary=$TEST_TMP/canary
mkdir -p "$canary/sub"
for f in data.tar.zst index.jsonl.zst .data.tar.zst.tmp-0123456789abcdef \
	.index.jsonl.zst.tmp-fedcba9876543210 .manifest.json.tmp-0123456789abcdef \
	passwd shadow sub/data.tar.zst sub/.x.tmp-0123456789abcdef; do
	printf 'canary %s\n' "$f" >"$canary/$f"
done
describe "$canary" >"$TEST_TMP/canary.before"

# A partition elsewhere holding a copy of the good backup and an orphan.
canary2=$TEST_TMP/canary2
mkdir -p "$canary2"
cp -a "$(dirname "$good")" "$canary2/"
mkdir "$canary2/20240101T000000Z-0000ff"
printf 'orphan\n' >"$canary2/20240101T000000Z-0000ff/data.tar.zst"
describe "$canary2" >"$TEST_TMP/canary2.before"

secret=$TEST_TMP/secret
printf 'SECRET-TOKEN-123\n' >"$secret"

# (a) a backup id that is a link to the canary, without a manifest
link_id=20240101T000000Z-abcdef
ln -s "$canary" "$hdir/lnk-part/$link_id"
# (d) a partition that is a link
ln -s "$canary2" "$hdir/linked-part"

canaries_intact() {	# canaries_intact WHAT
	describe "$canary" >"$TEST_TMP/canary.after"
	diff -u "$TEST_TMP/canary.before" "$TEST_TMP/canary.after" ||
		fail "$1: the canary directory behind a link in the store changed"
	describe "$canary2" >"$TEST_TMP/canary2.after"
	diff -u "$TEST_TMP/canary2.before" "$TEST_TMP/canary2.after" ||
		fail "$1: the directory behind a linked partition changed"
	[ "$(cat "$secret")" = SECRET-TOKEN-123 ] || fail "$1: the secret file changed"
	[ -L "$hdir/lnk-part/$link_id" ] && [ -L "$hdir/linked-part" ] ||
		fail "$1: a planted link disappeared"
}

# run WHAT CMD...: run CMD; $rc, $TEST_TMP/out (stdout+stderr); never the secret
run() {
	local what=$1
	shift
	rc=0
	"$@" >"$TEST_TMP/out" 2>&1 || rc=$?
	echo "-- $what: exit $rc: $(head -c 800 "$TEST_TMP/out")"
	[ "$rc" != 124 ] || fail "$what: did not finish within 60 s"
	! grep -q 'SECRET' "$TEST_TMP/out" || fail "$what: the secret file's content was printed"
	canaries_intact "$what"
}

warned_link() {	# warned_link WHAT NAME: the output names NAME as a link
	grep -qE "warning: .*$2.*symbolic link" "$TEST_TMP/out" ||
		fail "$1: no warning about the link $2"
}

backups() {	# the backups listed as JSON: "id id ..."
	python3 -c 'import json,sys; print(" ".join(sorted(b["backup_id"] for b in json.load(open(sys.argv[1])))))' "$1"
}

# ---- (a) clean and backup never delete through a link ------------------------------

run "(a) clean" "${S[@]}" clean --from "$store"
[ "$rc" = 0 ] || fail "(a) clean: exit $rc, expected 0"
warned_link "(a) clean" "$link_id"

run "(a) backup" "${S[@]}" backup "$part" --to "$store"
[ "$rc" = 0 ] || fail "(a) backup: exit $rc, expected 0"
warned_link "(a) backup" "$link_id"

# ---- (b), (c), (d): list, restore, verify ----------------------------------------

# (b) loops
ln -s . "$hdir/lnk-part/loop"
ln -s . "$hdir/loop"
# (c) a manifest that is a link to a secret
secret_id=20240102T000000Z-000002
mkdir "$hdir/lnk-part/$secret_id"
ln -s "$secret" "$hdir/lnk-part/$secret_id/manifest.json"

# a link whose name would set the terminal's title: named, but escaped
ln -s /nonexistent "$hdir/lnk-part/"$'\e]0;pwned\a'

run "(b) clean with loops" "${S[@]}" clean --from "$store"
[ "$rc" = 0 ] || fail "(b) clean: exit $rc, expected 0"
grep -q 'could not clean' "$TEST_TMP/out" && fail "(b) clean: a loop stopped the cleaning"
warned_link "(b) clean" "loop"
! grep -q $'\e' "$TEST_TMP/out" || fail "(b) clean: a name from the store reached the output unescaped"
grep -qF '\x1b]0;pwned\x07 is a symbolic link' "$TEST_TMP/out" || fail "(b) clean: the link with control characters is not reported (escaped)"

run "list" "${S[@]}" list --from "$store"
[ "$rc" = 0 ] || fail "list: exit $rc, expected 0 (a loop or a linked manifest broke it?)"
grep -q "$good_id" "$TEST_TMP/out" || fail "list: the good backup $good_id is not listed"
warned_link "list" "loop"
warned_link "list" "$secret_id/manifest.json"
warned_link "list" "linked-part"

rc=0
"${S[@]}" list --from "$store" --json >"$TEST_TMP/list.json" 2>"$TEST_TMP/out" || rc=$?
[ "$rc" = 0 ] || fail "list --json: exit $rc"
! grep -q SECRET "$TEST_TMP/list.json" "$TEST_TMP/out" || fail "list --json printed the secret"
ids=$(backups "$TEST_TMP/list.json")
[ "$(wc -w <<<"$ids")" = 2 ] && [[ " $ids " == *" $good_id "* ]] ||
	fail "list --json: expected the two real backups, got: $ids"

run "(c) restore --id of the linked manifest" \
	"${S[@]}" restore lnk-part --from "$store" --to "$TEST_TMP/r-secret" --id "$secret_id"
[ "$rc" = 1 ] || fail "(c) restore --id $secret_id: exit $rc, expected 1"
[ ! -e "$TEST_TMP/r-secret" ] || [ -z "$(ls -A "$TEST_TMP/r-secret")" ] ||
	fail "(c) restore of the linked manifest wrote files"

run "(b) restore of the latest backup" \
	"${S[@]}" restore lnk-part --from "$store" --to "$TEST_TMP/r-latest"
[ "$rc" = 0 ] || fail "(b) restore: exit $rc, expected 0"
assert_trees_equal "$part" "$TEST_TMP/r-latest"

run "(b) verify" "${S[@]}" verify --from "$store"
[ "$rc" = 0 ] || fail "(b) verify: exit $rc, expected 0"

run "(d) list of the linked partition" "${S[@]}" list linked-part --from "$store"
[ "$rc" = 0 ] || fail "(d) list linked-part: exit $rc, expected 0"
! grep -q "$good_id" "$TEST_TMP/out" || fail "(d) list linked-part shows backups behind the link"
warned_link "(d) list linked-part" "linked-part"

run "(d) backup into the linked partition" \
	"${S[@]}" backup "$part" --to "$store" --name linked-part
[ "$rc" = 1 ] || fail "(d) backup --name linked-part: exit $rc, expected 1"
grep -qi 'symbolic link' "$TEST_TMP/out" || fail "(d) backup --name linked-part: the error does not name the link"
no_snapship_snapshots "$TEST_BTRFS"

# ---- (e) hostile shapes are listed in bounded time --------------------------------

wide=$TEST_TMP/wide
mkdir -p "$wide/$host/p"
python3 - "$wide/$host" <<-'EOF'
	import os, sys
	top = sys.argv[1]
	for i in range(20000):
	    os.mkdir(os.path.join(top, "p", "20240101T000000Z-%06x" % i))
	fd = os.open(top, os.O_RDONLY)
	for i in range(1000):
	    os.mkdir("d", dir_fd=fd)
	    nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
	    os.close(fd)
	    fd = nfd
	os.close(fd)
EOF
run "(e) list of 20k empty backup directories and a 1000-deep chain" \
	"${S[@]}" list --from "$wide"
[ "$rc" = 0 ] || fail "(e) list: exit $rc, expected 0"
grep -q 'no backups' "$TEST_TMP/out" || fail "(e) list: expected no backups"
run "(e) clean of the same" "${S[@]}" clean --from "$wide"
[ "$rc" = 0 ] || fail "(e) clean: exit $rc, expected 0"
# empty directories named like a backup id are what an interrupted run
# leaves (issue 11): they go; the chain of "d" is not snapship's and stays
[ "$(find "$wide/$host/p" -mindepth 1 -maxdepth 1 | wc -l)" = 0 ] ||
	fail "(e) clean left empty backup directories"
grep -q "20000 empty backup directories" "$TEST_TMP/out" || fail "(e) clean does not say what it removed"
[ -d "$wide/$host/d/d/d" ] || fail "(e) clean removed directories not named like a backup id"

echo "PASS: links in the store were neither followed nor used"
