#!/usr/bin/env bash
# [agent] max_concurrent = 2 (issue 12): two partitions due at once are
# backed up at the same time by agent --once (their backups overlap in
# time, as the agent's log and the run records say), each committed, each
# its own snapshot released; with max_concurrent = 1 they do not overlap.
# SIGTERM while both run cancels both: exit 0, no snapshot, no temp file,
# nothing committed.
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"
need_btrfs
need_cmd python3

cleanup() {
	local sv
	for sv in "$TEST_BTRFS"/cc-*; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT
state=$TEST_TMP/state
store=$TEST_TMP/store
mkdir -p "$store"
host=cchost
one=$(mk_subvol cc-one)
two=$(mk_subvol cc-two)
# 12 MiB each at 4 MiB/s: about 3 s of reading each
"$GENDATA" "$one" --json-bytes 12M --json-file-size 2M --small-files 20 >/dev/null
"$GENDATA" "$two" --json-bytes 12M --json-file-size 2M --small-files 20 --seed 2 >/dev/null
conf() {	# conf MAX_CONCURRENT
	cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $state
host = $host
interval = 1h
jitter = 0
max_concurrent = $1
max_read_rate = 4M
low_impact = off
[retention]
keep_last = 100
[partition cc-one]
path = $one
[partition cc-two]
path = $two
[region main]
store = file
path = $store
EOF
}
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf" --log-format=json)
backups() { find "$store" -name manifest.json | wc -l; }

# spans LOG: each partition's backup as "start end" (from the agent's log),
# and whether the two overlap
spans() {
	python3 - "$1" <<'PY'
import datetime, json, re, sys
t = {}
for line in open(sys.argv[1]):
    o = json.loads(line)
    when = datetime.datetime.strptime(o["time"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
    m = re.match(r"backing up (cc-\w+) ", o["msg"])
    if m:
        t.setdefault(m.group(1), [None, None])[0] = when
    m = re.match(r"backup \S+ of (cc-\w+) committed", o["msg"])
    if m:
        t.setdefault(m.group(1), [None, None])[1] = when
assert set(t) == {"cc-one", "cc-two"} and all(None not in v for v in t.values()), t
(a0, a1), (b0, b1) = t["cc-one"], t["cc-two"]
overlap = min(a1, b1) - max(a0, b0)
print("cc-one %.1f..%.1f s, cc-two %.1f..%.1f s: overlap %.1f s"
      % (0, a1 - a0, b0 - a0, b1 - a0, overlap))
print("OVERLAP" if overlap > 0 else "APART")
PY
}

# ---- max_concurrent = 2: at the same time ----------------------------------
conf 2
"${S[@]}" agent --once 2>"$TEST_TMP/two.log" || fail "agent --once failed: $(cat "$TEST_TMP/two.log")"
out=$(spans "$TEST_TMP/two.log") || fail "the log does not show both backups: $(cat "$TEST_TMP/two.log")"
echo "max_concurrent = 2: $out"
grep -q OVERLAP <<<"$out" || fail "max_concurrent = 2: the backups did not overlap"
[ "$(backups)" = 2 ] || fail "expected 2 backups, found $(backups)"
# the run records agree: each attempt's span (its end minus its duration)
python3 - "$state/runs/$host" <<'PY' || fail "the run records do not show overlapping backups"
import json, sys
r = {p: json.load(open("%s/%s.json" % (sys.argv[1], p))) for p in ("cc-one", "cc-two")}
span = {p: (v["last_attempt"] - v["duration_s"], v["last_attempt"]) for p, v in r.items()}
assert all(v["last_rc"] == 0 for v in r.values()), r
ov = min(span["cc-one"][1], span["cc-two"][1]) - max(span["cc-one"][0], span["cc-two"][0])
print("run records: overlap %.1f s (whole seconds)" % ov)
assert ov > 0, span
PY
no_snapship_snapshots "$TEST_BTRFS"
grep -q '"level":"error"' "$TEST_TMP/two.log" && fail "errors said: $(cat "$TEST_TMP/two.log")"
"$SNAPSHIP" --config "$TEST_TMP/snapship.conf" config check >"$TEST_TMP/check.out" 2>&1 ||
	fail "config check: $(cat "$TEST_TMP/check.out")"
grep -q max_concurrent "$TEST_TMP/check.out" && fail "config check still warns: $(cat "$TEST_TMP/check.out")"

# ---- max_concurrent = 1: one after the other --------------------------------
rm -rf "$state/runs"
find "$store" -mindepth 1 -delete
conf 1
"${S[@]}" agent --once 2>"$TEST_TMP/one.log" || fail "agent --once (max_concurrent = 1) failed: $(cat "$TEST_TMP/one.log")"
out=$(spans "$TEST_TMP/one.log") || fail "the log does not show both backups: $(cat "$TEST_TMP/one.log")"
echo "max_concurrent = 1: $out"
grep -q APART <<<"$out" || fail "max_concurrent = 1: the backups overlapped"

# ---- SIGTERM while both run ---------------------------------------------------
rm -rf "$state/runs"
find "$store" -mindepth 1 -delete
conf 2
read -r rc secs reached < <(python3 "$SRC_DIR/tests/tools/sigrun.py" --when-glob "$store/**/.*.tmp-*" \
	--delay 1 --out /dev/null --err "$TEST_TMP/term.log" term -- "${S[@]}" agent)
echo "SIGTERM with two backups running: exit $rc after ${secs}s"
[ "$reached" = 1 ] || fail "no upload was seen before the signal"
[ "$rc" = 0 ] || fail "the agent exited $rc: $(cat "$TEST_TMP/term.log")"
python3 -c "import sys; sys.exit(float(sys.argv[1]) > 30)" "$secs" || fail "took ${secs}s to stop"
[ "$(grep -c "cancelling the backup of" "$TEST_TMP/term.log")" = 2 ] ||
	fail "not both backups were cancelled: $(cat "$TEST_TMP/term.log")"
no_snapship_snapshots "$TEST_BTRFS"
[ -z "$(ls -A "$state/journal" 2>/dev/null)" ] || fail "journal entries left"
[ -z "$(find "$store" -name '.*.tmp-*')" ] || fail "temp files left: $(find "$store" -name '.*.tmp-*')"
[ "$(backups)" = 0 ] || fail "a cancelled backup was committed"
echo "ok"
