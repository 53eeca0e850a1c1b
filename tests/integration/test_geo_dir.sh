#!/usr/bin/env bash
# Geo-redundancy with directory stores (replication = agent), no object
# store needed: both regions get identical objects in one pass; a region
# whose directory is gone does not stop backups (at risk), and require_geo
# then fails cleanly; a missing or truncated copy is named by verify, skipped
# by restore (failing over), and fixed by repair; status and list say it.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs

sv=$(mk_subvol gd-part)
"$GENDATA" "$sv" --json-bytes 8M --json-file-size 2M --small-files 200 >/dev/null
mkdir -p "$TEST_TMP/a" "$TEST_TMP/b"
conf() {	# conf [REQUIRE_GEO]
	cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = gdhost
require_geo = ${1:-no}
[partition gd-part]
path = $sv
[region a]
store = file
path = $TEST_TMP/a
primary = yes
[region b]
store = file
path = $TEST_TMP/b
replication = agent
EOF
}
conf
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
dirof() { echo "$TEST_TMP/$1/gdhost/gd-part/$2"; }

# ---- one pass, two identical copies ---------------------------------------
out=$("${S[@]}" backup --json) || fail "backup failed: $out"
id=$(jget 'd[0]["backup_id"]' <<<"$out")
[ "$(jget 'd[0]["geo"]' <<<"$out")" = geo-protected ] || fail "not geo-protected: $out"
diff -r "$(dirof a "$id")" "$(dirof b "$id")" >/dev/null || fail "the copies in a and b differ"
"${S[@]}" verify >/dev/null || fail "verify of a fresh backup fails"
"${S[@]}" status | grep -q "gd-part .*geo-protected" || fail "status: $("${S[@]}" status)"
no_snapship_snapshots "$TEST_BTRFS"

# ---- b's data gone: verify names it, restore is fine, repair fixes ---------
rm "$(dirof b "$id")/data.tar.zst"
rc=0
"${S[@]}" verify >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "verify with a missing copy exited $rc"
grep -Eq "$id +b +missing +data.tar.zst missing" "$TEST_TMP/out" || fail "verify: $(cat "$TEST_TMP/out")"
"${S[@]}" list | grep "$id" | grep -q "at risk" || fail "list does not say at risk"
rc=0
"${S[@]}" --json status >"$TEST_TMP/out" || rc=$?
[ "$rc" = 3 ] && jget 'd["at_risk"]' <"$TEST_TMP/out" | grep -qx 1 || fail "status --json (exit $rc): $(cat "$TEST_TMP/out")"
"${S[@]}" repair >"$TEST_TMP/out" 2>&1 || fail "repair failed: $(cat "$TEST_TMP/out")"
grep -Eq "$id +b +repaired +copied from a" "$TEST_TMP/out" || fail "repair: $(cat "$TEST_TMP/out")"
cmp "$(dirof a "$id")/data.tar.zst" "$(dirof b "$id")/data.tar.zst" || fail "repaired copy differs"
"${S[@]}" verify --deep >/dev/null 2>&1 || fail "verify --deep after repair"

# ---- a's copy truncated: restore fails over to b ---------------------------
cp "$(dirof a "$id")/data.tar.zst" "$TEST_TMP/good"
truncate -s 1000 "$(dirof a "$id")/data.tar.zst"
"${S[@]}" restore gd-part --to "$TEST_BTRFS/r1" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	fail "restore with a truncated primary copy: $(cat "$TEST_TMP/err")"
grep -q "region a.*corrupt.*truncated" "$TEST_TMP/err" || fail "restore does not say why: $(cat "$TEST_TMP/err")"
grep -q "failed over.*region b" "$TEST_TMP/err" || fail "restore does not say it failed over: $(cat "$TEST_TMP/err")"
grep -q "from region b" "$TEST_TMP/out" || fail "restore output: $(cat "$TEST_TMP/out")"
assert_trees_equal "$sv" "$TEST_BTRFS/r1"
rc=0
"${S[@]}" restore gd-part --region a --to "$TEST_BTRFS/r2" >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "restore --region a of a truncated copy exited $rc"
"${S[@]}" repair >/dev/null 2>&1 || fail "repair of a failed"
cmp "$TEST_TMP/good" "$(dirof a "$id")/data.tar.zst" || fail "repair did not restore a's copy"

# ---- bytes inside a's copy damaged (same size: only decoding tells) --------
# the damaged frame is fetched again from b; the rest still comes from a
size=$(stat -c %s "$(dirof a "$id")/data.tar.zst")
head -c 64 /dev/urandom | dd of="$(dirof a "$id")/data.tar.zst" bs=1 seek=$((size / 3)) conv=notrunc status=none
"${S[@]}" restore gd-part --to "$TEST_BTRFS/r3" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	fail "restore with a damaged frame in a: $(cat "$TEST_TMP/err")"
grep -q "region a: .*data.tar.zst: the frame at byte [0-9]* is corrupt; taking it from region b" "$TEST_TMP/err" ||
	fail "restore does not say it took the frame from b: $(cat "$TEST_TMP/err")"
assert_trees_equal "$sv" "$TEST_BTRFS/r3"
rc=0
"${S[@]}" verify --deep >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -Eq "$id +a +corrupt +.*frame" "$TEST_TMP/out" ||
	fail "verify --deep does not name a's damaged frame: $(cat "$TEST_TMP/out")"
# repair --deep finds it too (a plain repair compares sizes only here) and
# copies b's bytes over it
"${S[@]}" repair --deep >"$TEST_TMP/out" 2>&1 || fail "repair --deep: $(cat "$TEST_TMP/out")"
grep -Eq "$id +a +repaired +copied from b" "$TEST_TMP/out" || fail "repair --deep: $(cat "$TEST_TMP/out")"
cmp "$TEST_TMP/good" "$(dirof a "$id")/data.tar.zst" || fail "repair --deep did not restore a's bytes"

# ---- no whole copy anywhere: repair says so and fails ----------------------
mv "$(dirof a "$id")/index.jsonl.zst" "$TEST_TMP/index.a"
mv "$(dirof b "$id")/index.jsonl.zst" "$TEST_TMP/index.b"
rc=0
"${S[@]}" repair >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "repair with no whole copy exited $rc"
grep -Eq "$id +a +failed +no region holds a whole copy" "$TEST_TMP/out" || fail "repair: $(cat "$TEST_TMP/out")"
mv "$TEST_TMP/index.a" "$(dirof a "$id")/index.jsonl.zst"
mv "$TEST_TMP/index.b" "$(dirof b "$id")/index.jsonl.zst"

# ---- the regions' manifests disagree: neither is trusted, nothing repaired -
cp "$(dirof b "$id")/manifest.json" "$TEST_TMP/manifest.b"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); json.dump(d, open(sys.argv[1], "w"))' \
	"$(dirof b "$id")/manifest.json"      # the same backup, other bytes
rc=0
"${S[@]}" repair >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "repair with disagreeing manifests exited $rc"
grep -Eq "$id +b +failed +the manifests in regions a and b differ" "$TEST_TMP/out" ||
	fail "repair: $(cat "$TEST_TMP/out")"
cmp -s "$TEST_TMP/manifest.b" "$(dirof b "$id")/manifest.json" && fail "the test did not change b's manifest"
cp "$TEST_TMP/manifest.b" "$(dirof b "$id")/manifest.json"
"${S[@]}" verify >/dev/null 2>&1 || fail "verify after putting the manifest back"

# ---- b's directory gone (an unmounted share): backups go on, at risk -------
mv "$TEST_TMP/b" "$TEST_TMP/b.away"
out=$("${S[@]}" backup --json 2>"$TEST_TMP/err") || fail "backup with b gone failed: $(cat "$TEST_TMP/err")"
id2=$(jget 'd[0]["backup_id"]' <<<"$out")
[ "$(jget 'd[0]["geo"]' <<<"$out")" = "at risk" ] || fail "not at risk: $out"
grep -q "region b" "$TEST_TMP/err" || fail "no warning names b: $(cat "$TEST_TMP/err")"
[ -f "$(dirof a "$id2")/manifest.json" ] || fail "not committed in a"
"${S[@]}" list 2>/dev/null | grep "$id2" | grep -q "at risk" || fail "list: $id2 not at risk"
conf yes
rc=0
"${S[@]}" backup >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "require_geo with b gone exited $rc: $(cat "$TEST_TMP/out")"
grep -q "require_geo.*region b" "$TEST_TMP/out" || fail "require_geo error: $(cat "$TEST_TMP/out")"
[ "$(find "$TEST_TMP/a/gdhost/gd-part" -mindepth 1 -maxdepth 1 | wc -l)" = 2 ] ||
	fail "require_geo failure left a backup in a: $(ls "$TEST_TMP/a/gdhost/gd-part")"
no_snapship_snapshots "$TEST_BTRFS"
# b back: repair copies the backup it missed
mv "$TEST_TMP/b.away" "$TEST_TMP/b"
conf
"${S[@]}" repair >"$TEST_TMP/out" 2>&1 || fail "repair after b came back: $(cat "$TEST_TMP/out")"
grep -Eq "$id2 +b +repaired" "$TEST_TMP/out" || fail "repair: $(cat "$TEST_TMP/out")"
"${S[@]}" verify --deep >/dev/null 2>&1 || fail "verify --deep at the end"
"${S[@]}" list | grep "$id2" | grep -q geo-protected || fail "$id2 not geo-protected after repair"

# ---- --region and the state dir: rebuilt from the stores alone -------------
rm -rf "$TEST_TMP/state/geo"
"${S[@]}" list | grep "$id" | grep -q unverified || fail "list without state: $("${S[@]}" list)"
"${S[@]}" verify >/dev/null || fail "verify (rebuilding the state)"
"${S[@]}" list | grep "$id" | grep -q geo-protected || fail "verify did not rebuild the state"
"${S[@]}" list --region b | grep -q "$id2" || fail "list --region b"
rc=0
"${S[@]}" list --region nowhere >/dev/null 2>"$TEST_TMP/err" || rc=$?
[ "$rc" = 2 ] && grep -q "configured: a, b" "$TEST_TMP/err" || fail "list --region nowhere: rc $rc, $(cat "$TEST_TMP/err")"
# ---- a "server" region nothing replicates to: one deadline per run ---------
# (a directory stands in for a store that replicates by itself and stopped)
sv2=$(mk_subvol gd-two)
echo small >"$sv2/f"
mkdir -p "$TEST_TMP/c"
cat >"$TEST_TMP/server.conf" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = gdhost
[partition gd-part]
path = $sv
[partition gd-two]
path = $sv2
[region a]
store = file
path = $TEST_TMP/a
primary = yes
[region c]
store = file
path = $TEST_TMP/c
replication = server
replication_deadline = 2s
EOF
out=$("$SNAPSHIP" --config "$TEST_TMP/server.conf" backup --json 2>"$TEST_TMP/err") ||
	fail "backup with a silent server region: $(cat "$TEST_TMP/err")"
python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert len(d) == 2 and all(b["geo"] == "at risk" for b in d), d
first, second = d[0]["regions"][0], d[1]["regions"][0]
assert first["state"] == "at-risk" and "missing" in first["detail"], first
# the second partition does not wait out the deadline again
assert "within its replication deadline in this run" in second["detail"], second
' "$out" || fail "server region deadline: $out"
echo PASS
