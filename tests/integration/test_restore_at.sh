#!/usr/bin/env bash
# Restore by time (issue 13): restore --at TIME takes the newest backup whose
# snapshot was taken at or before TIME, says which and why, and restores
# exactly that backup's tree; list --at shows the pick and the next one.
#   - three real backups with changes between them (a read-only snapshot of
#     the partition kept after each, the tree to compare with);
#   - --at exactly at a snapshot time (to the ns, and to the second as list
#     shows it), one ns before it, between two, after the last (a date in
#     the future, now, 0s ago), before the first (exit 1, naming the oldest
#     backup and its time), a relative "Ns ago" on forged backups of known
#     snapshot times (forge.py --manifest-set snapshot.time_ns=...);
#   - --at with --id and a time that is not one: usage errors (exit 2);
#   - restore --at --json: why, the next backup, bytes_read; --path with --at;
#   - list --at: text and JSON, the bracket per partition; ls --at;
#   - configured regions: with the primary's copy of the backup it picks
#     truncated, restore --at reads it from the secondary; --region west
#     picks the same backup there.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 zstd xxhsum
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"

state=$TEST_TMP/state
store=$TEST_TMP/store
FORGE=$SRC_DIR/tests/tools/forge.py
H=rahost
mkdir -p "$store"
part=$(mk_subvol ra-part)

cleanup() {
	local sv
	for sv in "$TEST_BTRFS"/ra-r* "$TEST_BTRFS"/ra-copy* "$part"; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT

S=("$SNAPSHIP" --host "$H" --state-dir "$state")

# backup_and_keep N: back up the partition, keep its tree as ra-copyN, and
# print the backup's id
backup_and_keep() {
	local out id
	out=$("${S[@]}" --json backup "$part" --to "$store") || fail "backup $1 failed: $out"
	id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])' <<<"$out")
	btrfs subvolume snapshot -r "$part" "$TEST_BTRFS/ra-copy$1" >/dev/null ||
		fail "cannot keep the tree of backup $1"
	echo "$id"
}

# snap_ns ID: the snapshot time (ns) in the backup's manifest
snap_ns() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"]["time_ns"])' \
		"$store/$H/ra-part/$1/manifest.json"
}

# rfc NS [DIGITS]: RFC 3339 UTC of NS with DIGITS fraction digits (0: to the second)
rfc() {
	python3 - "$1" "${2:-0}" <<'EOF'
import datetime, sys
ns, digits = int(sys.argv[1]), int(sys.argv[2])
s = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
if digits:
    s += "." + ("%09d" % (ns % 10**9))[:digits]
print(s + "Z")
EOF
}

# restore_at N AT [ARGS...]: restore --at AT into ra-rN; prints the output
restore_at() {
	local n=$1 at=$2 out
	shift 2
	out=$("${S[@]}" restore ra-part --from "$store" --at "$at" --to "$TEST_BTRFS/ra-r$n" "$@" 2>&1) ||
		fail "restore --at '$at' failed: $out"
	echo "$out"
}

# picked OUT ID: the restore's first line says it picked ID
picked() {
	local first
	first=$(head -n 1 <<<"$1")
	[[ $first == "restoring $2 (snapshot "* ]] ||
		fail "restore should have said it picked $2; it said: $1"
}

# ---- three backups, with changes between them ----
"$GENDATA" "$part" --json-bytes 2M --json-file-size 512K --small-files 40 --dirs 4 --seed 13 >/dev/null
echo one >"$part/changing.txt"
id1=$(backup_and_keep 1)
sleep 1.2
echo two >>"$part/changing.txt"
echo new >"$part/added-after-1.txt"
rm "$part/segments/seg-000001.json"
id2=$(backup_and_keep 2)
sleep 1.2
echo three >"$part/changing.txt"
rm "$part/added-after-1.txt"
mkdir "$part/dir-after-2" && echo x >"$part/dir-after-2/f"
id3=$(backup_and_keep 3)
ns1=$(snap_ns "$id1") ns2=$(snap_ns "$id2") ns3=$(snap_ns "$id3")
[ "$((ns2 / 1000000000))" -gt "$((ns1 / 1000000000))" ] &&
	[ "$((ns3 / 1000000000))" -gt "$((ns2 / 1000000000))" ] ||
	fail "snapshot times should fall in different seconds: $ns1 $ns2 $ns3"
echo "backups: $id1 ($ns1) $id2 ($ns2) $id3 ($ns3)"

# exactly at backup 2's snapshot time: to the ns, and to the second
out=$(restore_at a "$(rfc "$ns2" 9)")
picked "$out" "$id2"
grep -qF "the newest at or before $(rfc "$ns2" 9); the next one was taken at $(rfc "$ns3") ($id3)" <<<"$out" ||
	fail "the line should say why and name the next backup: $out"
assert_trees_equal "$TEST_BTRFS/ra-copy2" "$TEST_BTRFS/ra-ra"
out=$(restore_at b "$(rfc "$ns2")")
picked "$out" "$id2"
# one ns before it: backup 1
out=$(restore_at c "$(rfc $((ns2 - 1)) 9)")
picked "$out" "$id1"
assert_trees_equal "$TEST_BTRFS/ra-copy1" "$TEST_BTRFS/ra-rc"
echo "exactly at: ok"

# between 2 and 3 (with an offset), with --json: why, next, bytes_read
mid=$(((ns2 + ns3) / 2))
at_mid=$(python3 -c 'import datetime,sys; ns=int(sys.argv[1])
t=datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
print(t.strftime("%Y-%m-%d %H:%M:%S") + ".%09d+05:30" % (ns % 10**9))' "$mid")
json=$("${S[@]}" --json restore ra-part --from "$store" --at "$at_mid" --to "$TEST_BTRFS/ra-rd") ||
	fail "restore --at '$at_mid' --json failed: $json"
python3 - "$json" "$id2" "$id3" "$(rfc "$ns3")" <<'EOF' || fail "restore --at --json: $json"
import json, sys
d, id2, id3, t3 = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
assert d["backup_id"] == id2, d
assert d["next_backup_id"] == id3 and d["next_snap_time"] == t3, d
assert d["why"].startswith(id2 + " (snapshot ") and id3 in d["why"], d["why"]
assert d["at"].endswith("Z") and d["snap_time_ns"] > 0, d
assert 0 < d["bytes_read"] and d["frames_read"] == d["frames_total"] > 0, d
EOF
assert_trees_equal "$TEST_BTRFS/ra-copy2" "$TEST_BTRFS/ra-rd"
# --path with --at: that file as backup 2 had it
out=$(restore_at e "$(rfc "$ns2")" --path changing.txt)
picked "$out" "$id2"
[ "$(cat "$TEST_BTRFS/ra-re/changing.txt")" = "$(printf 'one\ntwo')" ] ||
	fail "--path changing.txt --at backup 2: $(cat "$TEST_BTRFS/ra-re/changing.txt")"
echo "between: ok"

# after the last: a later date, now, 0s ago
for at in 2100-01-01 now "0s ago"; do
	out=$(restore_at f "$at")
	picked "$out" "$id3"
	grep -q "it is the newest backup of ra-part" <<<"$out" || fail "--at $at: $out"
	btrfs subvolume delete "$TEST_BTRFS/ra-rf" >/dev/null
done
out=$(restore_at f now)
assert_trees_equal "$TEST_BTRFS/ra-copy3" "$TEST_BTRFS/ra-rf"
echo "after the last: ok"

# before the first: exit 1, naming the oldest and its time; no target made
rc=0
out=$("${S[@]}" restore ra-part --from "$store" --at "$(rfc $((ns1 - 1)) 9)" \
	--to "$TEST_BTRFS/ra-rg" 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "--at before the first: exit $rc, expected 1: $out"
grep -qF "the oldest, $id1, was taken at $(rfc "$ns1")" <<<"$out" ||
	fail "--at before the first should name the oldest backup and its time: $out"
[ ! -e "$TEST_BTRFS/ra-rg" ] || fail "--at before the first made the target"
rc=0
out=$("${S[@]}" restore ra-part --from "$store" --at "1d ago" --to "$TEST_BTRFS/ra-rg" 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q "the oldest, $id1" <<<"$out" || fail "--at '1d ago': exit $rc: $out"
echo "before the first: ok"

# usage errors: --at with --id, a time that is not one
rc=0
out=$("${S[@]}" restore ra-part --from "$store" --id "$id1" --at now --to "$TEST_BTRFS/ra-rg" 2>&1) || rc=$?
[ "$rc" = 2 ] && grep -q -- "--id and --at" <<<"$out" || fail "--id with --at: exit $rc: $out"
rc=0
out=$("${S[@]}" restore ra-part --from "$store" --at yesterday-ish --to "$TEST_BTRFS/ra-rg" 2>&1) || rc=$?
[ "$rc" = 2 ] && grep -qF -- '--at "yesterday-ish": not a time: use RFC 3339 (2026-12-03T08:00:00Z) or a duration ago (2h ago)' <<<"$out" ||
	fail "--at yesterday-ish: exit $rc: $out"
rc=0
out=$("${S[@]}" list --from "$store" --at "2026-12-03T08:00:00" 2>&1) || rc=$?
[ "$rc" = 2 ] && grep -q "no time zone" <<<"$out" || fail "list --at without a zone: exit $rc: $out"
[ ! -e "$TEST_BTRFS/ra-rg" ] || fail "a usage error made the target"
echo "usage errors: ok"

# ---- forged backups of known snapshot times: relative times ----
now=$(date +%s)
spec='[{"name": "f", "type": "file", "data": "forged"}]'
forge() {	# forge AGE_SECONDS: a backup of fg-part taken AGE_SECONDS ago; prints its id
	local t=$((now - $1)) id
	id=$(date -u -d "@$t" +%Y%m%dT%H%M%SZ)-$(printf '%06x' "$1")
	python3 "$FORGE" backup "$store" "$H" fg-part "$id" "$spec" \
		--manifest-set "snapshot.time_ns=${t}000000000" >/dev/null || fail "forge.py failed"
	echo "$id"
}
f1=$(forge 7200) f2=$(forge 1800) f3=$(forge 300)
for c in "90m ago:$f1" "1h ago:$f1" "29m ago:$f2" "20 minutes ago:$f2" "5m ago:$f3" "1s ago:$f3"; do
	at=${c%%:*} want=${c#*:}
	out=$("${S[@]}" --json restore fg-part --from "$store" --at "$at" --to "$TEST_TMP/fg-$RANDOM") ||
		fail "restore fg-part --at '$at' failed: $out"
	got=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["backup_id"])' <<<"$out")
	[ "$got" = "$want" ] || fail "--at '$at' picked $got, expected $want"
done
rc=0
out=$("${S[@]}" restore fg-part --from "$store" --at "3h ago" --to "$TEST_TMP/fg-x" 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -qF "the oldest, $f1, was taken at $(rfc "$((now - 7200))000000000")" <<<"$out" ||
	fail "--at '3h ago' (before the first forged one): exit $rc: $out"
echo "relative: ok"

# ---- list --at: per partition the pick and the next one ----
out=$("${S[@]}" list --from "$store" --at "$(rfc "$mid" 9)") || fail "list --at failed: $out"
grep -Eq "^ra-part +$id2 +$(rfc "$ns2") +$id3 +$(rfc "$ns3")\$" <<<"$out" ||
	fail "list --at: the ra-part row should be $id2 then $id3: $out"
grep -Eq "^fg-part +$f3 " <<<"$out" || fail "list --at: the fg-part row should pick $f3: $out"
json=$("${S[@]}" --json list ra-part --from "$store" --at "$(rfc $((ns1 - 1)) 9)") ||
	fail "list --at --json failed: $json"
python3 - "$json" "$id1" <<'EOF' || fail "list --at --json before the first: $json"
import json, sys
d, id1 = json.loads(sys.argv[1]), sys.argv[2]
assert len(d) == 1 and d[0]["partition"] == "ra-part", d
assert d[0]["backup_id"] is None and d[0]["next_backup_id"] == id1, d
assert d[0]["backups"] == 3, d
EOF
json=$("${S[@]}" --json list --from "$store" --at now) || fail "list --at now --json failed: $json"
python3 - "$json" "$id3" "$f3" <<'EOF' || fail "list --at now --json: $json"
import json, sys
d = {r["partition"]: r for r in json.loads(sys.argv[1])}
assert d["ra-part"]["backup_id"] == sys.argv[2] and d["ra-part"]["next_backup_id"] is None, d
assert d["fg-part"]["backup_id"] == sys.argv[3], d
EOF
# ls --at: the same pick, said first, the files of that backup
out=$("${S[@]}" ls ra-part --from "$store" --at "$(rfc "$mid" 9)") || fail "ls --at failed: $out"
grep -q "^listing $id2 (snapshot " <<<"$out" && grep -q "^ra-part $id2 " <<<"$out" &&
	grep -q "added-after-1.txt" <<<"$out" || fail "ls --at between 2 and 3 should list $id2: $out"
echo "list --at: ok"

# ---- configured regions: the primary gone, --at reads the secondary ----
conf=$TEST_TMP/snapship.conf
mkdir -p "$TEST_TMP/east" "$TEST_TMP/west"
cat >"$conf" <<EOF
[agent]
state_dir = $TEST_TMP/cstate
host = $H
[partition ra-part]
path = $part
[region east]
store = file
path = $TEST_TMP/east
primary = yes
[region west]
store = file
path = $TEST_TMP/west
replication = agent
EOF
C=("$SNAPSHIP" --config "$conf")
"${C[@]}" backup >/dev/null || fail "configured backup 1 failed"
btrfs subvolume snapshot -r "$part" "$TEST_BTRFS/ra-copy4" >/dev/null
c1=$(ls "$TEST_TMP/east/$H/ra-part")
sleep 1.2
echo four >"$part/changing.txt"
"${C[@]}" backup >/dev/null || fail "configured backup 2 failed"
cns1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"]["time_ns"])' \
	"$TEST_TMP/east/$H/ra-part/$c1/manifest.json")
# the primary's copy of the backup --at picks truncated: read from west
truncate -s 1000 "$TEST_TMP/east/$H/ra-part/$c1/data.tar.zst"
out=$("${C[@]}" restore ra-part --at "$(rfc "$cns1")" --to "$TEST_BTRFS/ra-rh" 2>&1) ||
	fail "restore --at with the primary's copy truncated failed: $out"
grep -q "^restoring $c1 (snapshot " <<<"$out" && grep -q "from region west" <<<"$out" ||
	fail "restore --at should pick $c1 and read it from west: $out"
assert_trees_equal "$TEST_BTRFS/ra-copy4" "$TEST_BTRFS/ra-rh"
# --region west: listed and picked there
out=$("${C[@]}" list --region west --at "$(rfc "$cns1")") || fail "list --region west --at failed: $out"
grep -Eq "^ra-part +$c1 " <<<"$out" || fail "list --region west --at: $out"
out=$("${C[@]}" restore ra-part --region west --at "$(rfc "$cns1")" --to "$TEST_BTRFS/ra-ri" 2>&1) ||
	fail "restore --region west --at failed: $out"
grep -q "^restoring $c1 (snapshot " <<<"$out" || fail "restore --region west --at: $out"
assert_trees_equal "$TEST_BTRFS/ra-copy4" "$TEST_BTRFS/ra-ri"
echo "configured regions: ok"
echo PASS
