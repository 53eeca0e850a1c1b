#!/usr/bin/env bash
# The agent's store I/O per round (issue 12): a round lists each region
# once (recovery, the newest backups, the prune after the backup and the
# metrics file all use that listing); the sweep for unfinished uploads and
# manifest-less objects runs at start (and after a reload or a failed
# round), not every round.  Counted from the fault proxy's request log in
# front of Ceph RGW: an agent with interval = 4s, two regions (the primary
# and a replication = agent copy), a metrics file and keep_last = 2; the
# rounds between the 2nd and the 4th backup are counted (requests between
# their "backing up" lines: one round's tail and the next one's start).
# Retention still holds exactly what it says (keep_last = 2 in both
# regions), and the next start still sweeps what a kill -9 left.
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"
need_btrfs
need_rgw
need_cmd python3

rules=$TEST_TMP/rules.json
plog=$TEST_TMP/proxy.log
echo '[]' >"$rules"
python3 "$SRC_DIR/tests/tools/s3proxy.py" --listen 127.0.0.1:0 --upstream "$RGW_EAST_ENDPOINT" \
	--rules "$rules" --log "$plog" --pidfile "$TEST_TMP/proxy.pid" --portfile "$TEST_TMP/proxy.port" 2>"$TEST_TMP/proxy.err" &
proxy=$!
AGENT_PID=""
cleanup() {
	local p sv
	for p in $AGENT_PID $proxy; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	for sv in "$TEST_BTRFS"/io-*; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT
for _ in $(seq 50); do [ -s "$TEST_TMP/proxy.port" ] && break; sleep 0.1; done
[ -s "$TEST_TMP/proxy.port" ] || fail "the fault proxy did not start"
endpoint=http://127.0.0.1:$(cat "$TEST_TMP/proxy.port")

state=$TEST_TMP/state
prefix="agent-io-$$/"
host=iohost
part=$(mk_subvol io-part)
"$GENDATA" "$part" --json-bytes 128K --json-file-size 32K --small-files 10 >/dev/null
conf=$TEST_TMP/snapship.conf
region() {	# region NAME PREFIX
	cat <<EOF
[region $1]
store = s3
endpoint = $endpoint
bucket = $RGW_BUCKET
prefix = $2
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
EOF
}
{
	cat <<EOF
[agent]
state_dir = $state
host = $host
# fulls: the requests of a round without the planner's (parent's index, HEADs)
max_chain = 0
interval = 4s
jitter = 0
metrics_file = $TEST_TMP/snapship.prom
[retention]
keep_last = 2
max_age = 3650d
[partition io-part]
path = $part
EOF
	region east "$prefix"
	echo "primary = yes"
	region copy "${prefix}copy/"
	echo "replication = agent"
} >"$conf"

"$SNAPSHIP" --config "$conf" --log-format=json agent 2>"$TEST_TMP/agent.log" &
AGENT_PID=$!
for _ in $(seq 900); do
	[ "$(grep -c '"msg":"backing up io-part' "$TEST_TMP/agent.log" || true)" -ge 5 ] && break
	kill -0 "$AGENT_PID" 2>/dev/null || fail "the agent exited: $(tail -5 "$TEST_TMP/agent.log")"
	sleep 0.1
done
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" || fail "the agent exited $? after SIGTERM: $(tail -5 "$TEST_TMP/agent.log")"
AGENT_PID=""
grep -q '"level":"error"' "$TEST_TMP/agent.log" && fail "the agent said errors: $(grep '"level":"error"' "$TEST_TMP/agent.log")"

# requests per round, per region, between the 2nd and the 4th "backing up"
python3 - "$TEST_TMP/agent.log" "$plog" "$prefix" <<'PY' || fail "more store requests per round than one listing per region"
import datetime, json, sys, urllib.parse

agent_log, proxy_log, prefix = sys.argv[1:]
starts = []
for line in open(agent_log):
    o = json.loads(line)
    if o["msg"].startswith("backing up io-part"):
        t = datetime.datetime.strptime(o["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        starts.append(t.replace(tzinfo=datetime.timezone.utc).timestamp())
assert len(starts) >= 4, starts
lo, hi, rounds = starts[1], starts[3], 2
count = {}
for line in open(proxy_log):
    o = json.loads(line)
    if not lo <= o["t"] < hi:
        continue
    path, _, query = o["path"].partition("?")
    q = urllib.parse.parse_qs(query, keep_blank_values=True)
    region = "copy" if "/copy/" in urllib.parse.unquote(o["path"]) else "east"
    if o["method"] == "GET" and "list-type" in q:
        kind = "LIST"
    elif o["method"] == "GET" and "uploads" in q:
        kind = "ListMultipartUploads"
    else:
        kind = o["method"] + ("" if o["method"] != "GET" or "/manifest.json" not in path else " manifest")
    count[(region, kind)] = count.get((region, kind), 0) + 1
for (region, kind), n in sorted(count.items()):
    print("   %-5s %-22s %5.1f per round" % (region, kind, n / rounds))
bad = []
for region in ("east", "copy"):
    lists = count.get((region, "LIST"), 0) / rounds
    ups = count.get((region, "ListMultipartUploads"), 0) / rounds
    print("region %s: %.1f LIST and %.1f ListMultipartUploads per round" % (region, lists, ups))
    if lists > 1:
        bad.append("region %s: %.1f LISTs per round (one expected)" % (region, lists))
    if ups:
        bad.append("region %s: %.1f ListMultipartUploads per round (only at start)" % (region, ups))
if bad:
    sys.exit("\n".join(bad))
PY

# retention held: the last 2 in both regions
objects() {
	python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep "^${prefix}" || true
}
east=$(objects | grep -v "^${prefix}copy/" | grep -c "/manifest.json" || true)
copy=$(objects | grep "^${prefix}copy/" | grep -c "/manifest.json" || true)
echo "backups kept: east $east, copy $copy (keep_last = 2)"
if [ "$east" != 2 ] || [ "$copy" != 2 ]; then
	fail "keep_last = 2 not held: $(objects)"
fi
no_snapship_snapshots "$TEST_BTRFS"

# the next start still sweeps: the objects of a backup killed before its
# manifest (the rounds above did not look for any)
orphans() {	# backup directories with objects but no manifest
	objects | awk -F/ '{ d = $0; sub(/\/[^\/]*$/, "", d); n[d]++; if ($NF == "manifest.json") m[d] = 1 }
		END { for (d in n) if (!m[d]) print d }'
}
rc=0
SNAPSHIP_FAULT="store.commit@3:kill" "$SNAPSHIP" --config "$conf" backup >/dev/null 2>&1 || rc=$?
[ "$rc" = 137 ] || fail "the backup killed at a commit exited $rc (expected 137)"
[ -n "$(orphans)" ] || fail "the killed backup left nothing to sweep: $(objects)"
: >"$plog"
"$SNAPSHIP" --config "$conf" agent --once 2>"$TEST_TMP/once.log" ||
	fail "agent --once after the kill failed: $(cat "$TEST_TMP/once.log")"
grep -q "removed .* left behind by an interrupted run" "$TEST_TMP/once.log" ||
	fail "the start did not say what it swept: $(cat "$TEST_TMP/once.log")"
[ -z "$(orphans)" ] || fail "objects without a manifest stay after the next start: $(orphans)"
no_snapship_snapshots "$TEST_BTRFS"
echo "ok"
