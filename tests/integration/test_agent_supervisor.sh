#!/usr/bin/env bash
# The supervised agent (issue 12, "RSS <= 8 MiB between backups"): the
# process `snapship agent` becomes is the small supervisor snapship-agentd
# (libc and libsystemd only); the work runs in workers (snapship agent
# --worker) that come and go, on a loop btrfs and a directory store:
#  - the supervisor needs only libc and libsystemd (readelf);
#  - idle: the agent's process tree is one process, the supervisor (its
#    VmRSS printed, not asserted); with --log-format json every line, the
#    supervisor's too, is a JSON object;
#  - the config file broken on disk without SIGHUP: the next worker still
#    runs its round with the last good config (the supervisor's copy); a
#    SIGHUP then says the error and keeps the copy, a good one reloads;
#  - kill -9 of the worker mid-backup: the supervisor says so, starts a new
#    worker after the backoff (30 s), whose recovery removes what the dead
#    one left; its backup commits; no snapshot, no temp file left;
#  - kill -9 of the supervisor mid-backup: the worker notices
#    (PR_SET_PDEATHSIG), cancels its backup and exits; nothing left.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_cmd timeout readelf pgrep

AGENTD=$(dirname "$SNAPSHIP")/snapship-agentd
[ -x "$AGENTD" ] || fail "no $AGENTD next to $SNAPSHIP (make all builds it)"
ST=$TEST_TMP/store
STATE=$TEST_TMP/state
HOST=shost
C=$TEST_TMP/snapship.conf
mkdir -p "$ST"
P1=$(mk_subvol p1)
"$GENDATA" "$P1" --json-bytes 256K --json-file-size 64K --small-files 20 --dirs 2 >/dev/null
BIG=$(mk_subvol big)
"$GENDATA" "$BIG" --json-bytes 16M --json-file-size 4M --small-files 10 --dirs 2 --seed 3 >/dev/null

AGENT_PID=""
cleanup() {
	local w
	if [ -n "$AGENT_PID" ]; then
		w=$(pgrep -P "$AGENT_PID" 2>/dev/null || true)
		kill -KILL "$AGENT_PID" 2>/dev/null || true
		wait "$AGENT_PID" 2>/dev/null || true
		# shellcheck disable=SC2086
		[ -z "$w" ] || kill -KILL $w 2>/dev/null || true
	fi
}
trap cleanup EXIT

# conf INTERVAL PARTITION...: the agent's config in $C
conf() {
	local iv=$1 p
	shift
	{
		printf '[agent]\nstate_dir = %s\nhost = %s\ninterval = %s\njitter = 0\n' \
			"$STATE" "$HOST" "$iv"
		[ -z "${READ_RATE:-}" ] || printf 'max_read_rate = %s\n' "$READ_RATE"
		printf '[retention]\nkeep_last = 1000\n'
		for p in "$@"; do
			printf '[partition %s]\npath = %s\n' "$p" "$TEST_BTRFS/$p"
		done
		printf '[region here]\nstore = file\npath = %s\n' "$ST"
	} >"$C"
}
backups() {
	{ find "$ST/$HOST/$1" -name manifest.json 2>/dev/null || true; } | wc -l
}
all_committed() {
	local d
	for d in "$ST/$HOST"/*/*/; do
		[ -d "$d" ] || continue
		[ -f "$d/manifest.json" ] || fail "backup directory $d has no manifest (a partial backup)"
	done
	[ -z "$(find "$ST" -name '.*.tmp-*' -print)" ] ||
		fail "temp files left in the store: $(find "$ST" -name '.*.tmp-*' | tr '\n' ' ')"
}
start_agent() {	# start_agent LOG [ENV...]
	local log=$1
	shift
	# shellcheck disable=SC2086 # GLOBAL: words
	env "$@" "$SNAPSHIP" --config "$C" ${GLOBAL:-} agent 2>"$log" &
	AGENT_PID=$!
}
stop_agent() {
	local rc=0
	kill -TERM "$AGENT_PID"
	for _ in $(seq 600); do
		kill -0 "$AGENT_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$AGENT_PID" 2>/dev/null && fail "the agent did not exit within 60 s of SIGTERM"
	wait "$AGENT_PID" || rc=$?
	[ "$rc" -eq 0 ] || fail "the agent exited $rc after SIGTERM (expected 0)"
	AGENT_PID=""
}
wait_for() {	# wait_for FILE PATTERN SECONDS
	for _ in $(seq $(($3 * 10))); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "\"$2\" not in $1 within $3 s: $(tail -5 "$1")"
}
worker_of() {	# the agent's worker pid, or nothing
	pgrep -P "$AGENT_PID" 2>/dev/null | head -1 || true
}

# ---- the supervisor links only libc and libsystemd ----------------------
needed=$(readelf -d "$AGENTD" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
echo "snapship-agentd needs: $needed"
for lib in $needed; do
	case $lib in libc.so.* | libsystemd.so.*) ;;
	# a sanitizer build (make D=asan|ubsan) links its runtime into everything
	libasan.so.* | libubsan.so.*) ;;
	*) fail "snapship-agentd needs $lib (only libc and libsystemd expected)" ;;
	esac
done

# ---- idle: one process, the supervisor (--log-format json) ---------------
conf 1h p1
GLOBAL="--log-format json" start_agent "$TEST_TMP/idle.log"
wait_for "$TEST_TMP/idle.log" "committed in" 60
for _ in $(seq 300); do
	[ -z "$(worker_of)" ] && break
	sleep 0.1
done
[ -z "$(worker_of)" ] || fail "a worker still runs 30 s after the only backup (nothing due for 1h): $(tail -3 "$TEST_TMP/idle.log")"
exe=$(readlink "/proc/$AGENT_PID/exe")
[ "$(basename "$exe")" = snapship-agentd ] || fail "the idle agent (pid $AGENT_PID) is $exe, not the supervisor"
echo "idle agent: one process (pid $AGENT_PID, $(basename "$exe")), $(grep VmRSS "/proc/$AGENT_PID/status" | tr -s ' \t' ' ')"
stop_agent
# the supervisor's lines ("stopping: ...") and the workers' alike: JSON objects
python3 - "$TEST_TMP/idle.log" <<'PY' || fail "the agent's log is not all JSON lines: $(head -5 "$TEST_TMP/idle.log")"
import json, sys
msgs = []
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert set(o) >= {"time", "level", "msg"}, o
    msgs.append(o["msg"])
assert any(m.startswith("agent started") for m in msgs), msgs
assert any(m.startswith("stopping: ") for m in msgs), msgs
PY

# ---- a config broken on disk without SIGHUP: the next round uses the old -
# workers that hand over between rounds 10 s apart
conf 10s p1
start_agent "$TEST_TMP/broken.log" SNAPSHIP_AGENT_LINGER_S=2
wait_for "$TEST_TMP/broken.log" "committed in" 60
for _ in $(seq 200); do
	[ -z "$(worker_of)" ] && break
	sleep 0.1
done
[ -z "$(worker_of)" ] || fail "the worker did not hand over (SNAPSHIP_AGENT_LINGER_S=2, interval 10s)"
before=$(backups p1)
cp "$C" "$TEST_TMP/good.conf"
printf '[agent]\ninterval = often\n' >"$C"
for _ in $(seq 400); do
	[ "$(backups p1)" -gt "$before" ] && break
	sleep 0.1
done
[ "$(backups p1)" -gt "$before" ] ||
	fail "no backup with the config broken on disk (no SIGHUP): $(tail -5 "$TEST_TMP/broken.log")"
grep -q "often" "$TEST_TMP/broken.log" && fail "a worker read the broken file: $(grep often "$TEST_TMP/broken.log")"
# SIGHUP while idle: a worker reloads first; the broken file is said, the copy kept
for _ in $(seq 200); do
	[ -z "$(worker_of)" ] && break
	sleep 0.05
done
echo "SIGHUP with the broken config; a worker running: $([ -n "$(worker_of)" ] && echo yes || echo no)"
before=$(backups p1)
kill -HUP "$AGENT_PID"
wait_for "$TEST_TMP/broken.log" "reload: $C:2:.*keeping the configuration loaded before" 20
for _ in $(seq 400); do
	[ "$(backups p1)" -gt "$before" ] && break
	sleep 0.1
done
[ "$(backups p1)" -gt "$before" ] || fail "no backup after the broken reload: $(tail -5 "$TEST_TMP/broken.log")"
cp "$TEST_TMP/good.conf" "$C"
kill -HUP "$AGENT_PID"
wait_for "$TEST_TMP/broken.log" "reloaded $C" 20
# a reload to another state_dir: said, and every later worker keeps the
# agent's (its lock's), though the copy of the config names the new one
sed "s|^state_dir = .*|state_dir = $TEST_TMP/state2|" "$TEST_TMP/good.conf" >"$C"
kill -HUP "$AGENT_PID"
wait_for "$TEST_TMP/broken.log" "state_dir changed to $TEST_TMP/state2; the agent keeps $STATE" 20
before=$(backups p1)
for _ in $(seq 400); do
	[ "$(backups p1)" -gt "$((before + 1))" ] && break
	sleep 0.1
done
[ "$(backups p1)" -gt "$((before + 1))" ] || fail "no backups after the reload to another state_dir"
[ ! -e "$TEST_TMP/state2" ] || fail "a worker used the reloaded state_dir: $(find "$TEST_TMP/state2" | head -5)"
cp "$TEST_TMP/good.conf" "$C"
stop_agent

# ---- kill -9 of the worker mid-backup ------------------------------------
READ_RATE=2M conf 1h big
start_agent "$TEST_TMP/kill.log"
wait_for "$TEST_TMP/kill.log" "backing up big" 60
sleep 2
w=$(worker_of)
[ -n "$w" ] || fail "no worker while backing up big"
kill -KILL "$w"
wait_for "$TEST_TMP/kill.log" "worker (pid $w) was killed by Killed; a new worker in 30s" 10
kill -0 "$AGENT_PID" || fail "the supervisor died with its worker"
t0=$(date +%s)
wait_for "$TEST_TMP/kill.log" "recovery: removed 1 snapshot" 90
echo "a new worker ran its recovery $(($(date +%s) - t0)) s after the kill"
wait_for "$TEST_TMP/kill.log" "backup .* of big committed" 90
[ "$(backups big)" -eq 1 ] || fail "expected 1 backup of big after the restart, have $(backups big)"
for _ in $(seq 300); do
	[ -z "$(worker_of)" ] && break
	sleep 0.1
done
all_committed
no_snapship_snapshots "$TEST_BTRFS"
stop_agent

# ---- kill -9 of the supervisor mid-backup --------------------------------
rm -rf "${ST:?}/$HOST/big"
READ_RATE=2M conf 1h big
start_agent "$TEST_TMP/killsup.log"
wait_for "$TEST_TMP/killsup.log" "backing up big" 60
sleep 2
w=$(worker_of)
[ -n "$w" ] || fail "no worker while backing up big"
kill -KILL "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
AGENT_PID=""
for _ in $(seq 300); do
	kill -0 "$w" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$w" 2>/dev/null && fail "the worker (pid $w) still runs 30 s after its supervisor was killed"
grep -q "cancelling the backup of big" "$TEST_TMP/killsup.log" ||
	fail "the orphaned worker did not cancel its backup: $(tail -5 "$TEST_TMP/killsup.log")"
[ "$(backups big)" -eq 0 ] || fail "the cancelled backup of big was committed"
all_committed
no_snapship_snapshots "$TEST_BTRFS"
echo "ok: supervisor, idle tree, broken config kept, worker and supervisor kill -9"
