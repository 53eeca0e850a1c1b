#!/usr/bin/env bash
# A faulty S3 server whose listing says "truncated" but whose next page
# marker does not move (the fault proxy answers canned pages in front of
# RGW): ListObjectsV2 (list), ListMultipartUploads (clean) and
# ListObjectVersions (verify's look for hidden backups on an object_lock
# region) each fail with a clear message within 30 s instead of asking for
# the same page forever.  And a canned versions page with two delete
# markers stacked over a manifest: verify names both.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_rgw
need_cmd python3

rules=$TEST_TMP/rules.json
plog=$TEST_TMP/proxy.log
echo '[]' >"$rules"
python3 "$SRC_DIR/tests/tools/s3proxy.py" --listen 127.0.0.1:0 --upstream "$RGW_EAST_ENDPOINT" \
	--rules "$rules" --log "$plog" --pidfile "$TEST_TMP/proxy.pid" --portfile "$TEST_TMP/proxy.port" &
proxy=$!
trap 'kill "$proxy" 2>/dev/null; wait "$proxy" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$TEST_TMP/proxy.port" ] && break; sleep 0.1; done
[ -s "$TEST_TMP/proxy.port" ] || fail "the fault proxy did not start"
endpoint=http://127.0.0.1:$(cat "$TEST_TMP/proxy.port")

sv=$(mk_subvol stuck-part)
"$GENDATA" "$sv" --json-bytes 256K --json-file-size 128K --small-files 10 >/dev/null
cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = stuckhost
[partition stuck-part]
path = $sv
$(rgw_region east endpoint="$endpoint" prefix="stuck-$$/")
EOF
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
"${S[@]}" backup >/dev/null 2>"$TEST_TMP/err" || fail "backup through the proxy: $(cat "$TEST_TMP/err")"

NS='xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
# run_stuck WHAT CMD...: CMD fails (exit 1) within 30 s saying the marker
# does not move, after asking the canned page at most a few times
run_stuck() {
	local what=$1 rc=0 t0 t
	shift
	: >"$plog"
	t0=$(date +%s)
	timeout 60 "$@" >"$TEST_TMP/out" 2>&1 || rc=$?
	t=$(($(date +%s) - t0))
	echo "-- $what: exit $rc after $t s"
	sed 's/^/   /' "$TEST_TMP/out"
	[ "$rc" = 1 ] || fail "$what with a listing that does not advance: exit $rc: $(cat "$TEST_TMP/out")"
	[ "$t" -le 30 ] || fail "$what took $t s"
	grep -q "does not move past the page asked for" "$TEST_TMP/out" ||
		fail "$what does not say the listing is stuck: $(cat "$TEST_TMP/out")"
	n=$(grep -c '"action": "body"' "$plog" || true)
	[ "$n" -ge 2 ] && [ "$n" -le 10 ] || fail "$what: the canned page was asked $n times"
}

# ---- ListObjectsV2: a NextContinuationToken that stays the same ----
python3 - "$rules" "$NS" <<'PY'
import json, sys
page = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult %s><Name>b</Name>'
        '<IsTruncated>true</IsTruncated><NextContinuationToken>same</NextContinuationToken>'
        '</ListBucketResult>' % sys.argv[2])
json.dump([{"method": "GET", "contains": "list-type=2", "action": "body", "body": page}],
          open(sys.argv[1], "w"))
PY
run_stuck "list" "${S[@]}" list stuck-part

# ---- ListMultipartUploads: the same key and upload-id markers ----
python3 - "$rules" "$NS" <<'PY'
import json, sys
page = ('<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult %s><Bucket>b</Bucket>'
        '<IsTruncated>true</IsTruncated><NextKeyMarker>k</NextKeyMarker>'
        '<NextUploadIdMarker>u</NextUploadIdMarker></ListMultipartUploadsResult>' % sys.argv[2])
json.dump([{"method": "GET", "regex": "[?&]uploads(&|=|$)", "action": "body", "body": page}],
          open(sys.argv[1], "w"))
PY
run_stuck "clean" "${S[@]}" clean

# ---- ListObjectVersions (object_lock): the same key marker, no version marker ----
sed -i 's/^\[region east\]$/&\nobject_lock = governance/' "$TEST_TMP/snapship.conf"
python3 - "$rules" "$NS" <<'PY'
import json, sys
page = ('<?xml version="1.0" encoding="UTF-8"?><ListVersionsResult %s><Name>b</Name>'
        '<IsTruncated>true</IsTruncated><NextKeyMarker>stuckhost/k</NextKeyMarker>'
        '</ListVersionsResult>' % sys.argv[2])
json.dump([{"method": "GET", "regex": "[?&]versions(&|=|$)", "action": "body", "body": page}],
          open(sys.argv[1], "w"))
PY
run_stuck "verify (hidden backups)" "${S[@]}" verify
grep -q "could not check for backups hidden behind delete markers" "$TEST_TMP/out" ||
	fail "verify does not say what it could not check: $(cat "$TEST_TMP/out")"

# ---- two delete markers stacked over a manifest (a canned, well-formed
# page: RGW itself adds no second marker over one): verify names both ----
python3 - "$rules" "$NS" "stuck-$$/stuckhost/stuck-part/20200101T000000Z-0abcde/manifest.json" <<'PY'
import json, sys
key = sys.argv[3]
def entry(tag, vid, latest):
    return ('<%s><Key>%s</Key><VersionId>%s</VersionId><IsLatest>%s</IsLatest>'
            '<LastModified>2020-01-01T00:00:00.000Z</LastModified>%s</%s>'
            % (tag, key, vid, latest, "<Size>10</Size>" if tag == "Version" else "", tag))
page = ('<?xml version="1.0" encoding="UTF-8"?><ListVersionsResult %s><Name>b</Name>'
        '<IsTruncated>false</IsTruncated>%s%s%s</ListVersionsResult>'
        % (sys.argv[2], entry("DeleteMarker", "marker-newest", "true"),
           entry("DeleteMarker", "marker-older", "false"), entry("Version", "the-backup", "false")))
json.dump([{"method": "GET", "regex": "[?&]versions(&|=|$)", "action": "body", "body": page}],
          open(sys.argv[1], "w"))
PY
rc=0
"${S[@]}" verify >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "verify of a manifest behind two delete markers: exit $rc: $(cat "$TEST_TMP/out")"
grep -q "20200101T000000Z-0abcde/manifest.json is hidden behind delete markers.*version marker-newest marker-older," \
	"$TEST_TMP/out" || fail "verify does not name both markers: $(cat "$TEST_TMP/out")"
echo "-- two stacked delete markers: both named"
no_snapship_snapshots "$TEST_BTRFS"
echo ok
