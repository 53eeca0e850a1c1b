#!/usr/bin/env bash
# A stop while a region stalls a listing or a HEAD (Ceph RGW behind the
# fault proxy, issue 12): the answer held back for 30 s is not waited for.
#   (a) snapship agent SIGTERMed while its recovery's LIST stalls: exit 0
#       within 10 s (the time is printed), nothing left, no error said;
#   (b) snapship agent SIGTERMed while the backup it runs stalls on a HEAD
#       (the probe of a replication = agent region): the same, and nothing
#       of that backup in the bucket;
#   (c) snapship list stalled on its LIST, ^C on its terminal: exit 130
#       within 10 s, one "interrupted (SIGINT)" line;
#   (d) snapship status stalled the same, SIGINT: exit 130 within 10 s.
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
cleanup() {
	local sv
	kill "$proxy" 2>/dev/null
	wait "$proxy" 2>/dev/null || true
	for sv in "$TEST_BTRFS"/st-*; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT
for _ in $(seq 50); do [ -s "$TEST_TMP/proxy.port" ] && break; sleep 0.1; done
[ -s "$TEST_TMP/proxy.port" ] || fail "the fault proxy did not start"
endpoint=http://127.0.0.1:$(cat "$TEST_TMP/proxy.port")

# a held request that ends is retried: one retry at most, so the old code
# (which waited for the stall) still ends within the test's time
export SNAPSHIP_S3_MAX_ATTEMPTS=2
state=$TEST_TMP/state
prefix="stall-$$/"
host=sthost
one=$(mk_subvol st-one)
two=$(mk_subvol st-two)
"$GENDATA" "$one" --json-bytes 256K --json-file-size 64K --small-files 20 >/dev/null
"$GENDATA" "$two" --json-bytes 256K --json-file-size 64K --small-files 20 --seed 2 >/dev/null
conf=$TEST_TMP/snapship.conf
# region REGION PREFIX: a region of the bucket behind the proxy
region() {
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
interval = 1h
jitter = 0
[partition st-one]
path = $one
EOF
	region east "$prefix"
	echo "primary = yes"
	region copy "${prefix}copy/"
	echo "replication = agent"
} >"$conf"
S=("$SNAPSHIP" --config "$conf")

# held RULE: hold the requests RULE (a JSON object) matches for 30 s
held() {
	: >"$plog"
	echo "[$1]" >"$rules"
}
# stopped WHAT RC SECS REACHED EXPECTED_RC: the stop came while a request
# was held, with the exit status expected, within 10 s
stopped() {
	echo "-- $1: exit $2 after ${3}s from the signal"
	[ "$4" = 1 ] || fail "$1: no request was held (rules did not match?)"
	[ "$2" = "$5" ] || fail "$1: exit $2, expected $5: $(tail -5 "$TEST_TMP/err")"
	python3 -c "import sys; sys.exit(float(sys.argv[1]) > 10)" "$3" ||
		fail "$1: took ${3}s to stop: the held request was waited for"
}
uploads() {
	RGW_S3=$RGW_S3 python3 "$SRC_DIR/tests/tools/s3uploads.py" "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "$prefix"
}
objects() {
	python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep "^${prefix}" || true
}
# nothing_left WHAT: no snapshot, no multipart upload, no error said
nothing_left() {
	no_snapship_snapshots "$TEST_BTRFS"
	[ -z "$(ls -A "$state/journal" 2>/dev/null)" ] || fail "$1: journal entries left"
	[ -z "$(uploads)" ] || fail "$1: multipart uploads left: $(uploads)"
	! grep -iE "error|warning" "$TEST_TMP/err" ||
		fail "$1: the stop was said as a failure"
}
sigrun() {	# sigrun HOW ARGS...: signal ARGS once the proxy holds a request
	local how=$1
	shift
	python3 "$SRC_DIR/tests/tools/sigrun.py" --when-log "$plog" '"action": "stall"' \
		--out "$TEST_TMP/out" --err "$TEST_TMP/err" "$how" -- "$@"
}

# a backup to list, in both regions
"${S[@]}" backup >/dev/null 2>"$TEST_TMP/err" || fail "the first backup failed: $(cat "$TEST_TMP/err")"
[ "$(objects | grep -c manifest.json)" = 2 ] || fail "expected the backup in both regions: $(objects)"

# ---- (a) the agent, its recovery's LIST held ------------------------------
held '{"method": "GET", "contains": "list-type=2", "action": "stall", "seconds": 30}'
read -r rc secs reached < <(sigrun term "${S[@]}" agent)
echo '[]' >"$rules"
stopped "(a) agent, LIST held" "$rc" "$secs" "$reached" 0
grep -q "stopping: Terminated received" "$TEST_TMP/err" ||
	fail "(a) the agent did not say it stops: $(cat "$TEST_TMP/err")"
nothing_left "(a)"

# ---- (b) the agent, its backup's HEAD held ----------------------------------
sed -i "s|^path = $one\$|&\n[partition st-two]\npath = $two|" "$conf"
grep -q "^\[partition st-two\]" "$conf" || fail "(b) the config has no st-two"
held '{"method": "HEAD", "contains": ".snapship-probe", "action": "stall", "seconds": 30}'
read -r rc secs reached < <(sigrun term "${S[@]}" agent)
echo '[]' >"$rules"
stopped "(b) agent, the backup's HEAD held" "$rc" "$secs" "$reached" 0
grep -q "cancelling the backup of st-two" "$TEST_TMP/err" ||
	fail "(b) the stop did not come during the backup of st-two: $(cat "$TEST_TMP/err")"
nothing_left "(b)"
! objects | grep -q "/st-two/" || fail "(b) objects of the cancelled backup: $(objects | grep "/st-two/")"

# ---- (c) list, ^C on its terminal ----------------------------------------
held '{"method": "GET", "contains": "list-type=2", "action": "stall", "seconds": 30}'
read -r rc secs reached < <(sigrun tty-int "${S[@]}" list)
echo '[]' >"$rules"
stopped "(c) list, ^C" "$rc" "$secs" "$reached" 130
shown=$(tr '\r' '\n' <"$TEST_TMP/err" | sed 's/\^C//g' | grep -v '^\s*$' || true)
echo "   the terminal: $shown"
[ "$(wc -l <<<"$shown")" = 1 ] || fail "(c) expected one line, got: $shown"
grep -q "interrupted (SIGINT): list stopped" <<<"$shown" || fail "(c) not the interruption: $shown"

# ---- (d) status --json, SIGINT -----------------------------------------------
held '{"method": "GET", "contains": "list-type=2", "action": "stall", "seconds": 30}'
read -r rc secs reached < <(sigrun int "${S[@]}" status --json)
echo '[]' >"$rules"
stopped "(d) status --json, SIGINT" "$rc" "$secs" "$reached" 130
echo "   stderr: $(cat "$TEST_TMP/err")"
grep -q "interrupted (SIGINT): status stopped" "$TEST_TMP/err" || fail "(d) not the interruption"

# the store is as the first backup left it
"${S[@]}" list >"$TEST_TMP/out" 2>"$TEST_TMP/err" || fail "list after the stops failed: $(cat "$TEST_TMP/err")"
[ "$(grep -c "st-one" "$TEST_TMP/out")" = 1 ] || fail "list after the stops: $(cat "$TEST_TMP/out")"
echo "ok"
