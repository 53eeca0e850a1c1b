#!/usr/bin/env bash
# snapship agent (issue 12, items 1 and 3) on a loop btrfs and a directory
# store:
#  - interval = 5s for ~40 s: the number of backups in the expected range,
#    each committed, no snapshot left;
#  - a restart within the interval makes no backup at once; --once makes
#    exactly the due ones; a failed backup is retried after a backoff (a
#    restart keeps it, status says it);
#  - SIGTERM during a backup: exit 0 in bounded time, nothing leaked;
#  - one agent per host; a manual backup waits for the host lock, naming
#    the agent, and --wait bounds the wait;
#  - SIGHUP with a broken config: logged with file:line, the old kept, the
#    agent goes on; discovery picks up a subvolume made while it runs;
#  - kill -9 at eleven points (before the snapshot, after it, mid-read, mid-
#    upload, at the end of the data stream, at each commit of an object,
#    at the release, before and after the manifest):
#    the next start cleans up (no snapshot, no temp file, no backup without
#    a manifest) and the next backup works.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_cmd timeout python3

ST=$TEST_TMP/store
STATE=$TEST_TMP/state
HOST=ahost
mkdir -p "$ST" "$TEST_BTRFS/disc"
P1=$(mk_subvol p1)
"$GENDATA" "$P1" --json-bytes 256K --json-file-size 64K --small-files 40 --dirs 4 >/dev/null
BIG=$(mk_subvol big)
"$GENDATA" "$BIG" --json-bytes 24M --json-file-size 4M --small-files 10 --dirs 2 --seed 2 >/dev/null

AGENT_PID=""
cleanup() {
	if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
		kill -KILL "$AGENT_PID" 2>/dev/null || true
		wait "$AGENT_PID" 2>/dev/null || true
	fi
}
trap cleanup EXIT

# conf FILE INTERVAL [PARTITION...]: a config with those [partition]s
conf() {
	local f=$1 iv=$2 p
	shift 2
	{
		printf '[agent]\nstate_dir = %s\nhost = %s\ninterval = %s\njitter = 0\n' \
			"$STATE" "$HOST" "$iv"
		# every backup a full: this test times, kills or faults the data stream
		printf 'max_chain = 0\n'
		[ -z "${DISCOVER:-}" ] || printf 'discover = %s\n' "$DISCOVER"
		[ -z "${READ_RATE:-}" ] || printf 'max_read_rate = %s\n' "$READ_RATE"
		# keep every backup: this test counts them (retention: test_agent_real)
		printf '[retention]\nkeep_last = 1000\n'
		for p in "$@"; do
			printf '[partition %s]\npath = %s\n' "$p" "$TEST_BTRFS/$p"
		done
		printf '[region here]\nstore = file\npath = %s\n' "$ST"
	} >"$f"
}
# backups PART: how many committed backups of PART the store holds
backups() {
	{ find "$ST/$HOST/$1" -name manifest.json 2>/dev/null || true; } | wc -l
}
# all_committed: every backup directory has its manifest; no temp file
all_committed() {
	local d
	for d in "$ST/$HOST"/*/*/; do
		[ -d "$d" ] || continue
		[ -f "$d/manifest.json" ] || fail "backup directory $d has no manifest (a partial backup)"
	done
	[ -z "$(find "$ST" -name '.*.tmp-*' -print)" ] ||
		fail "temp files left in the store: $(find "$ST" -name '.*.tmp-*' | tr '\n' ' ')"
}
# start_agent CONF LOG [ENV...]: the agent in the background (AGENT_PID)
start_agent() {
	local c=$1 log=$2
	shift 2
	env "$@" "$SNAPSHIP" --config "$c" agent 2>"$log" &
	AGENT_PID=$!
}
# stop_agent [SIG]: signal it, wait (at most 60 s); TOOK: the seconds it took
stop_agent() {
	local sig=${1:-TERM} t0 t1 rc=0
	t0=$(date +%s.%N)
	kill -"$sig" "$AGENT_PID"
	for _ in $(seq 600); do
		kill -0 "$AGENT_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$AGENT_PID" 2>/dev/null && fail "the agent did not exit within 60 s of SIG$sig"
	wait "$AGENT_PID" || rc=$?
	t1=$(date +%s.%N)
	[ "$rc" -eq 0 ] || fail "the agent exited $rc after SIG$sig (expected 0: a clean stop)"
	AGENT_PID=""
	TOOK=$(echo "$t0 $t1" | awk '{ printf "%.1f", $2 - $1 }')
}
# wait_for FILE PATTERN SECONDS: until grep finds PATTERN in FILE
wait_for() {
	for _ in $(seq $(($3 * 10))); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "\"$2\" not in $1 within $3 s: $(grep -A30 AddressSanitizer "$1" || tail -5 "$1")"
}

# ---- interval = 5s for ~40 s -------------------------------------------
C=$TEST_TMP/agent.conf
conf "$C" 5s p1
start_agent "$C" "$TEST_TMP/run1.log"
sleep 40
stop_agent TERM
n=$(backups p1)
echo "agent ran ~40 s with interval = 5s: $n backup(s) of p1; stopped in ${TOOK}s"
# the first at once, then one every 5 s plus the backup's own time
if [ "$n" -lt 4 ] || [ "$n" -gt 9 ]; then
	fail "$n backups in ~40 s at interval = 5s (expected 4 to 9): $(cat "$TEST_TMP/run1.log")"
fi
all_committed
no_snapship_snapshots "$TEST_BTRFS"
grep -q "clean stop" "$TEST_TMP/run1.log" || fail "the log does not call SIGTERM a clean stop: $(tail -3 "$TEST_TMP/run1.log")"
[ "$(grep -c "committed in" "$TEST_TMP/run1.log")" -eq "$n" ] ||
	fail "the log does not say each backup: $(cat "$TEST_TMP/run1.log")"

# ---- a restart within the interval: no backup at once --------------------
conf "$C" 1h p1
start_agent "$C" "$TEST_TMP/run2.log"
sleep 6
stop_agent TERM
[ "$(backups p1)" -eq "$n" ] || fail "a restart within the interval made a backup: $(cat "$TEST_TMP/run2.log")"

# ---- --once: exactly the due ones -----------------------------------------
P2=$(mk_subvol p2)
echo data >"$P2/f"
conf "$C" 1h p1 p2
rc=0
"$SNAPSHIP" --config "$C" agent --once 2>"$TEST_TMP/once.log" || rc=$?
[ "$rc" -eq 0 ] || fail "agent --once exited $rc: $(cat "$TEST_TMP/once.log")"
[ "$(backups p1)" -eq "$n" ] || fail "--once backed up p1, which was not due"
[ "$(backups p2)" -eq 1 ] || fail "--once did not back up p2 (never backed up: due)"
"$SNAPSHIP" --config "$C" agent --once 2>"$TEST_TMP/once2.log" || fail "a second --once failed"
[ "$(backups p2)" -eq 1 ] || fail "a second --once backed up p2 again"
# a failing backup: --once exits 1
conf "$TEST_TMP/bad.conf" 1h p1 nothere
rc=0
"$SNAPSHIP" --config "$TEST_TMP/bad.conf" agent --once 2>"$TEST_TMP/once3.log" || rc=$?
[ "$rc" -eq 1 ] || fail "agent --once with a failing backup exited $rc (expected 1)"
grep -q "backup of nothere failed" "$TEST_TMP/once3.log" || fail "the failure is not said: $(cat "$TEST_TMP/once3.log")"
# a restart keeps the backoff: --once just failed, so the daemon started
# now waits (30 s after that attempt), and status says when it retries
start_agent "$TEST_TMP/bad.conf" "$TEST_TMP/fails0.log"
sleep 4
stop_agent TERM
[ "$(grep -c "backup of nothere failed" "$TEST_TMP/fails0.log")" -eq 0 ] ||
	fail "the agent retried at once within the backoff of the failure before: $(cat "$TEST_TMP/fails0.log")"
"$SNAPSHIP" --config "$TEST_TMP/bad.conf" --json status >"$TEST_TMP/fails0.json" 2>/dev/null || true
python3 - "$TEST_TMP/fails0.json" <<'PY' || fail "status does not say the retry after the backoff: $(cat "$TEST_TMP/fails0.json")"
import json, sys
p = [p for p in json.load(open(sys.argv[1]))["partitions"] if p["partition"] == "nothere"][0]
assert p["next_due"] == p["last_attempt"] + 30, p
PY
# the daemon: a failing backup is said once and retried after a backoff
# (30 s here), not at every wake-up; the agent goes on (a run record
# without the failure: it tries at once)
rm "$STATE/runs/$HOST/nothere.json"
start_agent "$TEST_TMP/bad.conf" "$TEST_TMP/fails.log"
sleep 8
kill -0 "$AGENT_PID" || fail "the agent exited after a failed backup: $(cat "$TEST_TMP/fails.log")"
stop_agent TERM
[ "$(grep -c "backup of nothere failed" "$TEST_TMP/fails.log")" -eq 1 ] ||
	fail "a failing backup was not said exactly once in 8 s (backoff 30 s): $(cat "$TEST_TMP/fails.log")"
grep -q "retrying in 30s" "$TEST_TMP/fails.log" || fail "the failure does not say when it is retried: $(cat "$TEST_TMP/fails.log")"

# ---- one agent per host; a manual backup waits for the lock ---------------
READ_RATE=2M conf "$C" 1h p1 big
start_agent "$C" "$TEST_TMP/run3.log"
wait_for "$TEST_TMP/run3.log" "backing up big" 30
rc=0
"$SNAPSHIP" --config "$C" agent 2>"$TEST_TMP/second.log" || rc=$?
[ "$rc" -eq 1 ] || fail "a second agent exited $rc (expected 1)"
grep -q "another snapship agent runs on this host.*pid $AGENT_PID" "$TEST_TMP/second.log" ||
	fail "the second agent does not name the first: $(cat "$TEST_TMP/second.log")"
rc=0
"$SNAPSHIP" --config "$C" backup p1 --wait 1 2>"$TEST_TMP/manual1.log" || rc=$?
[ "$rc" -eq 1 ] || fail "backup --wait 1 while the agent backs up exited $rc (expected 1)"
grep -q "waiting for the host lock held by the agent (pid $AGENT_PID)" "$TEST_TMP/manual1.log" ||
	fail "the manual backup does not name the agent: $(cat "$TEST_TMP/manual1.log")"
grep -q "held by the agent (pid $AGENT_PID) after waiting" "$TEST_TMP/manual1.log" ||
	fail "backup --wait does not say why it gave up: $(cat "$TEST_TMP/manual1.log")"
before=$(backups p1)
"$SNAPSHIP" --config "$C" backup p1 2>"$TEST_TMP/manual2.log" &
MANUAL=$!

# ---- SIGTERM during a backup ----------------------------------------------
sleep 1
stop_agent TERM
echo "SIGTERM during the backup of big: the agent exited in ${TOOK}s"
awk -v t="$TOOK" 'BEGIN { exit !(t < 30) }' || fail "the agent took ${TOOK}s to stop (bound: 30 s)"
wait "$MANUAL" || fail "the manual backup failed once the agent was gone: $(cat "$TEST_TMP/manual2.log")"
grep -c "waiting for the host lock" "$TEST_TMP/manual2.log" | grep -qx 1 ||
	fail "the waiting backup did not say so exactly once: $(cat "$TEST_TMP/manual2.log")"
[ "$(backups p1)" -eq $((before + 1)) ] || fail "the manual backup is not there"
[ "$(backups big)" -eq 0 ] || fail "the cancelled backup of big was committed"
grep -q "cancelling the backup of big (in its upload phase)" "$TEST_TMP/run3.log" ||
	fail "the stop does not say what it cancelled: $(tail -5 "$TEST_TMP/run3.log")"
all_committed
no_snapship_snapshots "$TEST_BTRFS"

# ---- SIGHUP with a broken config; discovery -------------------------------
# matches that cannot be partitions: a clash with [partition p1], not a subvolume
btrfs subvolume create "$TEST_BTRFS/disc/p1" >/dev/null
mkdir "$TEST_BTRFS/disc/plain"
DISCOVER="$TEST_BTRFS/disc/*" conf "$C" 5s p1
start_agent "$C" "$TEST_TMP/run4.log"
wait_for "$TEST_TMP/run4.log" "committed in" 30
cp "$C" "$TEST_TMP/good.conf"
printf '[agent]\ninterval = often\n' >"$C"
kill -HUP "$AGENT_PID"
wait_for "$TEST_TMP/run4.log" "reload: $C:2:" 10
grep -q "keeping the configuration loaded before" "$TEST_TMP/run4.log" || fail "the reload error does not say the old config is kept"
before=$(backups p1)
btrfs subvolume create "$TEST_BTRFS/disc/found" >/dev/null
echo hello >"$TEST_BTRFS/disc/found/f"
wait_for "$TEST_TMP/run4.log" "discover: new partition found" 20
for _ in $(seq 300); do
	[ "$(backups found)" -ge 1 ] && [ "$(backups p1)" -gt "$before" ] && break
	sleep 0.1
done
kill -0 "$AGENT_PID" || fail "the agent died after a broken config: $(tail -5 "$TEST_TMP/run4.log")"
[ "$(backups found)" -ge 1 ] || fail "the discovered subvolume was not backed up: $(tail -5 "$TEST_TMP/run4.log")"
[ "$(backups p1)" -gt "$before" ] || fail "the agent stopped backing up after the broken config"
# a good config again: reloaded
cp "$TEST_TMP/good.conf" "$C"
kill -HUP "$AGENT_PID"
wait_for "$TEST_TMP/run4.log" "reloaded $C" 10
btrfs subvolume delete "$TEST_BTRFS/disc/found" >/dev/null
wait_for "$TEST_TMP/run4.log" "partition found .* is gone" 20
stop_agent TERM
[ "$(grep -c "is gone" "$TEST_TMP/run4.log")" -eq 1 ] || fail "a vanished partition was said more than once"
# several rounds went by: each problem said once, not at every round
[ "$(grep -c "disc/p1 is skipped: partition p1 is already" "$TEST_TMP/run4.log")" -eq 1 ] ||
	fail "the clash with [partition p1] was not said exactly once: $(grep disc/p1 "$TEST_TMP/run4.log")"
[ "$(grep -c "disc/plain is skipped" "$TEST_TMP/run4.log")" -eq 1 ] ||
	fail "a match that is not a subvolume was not said exactly once: $(grep plain "$TEST_TMP/run4.log")"
[ "$(backups plain)" -eq 0 ] || fail "a plain directory was backed up"
all_committed
no_snapship_snapshots "$TEST_BTRFS"

# ---- kill -9 at points of a backup ----------------------------------------
K=$TEST_TMP/kill.conf
KP=$(mk_subvol kp)
"$GENDATA" "$KP" --json-bytes 2M --json-file-size 512K --small-files 20 --dirs 2 --seed 3 >/dev/null
conf "$K" 1s kp
for pt in cow.freeze backup.snapshot pack.read@5 store.write@1 store.write@3 framer.finish \
	store.commit@1 store.commit@2 cow.release backup.manifest backup.committed; do
	had=$(backups kp)
	sleep 1.1   # kp due (interval = 1s)
	rc=0
	SNAPSHIP_FAULT="$pt:kill" timeout 120 "$SNAPSHIP" --config "$K" agent --once \
		2>"$TEST_TMP/kill-$pt.log" || rc=$?
	[ "$rc" -eq 137 ] || fail "kill at $pt: the agent exited $rc, not killed: $(tail -3 "$TEST_TMP/kill-$pt.log")"
	sleep 1.1
	rc=0
	"$SNAPSHIP" --config "$K" agent --once 2>"$TEST_TMP/after-$pt.log" || rc=$?
	[ "$rc" -eq 0 ] || fail "after a kill at $pt the next round failed: $(cat "$TEST_TMP/after-$pt.log")"
	no_snapship_snapshots "$TEST_BTRFS"
	all_committed
	want=$((had + 1))
	[ "$pt" = backup.committed ] && want=$((had + 2))
	[ "$(backups kp)" -eq "$want" ] || fail "after a kill at $pt: $(backups kp) backups of kp (expected $want)"
	case $pt in
	backup.snapshot|pack.read*|framer.finish|cow.release) grep -q "removed 1 snapshot" "$TEST_TMP/after-$pt.log" ||
		fail "the restart after a kill at $pt does not say it removed the snapshot: $(cat "$TEST_TMP/after-$pt.log")" ;;
	store.*|backup.manifest) grep -q "removed [1-9][0-9]* unfinished upload" "$TEST_TMP/after-$pt.log" ||
		fail "the restart after a kill at $pt does not say what it cleaned: $(cat "$TEST_TMP/after-$pt.log")" ;;
	esac
	echo "kill -9 at $pt: cleaned up, next backup ok"
done
"$SNAPSHIP" --config "$K" list kp >/dev/null || fail "list after the kills failed"
echo "PASS"
