#!/usr/bin/env bash
# snapship drill against the Ceph RGW multisite pair of the harness: east
# (primary) replicates to west (replication = server); the drill reads west.
#  - east stopped: the drill from west passes (it never needs the primary);
#  - west stopped: it fails "unreachable", naming region west;
#  - west's data read through the fault proxy with 64 bytes flipped (bit
#    rot in west only): it fails "corrupt" (or "checksum"), naming the data
#    object, and does not quietly read east's good copy;
#  - rto_max = 1s with west's first data read stalled 2 s by the proxy: it
#    fails "rto" though the restore itself succeeds;
#  - SIGTERM while a read hangs: exit 143, the scratch copy removed.
# Both zones are started again whatever happens (trap).
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"
need_btrfs
need_rgw

RGW_SH=$SRC_DIR/tools/rgw.sh
PROXY=""
cleanup() {
	[ -z "$PROXY" ] || kill "$PROXY" 2>/dev/null || true
	bash "$RGW_SH" zone-start "$RGW_DIR" east >/dev/null 2>&1 || true
	bash "$RGW_SH" zone-start "$RGW_DIR" west >/dev/null 2>&1 || true
}
trap cleanup EXIT
# a stopped zone refuses connections: give up on it after 3 attempts, not 8
export SNAPSHIP_S3_MAX_ATTEMPTS=3

state=$TEST_TMP/state
prefix="drill-$$/"
scratch=$TEST_BTRFS/s3-drill-scratch
sv=$(mk_subvol sd-part)
"$GENDATA" "$sv" --json-bytes 6M --json-file-size 1M --small-files 200 --dirs 8 >/dev/null

# conf FILE WEST_ENDPOINT [LINES FOR sd-part]
conf() {
	cat >"$1" <<EOF
[agent]
state_dir = $state
host = sdhost
frame_size = 256K

[partition sd-part]
path = $sv
${3:-}

[region east]
store = s3
endpoint = $RGW_EAST_ENDPOINT
bucket = $RGW_BUCKET
prefix = $prefix
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
primary = yes

[region west]
store = s3
endpoint = $2
bucket = $RGW_BUCKET
prefix = $prefix
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
replication = server
replication_deadline = 120s
EOF
}
conf "$TEST_TMP/snapship.conf" "$RGW_WEST_ENDPOINT"
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
drill() {	# drill EXPECTED_RC NAME SNAPSHIP ARGS...: output in $TEST_TMP/NAME.{json,out}
	local want=$1 name=$2 rc=0
	shift 2
	timeout 300 "$@" drill --scratch "$scratch" --report-json "$TEST_TMP/$name.json" \
		>"$TEST_TMP/$name.out" 2>&1 || rc=$?
	[ "$rc" = "$want" ] || fail "$name: exit $rc, expected $want: $(cat "$TEST_TMP/$name.out")"
	[ -z "$(ls -A "$scratch" 2>/dev/null)" ] || fail "$name: the scratch copy was left: $(ls -A "$scratch")"
	grep "^  sd-part \[" "$TEST_TMP/$name.out" || true    # the failure's message, for the log
}

out=$("${S[@]}" backup --json) || fail "backup failed: $out"
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[0]["geo"] == "geo-protected", d' <<<"$out" ||
	fail "the backup is not on west (geo-protected): $out"

# ---- east (the primary) stopped: the drill from west passes
bash "$RGW_SH" zone-stop "$RGW_DIR" east >/dev/null
drill 0 east-down "${S[@]}"
bash "$RGW_SH" zone-start "$RGW_DIR" east >/dev/null
[ "$(field "$TEST_TMP/east-down.json" 'd["partitions"][0]["region"]')" = west ] ||
	fail "not drilled from west: $(cat "$TEST_TMP/east-down.json")"
frames=$(field "$TEST_TMP/east-down.json" 'd["partitions"][0]["frames_read"]')
echo "east down: west drilled, $frames frames, $(field "$TEST_TMP/east-down.json" 'd["partitions"][0]["rto_seconds"]') s"

# ---- west stopped: unreachable, naming the region
bash "$RGW_SH" zone-stop "$RGW_DIR" west >/dev/null
drill 1 west-down "${S[@]}"
bash "$RGW_SH" zone-start "$RGW_DIR" west >/dev/null
[ "$(field "$TEST_TMP/west-down.json" 'd["partitions"][0]["failure"]')" = unreachable ] ||
	fail "west down: not 'unreachable': $(cat "$TEST_TMP/west-down.out")"
grep -q "partition sd-part, region west" "$TEST_TMP/west-down.out" ||
	fail "west down: the message does not name the partition and region: $(cat "$TEST_TMP/west-down.out")"

# ---- west's reads through the fault proxy
python3 "$SRC_DIR/tests/tools/s3proxy.py" --listen 127.0.0.1:0 --upstream "$RGW_WEST_ENDPOINT" \
	--rules "$TEST_TMP/rules.json" --log "$TEST_TMP/proxy.log" --portfile "$TEST_TMP/proxy.port" \
	2>"$TEST_TMP/proxy.err" &
PROXY=$!
for _ in $(seq 50); do [ -s "$TEST_TMP/proxy.port" ] && break; sleep 0.1; done
[ -s "$TEST_TMP/proxy.port" ] || fail "the fault proxy did not start: $(cat "$TEST_TMP/proxy.err")"
conf "$TEST_TMP/proxy.conf" "http://127.0.0.1:$(cat "$TEST_TMP/proxy.port")"
P=("$SNAPSHIP" --config "$TEST_TMP/proxy.conf")

# bit rot in west only: every data read of 100 KB or more (not the seek
# table's tail) comes back with 64 bytes flipped
echo '[{"method": "GET", "contains": "data.tar.zst", "range_min": 100000, "action": "corrupt"}]' \
	>"$TEST_TMP/rules.json"
drill 1 corrupt "${P[@]}"
grep -q '"action": *"corrupt"' "$TEST_TMP/proxy.log" || fail "no read was corrupted (the test did not test)"
f=$(field "$TEST_TMP/corrupt.json" 'd["partitions"][0]["failure"]')
case $f in corrupt | checksum) ;; *) fail "bit rot in west: failure $f: $(cat "$TEST_TMP/corrupt.out")" ;; esac
field "$TEST_TMP/corrupt.json" 'd["partitions"][0]["object"]' | grep -q "sd-part/.*/data.tar.zst" ||
	fail "bit rot: the object is not named: $(cat "$TEST_TMP/corrupt.json")"
grep -q "region west" "$TEST_TMP/corrupt.out" || fail "bit rot: region west not named"

# RTO: the first data read stalled 2 s (then dropped: the retry succeeds)
echo '[{"method": "GET", "contains": "data.tar.zst", "range_min": 100000, "nth": [1], "action": "stall", "seconds": 2}]' \
	>"$TEST_TMP/rules.json"
conf "$TEST_TMP/rto.conf" "http://127.0.0.1:$(cat "$TEST_TMP/proxy.port")" "rto_max = 1s"
drill 1 rto "$SNAPSHIP" --config "$TEST_TMP/rto.conf"
grep -q '"action": *"stall"' "$TEST_TMP/proxy.log" || fail "no read was stalled (the test did not test)"
[ "$(field "$TEST_TMP/rto.json" 'd["partitions"][0]["failure"]')" = rto ] ||
	fail "a stalled read with rto_max = 1s: not 'rto': $(cat "$TEST_TMP/rto.out")"
echo "rto: $(field "$TEST_TMP/rto.json" 'd["partitions"][0]["rto_seconds"]') s against rto_max 1 s"
grep -q "rto_max 1 s" "$TEST_TMP/rto.out" || fail "the RTO failure does not say the limit: $(cat "$TEST_TMP/rto.out")"

# SIGTERM while a data read hangs: exit 143 within seconds, the scratch
# copy removed, the drill record of the last drill left as it was
echo '[{"method": "GET", "contains": "data.tar.zst", "range_min": 100000, "action": "stall", "seconds": 60}]' \
	>"$TEST_TMP/rules.json"
: >"$TEST_TMP/proxy.log"
cp "$state/drills/sdhost/sd-part.json" "$TEST_TMP/rec.before"
"${P[@]}" drill --scratch "$scratch" >"$TEST_TMP/sig.out" 2>&1 &
dpid=$!
for _ in $(seq 300); do grep -q '"action": *"stall"' "$TEST_TMP/proxy.log" && break; sleep 0.1; done
grep -q '"action": *"stall"' "$TEST_TMP/proxy.log" || fail "the drill never read data: $(cat "$TEST_TMP/sig.out")"
t0=$(date +%s.%N)
kill -TERM "$dpid"
rc=0
wait "$dpid" || rc=$?
t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "SIGTERM during a hung read: exit $rc after $t s"
[ "$rc" = 143 ] || fail "SIGTERM: exit $rc, expected 143: $(cat "$TEST_TMP/sig.out")"
awk -v t="$t" 'BEGIN { exit !(t < 30) }' || fail "SIGTERM: the drill took $t s to stop"
[ -z "$(ls -A "$scratch" 2>/dev/null)" ] || fail "SIGTERM: the scratch copy was left: $(ls -A "$scratch")"
grep -q "interrupted (SIGTERM)" "$TEST_TMP/sig.out" || fail "SIGTERM: no interrupted line: $(cat "$TEST_TMP/sig.out")"
cmp -s "$TEST_TMP/rec.before" "$state/drills/sdhost/sd-part.json" ||
	fail "SIGTERM: a cut-short drill wrote a record"
kill "$PROXY" && wait "$PROXY" 2>/dev/null || true
PROXY=""
no_snapship_snapshots "$TEST_BTRFS"
echo PASS
