#!/usr/bin/env bash
# The agent runs DR drills on its own schedule (issue 13: drill_interval)
# on a loop btrfs and one directory region (the drill reads the primary):
#  - interval = 5s, drill_interval = 12s for ~35 s: a drill record per
#    partition, passed; 2 or 3 drills of each, never two closer than the
#    schedule allows (the JSON log's times); each said in one log line with
#    its RPO and RTO, and in sd_notify's STATUS; the metrics file carries
#    snapship_drill_* and passes promtool; status (text and --json) shows
#    the last drill;
#  - a drill made to fail (bytes flipped in the latest backup's data
#    object): said at error level, recorded, snapship_drill_passed 0 and
#    snapship_drill_failure 1 for its kind, status --json says so; it is not
#    retried before drill_interval, the agent idle until the next drill
#    (STATUS=idle, next: drill of ...); the other partition still passes; a
#    `snapship drill` by hand rewrites the metrics file;
#  - SIGTERM during a drill (a partition of many files): the agent exits 0
#    within 10 s, the drill said cancelled, its scratch copy removed and no
#    record written.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_cmd python3
need_pkg promtool prometheus

ST=$TEST_TMP/store
STATE=$TEST_TMP/state
HOST=dhost
PROM=$TEST_TMP/prom/snapship.prom
mkdir -p "$ST" "$TEST_TMP/prom"
P1=$(mk_subvol dp1)
"$GENDATA" "$P1" --json-bytes 256K --json-file-size 64K --small-files 40 --dirs 4 >/dev/null
P2=$(mk_subvol dp2)
"$GENDATA" "$P2" --json-bytes 512K --json-file-size 128K --small-files 20 --dirs 2 --seed 2 >/dev/null

AGENT_PID=""
LISTENER=""
cleanup() {
	local p
	for p in "$AGENT_PID" "$LISTENER"; do
		if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
			kill -KILL "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done
}
trap cleanup EXIT

# The service manager's side of sd_notify: every line the agent sends to
# $SOCK, "<unix time> <assignment>", into $NLOG
SOCK=$TEST_TMP/notify.sock
NLOG=$TEST_TMP/notify.log
python3 - "$SOCK" "$NLOG" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        for line in s.recv(65536).decode("utf-8", "replace").splitlines():
            if line:
                f.write("%.3f %s\n" % (time.time(), line))
PY
LISTENER=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || fail "the notify listener did not bind $SOCK"

# conf FILE INTERVAL DRILL_INTERVAL [PARTITION...]
conf() {
	local f=$1 iv=$2 div=$3 p
	shift 3
	{
		printf '[agent]\nstate_dir = %s\nhost = %s\ninterval = %s\njitter = 0\n' \
			"$STATE" "$HOST" "$iv"
		# every backup a full: this test times, kills or faults the data stream
		printf 'max_chain = 0\n'
		printf 'drill_interval = %s\nmetrics_file = %s\n' "$div" "$PROM"
		for p in "$@"; do
			printf '[partition %s]\npath = %s\n' "$p" "$TEST_BTRFS/$p"
		done
		printf '[region here]\nstore = file\npath = %s\n' "$ST"
	} >"$f"
}
# start_agent CONF LOG: the agent in the background, JSON log lines (AGENT_PID)
start_agent() {
	NOTIFY_SOCKET=$SOCK "$SNAPSHIP" --config "$1" --log-format json agent 2>"$2" &
	AGENT_PID=$!
}
# stop_agent: SIGTERM, wait (at most 60 s); TOOK: the seconds it took
stop_agent() {
	local t0 t1 rc=0
	t0=$(date +%s.%N)
	kill -TERM "$AGENT_PID"
	for _ in $(seq 600); do
		kill -0 "$AGENT_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$AGENT_PID" 2>/dev/null && fail "the agent did not exit within 60 s of SIGTERM"
	wait "$AGENT_PID" || rc=$?
	t1=$(date +%s.%N)
	[ "$rc" -eq 0 ] || fail "the agent exited $rc after SIGTERM (expected 0: a clean stop)"
	AGENT_PID=""
	TOOK=$(echo "$t0 $t1" | awk '{ printf "%.1f", $2 - $1 }')
}
# wait_for FILE PATTERN SECONDS: until grep finds PATTERN in FILE
wait_for() {
	for _ in $(seq $(($3 * 10))); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "\"$2\" not in $1 within $3 s: $(tail -5 "$1")"
}
# prom_value METRIC LABELS: the value of the sample METRIC{LABELS} ("" none)
prom_value() {
	awk -v k="$1{$2}" 'index($0, k " ") == 1 { print $2 }' "$PROM"
}
S=("$SNAPSHIP" --config "$TEST_TMP/agent.conf")

# ---- interval = 5s, drill_interval = 12s for ~35 s ------------------------
conf "$TEST_TMP/agent.conf" 5s 12s dp1 dp2
start_agent "$TEST_TMP/agent.conf" "$TEST_TMP/run1.log"
sleep 35
stop_agent
echo "agent ran ~35 s (interval 5s, drill_interval 12s); stopped in ${TOOK}s"
python3 - "$TEST_TMP/run1.log" <<'PY'
import json, re, sys
from datetime import datetime

drills = {"dp1": [], "dp2": []}
said = {"dp1": 0, "dp2": 0}
for line in open(sys.argv[1]):
    o = json.loads(line)
    t = datetime.fromisoformat(o["time"].replace("Z", "+00:00")).timestamp()
    m = re.match(r"drilling (\w+) from region here", o["msg"])
    if m:
        drills[m.group(1)].append(t)
    m = re.match(r"drill of (\w+) from here (passed|failed)", o["msg"])
    if m:
        assert m.group(2) == "passed", "a drill failed: %s" % o["msg"]
        assert o["level"] == "info", o
        assert re.search(r"RPO \d+s, RTO [\d.]+s; next drill in 12s", o["msg"]), o["msg"]
        said[m.group(1)] += 1
for p, ts in drills.items():
    gaps = [round(b - a, 1) for a, b in zip(ts, ts[1:])]
    print("%s: %d drills, %s s apart" % (p, len(ts), gaps))
    # the first at once, then every 12 s: 3 fit in 35 s, a 4th does not
    assert 2 <= len(ts) <= 3, "%s: %d drills in ~35 s at drill_interval 12s" % (p, len(ts))
    # last_drill is whole seconds: a drill may start up to 1 s early
    assert all(g >= 11 for g in gaps), "%s: drills closer than drill_interval: %s" % (p, gaps)
    assert said[p] == len(ts), "%s: %d drills started, %d verdicts said" % (p, len(ts), said[p])
PY
for p in dp1 dp2; do
	grep -q " STATUS=drilling $p from here" "$NLOG" ||
		fail "no STATUS=drilling $p from here: $(sort -u -k2 "$NLOG" | head)"
done
for p in dp1 dp2; do
	rec=$STATE/drills/$HOST/$p.json
	[ -f "$rec" ] || fail "no drill record $rec"
	python3 - "$rec" <<'PY' || fail "drill record of $p: $(cat "$rec")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["passed"] is True and r["failure"] == "" and r["region"] == "here", r
assert r["last_pass"] == r["last_drill"] > 0 and r["bytes"] > 0, r
assert r["rpo_seconds"] >= 0 and r["rto_seconds"] >= 0, r
PY
done
promtool check metrics <"$PROM" >"$TEST_TMP/promtool.out" 2>&1 ||
	{ cat "$TEST_TMP/promtool.out"; cat "$PROM"; fail "promtool check metrics rejects the metrics file"; }
for p in dp1 dp2; do
	L="host=\"$HOST\",partition=\"$p\""
	for m in snapship_drill_last_timestamp_seconds snapship_drill_last_success_timestamp_seconds \
		snapship_drill_rpo_seconds snapship_drill_rto_seconds snapship_drill_bytes; do
		[ -n "$(prom_value $m "$L")" ] || fail "no $m{$L} in the metrics file: $(grep drill "$PROM")"
	done
	[ "$(prom_value snapship_drill_passed "$L,region=\"here\"")" = 1 ] ||
		fail "snapship_drill_passed of $p is not 1: $(grep drill_passed "$PROM")"
	[ "$(prom_value snapship_drill_last_timestamp_seconds "$L")" = \
		"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["last_drill"])' "$STATE/drills/$HOST/$p.json")" ] ||
		fail "snapship_drill_last_timestamp_seconds of $p is not its record's last_drill"
done
[ "$(grep -c '^snapship_drill_failure{.*} 1$' "$PROM")" -eq 0 ] ||
	fail "a drill failure in the metrics after passing drills: $(grep drill_failure "$PROM")"
"${S[@]}" --json status >"$TEST_TMP/status1.json" || fail "status failed: $(cat "$TEST_TMP/status1.json")"
python3 - "$TEST_TMP/status1.json" "$STATE/drills/$HOST" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
for p in st["partitions"]:
    d = p["drill"]
    rec = json.load(open("%s/%s.json" % (sys.argv[2], p["partition"])))
    assert d and d["passed"] is True and d["failure"] is None, p
    assert d["time"] == rec["last_drill"] and d["backup_id"] == rec["backup_id"], (d, rec)
    assert d["region"] == "here" and 0 <= d["age_seconds"] < 120, d
print("status --json: the last drill of each partition, passed")
PY
"${S[@]}" status >"$TEST_TMP/status1.txt" || fail "status failed: $(cat "$TEST_TMP/status1.txt")"
for p in dp1 dp2; do
	grep -q "^$p: last drill .* ago from here: passed (backup .*, RPO .*, RTO .*)" "$TEST_TMP/status1.txt" ||
		fail "status does not show the last drill of $p: $(cat "$TEST_TMP/status1.txt")"
done
no_snapship_snapshots "$TEST_BTRFS"

# ---- a drill made to fail: bytes flipped in dp2's latest data object ------
# interval 1h: no backup is due (the newest is recent); dp2's record
# removed: its drill is due at once; drill_interval 20s: not retried in ~10 s
latest=$(find "$ST/$HOST/dp2" -mindepth 1 -maxdepth 1 -type d | sort | tail -1)
python3 - "$latest/data.tar.zst" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
for i in range(len(b) // 2, len(b) // 2 + 64):
    b[i] ^= 0x5a
open(p, "wb").write(b)
PY
rm "$STATE/drills/$HOST/dp2.json"
conf "$TEST_TMP/agent.conf" 1h 20s dp1 dp2
start_agent "$TEST_TMP/agent.conf" "$TEST_TMP/run2.log"
wait_for "$TEST_TMP/run2.log" "drill of dp2 from here failed" 60
sleep 10
stop_agent
grep -q "backing up" "$TEST_TMP/run2.log" && fail "a backup ran although none was due: $(cat "$TEST_TMP/run2.log")"
# idle until a drill (the backups are an hour away): the status says so
grep -Eq " STATUS=idle, next: drill of dp[12] in [0-9]+s\$" "$NLOG" ||
	fail "no idle STATUS naming the next drill: $(sort -u -k2 "$NLOG" | grep idle | head)"
n=$(grep -c "drill of dp2 from here failed" "$TEST_TMP/run2.log")
[ "$n" -eq 1 ] || fail "the failed drill of dp2 was said $n times in ~10 s (drill_interval 20s: once): $(cat "$TEST_TMP/run2.log")"
python3 - "$TEST_TMP/run2.log" "$STATE/drills/$HOST/dp2.json" "$(basename "$latest")" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
bad = [o for o in lines if o["msg"].startswith("drill of dp2 from here failed")]
assert bad[0]["level"] == "error", bad[0]
assert "(corrupt)" in bad[0]["msg"] or "(checksum)" in bad[0]["msg"], bad[0]["msg"]
assert sys.argv[3] in bad[0]["msg"], "the failed drill does not name the backup: " + bad[0]["msg"]
r = json.load(open(sys.argv[2]))
assert r["passed"] is False and r["failure"] in ("corrupt", "checksum"), r
assert r["backup_id"] == sys.argv[3] and r["last_pass"] == 0, r
print("the failed drill: %s" % bad[0]["msg"][:160])
PY
kind=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["failure"])' "$STATE/drills/$HOST/dp2.json")
promtool check metrics <"$PROM" >"$TEST_TMP/promtool.out" 2>&1 ||
	{ cat "$TEST_TMP/promtool.out"; fail "promtool check metrics rejects the metrics file after a failed drill"; }
L2="host=\"$HOST\",partition=\"dp2\",region=\"here\""
[ "$(prom_value snapship_drill_passed "$L2")" = 0 ] ||
	fail "snapship_drill_passed of dp2 is not 0 after a failed drill: $(grep drill_ "$PROM")"
[ "$(prom_value snapship_drill_failure "$L2,failure=\"$kind\"")" = 1 ] ||
	fail "snapship_drill_failure{failure=\"$kind\"} of dp2 is not 1: $(grep drill_failure "$PROM")"
[ "$(grep -c "^snapship_drill_failure{$L2,.*} 1\$" "$PROM")" -eq 1 ] ||
	fail "not exactly one failure kind of dp2 is 1: $(grep drill_failure "$PROM")"
[ "$(prom_value snapship_drill_passed "host=\"$HOST\",partition=\"dp1\",region=\"here\"")" = 1 ] ||
	fail "snapship_drill_passed of dp1 is not 1: $(grep drill_passed "$PROM")"
[ "$(prom_value snapship_drill_last_success_timestamp_seconds "host=\"$HOST\",partition=\"dp2\"")" = 0 ] ||
	fail "dp2 has a last successful drill although its only recorded one failed: $(grep drill_last_success "$PROM")"
"${S[@]}" --json status >"$TEST_TMP/status2.json" || true
python3 - "$TEST_TMP/status2.json" "$kind" <<'PY'
import json, sys
parts = {p["partition"]: p for p in json.load(open(sys.argv[1]))["partitions"]}
d = parts["dp2"]["drill"]
assert d["passed"] is False and d["failure"] == sys.argv[2] and d["message"], d
assert d["last_pass"] is None, d
assert parts["dp1"]["drill"]["passed"] is True, parts["dp1"]
PY
"${S[@]}" status >"$TEST_TMP/status2.txt" || true
grep -q "^dp2: last drill .* ago from here: FAILED ($kind" "$TEST_TMP/status2.txt" ||
	fail "status does not show dp2's failed drill: $(cat "$TEST_TMP/status2.txt")"
# a drill by hand: its record in the metrics file at once
before=$(prom_value snapship_drill_last_timestamp_seconds "host=\"$HOST\",partition=\"dp1\"")
sleep 1
"${S[@]}" drill --partition dp1 >"$TEST_TMP/hand.out" 2>&1 || fail "snapship drill of dp1 failed: $(cat "$TEST_TMP/hand.out")"
after=$(prom_value snapship_drill_last_timestamp_seconds "host=\"$HOST\",partition=\"dp1\"")
rec=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["last_drill"])' "$STATE/drills/$HOST/dp1.json")
if [ "$after" -le "$before" ] || [ "$after" != "$rec" ]; then
	fail "a drill by hand is not in the metrics file: before $before, after $after, its record $rec"
fi

# ---- SIGTERM during a drill ----------------------------------------------
# many small files: the restore checks for a stop between entries
BIG=$(mk_subvol dbig)
"$GENDATA" "$BIG" --json-bytes 1M --json-file-size 1M --small-files 30000 \
	--small-min 256 --small-max 1K --dirs 64 --seed 3 >/dev/null
conf "$TEST_TMP/big.conf" 1h 1h dbig
"$SNAPSHIP" --config "$TEST_TMP/big.conf" backup dbig >"$TEST_TMP/bigbackup.out" 2>&1 ||
	fail "backup of dbig failed: $(cat "$TEST_TMP/bigbackup.out")"
start_agent "$TEST_TMP/big.conf" "$TEST_TMP/run3.log"
wait_for "$TEST_TMP/run3.log" "drilling dbig" 60
# the stop once the restore has made its copy (scratch: next to the
# snapshots, the state dir being on another filesystem)
for _ in $(seq 300); do
	[ -z "$(find "$TEST_BTRFS" -maxdepth 3 -name 'drill-dbig-*' -print -quit)" ] || break
	sleep 0.02
done
stop_agent
echo "SIGTERM during the drill of dbig: the agent exited in ${TOOK}s"
grep -q "drill of dbig from here" "$TEST_TMP/run3.log" &&
	fail "the drill of dbig ended before the stop (the test did not test): $(cat "$TEST_TMP/run3.log")"
awk -v t="$TOOK" 'BEGIN { exit !(t < 10) }' || fail "the agent took ${TOOK}s to stop during a drill (bound: 10 s)"
grep -q "cancelling the drill of dbig" "$TEST_TMP/run3.log" ||
	fail "the stop does not say it cancels the drill: $(cat "$TEST_TMP/run3.log")"
grep -q "the drill of dbig was cancelled by the stop" "$TEST_TMP/run3.log" ||
	fail "the cancelled drill is not said: $(cat "$TEST_TMP/run3.log")"
left=$(find "$TEST_BTRFS" "$TEST_TMP" -name 'drill-dbig-*' -print)
[ -z "$left" ] || fail "the cancelled drill left its scratch copy: $left"
[ ! -e "$STATE/drills/$HOST/dbig.json" ] || fail "a cancelled drill wrote a record: $(cat "$STATE/drills/$HOST/dbig.json")"
no_snapship_snapshots "$TEST_BTRFS"
echo ok
