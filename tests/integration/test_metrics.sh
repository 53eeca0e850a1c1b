#!/usr/bin/env bash
# The metrics file (issue 12 item 5): a real backup with metrics_file set
# writes it (mode 0644, no temporary file left), `promtool check metrics`
# accepts it, and its values are the ones status --json shows (run
# records: last attempt and success, failures_total; retained backups;
# the geo state of the latest backup).  A failed attempt counts in
# snapship_failures_total and sets snapship_last_attempt_success to 0, and
# holds the next due time back by the agent's backoff (30 s after the
# attempt, 60 s after a second one in a row): status --json next_due and
# snapship_next_due_timestamp_seconds say when the agent will retry, not
# "now".
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_cmd python3
need_pkg promtool prometheus

vol=$(mk_subvol metrics_db)
head -c 2000000 /dev/urandom >"$vol/data"
seq 1 100000 >"$vol/numbers.txt"
mkdir -p "$TEST_TMP/a" "$TEST_TMP/b" "$TEST_TMP/prom"
PROM=$TEST_TMP/prom/snapship.prom
cat >"$TEST_TMP/snapship.conf" <<CONF
[agent]
state_dir = $TEST_TMP/state
host = mhost
metrics_file = $PROM
[partition db]
path = $vol
[partition gone]
path = $TEST_BTRFS/metrics_no_such_subvolume
[region a]
store = file
path = $TEST_TMP/a
primary = yes
[region b]
store = file
path = $TEST_TMP/b
replication = agent
CONF
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")

"${S[@]}" backup db >"$TEST_TMP/b1.out" 2>&1 || { cat "$TEST_TMP/b1.out"; fail "first backup failed"; }
"${S[@]}" backup db >"$TEST_TMP/b2.out" 2>&1 || { cat "$TEST_TMP/b2.out"; fail "second backup failed"; }
# a partition that cannot be backed up: a failed attempt (exit 1)
if "${S[@]}" backup gone >"$TEST_TMP/b3.out" 2>&1; then
	fail "a backup of a missing subvolume succeeded"
fi

[ -f "$PROM" ] || fail "no metrics file $PROM after backup"
[ "$(stat -c %a "$PROM")" = 644 ] || fail "metrics file mode $(stat -c %a "$PROM"), expected 644"
left=$(find "$TEST_TMP/prom" -mindepth 1 ! -name snapship.prom)
[ -z "$left" ] || fail "temporary files left next to the metrics file: $left"
promtool check metrics <"$PROM" >"$TEST_TMP/promtool.out" 2>&1 ||
	{ cat "$TEST_TMP/promtool.out"; cat "$PROM"; fail "promtool check metrics rejects the metrics file"; }
echo "promtool check metrics: ok ($(grep -vc '^#' "$PROM") samples)"

rc=0
"${S[@]}" --json status >"$TEST_TMP/status.json" || rc=$?
# gone: never backed up (5) is the worst
[ "$rc" = 5 ] || fail "status exit $rc, expected 5 (a partition never backed up)"

# the text says which partition's last attempt failed
"${S[@]}" status >"$TEST_TMP/status.txt" || true
grep -q "^gone: the last backup attempt failed (.*, 1 failure(s) so far): " "$TEST_TMP/status.txt" ||
	fail "status does not say gone's last attempt failed: $(cat "$TEST_TMP/status.txt")"
if grep -q "^db: the last backup attempt failed" "$TEST_TMP/status.txt"; then
	fail "status says db's last attempt failed: $(cat "$TEST_TMP/status.txt")"
fi

python3 - "$PROM" "$TEST_TMP/status.json" <<'PY'
import json, re, sys

samples = {}
for line in open(sys.argv[1]):
    if line.startswith("#") or not line.strip():
        continue
    m = re.match(r'^(\w+)\{([^}]*)\} (\S+)$', line.strip())
    assert m, "unparsable sample: %r" % line
    labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
    key = (m.group(1), labels.get("partition"), labels.get("region"))
    assert labels.get("host") == "mhost", line
    samples[key] = float(m.group(3))

st = json.load(open(sys.argv[2]))
bad = []

def want(metric, part, value, region=None):
    got = samples.get((metric, part, region))
    if got is None or abs(got - value) > 1e-6:
        bad.append("%s{partition=%s,region=%s} = %r, status --json says %r"
                   % (metric, part, region, got, value))

parts = {p["partition"]: p for p in st["partitions"]}
for name in ("db", "gone"):
    p = parts[name]
    want("snapship_last_attempt_timestamp_seconds", name, p["last_attempt"] or 0)
    want("snapship_last_success_timestamp_seconds", name, p["last_success"] or 0)
    want("snapship_failures_total", name, p["failures_total"])
    want("snapship_backups_retained", name, p["backups"])
    want("snapship_last_attempt_success", name, 1 if p["last_result"] == "ok" else 0)
    want("snapship_backup_duration_seconds", name, p["last_duration_seconds"])
    want("snapship_next_due_timestamp_seconds", name, p["next_due"])
db, gone = parts["db"], parts["gone"]
# the failure's backoff, not "due now"
if gone["next_due"] != gone["last_attempt"] + 30:
    bad.append("gone failed once at %r: next_due %r, expected 30 s later (the backoff)"
               % (gone["last_attempt"], gone["next_due"]))
if db["backups"] != 2 or db["last_result"] != "ok" or db["failures_total"] != 0:
    bad.append("status of db: %r" % db)
if gone["last_result"] != "failed" or gone["failures_total"] != 1 or not gone["last_error"]:
    bad.append("status of gone: %r" % gone)
for r in db["regions"]:
    want("snapship_geo_protected", "db", 1 if r["state"] == "verified" else 0, r["region"])
if not db["regions"]:
    bad.append("status --json of db has no regions")
if samples.get(("snapship_backup_logical_bytes", "db", None), 0) <= 0:
    bad.append("snapship_backup_logical_bytes of db is not positive")
if bad:
    print("\n".join(bad))
    sys.exit(1)
print("metrics agree with status --json: %d samples" % len(samples))
PY
# a second failure in a row: the backoff doubles
"${S[@]}" backup gone >"$TEST_TMP/b5.out" 2>&1 && fail "a backup of a missing subvolume succeeded"
"${S[@]}" --json status >"$TEST_TMP/status.json" || true
python3 - "$TEST_TMP/status.json" <<'PY' || fail "the backoff of a second failure: $(cat "$TEST_TMP/status.json")"
import json, sys, time
gone = [p for p in json.load(open(sys.argv[1]))["partitions"] if p["partition"] == "gone"][0]
print("gone failed twice in a row: next_due %+d s from the last attempt, %+.0f s from now"
      % (gone["next_due"] - gone["last_attempt"], gone["next_due"] - time.time()))
assert gone["next_due"] == gone["last_attempt"] + 60, gone
assert gone["failures_total"] == 2, gone
PY
# a metrics file that cannot be written is a warning naming it, not a
# failed backup
sed "s|^metrics_file = .*|metrics_file = $TEST_TMP/no-such-dir/snapship.prom|" \
	"$TEST_TMP/snapship.conf" >"$TEST_TMP/bad-metrics.conf"
"$SNAPSHIP" --config "$TEST_TMP/bad-metrics.conf" backup db >"$TEST_TMP/b4.out" 2>&1 ||
	{ cat "$TEST_TMP/b4.out"; fail "a backup failed because its metrics file could not be written"; }
grep -q "warning: .*no-such-dir/snapship.prom" "$TEST_TMP/b4.out" ||
	fail "no warning naming the metrics file that could not be written: $(cat "$TEST_TMP/b4.out")"
no_snapship_snapshots "$TEST_BTRFS" || fail "a snapshot was left behind"
echo "ok"
