#!/usr/bin/env bash
# The signals a monitoring system or a script reads (issue 11, items 2, 3,
# 6, 8), with backups forged into two directory regions (no btrfs needed):
#  - status lists every configured partition as ok, at risk, stale (older
#    than rpo_max: the partition's, [agent]'s, or 2 x interval) or never,
#    and exits 0, 3, 4 or 5 (the worst), text and JSON alike;
#  - config check exits 1 on any error, 0 with warnings only, each line
#    marked error or warning;
#  - plain verify says it checked sizes and ETags (a flipped byte passes
#    it), --deep says every byte (and finds the byte);
#  - --json of a failing run carries the failure and its message, and its
#    exit_status is the exit status.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_cmd python3 zstd xxhsum

FORGE=$SRC_DIR/tests/tools/forge.py
mkdir -p "$TEST_TMP/a" "$TEST_TMP/b"
now=$(date +%s)
SPEC=$(python3 -c 'import json; print(json.dumps([{"name": "f", "type": "file",
	"data": "".join("line %d of a file to back up\n" % i for i in range(4000))}]))')

# forge PART EPOCH: the same backup of PART taken at EPOCH in a and b; prints its id
forge() {
	local part=$1 t=$2 id r
	id=$(date -u -d "@$t" +%Y%m%dT%H%M%SZ)-0000aa
	for r in a b; do
		python3 "$FORGE" backup "$TEST_TMP/$r" mhost "$part" "$id" "$SPEC" \
			--manifest-set "snapshot.time_ns=${t}000000000" \
			--manifest-set "started_ns=${t}000000000" \
			--manifest-set "finished_ns=$((t + 1))000000000" >/dev/null
	done
	echo "$id"
}
conf() {	# conf [AGENT_RPO_MAX]
	cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = mhost
interval = 1h
${1:+rpo_max = $1}
[partition fresh]
path = $TEST_TMP/nowhere/fresh
[partition mid]
path = $TEST_TMP/nowhere/mid
[partition old]
path = $TEST_TMP/nowhere/old
$OLD_RPO
[partition none]
path = $TEST_TMP/nowhere/none
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
OLD_RPO=
conf
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
jcheck() {	# jcheck FILE PYTHON-EXPR-ON-d...: each must hold
	python3 - "$@" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for e in sys.argv[2:]:
    assert eval(e), (e, json.dumps(d, indent=1))
PY
}
rc=0
# run RC_VAR OUT -- CMD...: run CMD, stdout to OUT, stderr to OUT.err, rc in RC_VAR
run() {
	local -n _rc=$1
	local out=$2
	shift 3
	_rc=0
	"$@" >"$out" 2>"$out.err" || _rc=$?
}

id_fresh=$(forge fresh $((now - 60)))
forge mid $((now - 5400)) >/dev/null       # 1.5 h: within 2 x interval
id_old=$(forge old 1700000000)              # 2023: stale
"${S[@]}" verify >"$TEST_TMP/v0" 2>&1 || fail "verify of the forged backups: $(cat "$TEST_TMP/v0")"

# ---- item 2: never, stale, ok; the worst decides the exit status -----------
O=$TEST_TMP/st
run rc "$O" -- "${S[@]}" status
cat "$O"
[ "$rc" = 5 ] || fail "status with a partition never backed up exited $rc (want 5): $(cat "$O" "$O.err")"
grep -Eq "^none +0 +- .* never$" "$O" || fail "status does not list 'none' as never: $(cat "$O")"
grep -Eq "^old +1 +$id_old .* stale$" "$O" || fail "status does not say old is stale: $(cat "$O")"
grep -Eq "^fresh +1 +$id_fresh .* ok$" "$O" || fail "status does not say fresh is ok: $(cat "$O")"
grep -Eq "^mid +1 .* ok$" "$O" || fail "mid (1.5 h old, 2 x interval = 2 h) is not ok: $(cat "$O")"
grep -q "2 of 4 partition(s) not ok (exit status 5)" "$O" || fail "no summary line: $(cat "$O")"
grep -q "none: never backed up" "$O" || fail "no line says none was never backed up: $(cat "$O")"
grep -q "old: stale: the latest backup is .* old, rpo_max 2.0h" "$O" || fail "no line says why old is stale: $(cat "$O")"
run rc "$O.json" -- "${S[@]}" status --json
[ "$rc" = 5 ] || fail "status --json exited $rc (want 5)"
jcheck "$O.json" 'd["state"] == "never" and d["exit_status"] == 5 and d["not_ok"] == 2' \
	'{p["partition"]: p["state"] for p in d["partitions"]} == {"fresh": "ok", "mid": "ok", "old": "stale", "none": "never"}' \
	'[p for p in d["partitions"] if p["partition"] == "none"][0]["latest"] is None' \
	'all(p["configured"] and p["rpo_max_seconds"] == 7200 for p in d["partitions"])' ||
	fail "status --json: $(cat "$O.json")"

# a backup of none: the worst is now old, stale (4)
forge none $((now - 30)) >/dev/null
"${S[@]}" verify >/dev/null 2>&1 || fail "verify after forging none"
run rc "$O" -- "${S[@]}" status
[ "$rc" = 4 ] || fail "status with a stale partition exited $rc (want 4): $(cat "$O")"
run rc "$O.json" -- "${S[@]}" --json status
[ "$rc" = 4 ] && jcheck "$O.json" 'd["state"] == "stale" and d["exit_status"] == 4' ||
	fail "status --json with a stale partition: rc $rc, $(cat "$O.json")"

# [partition old] rpo_max overrides: everything ok, exit 0
OLD_RPO="rpo_max = 1000w"
conf
run rc "$O" -- "${S[@]}" status
[ "$rc" = 0 ] || fail "status with every partition ok exited $rc: $(cat "$O")"
grep -q "all 4 partition(s) ok" "$O" || fail "status does not say all ok: $(cat "$O")"

# ---- item 2: at risk (b lost fresh's data) exits 3 -------------------------
mv "$TEST_TMP/b/mhost/fresh/$id_fresh/data.tar.zst" "$TEST_TMP/data.b"
run rc "$O" -- "${S[@]}" verify
[ "$rc" = 1 ] || fail "verify with b's copy missing exited $rc"
run rc "$O" -- "${S[@]}" status
[ "$rc" = 3 ] || fail "status with a backup at risk exited $rc (want 3): $(cat "$O")"
grep -Eq "^fresh +1 +$id_fresh .* +1  at risk$" "$O" || fail "status does not say fresh is at risk: $(cat "$O")"
run rc "$O.json" -- "${S[@]}" status --json
[ "$rc" = 3 ] && jcheck "$O.json" 'd["state"] == "at risk" and d["exit_status"] == 3 and d["at_risk"] == 1' ||
	fail "status --json at risk: rc $rc, $(cat "$O.json")"
mv "$TEST_TMP/data.b" "$TEST_TMP/b/mhost/fresh/$id_fresh/data.tar.zst"
"${S[@]}" verify >/dev/null 2>&1 || fail "verify after putting b's copy back"
"${S[@]}" status >"$O" 2>&1 || fail "status after the repair: $(cat "$O")"

# [agent] rpo_max = 1h: mid (1.5 h) is stale; old keeps its own
conf 1h
run rc "$O.json" -- "${S[@]}" status --json
[ "$rc" = 4 ] && jcheck "$O.json" \
	'{p["partition"]: p["state"] for p in d["partitions"]} == {"fresh": "ok", "mid": "stale", "old": "ok", "none": "ok"}' ||
	fail "[agent] rpo_max = 1h: rc $rc, $(cat "$O.json")"
OLD_RPO=
conf

# a partition in the store but not in the config: listed, its age not judged
forge gone 1600000000 >/dev/null
"${S[@]}" verify >/dev/null 2>&1 || fail "verify after forging gone"
run rc "$O.json" -- "${S[@]}" status --json
jcheck "$O.json" '[p for p in d["partitions"] if p["partition"] == "gone"][0]["state"] == "ok"' \
	'[p for p in d["partitions"] if p["partition"] == "gone"][0]["configured"] is False' \
	'[p for p in d["partitions"] if p["partition"] == "gone"][0]["rpo_max_seconds"] is None' ||
	fail "a partition not configured: $(cat "$O.json")"
# zero-config (--from): every partition judged by 2 x 4h
run rc "$O.json" -- "$SNAPSHIP" --host mhost --state-dir "$TEST_TMP/state2" status --from "$TEST_TMP/a" --json
[ "$rc" = 4 ] && jcheck "$O.json" 'all(p["rpo_max_seconds"] == 28800 for p in d["partitions"])' \
	'{p["partition"]: p["state"] for p in d["partitions"]}["gone"] == "stale"' ||
	fail "status --from: rc $rc, $(cat "$O.json")"

# ---- item 6: plain verify says what it checked -----------------------------
data=$TEST_TMP/a/mhost/fresh/$id_fresh/data.tar.zst
cp "$data" "$TEST_TMP/data.good"
size=$(stat -c %s "$data")
python3 - "$data" $((size / 2)) <<'PY'
import sys
p, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read())
b[off] ^= 0x55
open(p, "wb").write(b)
PY
run rc "$O" -- "${S[@]}" verify fresh
[ "$rc" = 0 ] || fail "plain verify of a same-size flipped byte exited $rc (it reads no bytes): $(cat "$O")"
grep -q "checked sizes and ETags (where the store keeps them), not the bytes; --deep reads every byte" "$O" ||
	fail "plain verify does not say what it checked: $(cat "$O")"
run rc "$O.json" -- "${S[@]}" verify fresh --json
[ "$rc" = 0 ] && jcheck "$O.json" 'len(d) == 1 and d[0]["checked"] == "sizes and ETags" and d[0]["geo"] == "geo-protected"' ||
	fail "verify --json: rc $rc, $(cat "$O.json")"
run rc "$O.json" -- "${S[@]}" verify fresh --region a --json
[ "$rc" = 0 ] && jcheck "$O.json" 'd[0]["geo"] == "single region"' || fail "verify --region a --json: $(cat "$O.json")"
run rc "$O" -- "${S[@]}" verify fresh --deep
[ "$rc" = 1 ] && grep -Eq "$id_fresh +a +corrupt" "$O" && grep -q "checked every byte (--deep)" "$O" ||
	fail "verify --deep: rc $rc, $(cat "$O")"
run rc "$O.json" -- "${S[@]}" verify fresh --deep --json
[ "$rc" = 1 ] && jcheck "$O.json" 'd[0]["checked"] == "every byte" and d[0]["status"] == "bad" and d[0]["error"]' ||
	fail "verify --deep --json: rc $rc, $(cat "$O.json")"
cp "$TEST_TMP/data.good" "$data"

# ---- item 8: the JSON of a failing run -------------------------------------
# a backup that fails: its partition, "failed" and the message (was [])
run rc "$O.json" -- "${S[@]}" backup fresh --json
[ "$rc" = 1 ] || fail "backup of a missing path exited $rc: $(cat "$O.err")"
jcheck "$O.json" 'len(d) == 1 and d[0]["partition"] == "fresh" and d[0]["status"] == "failed"' \
	'"nowhere/fresh" in d[0]["error"]' || fail "backup --json of a failure: $(cat "$O.json")"
run rc "$O.json" -- "${S[@]}" backup nosuch --json
[ "$rc" = 2 ] && jcheck "$O.json" 'd[0]["partition"] == "nosuch" and d[0]["status"] == "failed"' ||
	fail "backup --json of an unknown partition: rc $rc, $(cat "$O.json")"
printf '[agent]\nstate_dir = %s\n[region a]\nstore = file\npath = %s\n' \
	"$TEST_TMP/state" "$TEST_TMP/a" >"$TEST_TMP/noparts.conf"
run rc "$O.json" -- "$SNAPSHIP" --config "$TEST_TMP/noparts.conf" backup --json
[ "$rc" = 2 ] && jcheck "$O.json" 'd["status"] == "failed" and "no [partition]" in d["error"] and d["exit_status"] == 2' ||
	fail "backup --json without partitions: rc $rc, $(cat "$O.json")"
# a command that fails before its output: one object with the message
for cmd in "list" "status" "verify" "restore fresh --to $TEST_TMP/r"; do
	# shellcheck disable=SC2086 # cmd is words
	run rc "$O.json" -- "$SNAPSHIP" --state-dir "$TEST_TMP/state3" $cmd --from "$TEST_TMP/no-store" --json
	[ "$rc" != 0 ] || fail "$cmd of a missing store exited 0"
	jcheck "$O.json" 'd["status"] == "failed" and d["error"] and d["errors"]' \
		"d['exit_status'] == $rc" "d['error'] in open(sys.argv[1] + '.err').read()" ||
		fail "$cmd --json of a missing store (rc $rc): $(cat "$O.json")"
done
run rc "$O.json" -- "${S[@]}" restore fresh --id 20000101T000000Z-000000 --to "$TEST_TMP/r" --json
[ "$rc" = 1 ] && jcheck "$O.json" 'd["status"] == "failed" and "no backup 20000101T000000Z-000000" in d["error"]' ||
	fail "restore --json of a missing backup: rc $rc, $(cat "$O.json")"
run rc "$O.json" -- "${S[@]}" list --region nowhere --json
[ "$rc" = 2 ] && jcheck "$O.json" 'd["exit_status"] == 2 and "nowhere" in d["error"]' ||
	fail "list --region nowhere --json: rc $rc, $(cat "$O.json")"

# ---- item 3: config check: errors fail it, warnings do not -----------------
run rc "$O" -- "${S[@]}" config check
cat "$O"
[ "$rc" = 1 ] || fail "config check with missing partition paths exited $rc"
grep -q "^  partition fresh: error: " "$O" || fail "config check does not mark the error: $(cat "$O")"
grep -q "4 error(s), 0 warning(s)" "$O" || fail "config check does not count the errors: $(cat "$O")"
grep -q ": ok" "$O" && fail "config check says ok with errors: $(cat "$O")"
run rc "$O.json" -- "${S[@]}" --json config check
[ "$rc" = 1 ] && jcheck "$O.json" 'd["status"] == "error" and d["exit_status"] == 1 and len(d["errors"]) == 4' \
	'all(p["status"] == "error" for p in d["partitions"]) and all(r["status"] == "ok" for r in d["regions"])' ||
	fail "config check --json: rc $rc, $(cat "$O.json")"
# warnings only: no partition, jitter (5m) not shorter than interval (1m)
printf '[agent]\nstate_dir = %s\ninterval = 1m\n[region a]\nstore = file\npath = %s\n' \
	"$TEST_TMP/state" "$TEST_TMP/a" >"$TEST_TMP/warn.conf"
run rc "$O" -- "$SNAPSHIP" --config "$TEST_TMP/warn.conf" config check
cat "$O"
[ "$rc" = 0 ] || fail "config check with warnings only exited $rc: $(cat "$O" "$O.err")"
grep -q "^  warning: no \[partition\]" "$O" && grep -q "^  warning: \[agent\] jitter" "$O" ||
	fail "config check does not mark the warnings: $(cat "$O")"
grep -q "error" "$O" && fail "config check with warnings only says error: $(cat "$O")"
grep -q "warn.conf: ok, 2 warning(s)" "$O" || fail "config check summary: $(cat "$O")"
# a partition's rpo_max not above interval: a warning; no region: an error
printf '[agent]\nstate_dir = %s\n[partition p]\npath = %s\nrpo_max = 2h\n' \
	"$TEST_TMP/state" "$TEST_TMP/a" >"$TEST_TMP/err.conf"
run rc "$O" -- "$SNAPSHIP" --config "$TEST_TMP/err.conf" config check
cat "$O"
[ "$rc" = 1 ] && grep -q "^  error: no \[region\]" "$O" && grep -q "^  warning: \[partition p\]: rpo_max" "$O" ||
	fail "config check without a region: rc $rc, $(cat "$O")"
printf '[agent]\nrpo_max = soon\n' >"$TEST_TMP/bad.conf"
run rc "$O" -- "$SNAPSHIP" --config "$TEST_TMP/bad.conf" config check
[ "$rc" = 2 ] && grep -q "rpo_max = soon" "$O.err" || fail "a bad rpo_max: rc $rc, $(cat "$O.err")"
echo PASS
