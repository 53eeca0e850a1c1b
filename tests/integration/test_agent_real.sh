#!/usr/bin/env bash
# snapship agent with its real parts together (issue 12, "What the tests
# must show"), on a loop btrfs and a directory store, under a NOTIFY_SOCKET
# this test listens on (WATCHDOG_USEC and WATCHDOG_PID set as systemd does):
#  - interval = 5s for ~40 s with [retention] keep_last = 2: between rounds
#    (`snapship list --json` while the agent says it is idle) the store
#    holds exactly the two newest backups, never more than one extra while
#    a round is in progress; the metrics file is there, passes `promtool
#    check metrics` and is current (retained, last attempt/success, next due
#    agree with the listing and `status --json`);
#  - sd_notify: READY=1, STATUS lines naming the activity, WATCHDOG=1 pings
#    (also during a long backup), STOPPING=1 on SIGTERM;
#  - SIGHUP with a broken config: RELOADING=1 then READY=1, the old config
#    kept (backups go on); SIGHUP with a fixed one (keep_last = 1, interval
#    = 1h): RELOADING=1 then READY=1, and the new policy and schedule hold;
#  - SIGTERM mid-upload: exit 0 within 30 s (the measured time printed),
#    no snapshot, temp file or manifest of the cancelled backup left.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_cmd python3 timeout
need_pkg promtool prometheus

ST=$TEST_TMP/store
STATE=$TEST_TMP/state
HOST=rhost
PROM=$TEST_TMP/prom/snapship.prom
SOCK=$TEST_TMP/notify.sock
NLOG=$TEST_TMP/notify.log
mkdir -p "$ST" "$TEST_TMP/prom"
P1=$(mk_subvol p1)
"$GENDATA" "$P1" --json-bytes 256K --json-file-size 64K --small-files 40 --dirs 4 >/dev/null
BIG=$(mk_subvol big)
"$GENDATA" "$BIG" --json-bytes 24M --json-file-size 4M --small-files 10 --dirs 2 --seed 2 >/dev/null

AGENT_PID="" LISTENER=""
cleanup() {
	local p
	for p in $AGENT_PID $LISTENER; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT

# The service manager's side: every datagram on $SOCK, one line each,
# "<unix time> <assignment>" (a datagram may carry several lines).
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
: >"$NLOG"

# conf FILE INTERVAL KEEP_LAST [READ_RATE] PARTITION...
conf() {
	local f=$1 iv=$2 keep=$3 rate=$4 p
	shift 4
	{
		printf '[agent]\nstate_dir = %s\nhost = %s\ninterval = %s\njitter = 0\n' \
			"$STATE" "$HOST" "$iv"
		# every backup a full: this test times, kills or faults the data stream
		printf 'max_chain = 0\n'
		printf 'metrics_file = %s\n' "$PROM"
		[ -z "$rate" ] || printf 'max_read_rate = %s\n' "$rate"
		printf '[retention]\nkeep_last = %s\nmax_age = 3650d\n' "$keep"
		for p in "$@"; do
			printf '[partition %s]\npath = %s\n' "$p" "$TEST_BTRFS/$p"
		done
		printf '[region here]\nstore = file\npath = %s\n' "$ST"
	} >"$f"
}
# start_agent CONF LOG: under the notify socket and a 2 s watchdog
# (WATCHDOG_PID: the agent's own pid, as sd_watchdog_enabled wants)
start_agent() {
	NOTIFY_SOCKET=$SOCK WATCHDOG_USEC=2000000 \
		bash -c 'export WATCHDOG_PID=$$; exec "$@"' agent \
		"$SNAPSHIP" --config "$1" agent 2>"$2" &
	AGENT_PID=$!
}
# stop_agent: SIGTERM, wait (at most 60 s), exit 0; TOOK: seconds
stop_agent() {
	local t0 rc=0
	t0=$(date +%s.%N)
	kill -TERM "$AGENT_PID"
	timeout 60 tail -s 0.05 --pid="$AGENT_PID" -f /dev/null ||
		fail "the agent did not exit within 60 s of SIGTERM"
	TOOK=$(echo "$t0 $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')
	wait "$AGENT_PID" || rc=$?
	AGENT_PID=""
	[ "$rc" -eq 0 ] || fail "the agent exited $rc after SIGTERM (expected 0: a clean stop)"
}
# wait_for FILE PATTERN SECONDS [FROM_LINE]: until grep -E finds PATTERN
wait_for() {
	for _ in $(seq $(($3 * 10))); do
		tail -n +"${4:-1}" "$1" 2>/dev/null | grep -Eq -- "$2" && return 0
		sleep 0.1
	done
	fail "\"$2\" not in $1 within $3 s: $(tail -8 "$1")"
}
# events: the notify lines that are not watchdog pings nor idle statuses
# (one more of them: the agent left its idle state)
events() {
	grep -Evc ' (WATCHDOG=1|STATUS=idle, .*)$' "$NLOG" || true
}
# idle: the agent's last notify line other than a ping is an idle status
idle() {
	grep -v ' WATCHDOG=1$' "$NLOG" | tail -1 | grep -q ' STATUS=idle, '
}
lines() { wc -l <"$1"; }

# check_idle KEEP INTERVAL: between rounds, the store, the metrics file and
# status --json (of $CLI_CONF) against the listing; 0 if checked, 1 if a round began
# meanwhile (nothing said: the caller tries again)
check_idle() {
	local ev
	idle || return 1
	ev=$(events)
	"$SNAPSHIP" --config "$CLI_CONF" --json list p1 >"$TEST_TMP/list.json" ||
		fail "list --json failed: $(cat "$TEST_TMP/list.json")"
	rc=0
	"$SNAPSHIP" --config "$CLI_CONF" --json status >"$TEST_TMP/status.json" || rc=$?
	[ "$rc" -le 5 ] || fail "status --json exited $rc"
	cp "$PROM" "$TEST_TMP/metrics.prom" 2>/dev/null || fail "no metrics file $PROM between rounds"
	{ find "$ST/$HOST/p1" -name manifest.json 2>/dev/null || true; } >"$TEST_TMP/on_disk"
	# a round started while we looked: not a sample
	{ idle && [ "$(events)" -eq "$ev" ]; } || return 1
	promtool check metrics <"$TEST_TMP/metrics.prom" >"$TEST_TMP/promtool.out" 2>&1 ||
		fail "promtool check metrics rejects $PROM: $(cat "$TEST_TMP/promtool.out" "$TEST_TMP/metrics.prom")"
	python3 - "$1" "$2" "$TEST_TMP/list.json" "$TEST_TMP/status.json" \
		"$TEST_TMP/metrics.prom" "$TEST_TMP/seen" "$TEST_TMP/on_disk" <<'PY' || fail "between rounds: the store, metrics or status are not what the policy says"
import json, os, re, sys

keep, interval = int(sys.argv[1]), int(sys.argv[2])
listing = json.load(open(sys.argv[3]))
status = json.load(open(sys.argv[4]))
seen_file, on_disk_file = sys.argv[6], sys.argv[7]
seen = set(open(seen_file).read().split()) if os.path.exists(seen_file) else set()
ids = [b["backup_id"] for b in listing]
seen |= set(ids)
open(seen_file, "w").write("\n".join(sorted(seen)) + "\n")
bad = []
# keep_last = N: the N newest of every backup ever listed, and no other
want = sorted(seen)[-keep:]
if sorted(ids) != want:
    bad.append("listed %s, the policy keeps %s" % (sorted(ids), want))
on_disk = sorted(os.path.basename(os.path.dirname(m))
                 for m in open(on_disk_file).read().split())
if on_disk != sorted(ids):
    bad.append("the store holds %s, list says %s" % (on_disk, sorted(ids)))

samples = {}
for line in open(sys.argv[5]):
    if line.startswith("#") or not line.strip():
        continue
    m = re.match(r'^(\w+)\{([^}]*)\} (\S+)$', line.strip())
    if not m:
        bad.append("unparsable sample %r" % line)
        continue
    labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
    samples[(m.group(1), labels.get("partition"))] = float(m.group(3))
def metric(name):
    v = samples.get((name, "p1"))
    if v is None:
        bad.append("no %s{partition=\"p1\"} in the metrics file" % name)
    return v

p = {x["partition"]: x for x in status["partitions"]}["p1"]
newest = max(listing, key=lambda b: b["backup_id"]) if listing else None
committed = newest["time"] + newest["seconds"] if newest else 0
checks = [
    ("snapship_backups_retained", len(ids), "the listing"),
    ("snapship_backups_retained", p["backups"], "status --json backups"),
    ("snapship_last_success_timestamp_seconds", p["last_success"], "status --json"),
    ("snapship_last_attempt_timestamp_seconds", p["last_attempt"], "status --json"),
    ("snapship_last_attempt_success", 1, "every backup succeeded"),
    ("snapship_next_due_timestamp_seconds", p["next_due"], "status --json next_due"),
    ("snapship_next_due_timestamp_seconds", newest["time"] + interval if newest else None,
     "the newest backup + interval"),
]
for name, value, what in checks:
    got = metric(name)
    if got is not None and (value is None or abs(got - value) > 1e-6):
        bad.append("%s = %r, %s says %r" % (name, got, what, value))
# current: the last success is the newest backup's (committed before it
# was recorded, at most a minute: the prune after it in between)
ls = p["last_success"] or 0
if newest and not (int(committed) <= ls <= committed + 60):
    bad.append("last_success %r is not the newest backup's (%s committed at %.1f)"
               % (ls, newest["backup_id"], committed))
if bad:
    print("\n".join(bad))
    sys.exit(1)
PY
	return 0
}

# ---- interval = 5s for ~40 s, keep_last = 2 --------------------------------
C=$TEST_TMP/agent.conf
CLI_CONF=$C
conf "$C" 5s 2 "" p1
start_agent "$C" "$TEST_TMP/run1.log"
end=$(($(date +%s) + 40))
checked=0 most=0
while [ "$(date +%s)" -lt "$end" ]; do
	kill -0 "$AGENT_PID" 2>/dev/null || fail "the agent died: $(tail -5 "$TEST_TMP/run1.log")"
	# at any time: at most one backup more than the policy keeps (a round
	# between its commit and its prune)
	n=$({ find "$ST/$HOST/p1" -name manifest.json 2>/dev/null || true; } | wc -l)
	[ "$n" -le 3 ] || fail "$n backups of p1 in the store with keep_last = 2"
	[ "$n" -le "$most" ] || most=$n
	if check_idle 2 5; then
		checked=$((checked + 1))
		sleep 1
	else
		sleep 0.2
	fi
done
made=$(grep -c "backup .* of p1 committed in" "$TEST_TMP/run1.log" || true)
echo "~40 s at interval = 5s: $made backup(s) made, $(wc -l <"$TEST_TMP/seen") listed, $checked idle check(s) of store + metrics + status (at most $most in the store at once)"
if [ "$made" -lt 4 ] || [ "$made" -gt 9 ]; then
	fail "$made backups in ~40 s at interval = 5s (expected 4 to 9): $(cat "$TEST_TMP/run1.log")"
fi
[ "$checked" -ge 4 ] || fail "only $checked check(s) between rounds in 40 s"
[ "$(grep -c "prune of p1: 2 kept, 1 deleted" "$TEST_TMP/run1.log")" -eq $((made - 2)) ] ||
	fail "the agent did not prune once after every backup past the second: $(cat "$TEST_TMP/run1.log")"

# sd_notify so far: READY first, the activity, pings from the main loop
head -1 "$NLOG" | grep -q ' READY=1$' || fail "the first notification is not READY=1: $(head -3 "$NLOG")"
grep -q ' STATUS=recovering and listing backups$' "$NLOG" || fail "no STATUS for a round's start: $(sort -u -k2 "$NLOG" | head)"
grep -Eq ' STATUS=idle, next: p1 in [0-9]+s$' "$NLOG" || fail "no idle STATUS naming the next backup: $(sort -u -k2 "$NLOG" | head)"
pings=$(grep -c ' WATCHDOG=1$' "$NLOG" || true)
[ "$pings" -ge 20 ] || fail "$pings WATCHDOG=1 in ~40 s with WATCHDOG_USEC = 2 s (expected one a second)"
echo "sd_notify: READY=1, $(grep -c ' STATUS=' "$NLOG") STATUS, $pings WATCHDOG=1 in ~40 s"

# ---- SIGHUP with a broken config: the old one kept -----------------------
cp "$C" "$TEST_TMP/good.conf"
CLI_CONF=$TEST_TMP/good.conf   # the commands cannot read the broken one
from=$(($(lines "$NLOG") + 1))
lfrom=$(($(lines "$TEST_TMP/run1.log") + 1))
printf '[agent]\ninterval = often\n' >"$C"
kill -HUP "$AGENT_PID"
wait_for "$TEST_TMP/run1.log" "reload: $C:2:.*keeping the configuration loaded before" 10 "$lfrom"
wait_for "$NLOG" ' READY=1$' 10 "$from"
tail -n +"$from" "$NLOG" | grep -Ev ' (WATCHDOG=1|STATUS=.*)$' | head -2 | awk '{ print $2 }' |
	tr '\n' ' ' | grep -qx 'RELOADING=1 READY=1 ' ||
	fail "a reload did not notify RELOADING=1 then READY=1: $(tail -n +"$from" "$NLOG" | grep -v WATCHDOG)"
# the old config (interval 5s, keep_last 2) still rules: backups go on
before=$(grep -c "committed in" "$TEST_TMP/run1.log")
for _ in $(seq 200); do
	[ "$(grep -c "committed in" "$TEST_TMP/run1.log")" -gt "$before" ] && break
	sleep 0.1
done
[ "$(grep -c "committed in" "$TEST_TMP/run1.log")" -gt "$before" ] ||
	fail "no backup within 20 s after a broken config (the old one, interval 5s, was not kept)"
ok=0
for _ in $(seq 100); do check_idle 2 5 && { ok=1; break; }; sleep 0.2; done
[ "$ok" -eq 1 ] || fail "never idle after the broken reload"
echo "SIGHUP with a broken config: said, RELOADING=1 then READY=1, the old config kept"

# ---- SIGHUP with a fixed config: keep_last = 1, interval = 1h ----------------
conf "$C" 1h 1 "" p1
CLI_CONF=$C
from=$(($(lines "$NLOG") + 1))
lfrom=$(($(lines "$TEST_TMP/run1.log") + 1))
kill -HUP "$AGENT_PID"
wait_for "$TEST_TMP/run1.log" "reloaded $C" 10 "$lfrom"
wait_for "$NLOG" ' READY=1$' 10 "$from"
tail -n +"$from" "$NLOG" | grep -Ev ' (WATCHDOG=1|STATUS=.*)$' | head -2 | awk '{ print $2 }' |
	tr '\n' ' ' | grep -qx 'RELOADING=1 READY=1 ' ||
	fail "a reload did not notify RELOADING=1 then READY=1: $(tail -n +"$from" "$NLOG" | grep -v WATCHDOG)"
# the round after the reload prunes with the new policy; nothing is due
wait_for "$NLOG" ' STATUS=idle, next: p1 in [0-9]+m$' 20 "$from"
ok=0
for _ in $(seq 100); do check_idle 1 3600 && { ok=1; break; }; sleep 0.2; done
[ "$ok" -eq 1 ] || fail "after the reload to keep_last = 1: $(tail -5 "$TEST_TMP/run1.log")"
made2=$(grep -c "committed in" "$TEST_TMP/run1.log")
sleep 6   # past the old interval: no backup now
[ "$(grep -c "committed in" "$TEST_TMP/run1.log")" -eq "$made2" ] ||
	fail "a backup was made after the reload to interval = 1h: $(tail -n +"$lfrom" "$TEST_TMP/run1.log")"
echo "SIGHUP with a fixed config: RELOADING=1 then READY=1, keep_last = 1 and interval = 1h taken"

# ---- SIGTERM while idle ---------------------------------------------------
from=$(($(lines "$NLOG") + 1))
stop_agent
tail -n +"$from" "$NLOG" | grep -q ' STOPPING=1$' || fail "no STOPPING=1 on SIGTERM: $(tail -n +"$from" "$NLOG")"
grep -q "clean stop" "$TEST_TMP/run1.log" || fail "the log does not call SIGTERM a clean stop"
echo "SIGTERM while idle: exit 0 in ${TOOK}s, STOPPING=1"
no_snapship_snapshots "$TEST_BTRFS"

# ---- SIGTERM mid-upload ---------------------------------------------------
conf "$C" 1h 2 2M big
from=$(($(lines "$NLOG") + 1))
start_agent "$C" "$TEST_TMP/run2.log"
wait_for "$NLOG" ' STATUS=backing up big \(upload, ' 60 "$from"
sleep 2
pings=$(tail -n +"$from" "$NLOG" | awk '/ STATUS=backing up big/ { b = 1 } b && / WATCHDOG=1$/ { n++ } END { print n + 0 }')
[ "$pings" -ge 1 ] || fail "no WATCHDOG=1 while the backup of big runs"
sfrom=$(($(lines "$NLOG") + 1))
stop_agent
echo "SIGTERM mid-upload (directory store, max_read_rate = 2M): the agent exited in ${TOOK}s (issue bound 5 s; asserted < 30 s)"
awk -v t="$TOOK" 'BEGIN { exit !(t < 30) }' || fail "the agent took ${TOOK}s to stop (bound: 30 s)"
tail -n +"$sfrom" "$NLOG" | grep -q ' STOPPING=1$' || fail "no STOPPING=1 on SIGTERM mid-upload"
grep -q "cancelling the backup of big (in its upload phase)" "$TEST_TMP/run2.log" ||
	fail "the stop does not say what it cancelled: $(tail -5 "$TEST_TMP/run2.log")"
[ -z "$(find "$ST" -path "*/big/*" -name manifest.json)" ] ||
	fail "the cancelled backup of big has a manifest: $(find "$ST" -path "*/big/*")"
[ -z "$(find "$ST" -name '.*.tmp-*' -print)" ] ||
	fail "temp files left in the store: $(find "$ST" -name '.*.tmp-*' | tr '\n' ' ')"
[ -z "$(find "$ST/$HOST" -path "*/big/*" -type f -print 2>/dev/null)" ] ||
	fail "files of the cancelled backup of big left: $(find "$ST/$HOST" -path "*/big/*" -type f)"
no_snapship_snapshots "$TEST_BTRFS"
echo "  $pings WATCHDOG=1 during the backup; nothing of it left"

# ---- kill -9 mid-prune (after a deletion's manifests, before its objects) --
KP=$(mk_subvol kp)
echo data >"$KP/f"
conf "$C" 1s 1 "" kp
"$SNAPSHIP" --config "$C" agent --once 2>"$TEST_TMP/kp1.log" || fail "first backup of kp: $(cat "$TEST_TMP/kp1.log")"
dirs() { find "$ST/$HOST/kp" -mindepth 1 -maxdepth 1 -printf '%f\n'; }
first=$(dirs)
sleep 1.1   # kp due again
rc=0
SNAPSHIP_FAULT=prune.crash timeout 120 "$SNAPSHIP" --config "$C" agent --once 2>"$TEST_TMP/kp2.log" || rc=$?
[ "$rc" -eq 137 ] || fail "the agent was not killed in its prune (exit $rc): $(tail -3 "$TEST_TMP/kp2.log")"
[ -d "$ST/$HOST/kp/$first" ] || fail "the kill did not leave $first half-pruned (the test did not kill mid-prune)"
[ ! -f "$ST/$HOST/kp/$first/manifest.json" ] || fail "kill -9 mid-prune: $first still has its manifest"
"$SNAPSHIP" --config "$C" --json list kp >"$TEST_TMP/kp.json" || fail "list after the kill failed"
python3 -c 'import json, sys; ids = [b["backup_id"] for b in json.load(open(sys.argv[1]))]; sys.exit(0 if len(ids) == 1 and sys.argv[2] not in ids else 1)' \
	"$TEST_TMP/kp.json" "$first" || fail "after a kill mid-prune list shows: $(cat "$TEST_TMP/kp.json")"
conf "$C" 1h 1 "" kp   # nothing due: only the recovery runs
"$SNAPSHIP" --config "$C" agent --once 2>"$TEST_TMP/kp3.log" || fail "the round after the kill failed: $(cat "$TEST_TMP/kp3.log")"
[ ! -e "$ST/$HOST/kp/$first" ] || fail "the restart did not finish the half-done prune of $first: $(find "$ST/$HOST/kp/$first") $(cat "$TEST_TMP/kp3.log")"
grep -q "recovery: prune of kp finished 1 deletion(s) an earlier run left half-done" "$TEST_TMP/kp3.log" ||
	fail "the restart does not say it finished the prune: $(cat "$TEST_TMP/kp3.log")"
! grep -q "unfinished upload" "$TEST_TMP/kp3.log" ||
	fail "the restart calls the half-pruned backup unfinished uploads: $(cat "$TEST_TMP/kp3.log")"
[ "$(dirs | wc -l)" -eq 1 ] || fail "kp: $(dirs)"
conf "$C" 1s 1 "" kp
sleep 1.1
"$SNAPSHIP" --config "$C" agent --once 2>"$TEST_TMP/kp4.log" || fail "the next backup after the kill failed: $(cat "$TEST_TMP/kp4.log")"
[ "$(find "$ST/$HOST/kp" -name manifest.json | wc -l)" -eq 1 ] ||
	fail "after the next backup with keep_last = 1: $(dirs)"
[ "$(dirs | wc -l)" -eq 1 ] || fail "after the next backup with keep_last = 1: $(dirs)"
no_snapship_snapshots "$TEST_BTRFS"
echo "kill -9 mid-prune: the half-pruned backup never listed, its deletion finished at the restart, the next backup ok"
echo PASS
