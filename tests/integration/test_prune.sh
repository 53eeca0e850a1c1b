#!/usr/bin/env bash
# Issue 12, item 2 (retention), with two directory regions and backups
# forged with old snapshot times (tests/tools/forge.py):
#  - prune --dry-run deletes nothing and says what it would;
#  - a prune leaves exactly what the policy keeps, in both regions, and never
#    an object no manifest names (a planted file, a manifest-less backup);
#  - manifest first: a deletion that fails after the manifests went (an
#    injected fault), or a kill -9 there, leaves the backup out of list and
#    a pending record, which the next prune finishes;
#  - a region down (its directory moved away): pending records, applied when
#    it is back; a listing that fails, or is partial (a manifest that cannot
#    be read), deletes nothing there;
#  - a backup a restore is reading (its reading lock held) is skipped.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_cmd python3 zstd xxhsum flock
FORGE=$SRC_DIR/tests/tools/forge.py

A=$TEST_TMP/a
B=$TEST_TMP/b
ST=$TEST_TMP/state
mkdir -p "$A" "$B" "$TEST_TMP/src"
conf() {	# conf PARTITION...
	cat <<EOF
[agent]
state_dir = $ST
host = ph
[retention]
keep_last = 1
keep_daily = 2
max_age = 30d
[region a]
store = file
path = $A
primary = yes
[region b]
store = file
path = $B
replication = agent
EOF
	for p in "$@"; do printf '[partition %s]\npath = %s\n' "$p" "$TEST_TMP/src"; done
}
conf p1 p2 p3 p4 p5 p6 p7 >"$TEST_TMP/snapship.conf"
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")

# The timeline, relative to today's midnight (UTC), so the days are sure:
# keep_last 1 keeps K1 (yesterday 13:00), keep_daily 2 keeps K1 and K2 (the
# day before); D1 (yesterday 12:00) and D2 (3 days ago) no rule keeps;
# O1 and O2 are older than max_age.
mid=$(($(date +%s) / 86400 * 86400))
declare -A T=([K1]=$((mid - 86400 + 13 * 3600)) [D1]=$((mid - 86400 + 12 * 3600))
	[K2]=$((mid - 2 * 86400 + 12 * 3600)) [D2]=$((mid - 3 * 86400 + 12 * 3600))
	[O1]=$((mid - 40 * 86400)) [O2]=$((mid - 45 * 86400)))
declare -A ID
for k in "${!T[@]}"; do
	ID[$k]=$(date -u -d "@${T[$k]}" +%Y%m%dT%H%M%SZ)-$(printf '%06x' $((T[$k] % 16777215)))
done
KEEP="${ID[K1]} ${ID[K2]}"
DELETE="${ID[D1]} ${ID[D2]} ${ID[O1]} ${ID[O2]}"

# timeline PART: the six backups in region a, copied to b
timeline() {
	local k
	for k in "${!T[@]}"; do
		python3 "$FORGE" backup "$A" ph "$1" "${ID[$k]}" '[{"type":"file","name":"f","data":"hi"}]' \
			--manifest-set "snapshot.time_ns=${T[$k]}000000000" >/dev/null
	done
	mkdir -p "$B/ph"
	cp -a "$A/ph/$1" "$B/ph/"
}
# backups REGION_DIR PART: the ids with a manifest, sorted, on one line
backups() {
	(cd "$1/ph/$2" 2>/dev/null && for d in */manifest.json; do [ -e "$d" ] && echo "${d%%/*}"; done) |
		sort | tr '\n' ' ' | sed 's/ $//'
}
sorted() { tr ' ' '\n' <<<"$*" | sort | tr '\n' ' ' | sed 's/ $//'; }
ALL=$(sorted "$KEEP $DELETE")
WANT=$(sorted "$KEEP")
expect_backups() {	# expect_backups PART WANT WHAT
	local r
	for r in "$A" "$B"; do
		[ "$(backups "$r" "$1")" = "$2" ] ||
			fail "$3: region ${r##*/} holds [$(backups "$r" "$1")], expected [$2]"
	done
}
# objects REGION_DIR PART ID: how many of the backup's files are left
objects() { find "$1/ph/$2/$3" -type f 2>/dev/null | wc -l; }

# ---- dry run, then the real prune; planted objects stay -------------------
timeline p1
echo planted >"$A/ph/p1/${ID[D2]}/planted.bin"
orphan=20200101T000000Z-abcdef
mkdir -p "$A/ph/p1/$orphan" && echo x >"$A/ph/p1/$orphan/data.tar.zst"
out=$("${S[@]}" prune p1 --dry-run) || fail "prune --dry-run: exit $?: $out"
echo "$out"
expect_backups p1 "$ALL" "after --dry-run"
grep -q "would delete 4" <<<"$out" || fail "--dry-run does not say it would delete 4: $out"
grep -q "${ID[O1]}.*delete *max_age.*a: would delete; b: would delete" <<<"$out" ||
	fail "--dry-run does not say why and where ${ID[O1]} would go: $out"
grep -q "${ID[K1]}.*keep *keep_last" <<<"$out" || fail "no keep_last for ${ID[K1]}: $out"
grep -q "${ID[K2]}.*keep *keep_daily" <<<"$out" || fail "no keep_daily for ${ID[K2]}: $out"
"${S[@]}" --json prune p1 --dry-run >"$TEST_TMP/dry.json" || fail "prune --json --dry-run failed"
python3 - "$TEST_TMP/dry.json" "${ID[D1]}" <<'EOF' || fail "prune --json --dry-run: $(cat "$TEST_TMP/dry.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
p = doc[0]
assert p["dry_run"] is True and p["status"] == "ok", p
assert (p["kept"], p["deleted"]) == (2, 4), p
b = [x for x in p["backups"] if x["backup_id"] == sys.argv[2]][0]
assert not b["keep"] and b["rule"] == "none", b
assert {r["action"] for r in b["regions"]} == {"would delete"}, b
EOF

out=$("${S[@]}" prune p1) || fail "prune: exit $?: $out"
echo "$out"
expect_backups p1 "$WANT" "after prune"
for id in $DELETE; do
	[ "$id" = "${ID[D2]}" ] && continue
	[ "$(objects "$A" p1 "$id")$(objects "$B" p1 "$id")" = 00 ] ||
		fail "objects of $id left: $(find "$A/ph/p1/$id" "$B/ph/p1/$id" 2>/dev/null)"
done
[ -f "$A/ph/p1/${ID[D2]}/planted.bin" ] || fail "prune deleted an object no manifest names"
[ "$(objects "$A" p1 "${ID[D2]}")" = 1 ] || fail "objects of ${ID[D2]} besides the planted one left"
[ -f "$A/ph/p1/$orphan/data.tar.zst" ] || fail "prune deleted a manifest-less backup's object"
"${S[@]}" list p1 | grep -q "${ID[D1]}" && fail "list still shows ${ID[D1]}"
[ -z "$(ls -A "$ST/prune/ph/p1" 2>/dev/null)" ] || fail "pending records left: $(ls "$ST/prune/ph/p1")"
out=$("${S[@]}" prune p1) || fail "a second prune: exit $?: $out"
grep -q "delete 0" <<<"$out" || fail "a second prune deleted more: $out"

# ---- manifest first: the objects' deletion fails, the rerun finishes ------
timeline p2
# oldest first: O2's manifest in a (1) and b (2), then its objects in a (3)
rc=0
out=$(SNAPSHIP_FAULT=store.delete@3 "${S[@]}" prune p2 2>&1) || rc=$?
echo "$out"
[ "$rc" = 1 ] || fail "a failed deletion: exit $rc, expected 1: $out"
[ -f "$A/ph/p2/${ID[O2]}/manifest.json" ] && fail "the manifest of ${ID[O2]} is still in a"
[ -f "$A/ph/p2/${ID[O2]}/data.tar.zst" ] || fail "the fault did not hit the objects of ${ID[O2]} (test broken)"
"${S[@]}" list p2 | grep -q "${ID[O2]}" && fail "list shows the half-deleted ${ID[O2]}"
[ -f "$ST/prune/ph/p2/${ID[O2]}.json" ] || fail "no pending record for the half-deleted ${ID[O2]}"
expect_backups p2 "$WANT" "after a prune with a failed deletion"
out=$("${S[@]}" prune p2) || fail "the rerun: exit $?: $out"
echo "$out"
grep -q "${ID[O2]} *earlier deletion: *a: deleted" <<<"$out" || fail "the rerun does not say it finished ${ID[O2]}: $out"
[ "$(objects "$A" p2 "${ID[O2]}")" = 0 ] || fail "the rerun left objects of ${ID[O2]}"
[ -e "$ST/prune/ph/p2/${ID[O2]}.json" ] && fail "the pending record of ${ID[O2]} is left"

# ---- killed between the manifests and the objects: the rerun finishes -----
timeline p7
rc=0
SNAPSHIP_FAULT=prune.crash "${S[@]}" prune p7 >/dev/null 2>&1 || rc=$?
[ "$rc" = 137 ] || fail "prune with prune.crash: exit $rc, expected 137 (SIGKILL)"
[ -f "$A/ph/p7/${ID[O2]}/manifest.json" ] && fail "the manifest of ${ID[O2]} is still in a after the crash"
[ -f "$B/ph/p7/${ID[O2]}/data.tar.zst" ] || fail "the crash came after the objects went (test broken)"
"${S[@]}" list p7 | grep -q "${ID[O2]}" && fail "list shows ${ID[O2]}, half pruned by the crash"
out=$("${S[@]}" prune p7) || fail "the run after the crash: exit $?: $out"
echo "$out"
expect_backups p7 "$WANT" "after the run that followed the crash"
[ "$(objects "$A" p7 "${ID[O2]}")$(objects "$B" p7 "${ID[O2]}")" = 00 ] ||
	fail "objects of ${ID[O2]} left after the crash and a rerun"

# ---- a region down: pending, applied when it is back ----------------------
timeline p3
mv "$B" "$B.away"
rc=0
out=$("${S[@]}" --json prune p3 2>"$TEST_TMP/p3.err") || rc=$?
[ "$rc" = 1 ] || fail "prune with region b down: exit $rc, expected 1: $out $(cat "$TEST_TMP/p3.err")"
python3 - "$out" <<'EOF' || fail "prune --json with b down: $out"
import json, sys
p = json.loads(sys.argv[1])[0]
assert p["status"] == "incomplete" and p["pending"] == 4, p
assert [l["listing"] for l in p["listings"]] == ["listed", "failed"], p["listings"]
for b in p["backups"]:
    if not b["keep"]:
        acts = {r["region"]: r["action"] for r in b["regions"]}
        assert acts == {"a": "deleted", "b": "pending"}, b
EOF
mv "$B.away" "$B"
[ "$(backups "$A" p3)" = "$WANT" ] || fail "region a after prune with b down: $(backups "$A" p3)"
[ "$(backups "$B" p3)" = "$ALL" ] || fail "region b changed while it was down: $(backups "$B" p3)"
[ "$(find "$ST/prune/ph/p3" -name '*.json' | wc -l)" = 4 ] || fail "pending records: $(ls "$ST/prune/ph/p3")"
out=$("${S[@]}" prune p3) || fail "prune with b back: exit $?: $out"
echo "$out"
expect_backups p3 "$WANT" "after prune with b back"
[ -z "$(ls -A "$ST/prune/ph/p3")" ] || fail "pending records left: $(ls "$ST/prune/ph/p3")"

# ---- a listing that fails, or is partial, deletes nothing there -----------
timeline p4
rc=0
# the second listing (region b) fails, not for a connection: EACCES
out=$(SNAPSHIP_FAULT=store.list@2:13 "${S[@]}" prune p4 2>&1) || rc=$?
echo "$out"
[ "$rc" = 1 ] || fail "prune with a failed listing: exit $rc: $out"
[ "$(backups "$B" p4)" = "$ALL" ] || fail "region b deleted with a failed listing: $(backups "$B" p4)"
[ "$(backups "$A" p4)" = "$WANT" ] || fail "region a: $(backups "$A" p4)"
"${S[@]}" prune p4 >/dev/null || fail "the rerun after a failed listing failed"
expect_backups p4 "$WANT" "after the rerun"
timeline p5
echo '{"not": "a manifest"}' >"$B/ph/p5/${ID[K2]}/manifest.json"
out=$("${S[@]}" prune p5 2>&1) || fail "prune with a broken manifest in b: exit $?: $out"
echo "$out"
grep -q "region b: listing partial" <<<"$out" || fail "prune does not say b's listing is partial: $out"
[ "$(backups "$B" p5)" = "$ALL" ] || fail "region b deleted with a partial listing: $(backups "$B" p5)"
[ "$(backups "$A" p5)" = "$WANT" ] || fail "region a: $(backups "$A" p5)"

# ---- a backup being read is skipped ---------------------------------------
timeline p6
# restore holds a reading lock on the backup it reads
"${S[@]}" restore p6 --id "${ID[K1]}" --to "$TEST_TMP/r6" >/dev/null || fail "restore of a forged backup failed"
[ -f "$ST/reading/ph/p6/${ID[K1]}.lock" ] || fail "restore took no reading lock"
mkdir -p "$ST/reading/ph/p6"
# a reader holding it as restore does: a shared flock (one process, so
# killing it lets go)
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_SH)
time.sleep(120)' "$ST/reading/ph/p6/${ID[O1]}.lock" &
holder=$!
for _ in $(seq 100); do	# until the holder has it
	flock -n -x "$ST/reading/ph/p6/${ID[O1]}.lock" true || break
	sleep 0.1
done
out=$("${S[@]}" prune p6) || fail "prune with a backup being read: exit $?: $out"
echo "$out"
grep -q "${ID[O1]}.*skipped: a restore on this host is reading it" <<<"$out" ||
	fail "prune does not say it skipped ${ID[O1]}: $out"
[ "$(backups "$A" p6)" = "$(sorted "$KEEP ${ID[O1]}")" ] || fail "region a: $(backups "$A" p6)"
kill "$holder"
wait "$holder" 2>/dev/null || true
"${S[@]}" prune p6 >/dev/null || fail "prune once the reader is gone failed"
expect_backups p6 "$WANT" "after the reader went"
echo "ok"
