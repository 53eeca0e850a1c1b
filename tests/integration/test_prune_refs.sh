#!/usr/bin/env bash
# Issue 14 item 5: retention knows references (doc/incremental.md
# "Retention and geo"), on a directory store with backups forged by
# tests/tools/forge.py (a v1 base B1, then v2 backups B2 -> B1 and
# B3 -> B1, B2):
#   - prune --dry-run with keep_last = 1 says it would delete B1 and B2 and
#     keep their data, referenced by B3 (text and --json), deleting nothing;
#   - prune deletes B1's and B2's manifests and indexes (list shows B3
#     only) and keeps their data objects, which B3 references;
#   - clean does not take that data for orphans, but removes an unreferenced
#     data object without a manifest;
#   - once B3 is pruned too (a newer full B4), its data and the data it
#     referenced go in that same prune, and no record is left;
#   - two regions (directory stores), after a prune kept only B2 -> B1 and
#     B1's data: B1's data missing in the secondary makes verify say B2's
#     copy there is missing reference B1 (exit 1); repair copies it from the
#     primary and verify is ok; the same with B1's data truncated there
#     (corrupt); prune then still keeps the data in both.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_cmd python3 zstd xxhsum
[ -x "${SNAPSHIP:-}" ] || fail "SNAPSHIP='${SNAPSHIP:-}' is not an executable (run make)"

FORGE=$SRC_DIR/tests/tools/forge.py
A=$TEST_TMP/a
ST=$TEST_TMP/state
mkdir -p "$A" "$TEST_TMP/src"
cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $ST
host = h
[retention]
keep_last = 1
[region a]
store = file
path = $A
primary = yes
[partition p]
path = $TEST_TMP/src
EOF
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")

# ids N days ago (within the default max_age)
now=$(date +%s)
mkid() { date -u -d "@$((now - $1 * 86400))" +%Y%m%dT%H%M%SZ-0000"$2"; }
B1=$(mkid 4 01) B2=$(mkid 3 02) B3=$(mkid 2 03) B4=$(mkid 1 04)
tns() { echo "$(($(date -u -d "${1:0:8} ${1:9:2}:${1:11:2}:${1:13:2}" +%s)))000000000"; }

# run CODE WHAT ARGS...: snapship ARGS exits CODE; output in $TEST_TMP/out, err
run() {
	local code=$1 what=$2 rc=0
	shift 2
	"${S[@]}" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	[ "$rc" = "$code" ] || { cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "$what: exit $rc, expected $code"; }
}
obj() { echo "$A/h/p/$1/$2"; }

python3 "$FORGE" backup "$A" h p "$B1" '[
	{"name": "a", "type": "file", "data": "alpha"},
	{"name": "b", "type": "file", "data": "bravo"}]' \
	--manifest-set "snapshot.time_ns=$(tns "$B1")" >/dev/null || fail "forge B1"
python3 "$FORGE" backup "$A" h p "$B2" '[
	{"name": "a", "type": "file", "ref_path": "a"},
	{"name": "b", "type": "file", "data": "BRAVO-2"}]' --format 2 --parent "$B1" \
	--manifest-set "snapshot.time_ns=$(tns "$B2")" >/dev/null || fail "forge B2"
python3 "$FORGE" backup "$A" h p "$B3" '[
	{"name": "a", "type": "file", "ref_path": "a"},
	{"name": "b", "type": "file", "ref_path": "b"},
	{"name": "c", "type": "file", "data": "charlie"}]' --format 2 --parent "$B2" \
	--manifest-set "snapshot.time_ns=$(tns "$B3")" >/dev/null || fail "forge B3"
python3 - "$(obj "$B3" manifest.json)" "$B1" "$B2" <<'EOF' || fail "B3 does not reference B1 and B2"
import json, sys
m = json.load(open(sys.argv[1]))
assert [r["id"] for r in m["references"]] == sys.argv[2:], m["references"]
EOF

# ---- dry run: nothing deleted, the kept data said --------------------------
run 0 "prune --dry-run" prune --dry-run
cat "$TEST_TMP/out"
grep -q "$B1 .*delete.*would delete (data kept: referenced by $B3)" "$TEST_TMP/out" ||
	fail "dry run does not say B1's data is kept, referenced by B3"
grep -q "$B2 .*delete.*would delete (data kept: referenced by $B3)" "$TEST_TMP/out" ||
	fail "dry run does not say B2's data is kept, referenced by B3"
for b in "$B1" "$B2" "$B3"; do
	for o in manifest.json data.tar.zst index.jsonl.zst; do
		[ -e "$(obj "$b" $o)" ] || fail "dry run deleted $b/$o"
	done
done
run 0 "prune --dry-run --json" prune --dry-run --json
python3 - "$TEST_TMP/out" "$B1" "$B2" "$B3" <<'EOF' || fail "prune --dry-run --json"
import json, sys
doc = json.load(open(sys.argv[1]))
b1, b2, b3 = sys.argv[2:]
part = doc[0]
bs = {b["backup_id"]: b for b in part["backups"]}
for b in (b1, b2):
    assert not bs[b]["keep"], bs[b]
    r = bs[b]["regions"][0]
    assert r["action"] == "would delete" and r["detail"] == "data kept: referenced by " + b3, r
assert bs[b3]["keep"]
EOF

# ---- prune: manifests and indexes go, referenced data stays -----------------
run 0 "prune" prune
cat "$TEST_TMP/out"
grep -q "$B1 .*deleted (data kept: referenced by $B3)" "$TEST_TMP/out" ||
	fail "prune does not say B1's data is kept, referenced by B3"
for b in "$B1" "$B2"; do
	[ ! -e "$(obj "$b" manifest.json)" ] || fail "prune kept $b's manifest"
	[ ! -e "$(obj "$b" index.jsonl.zst)" ] || fail "prune kept $b's index"
	[ -e "$(obj "$b" data.tar.zst)" ] || fail "prune deleted $b's data, which $B3 references"
done
[ -e "$(obj "$B3" manifest.json)" ] || fail "prune deleted B3"
run 0 "list" list
grep -q "$B3" "$TEST_TMP/out" || fail "list does not show B3"
! grep -q -e "$B1" -e "$B2" "$TEST_TMP/out" || fail "list still shows a pruned backup"
# the next prune keeps the data still (B3 still references it)
run 0 "second prune" prune
cat "$TEST_TMP/out"
grep -q "$B1 .*earlier deletion: *a: data kept (referenced by $B3)" "$TEST_TMP/out" ||
	fail "a second prune does not say B1's data is still kept"
[ -e "$(obj "$B1" data.tar.zst)" ] && [ -e "$(obj "$B2" data.tar.zst)" ] ||
	fail "a second prune deleted referenced data"

# ---- clean: referenced data is no orphan; unreferenced data is ------------
OR=$(mkid 5 0f)
mkdir -p "$A/h/p/$OR"
cp "$(obj "$B1" data.tar.zst)" "$(obj "$OR" data.tar.zst)"
run 0 "clean" clean
cat "$TEST_TMP/out"
[ -e "$(obj "$B1" data.tar.zst)" ] && [ -e "$(obj "$B2" data.tar.zst)" ] ||
	fail "clean deleted data that B3 references"
[ ! -e "$(obj "$OR" data.tar.zst)" ] || fail "clean kept an unreferenced data object without a manifest"

# ---- B3 pruned: its references' data goes with it ---------------------------
python3 "$FORGE" backup "$A" h p "$B4" '[{"name": "a", "type": "file", "data": "full"}]' \
	--manifest-set "snapshot.time_ns=$(tns "$B4")" >/dev/null || fail "forge B4"
run 0 "prune after B4" prune
cat "$TEST_TMP/out"
for b in "$B1" "$B2" "$B3"; do
	[ ! -e "$A/h/p/$b" ] || fail "$b is still in the store: $(ls "$A/h/p/$b")"
done
[ -e "$(obj "$B4" manifest.json)" ] || fail "prune deleted B4"
[ -z "$(ls -A "$ST/prune/h/p" 2>/dev/null)" ] || fail "pending records left: $(ls "$ST/prune/h/p")"

# ---- two regions: references verified and repaired --------------------------
G1=$TEST_TMP/g1 G2=$TEST_TMP/g2
mkdir -p "$G1" "$G2"
sed -e "s|^path = $A\$|path = $G1|" -e "s|^state_dir = .*|state_dir = $TEST_TMP/gstate|" \
	"$TEST_TMP/snapship.conf" >"$TEST_TMP/geo.conf"
printf '[region b]\nstore = file\npath = %s\nreplication = agent\n' "$G2" >>"$TEST_TMP/geo.conf"
S=("$SNAPSHIP" --config "$TEST_TMP/geo.conf")
python3 "$FORGE" backup "$G1" h p "$B1" '[{"name": "a", "type": "file", "data": "alpha"}]' \
	--manifest-set "snapshot.time_ns=$(tns "$B1")" >/dev/null || fail "forge B1 (geo)"
python3 "$FORGE" backup "$G1" h p "$B2" '[
	{"name": "a", "type": "file", "ref_path": "a"},
	{"name": "b", "type": "file", "data": "BRAVO-2"}]' --format 2 --parent "$B1" \
	--manifest-set "snapshot.time_ns=$(tns "$B2")" >/dev/null || fail "forge B2 (geo)"
cp -a "$G1/h" "$G2/"
run 0 "prune (geo)" prune
grep -q "$B1 .*a: deleted (data kept: referenced by $B2); b: deleted (data kept: referenced by $B2)" \
	"$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "prune (geo) does not keep B1's data in both regions"; }
G1D=$G1/h/p/$B1/data.tar.zst G2D=$G2/h/p/$B1/data.tar.zst
[ -e "$G1D" ] && [ -e "$G2D" ] || fail "prune (geo) deleted B1's data"
run 0 "verify (geo, whole)" verify
rm "$G2D"
run 1 "verify, B1's data missing in b" verify
cat "$TEST_TMP/out"
grep -q "b.*missing.*reference $B1: data.tar.zst missing" "$TEST_TMP/out" ||
	fail "verify does not say region b lacks the data of B1, which B2 references"
run 0 "repair" repair
cat "$TEST_TMP/out"
grep -q "repaired" "$TEST_TMP/out" || fail "repair does not say it repaired"
cmp "$G1D" "$G2D" || fail "repair did not copy B1's data to region b"
run 0 "verify after repair" verify
truncate -s 100 "$G2D"
run 1 "verify, B1's data truncated in b" verify
grep -q "b.*corrupt.*reference $B1: data.tar.zst has 100 bytes" "$TEST_TMP/out" ||
	{ cat "$TEST_TMP/out"; fail "verify does not say B1's data in region b is corrupt"; }
run 0 "repair (truncated)" repair
cmp "$G1D" "$G2D" || fail "repair did not replace the truncated data of B1 in region b"
run 0 "verify after the second repair" verify
run 0 "prune (geo) again" prune
[ -e "$G1D" ] && [ -e "$G2D" ] || fail "a second prune (geo) deleted B1's data"
echo "ok: referenced data kept while referenced, said, and removed after; references verified and repaired"
