#!/usr/bin/env bash
# snapship agent with an S3 region (Ceph RGW): interval = 5s for ~20 s
# makes backups, each committed; SIGTERM mid-upload stops it in bounded
# time with the multipart upload aborted and no snapshot left; kill -9
# mid-upload leaves an unfinished multipart upload that the next start
# aborts, and the next backup works.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_rgw
need_cmd python3 timeout

export SNAPSHIP_S3_MAX_ATTEMPTS=3
STATE=$TEST_TMP/state
HOST=s3host
prefix="agent-s3-$$/"
SP=$(mk_subvol sp)
"$GENDATA" "$SP" --json-bytes 256K --json-file-size 64K --small-files 40 --dirs 4 >/dev/null
BIG=$(mk_subvol sbig)
"$GENDATA" "$BIG" --json-bytes 48M --json-file-size 8M --small-files 20 --dirs 2 --seed 5 >/dev/null
C=$TEST_TMP/agent.conf
AGENT_PID=""
trap '[ -z "$AGENT_PID" ] || { kill -KILL "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null; } || true' EXIT

# conf INTERVAL PARTITION [READ_RATE]
conf() {
	cat >"$C" <<EOF
[agent]
state_dir = $STATE
host = $HOST
interval = $1
jitter = 0
${3:+max_read_rate = $3}
# keep every backup: this test counts them
[retention]
keep_last = 1000
[partition $2]
path = $TEST_BTRFS/$2
[region east]
store = s3
endpoint = $RGW_EAST_ENDPOINT
bucket = $RGW_BUCKET
prefix = $prefix
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
part_size = 5M
EOF
}
objects() {
	python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep "^${prefix}" || true
}
backups() {	# backups PART: committed backups (manifests) of PART
	objects | grep -c "^${prefix}$HOST/$1/.*/manifest.json" || true
}
uploads() {	# unfinished multipart uploads under the prefix
	RGW_S3=$RGW_S3 python3 "$SRC_DIR/tests/tools/s3uploads.py" "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "$prefix"
}
all_committed() {	# every backup id with objects has its manifest
	local id
	for id in $(objects | awk -F/ '{ print $(NF-1) }' | sort -u); do
		objects | grep -q "/$id/manifest.json" || fail "backup $id has objects but no manifest: $(objects | grep "/$id/")"
	done
}
wait_for() {	# wait_for FILE PATTERN SECONDS
	for _ in $(seq $(($3 * 10))); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "\"$2\" not in $1 within $3 s: $(tail -5 "$1")"
}

# ---- interval = 5s for ~20 s ---------------------------------------------
conf 5s sp
"$SNAPSHIP" --config "$C" agent 2>"$TEST_TMP/run1.log" &
AGENT_PID=$!
sleep 20
kill -TERM "$AGENT_PID"
rc=0
wait "$AGENT_PID" || rc=$?
AGENT_PID=""
[ "$rc" -eq 0 ] || fail "the agent exited $rc after SIGTERM: $(tail -5 "$TEST_TMP/run1.log")"
n=$(backups sp)
echo "agent ran ~20 s with interval = 5s on S3: $n backup(s)"
if [ "$n" -lt 2 ] || [ "$n" -gt 6 ]; then
	fail "$n backups in ~20 s at interval = 5s (expected 2 to 6): $(cat "$TEST_TMP/run1.log")"
fi
all_committed
no_snapship_snapshots "$TEST_BTRFS"

# ---- SIGTERM mid-upload ---------------------------------------------------
conf 1h sbig 4M
"$SNAPSHIP" --config "$C" agent 2>"$TEST_TMP/run2.log" &
AGENT_PID=$!
wait_for "$TEST_TMP/run2.log" "backing up sbig" 30
sleep 3
t0=$(date +%s.%N)
kill -TERM "$AGENT_PID"
rc=0
timeout 60 tail -s 0.05 --pid="$AGENT_PID" -f /dev/null || fail "the agent did not stop within 60 s of SIGTERM"
wait "$AGENT_PID" || rc=$?
AGENT_PID=""
took=$(echo "$t0 $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')
echo "SIGTERM mid-upload to S3: the agent exited in ${took}s"
[ "$rc" -eq 0 ] || fail "the agent exited $rc after SIGTERM"
awk -v t="$took" 'BEGIN { exit !(t < 30) }' || fail "the agent took ${took}s to stop (bound: 30 s)"
[ "$(backups sbig)" -eq 0 ] || fail "the cancelled backup was committed"
[ -z "$(uploads)" ] || fail "multipart uploads left after SIGTERM: $(uploads)"
all_committed
no_snapship_snapshots "$TEST_BTRFS"

# ---- kill -9 mid-upload ---------------------------------------------------
conf 1h sbig
rc=0
SNAPSHIP_FAULT="store.write@10:kill" timeout 120 "$SNAPSHIP" --config "$C" agent --once \
	2>"$TEST_TMP/kill.log" || rc=$?
[ "$rc" -eq 137 ] || fail "the agent was not killed mid-upload (exit $rc): $(tail -3 "$TEST_TMP/kill.log")"
[ -n "$(uploads)" ] || fail "a kill mid-upload left no multipart upload (the test did not kill mid-upload)"
rc=0
"$SNAPSHIP" --config "$C" agent --once 2>"$TEST_TMP/after.log" || rc=$?
[ "$rc" -eq 0 ] || fail "the round after the kill failed: $(cat "$TEST_TMP/after.log")"
grep -q "removed [1-9][0-9]* unfinished upload" "$TEST_TMP/after.log" ||
	fail "the restart does not say what it cleaned: $(cat "$TEST_TMP/after.log")"
[ -z "$(uploads)" ] || fail "multipart uploads left after the restart: $(uploads)"
[ "$(backups sbig)" -eq 1 ] || fail "the backup after the kill is not there"
all_committed
no_snapship_snapshots "$TEST_BTRFS"
echo "kill -9 mid-upload to S3: cleaned up, next backup ok"
echo PASS
