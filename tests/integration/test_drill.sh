#!/usr/bin/env bash
# snapship drill (issue 13) on directory stores and a loop btrfs: two
# regions a (primary) and b (replication = agent); the drill reads b.
#  - good backups pass: exit 0, the copy is restored into the scratch
#    directory (a subvolume) and removed after; --keep keeps it (its tree
#    equal to the source) until the next drill; the JUnit report parses
#    with junitparser and validates against tests/data/junit.xsd (xmlschema),
#    the JSON report against doc/drill-report.schema.json (jsonschema);
#  - --sample 3 restores 3 files and reads fewer frames than a whole drill;
#  - it fails, exit 1, naming the cause: a partition with no backup
#    (missing), a backup older than rpo_max = 1s (rpo), bytes flipped in the
#    middle of b's data object (corrupt or checksum, the object named) —
#    while the primary a still passes (--region a);
#  - usage errors exit 2; the zero-config form drills the store's
#    partitions and says it drilled the primary, and fails (1) on a store
#    with nothing of the host;
#  - nothing is written outside the scratch directory and the state dir:
#    the stores and the source are unchanged, no snapshot is left.
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
PY=/usr/bin/python3
"$PY" -c 'import junitparser, xmlschema, jsonschema' 2>/dev/null ||
	skip "needs python3-junitparser, python3-xmlschema and python3-jsonschema (tools/deps.sh)"
SCHEMA=$SRC_DIR/doc/drill-report.schema.json
XSD=$SRC_DIR/tests/data/junit.xsd

sv=$(mk_subvol dr-part)
"$GENDATA" "$sv" --json-bytes 2M --json-file-size 512K --small-files 200 --dirs 8 >/dev/null
sv2=$(mk_subvol dr-none)
echo never backed up >"$sv2/f"
scratch=$TEST_BTRFS/drill-scratch
mkdir -p "$TEST_TMP/a" "$TEST_TMP/b" "$TEST_TMP/r"
conf() {	# conf FILE [LINES FOR dr-part]
	cat >"$1" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = drhost
frame_size = 64K
[partition dr-part]
path = $sv
${2:-}
[partition dr-none]
path = $sv2
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
conf "$TEST_TMP/snapship.conf"
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
"${S[@]}" backup dr-part >"$TEST_TMP/out" 2>&1 || fail "backup: $(cat "$TEST_TMP/out")"

# state of everything a drill must not write: the stores, the source
snap() { (cd "$TEST_TMP" && find a b -type f -print0 | sort -z | xargs -0 sha256sum; tree_manifest "$sv") ; }
snap >"$TEST_TMP/before"

# drill EXPECTED_RC NAME ARGS...: run snapship drill, output in $TEST_TMP/NAME.*
drill() {
	local want=$1 name=$2 rc=0
	shift 2
	"$@" >"$TEST_TMP/$name.out" 2>"$TEST_TMP/$name.err" || rc=$?
	[ "$rc" = "$want" ] ||
		fail "$name: exit $rc, expected $want: $(cat "$TEST_TMP/$name.out" "$TEST_TMP/$name.err")"
}
# jq-like: field PATH of the JSON file (python expression on d)
field() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
schema_ok() {
	"$PY" -c 'import json,sys,jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])),
                    cls=jsonschema.Draft202012Validator)' "$1" "$SCHEMA" ||
		fail "$1 does not match doc/drill-report.schema.json: $(cat "$1")"
}
junit_check() {	# junit_check FILE EXPECTED_FAILURE_TYPE|-
	"$PY" - "$1" "$XSD" "$2" <<'EOF' || fail "JUnit report $1 is not right: $(cat "$1")"
import sys, xmlschema
import xml.etree.ElementTree as ET
from junitparser import JUnitXml, Failure
path, xsd, want = sys.argv[1:4]
xmlschema.XMLSchema(xsd).validate(path)
xml = JUnitXml.fromfile(path)
suites = list(xml)
assert len(suites) == 1 and suites[0].name == "snapship drill", [s.name for s in suites]
cases = list(suites[0])
assert [c.name for c in cases] == ["dr-part"], [c.name for c in cases]
c = cases[0]
assert c.classname == "snapship.drill.drhost", c.classname
# junitparser 2.8 has no testcase properties: the same file through ElementTree
tc = ET.parse(path).getroot().find("testsuite/testcase")
props = {p.get("name"): p.get("value") for p in tc.iter("property")}
for k in ("region", "backup_id", "rpo_seconds", "rto_seconds", "rpo_max_seconds",
          "rto_max_seconds", "bytes", "mb_per_s"):
    assert k in props, (k, props)
assert props["region"] == "b", props
fails = [r for r in c.result if isinstance(r, Failure)]
if want == "-":
    assert not fails and c.is_passed, c.result
else:
    assert len(fails) == 1 and fails[0].type == want, [(f.type, f.message) for f in fails]
    assert "dr-part" in fails[0].message and "region b" in fails[0].message, fails[0].message
print("junit ok:", c.name, c.time, want)
EOF
}

# ---- good backups pass, from b, the copy removed
drill 0 pass "${S[@]}" drill --partition dr-part --scratch "$scratch" \
	--report-junit "$TEST_TMP/pass.xml" --report-json "$TEST_TMP/pass.json"
grep -q "passed" "$TEST_TMP/pass.out" || fail "no 'passed' in the table: $(cat "$TEST_TMP/pass.out")"
grep -q "newest committed backup in region b" "$TEST_TMP/pass.out" ||
	fail "the table does not say which backup and why: $(cat "$TEST_TMP/pass.out")"
schema_ok "$TEST_TMP/pass.json"
junit_check "$TEST_TMP/pass.xml" -
[ "$(field "$TEST_TMP/pass.json" 'd["partitions"][0]["region"]')" = b ] || fail "not drilled from b"
full_frames=$(field "$TEST_TMP/pass.json" 'd["partitions"][0]["frames_read"]')
total=$(field "$TEST_TMP/pass.json" 'd["partitions"][0]["frames_total"]')
[ "$full_frames" -ge "$total" ] && [ "$total" -gt 8 ] ||
	fail "a whole drill read $full_frames of $total frames"
[ -z "$(ls -A "$scratch")" ] || fail "the scratch copy was not removed: $(ls -A "$scratch")"
[ -f "$TEST_TMP/state/drills/drhost/dr-part.json" ] || fail "no drill record"
[ "$(field "$TEST_TMP/state/drills/drhost/dr-part.json" 'd["passed"]')" = True ] ||
	fail "the drill record does not say passed"

# ---- --keep: the copy stays, equal to the source; the next drill removes it
drill 0 keep "${S[@]}" --json drill --partition dr-part --scratch "$scratch" --keep
schema_ok "$TEST_TMP/keep.out"
copy=$(field "$TEST_TMP/keep.out" 'd["partitions"][0]["scratch"]')
[ "$(field "$TEST_TMP/keep.out" 'd["partitions"][0]["kept"]')" = True ] && [ -d "$copy" ] ||
	fail "--keep: no copy kept at $copy"
btrfs subvolume show "$copy" >/dev/null 2>&1 || fail "--keep: $copy is not a subvolume"
assert_trees_equal "$sv" "$copy"

# ---- --sample 3: fewer frames, 3 files (the kept copy goes first)
drill 0 sample "${S[@]}" drill --partition dr-part --scratch "$scratch" --sample 3 \
	--report-json "$TEST_TMP/sample.json"
[ ! -e "$copy" ] || fail "the next drill did not remove the kept copy $copy"
schema_ok "$TEST_TMP/sample.json"
[ "$(field "$TEST_TMP/sample.json" 'd["partitions"][0]["sampled"]')" = 3 ] || fail "--sample 3: not 3 files"
[ "$(field "$TEST_TMP/sample.json" 'd["partitions"][0]["files"]')" = 3 ] || fail "--sample 3: files not 3"
sample_frames=$(field "$TEST_TMP/sample.json" 'd["partitions"][0]["frames_read"]')
echo "frames read: whole $full_frames, --sample 3 $sample_frames (of $total)"
[ "$sample_frames" -ge 1 ] && [ "$sample_frames" -lt "$full_frames" ] ||
	fail "--sample 3 read $sample_frames frames, a whole drill $full_frames"
[ -z "$(ls -A "$scratch")" ] || fail "--sample left $(ls -A "$scratch")"

# ---- a partition with no backup: missing
drill 1 missing "${S[@]}" --json drill --partition dr-none --partition dr-part --scratch "$scratch"
schema_ok "$TEST_TMP/missing.out"
[ "$(field "$TEST_TMP/missing.out" 'd["partitions"][0]["failure"]')" = missing ] ||
	fail "dr-none: not 'missing': $(cat "$TEST_TMP/missing.out")"
field "$TEST_TMP/missing.out" 'd["partitions"][0]["message"]' | grep -q "partition dr-none, region b" ||
	fail "the message does not name the partition and region"
[ "$(field "$TEST_TMP/missing.out" 'd["partitions"][1]["passed"]')" = True ] ||
	fail "dr-part did not pass next to a missing one"

# ---- RPO: rpo_max = 1s, the backup is older
sleep 2
conf "$TEST_TMP/rpo.conf" "rpo_max = 1s"
drill 1 rpo "$SNAPSHIP" --config "$TEST_TMP/rpo.conf" drill --partition dr-part \
	--scratch "$scratch" --report-junit "$TEST_TMP/rpo.xml" --report-json "$TEST_TMP/rpo.json"
schema_ok "$TEST_TMP/rpo.json"
junit_check "$TEST_TMP/rpo.xml" rpo
grep -q "rpo_max 1 s" "$TEST_TMP/rpo.out" || fail "the RPO failure does not say the limit: $(cat "$TEST_TMP/rpo.out")"
[ "$(field "$TEST_TMP/state/drills/drhost/dr-part.json" 'd["failure"]')" = rpo ] ||
	fail "the drill record does not say rpo"

# ---- usage errors
drill 2 usage1 "${S[@]}" drill --partition no-such-part
drill 2 usage2 "${S[@]}" drill --sample 0
drill 2 usage3 "${S[@]}" drill extra-arg

# ---- the zero-config form: the store's partitions, the primary said
drill 0 zero "$SNAPSHIP" --host drhost --state-dir "$TEST_TMP/state" drill \
	--from "$TEST_TMP/a" --scratch "$scratch"
grep -q "dr-part .*passed" "$TEST_TMP/zero.out" && grep -q "is the primary" "$TEST_TMP/zero.out" ||
	fail "zero-config drill: $(cat "$TEST_TMP/zero.out")"

# a store with nothing of this host: a failure (1), not a pass
drill 1 empty "$SNAPSHIP" --host nobody --state-dir "$TEST_TMP/state" drill \
	--from "$TEST_TMP/a" --scratch "$scratch"
grep -q "holds no backups of nobody" "$TEST_TMP/empty.err" || fail "empty store: $(cat "$TEST_TMP/empty.err")"

# nothing written outside scratch and the state dir
snap >"$TEST_TMP/after"
cmp -s "$TEST_TMP/before" "$TEST_TMP/after" ||
	fail "a drill changed the stores or the source: $(diff "$TEST_TMP/before" "$TEST_TMP/after" | head)"
no_snapship_snapshots "$TEST_BTRFS"

# ---- a file whose content does not match its index's checksum (every
# frame and object whole): "checksum", not "corrupt" — the restore says so
# with a flag, not through its message's words
FORGE=$SRC_DIR/tests/tools/forge.py
"$PY" "$FORGE" backup "$TEST_TMP/sum" sumhost sp 20261201T000000Z-0a0b0c '[
	{"name": "good", "type": "file", "data": "fine"},
	{"name": "bad", "type": "file", "data": "rotten", "index": {"xxh3": "00000000000000000000000000000000"}}]' \
	>/dev/null || fail "forge the checksum case"
drill 1 sum "$SNAPSHIP" --host sumhost --state-dir "$TEST_TMP/sumstate" drill --from "$TEST_TMP/sum" \
	--scratch "$scratch" --report-json "$TEST_TMP/sum.json"
f=$(field "$TEST_TMP/sum.json" 'd["partitions"][0]["failure"]')
[ "$f" = checksum ] || fail "a file not matching its checksum: failure $f, expected checksum: $(cat "$TEST_TMP/sum.out")"
grep -q "bad" "$TEST_TMP/sum.out" || fail "the checksum failure does not name the file: $(cat "$TEST_TMP/sum.out")"

# ---- bytes flipped in the middle of b's data object: corrupt/checksum
data=$(find "$TEST_TMP/b" -name data.tar.zst | head -1)
"$PY" - "$data" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
m = len(b) // 2
for i in range(m, m + 64):
    b[i] ^= 0x5a
open(p, "wb").write(b)
EOF
drill 1 corrupt "${S[@]}" drill --partition dr-part --scratch "$scratch" \
	--report-junit "$TEST_TMP/corrupt.xml" --report-json "$TEST_TMP/corrupt.json"
schema_ok "$TEST_TMP/corrupt.json"
f=$(field "$TEST_TMP/corrupt.json" 'd["partitions"][0]["failure"]')
case $f in corrupt | checksum) ;; *) fail "flipped bytes: failure $f, expected corrupt or checksum" ;; esac
junit_check "$TEST_TMP/corrupt.xml" "$f"
field "$TEST_TMP/corrupt.json" 'd["partitions"][0]["object"]' | grep -q "dr-part/.*/data.tar.zst" ||
	fail "the failure does not name the data object: $(cat "$TEST_TMP/corrupt.json")"
grep -q "snapship repair" "$TEST_TMP/corrupt.out" || fail "the failure does not say what to do"
[ -z "$(ls -A "$scratch")" ] || fail "a failed drill left $(ls -A "$scratch")"
# the primary's copy is good: drilling a passes
drill 0 primary "${S[@]}" drill --region a --partition dr-part --scratch "$scratch"
grep -q "is the primary" "$TEST_TMP/primary.out" || fail "--region a: not said to be the primary"
echo PASS
