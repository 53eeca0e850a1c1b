#!/usr/bin/env bash
# Names from a store are snapship's grammar or nothing (issue 9, items 2, 8
# and 9): manifests planted in both regions of a two-region directory setup
# name partitions "../../../canary/p" and "../../..", a host "..", a backup
# id "../../../../canary/zzzz", another backup's objects, and a partition
# directory whose name sets the window title and clears the screen.
# verify and repair (which keep per-backup replication state in the state
# dir) must create nothing outside <state_dir>/geo (and restore only its
# reading lock in <state_dir>/reading), report each bad manifest
# (escaped) and skip it, and still check the real backup in both regions;
# list, status and verify must not send a raw control character to the
# terminal.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_cmd python3

sv=$(mk_subvol hn-part)
"$GENDATA" "$sv" --json-bytes 1M --json-file-size 256K --small-files 50 >/dev/null
mkdir -p "$TEST_TMP/a" "$TEST_TMP/b" "$TEST_TMP/canary" "$TEST_TMP/outs"
echo "keep me" >"$TEST_TMP/canary/keep"
cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = hnhost
[partition hn-part]
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
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
O=$TEST_TMP/outs
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

out=$("${S[@]}" backup --json) || fail "backup failed: $out"
id=$(jget 'd[0]["backup_id"]' <<<"$out")
"${S[@]}" verify >"$O/v0" 2>&1 || fail "verify of a fresh backup: $(cat "$O/v0")"

# ---- plant the manifests (the same in both regions) ------------------------
esc=$'\e]0;pwned\a\e[2J'
id2=20260101T000000Z-0000aa
id3=20260101T000000Z-0000bb
python3 - "$TEST_TMP" "$id" "$id2" "$id3" "$esc" <<'PY'
import json, os, sys
tmp, rid, id2, id3, esc = sys.argv[1:6]
good = json.load(open(f"{tmp}/a/hnhost/hn-part/{rid}/manifest.json"))

def plant(dirpart, dirid, **kw):
    m = json.loads(json.dumps(good))
    m["backup_id"] = dirid
    m["partition"] = dirpart
    base = f"hnhost/{dirpart}/{dirid}/"
    m["data"]["key"] = base + "data.tar.zst"
    m["index"]["key"] = base + "index.jsonl.zst"
    for k, v in kw.items():
        if "." in k:
            a, b = k.split(".")
            m[a][b] = v
        else:
            m[k] = v
    for region in "ab":
        d = os.path.join(tmp, region, "hnhost", dirpart, dirid).encode()
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, b"manifest.json"), "w") as f:
            json.dump(m, f)

# the state path would be <state>/geo/hnhost/../../../canary/p/<id>.json
plant("evil1", rid, partition="../../../canary/p")
plant("evil2", rid, partition="../../..")
# <state>/geo/hnhost/evil3/../../../../canary/zzzz.json
plant("evil3", id2, backup_id="../../../../canary/zzzz")
plant("evil4", id2, host="..")
# a manifest naming the real backup's objects
plant("evil5", id3, **{"data.key": f"hnhost/hn-part/{rid}/data.tar.zst",
                       "index.key": f"hnhost/hn-part/{rid}/index.jsonl.zst"})
# a partition named to set the window title and clear the screen
plant(esc, rid)
PY

snap() {	# everything but the state dir and our outputs, with sizes and times
	(cd "$TEST_TMP" && find . \( -path ./state -o -path ./outs \) -prune -o -printf '%p %y %s %T@\n' | sort)
	(cd "$TEST_TMP" && find state -printf '%p %y\n' 2>/dev/null | grep -Ev '^state/(geo/|reading[/ ])' | sort)
}
snap >"$O/before"

no_raw_controls() {	# FILE WHAT: no ESC, BEL or other C0 byte but \n and \t
	python3 - "$1" <<'PY' || fail "$2 sends raw control characters to the terminal: $(cat -v "$1")"
import re, sys
data = open(sys.argv[1], "rb").read()
sys.exit(1 if re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", data) else 0)
PY
}

# ---- verify: the bad ones named and skipped, the real one checked ----------
rc=0
"${S[@]}" verify >"$O/verify" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "verify with bad manifests exited $rc: $(cat -v "$O/verify")"
no_raw_controls "$O/verify" "verify"
for r in a b; do
	grep -Eq "^hn-part +$id +$r +ok" "$O/verify" ||
		fail "verify did not check the real backup in region $r: $(cat -v "$O/verify")"
	for k in "evil1/$id" "evil2/$id" "evil3/$id2" "evil4/$id2" "evil5/$id3"; do
		[ "$(grep -c "$r  *bad manifest .*hnhost/$k/manifest.json" "$O/verify")" = 1 ] ||
			fail "verify does not name hnhost/$k/manifest.json in region $r once: $(cat -v "$O/verify")"
	done
	grep -Fq "hnhost/\\x1b]0;pwned\\x07\\x1b[2J/$id/manifest.json" "$O/verify" ||
		fail "verify does not name the escaped partition: $(cat -v "$O/verify")"
done
grep -q "evil1/$id/manifest.json.*partition.*not a name" "$O/verify" ||
	fail "verify does not say what is wrong with evil1: $(cat -v "$O/verify")"
grep -q "evil5/$id3/manifest.json.*data.key" "$O/verify" ||
	fail "verify does not say evil5 names other objects: $(cat -v "$O/verify")"
grep -q unreachable "$O/verify" && fail "a bad manifest made a region unreachable: $(cat -v "$O/verify")"

rc=0
"${S[@]}" verify --json >"$O/vjson" 2>"$O/vjson.err" || rc=$?
[ "$rc" = 1 ] || fail "verify --json exited $rc"
python3 - "$O/vjson" "$id" <<'PY' || fail "verify --json: $(cat "$O/vjson")"
import json, sys
d = json.load(open(sys.argv[1]))
real = [e for e in d if e.get("partition") == "hn-part"]
assert len(real) == 1 and real[0]["backup_id"] == sys.argv[2] and real[0]["status"] == "ok", real
bad = [e for e in d if "partition" not in e]
assert len(bad) == 12 and all(e["status"] == "bad" and e["region"] in "ab" for e in bad), bad
PY

# ---- repair: nothing to copy, nothing made ---------------------------------
rc=0
"${S[@]}" repair >"$O/repair" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "repair with bad manifests exited $rc: $(cat -v "$O/repair")"
no_raw_controls "$O/repair" "repair"
grep -Eq "^hn-part +$id +b +ok" "$O/repair" || fail "repair: $(cat -v "$O/repair")"

# ---- list and status: the real backup, the others skipped, escaped ---------
"${S[@]}" list >"$O/list" 2>&1 || fail "list: $(cat -v "$O/list")"
no_raw_controls "$O/list" "list"
grep -Eq "^hn-part +$id " "$O/list" || fail "list does not show the backup: $(cat -v "$O/list")"
grep -Fq "skipping hnhost/\\x1b]0;pwned\\x07\\x1b[2J/$id/manifest.json" "$O/list" ||
	fail "list does not name the escaped partition: $(cat -v "$O/list")"
[ "$(grep -c "skipping hnhost/evil1/$id/manifest.json" "$O/list")" = 1 ] ||
	fail "list does not name evil1 once: $(cat -v "$O/list")"
"${S[@]}" status >"$O/status" 2>&1 || fail "status: $(cat -v "$O/status")"
no_raw_controls "$O/status" "status"
grep -Eq "^hn-part +1 +$id" "$O/status" || fail "status: $(cat -v "$O/status")"
"${S[@]}" list "$esc" >"$O/list2" 2>&1 && fail "list of a partition named with control characters worked"
no_raw_controls "$O/list2" "list PARTITION"
"${S[@]}" restore hn-part --to "$TEST_BTRFS/hn-r" >"$O/restore" 2>&1 ||
	fail "restore: $(cat -v "$O/restore")"

# ---- nothing outside <state_dir>/geo ---------------------------------------
snap >"$O/after"
diff "$O/before" "$O/after" >"$O/diff" || fail "files changed outside the state dir: $(cat -v "$O/diff")"
[ "$(cat "$TEST_TMP/canary/keep")" = "keep me" ] || fail "the canary changed"
(cd "$TEST_TMP/state/geo" && find . -mindepth 1 | sort) >"$O/geo"
printf '%s\n' ./hnhost ./hnhost/hn-part "./hnhost/hn-part/$id.json" | diff - "$O/geo" >"$O/diff" ||
	fail "unexpected replication state: $(cat -v "$O/diff")"
# restore's reading lock: the real backup's only
(cd "$TEST_TMP/state/reading" && find . -mindepth 1 | sort) >"$O/reading"
printf '%s\n' ./hnhost ./hnhost/hn-part "./hnhost/hn-part/$id.lock" | diff - "$O/reading" >"$O/diff" ||
	fail "unexpected reading locks: $(cat -v "$O/diff")"
# (its scratch files go to $TEST_TMP: after the listing)
assert_trees_equal "$sv" "$TEST_BTRFS/hn-r"
# ---- huge numbers (item 11): refused, or used without overflow -------------
# (run under make D=ubsan: any signed overflow aborts)
python3 - "$TEST_TMP" "$id" <<'PY'
import json, os, sys
tmp, rid = sys.argv[1:3]
good = json.load(open(f"{tmp}/a/hnhost/hn-part/{rid}/manifest.json"))
big = 2**63 - 1
def plant(part, **kw):
    m = json.loads(json.dumps(good))
    m["partition"] = part
    m["data"]["key"] = f"hnhost/{part}/{rid}/data.tar.zst"
    m["index"]["key"] = f"hnhost/{part}/{rid}/index.jsonl.zst"
    for k, v in kw.items():
        a, b = k.split(".") if "." in k else (k, None)
        if b: m[a][b] = v
        else: m[a] = v
    d = f"{tmp}/a/hnhost/{part}/{rid}"
    os.makedirs(d, exist_ok=True)
    json.dump(m, open(f"{d}/manifest.json", "w"))
# the largest numbers jansson reads: taken, and used without overflow
plant("huge", started_ns=big, finished_ns=big, **{"snapshot.time_ns": big,
      "counts.files": big, "counts.entries": big, "counts.logical_bytes": big,
      "counts.stored_bytes": 1, "data.size": big, "index.size": big,
      "compression.frames": 2**32 - 1})
plant("negative", started_ns=-big, **{"data.size": -1, "counts.files": -5})
plant("bigframes", **{"compression.frame_size": 2**40})
plant("toobig", **{"counts.files": 2**64})
# a real where a count goes (1e30): not an integer
plant("float")
path = f"{tmp}/a/hnhost/float/{rid}/manifest.json"
text = open(path).read()
lb = '"logical_bytes": %d' % good["counts"]["logical_bytes"]
assert lb in text
open(path, "w").write(text.replace(lb, '"logical_bytes": 1e30'))
PY
cp "$TEST_TMP/a/hnhost/hn-part/$id/"*.zst "$TEST_TMP/a/hnhost/huge/$id/"
"${S[@]}" list >"$O/list3" 2>&1 || fail "list with huge numbers: $(cat -v "$O/list3")"
grep -Eq "^huge +$id " "$O/list3" || fail "list does not show the huge manifest: $(cat -v "$O/list3")"
for p in negative bigframes toobig float; do
	grep -q "skipping hnhost/$p/$id/manifest.json" "$O/list3" ||
		fail "list does not skip hnhost/$p: $(cat -v "$O/list3")"
done
"${S[@]}" list --json >"$O/list3.json" 2>/dev/null || fail "list --json with huge numbers"
"${S[@]}" status >"$O/status3" 2>&1 || fail "status with huge numbers: $(cat -v "$O/status3")"
rc=0
"${S[@]}" verify >"$O/verify3" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "verify with huge numbers exited $rc: $(cat -v "$O/verify3")"
grep -Eq "^huge +$id +a +corrupt" "$O/verify3" || fail "verify: $(cat -v "$O/verify3")"
grep -Eq "^hn-part +$id +a +ok" "$O/verify3" || fail "verify: $(cat -v "$O/verify3")"

echo "-- verify:"; cat -v "$O/verify"; echo "-- list:"; cat -v "$O/list"
echo "ok: bad manifests named and skipped, nothing written outside $TEST_TMP/state/geo"
