#!/usr/bin/env bash
# Format version 2, the foundation (issue 14; doc/incremental.md): backups
# forged as version 2 (tests/tools/forge.py --format 2) in a directory store.
#   - forge resolves a file's {"ref_path": P} to the older backup holding
#     the content and its offset there (following an older v2 entry's own
#     ref), fills parent, references (sorted, with each data object's key,
#     size and sha256), chain and full_id;
#   - list shows the v2 backups; ls and ls --json show their files (names,
#     sizes, types; nothing new in ls's output);
#   - a v2 backup restores (integration/test_restore_v2 has the details),
#     and so does the v1 backup of the same chain; verify --deep reads v2
#     content (ok (deep)); a drill of the newest (v2) passes;
#   - a manifest of an unknown format version is skipped by list, which says
#     "upgrade snapship"; a v2 manifest with references out of order or
#     under another prefix is skipped as broken;
#   - a version 1 backup whose index carries a ref is refused as corrupt.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_cmd python3 zstd xxhsum
[ -x "${SNAPSHIP:-}" ] || fail "SNAPSHIP='${SNAPSHIP:-}' is not an executable (run make)"

FORGE=$SRC_DIR/tests/tools/forge.py
store=$TEST_TMP/store
mkdir -p "$store"
S=("$SNAPSHIP" --host h --state-dir "$TEST_TMP/state")
B1=20261101T000000Z-000001 B2=20261102T000000Z-000002 B3=20261103T000000Z-000003

# run CODE WHAT ARGS...: snapship ARGS exits CODE; output in $TEST_TMP/out, err
run() {
	local code=$1 what=$2 rc=0
	shift 2
	"${S[@]}" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	[ "$rc" = "$code" ] || { cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "$what: exit $rc, expected $code"; }
}

# ---- a chain: a v1 full, then two v2 backups ---------------------------------
python3 "$FORGE" backup "$store" h p "$B1" '[
	{"name": "a", "type": "file", "data": "alpha"},
	{"name": "b", "type": "file", "data": "bravo"},
	{"name": "d", "type": "dir"},
	{"name": "d/e", "type": "file", "data": "echo"},
	{"name": "empty", "type": "file"},
	{"name": "s", "type": "symlink", "target": "a"}]' >/dev/null || fail "forge B1"
python3 "$FORGE" backup "$store" h p "$B2" '[
	{"name": "a", "type": "file", "ref_path": "a"},
	{"name": "b", "type": "file", "data": "BRAVO-2"},
	{"name": "d", "type": "dir"},
	{"name": "d/e", "type": "file", "ref": "'"$B1"'", "offset": 3072},
	{"name": "empty", "type": "file"},
	{"name": "s", "type": "symlink", "target": "a"}]' --format 2 --parent "$B1" >/dev/null ||
	fail "forge B2"
python3 "$FORGE" backup "$store" h p "$B3" '[
	{"name": "a", "type": "file", "ref_path": "a"},
	{"name": "b2", "type": "file", "ref_path": "b"},
	{"name": "n", "type": "file", "data": "new", "mode": 384}]' --format 2 --parent "$B2" >/dev/null ||
	fail "forge B3"

# what forge wrote: locations resolved to the holder, manifests filled
python3 - "$store" "$B1" "$B2" "$B3" <<-'EOF' || fail "forge --format 2 wrote the wrong index or manifest (above)"
	import os, sys
	sys.path.insert(0, os.path.join(os.environ["SRC_DIR"], "tests", "tools"))
	import forge
	store, b1, b2, b3 = sys.argv[1:]
	m1, i1 = forge.read_backup(store, "h", "p", b1)
	m2, i2 = forge.read_backup(store, "h", "p", b2)
	m3, i3 = forge.read_backup(store, "h", "p", b3)
	by = lambda ents: {e["path"]: e for e in ents}
	e1, e2, e3 = by(i1), by(i2), by(i3)
	assert m2["format_version"] == 2 and m3["format_version"] == 2
	assert (e2["a"]["ref"], e2["a"]["offset"]) == (b1, e1["a"]["offset"]), e2["a"]
	assert (e2["d/e"]["ref"], e2["d/e"]["offset"]) == (b1, e1["d/e"]["offset"]), e2["d/e"]
	assert "ref" not in e2["b"] and e2["b"]["size"] == 7
	assert "offset" not in e2["d"] and "offset" not in e2["empty"] and "offset" not in e2["s"]
	# B3's a: B2's a points at B1, so B3's does too; b2 is B2's own b
	assert (e3["a"]["ref"], e3["a"]["offset"]) == (b1, e1["a"]["offset"]), e3["a"]
	assert (e3["b2"]["ref"], e3["b2"]["offset"]) == (b2, e2["b"]["offset"]), e3["b2"]
	assert e3["b2"]["xxh3"] == e2["b"]["xxh3"]
	for e in i2 + i3:
	    assert {"ino", "igen", "ctime_ns"} <= set(e), e
	assert (m2["parent"], m2["chain"], m2["full_id"]) == (b1, 1, b1), m2
	assert (m3["parent"], m3["chain"], m3["full_id"]) == (b2, 2, b1), m3
	assert [r["id"] for r in m2["references"]] == [b1]
	assert [r["id"] for r in m3["references"]] == [b1, b2]
	assert m3["references"][1]["key"] == m2["data"]["key"]
	assert m3["references"][1]["sha256"] == m2["data"]["sha256"]
	assert m3["references"][0]["size"] == m1["data"]["size"]
	assert m3["counts"]["referenced_bytes"] == 5 + 7 and m3["counts"]["new_bytes"] == 3
	print("forge: locations and manifests as expected")
EOF

# ---- list and ls read them ---------------------------------------------------
run 0 "list" list --from "$store" --json
python3 -c '
import json, sys
ids = [o["backup_id"] for o in json.load(open(sys.argv[1]))]
assert ids == sys.argv[2:], ids
' "$TEST_TMP/out" "$B1" "$B2" "$B3" || fail "list --json does not show the three backups"
run 0 "ls B3" ls p --from "$store"
for n in a b2 n; do
	grep -q " $n\$" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "ls of B3 does not show $n"; }
done
grep -q -- '-rw------- .* 3 .* n$' "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "ls of B3: n's mode or size"; }
run 0 "ls --json B2" ls p --from "$store" --id "$B2" --json
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
got = {e["name"]: (e["type"], e["size"]) for e in d["entries"]}
want = {"a": ("file", 5), "b": ("file", 7), "d": ("dir", 0), "empty": ("file", 0),
        "s": ("symlink", 0)}
assert got == want, got
assert not any("ref" in e for e in d["entries"]), "ls --json shows nothing new"
' "$TEST_TMP/out" || fail "ls --json of B2 (above)"
run 0 "ls B2 d/e" ls p --from "$store" --id "$B2" d/e
grep -q ' 4 .* d/e$' "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "ls of B2's d/e"; }

# ---- v2 backups restore (integration/test_restore_v2 has the rest) -----------
run 0 "restore of a v2 backup" restore p --from "$store" --to "$TEST_TMP/r3"
[ "$(cat "$TEST_TMP/r3/a")" = alpha ] && [ "$(cat "$TEST_TMP/r3/b2")" = BRAVO-2 ] &&
	[ "$(cat "$TEST_TMP/r3/n")" = new ] || fail "restore of B3: wrong content"
[ "$(ls -A "$TEST_TMP/r3" | tr '\n' ' ')" = "a b2 n " ] || { ls -la "$TEST_TMP/r3"; fail "restore of B3: wrong entries"; }
run 0 "restore --id B2" restore p --from "$store" --to "$TEST_TMP/r2" --id "$B2"
[ "$(cat "$TEST_TMP/r2/d/e")" = echo ] && [ -L "$TEST_TMP/r2/s" ] && [ -f "$TEST_TMP/r2/empty" ] ||
	fail "restore of B2: d/e, s or empty"
run 0 "restore of the v1 base" restore p --from "$store" --to "$TEST_TMP/r1" --id "$B1"
[ "$(cat "$TEST_TMP/r1/a")" = alpha ] && [ "$(cat "$TEST_TMP/r1/d/e")" = echo ] ||
	fail "the v1 backup of the chain did not restore"

# verify --deep reads a v2 backup's content; a drill of it passes
run 0 "verify --deep" verify p --from "$store" --deep
for b in "$B1" "$B2" "$B3"; do
	grep -q "$b .*ok (deep) *\$" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "verify --deep of $b"; }
done
# (forged ids are old: an rpo_max past them, so the drill's verdict is the restore's)
mkdir -p "$TEST_TMP/src"
printf '[agent]\nstate_dir = %s\nhost = h\nrpo_max = 36500d\n[partition p]\npath = %s\n' \
	"$TEST_TMP/state" "$TEST_TMP/src" >"$TEST_TMP/drill.conf"
rc=0
"$SNAPSHIP" --config "$TEST_TMP/drill.conf" drill --from "$store" --scratch "$TEST_TMP/scratch" \
	>"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 0 ] && grep -q "$B3 .* passed" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "drill of B3 (v2): exit $rc"; }

# ---- manifests this build does not take ---------------------------------------
hs=$TEST_TMP/hostile
mkdir -p "$hs"
cp -r "$store/h" "$hs/"
python3 - "$hs" "$B2" "$B3" <<-'EOF'
	import json, os, sys
	hs, b2, b3 = sys.argv[1:]
	p = os.path.join(hs, "h", "p", b3, "manifest.json")
	m = json.load(open(p))
	m["references"].reverse()
	json.dump(m, open(p, "w"))
	p = os.path.join(hs, "h", "p", b2, "manifest.json")
	m = json.load(open(p))
	m["format_version"] = 3
	json.dump(m, open(p, "w"))
EOF
run 0 "list with a v3 and a bad v2 manifest" list --from "$hs" --json
python3 -c '
import json, sys
ids = [o["backup_id"] for o in json.load(open(sys.argv[1]))]
assert ids == [sys.argv[2]], ids
' "$TEST_TMP/out" "$B1" || fail "list shows backups it cannot read"
grep -q "format version 3 is not supported.*upgrade snapship" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "list does not say why the v3 manifest is skipped"; }
grep -q "references is not sorted" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "list does not say why the bad v2 manifest is skipped"; }

# ---- a version 1 backup cannot point elsewhere ---------------------------------
B4=20261104T000000Z-000004
python3 - "$store" "$B1" <<-'EOF' >"$TEST_TMP/v1ref.jsonl"
	import json, os, sys
	sys.path.insert(0, os.path.join(os.environ["SRC_DIR"], "tests", "tools"))
	import forge
	_, ents = forge.read_backup(sys.argv[1], "h", "p", sys.argv[2])
	for e in ents:
	    if e["path"] == "a":
	        e["ref"] = sys.argv[2]
	    print(json.dumps(e))
EOF
python3 "$FORGE" backup "$store" h p "$B4" '[
	{"name": "a", "type": "file", "data": "alpha"},
	{"name": "b", "type": "file", "data": "bravo"},
	{"name": "d", "type": "dir"},
	{"name": "d/e", "type": "file", "data": "echo"},
	{"name": "empty", "type": "file"},
	{"name": "s", "type": "symlink", "target": "a"}]' --index-jsonl "$TEST_TMP/v1ref.jsonl" >/dev/null ||
	fail "forge B4"
run 1 "restore of a v1 backup whose index has a ref" restore p --from "$store" --to "$TEST_TMP/r4" --id "$B4"
grep -q "index entry a .*names another backup (ref).*corrupt or forged" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "a ref in a v1 index: not refused as corrupt"; }
echo ok
