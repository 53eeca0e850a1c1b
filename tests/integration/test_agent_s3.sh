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
PROXY="" LISTENER=""
cleanup() {
	local p
	for p in $AGENT_PID $PROXY $LISTENER; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT

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
endpoint = ${ENDPOINT:-$RGW_EAST_ENDPOINT}
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

# ---- a hanging listing: the watchdog is still pinged ----------------------
# The round's listings (recovery, prune, the newest backups, the metrics)
# run off the main loop: with the first listing held 10 s by the fault
# proxy (then dropped, and retried), the agent under a 6 s watchdog must
# ping at least every 6 s (it pings every 3 s), as systemd would else kill
# it while a region is slow.
echo '[{"method": "GET", "contains": "list-type=2", "nth": [1], "action": "stall", "seconds": 10}]' \
	>"$TEST_TMP/rules.json"
python3 "$SRC_DIR/tests/tools/s3proxy.py" --listen 127.0.0.1:0 --upstream "$RGW_EAST_ENDPOINT" \
	--rules "$TEST_TMP/rules.json" --log "$TEST_TMP/proxy.log" --portfile "$TEST_TMP/proxy.port" \
	2>"$TEST_TMP/proxy.err" &
PROXY=$!
SOCK=$TEST_TMP/notify.sock NLOG=$TEST_TMP/notify.log
python3 - "$SOCK" "$NLOG" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        for line in s.recv(65536).decode("utf-8", "replace").splitlines():
            f.write("%.3f %s\n" % (time.time(), line))
PY
LISTENER=$!
for _ in $(seq 50); do [ -s "$TEST_TMP/proxy.port" ] && [ -S "$SOCK" ] && break; sleep 0.1; done
[ -s "$TEST_TMP/proxy.port" ] || fail "the fault proxy did not start: $(cat "$TEST_TMP/proxy.err")"
[ -S "$SOCK" ] || fail "the notify listener did not bind $SOCK"
ENDPOINT=http://127.0.0.1:$(cat "$TEST_TMP/proxy.port") conf 1h sp
rc=0
NOTIFY_SOCKET=$SOCK WATCHDOG_USEC=6000000 timeout 120 \
	bash -c 'export WATCHDOG_PID=$$; exec "$@"' agent "$SNAPSHIP" --config "$C" agent --once \
	2>"$TEST_TMP/slow.log" || rc=$?
[ "$rc" -eq 0 ] || fail "the round with a slow listing failed ($rc): $(cat "$TEST_TMP/slow.log")"
grep -q '"action": *"stall"' "$TEST_TMP/proxy.log" || fail "no listing was held (the test did not test): $(cat "$TEST_TMP/proxy.log")"
gap=$(awk '$2 ~ /^(READY|WATCHDOG|STOPPING)=1$/ { if (t) { d = $1 - t; if (d > m) m = d } t = $1 }
	END { printf "%.1f", m }' "$NLOG")
echo "a listing held 10 s: the longest the watchdog went without a ping: ${gap}s (WATCHDOG_USEC = 6 s)"
awk -v g="$gap" 'BEGIN { exit !(g < 6) }' ||
	fail "the watchdog went ${gap}s without a ping during a slow listing (WatchdogSec 6 s): $(grep -v STATUS "$NLOG")"
echo PASS
