#!/usr/bin/env bash
# The object-store harness (tools/rgw.sh): it starts a single-node Ceph
# cluster with two RGW zones, east and west; an object PUT to east (signed
# with SigV4 by an independent client below) reads back byte for byte, and
# replicates to west; start is idempotent; stop leaves no daemon behind.
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_root
need_cmd python3
[ -n "${TEST_TMP:-}" ] && [ -d "$TEST_TMP" ] || fail "TEST_TMP is not set (run me through tests/run.sh)"

RGW=$SRC_DIR/tools/rgw.sh
DIR=$TEST_TMP/rgw

# Five free loopback ports (not the defaults: a developer's own harness may
# be running on those).
read -r RGW_MON_PORT RGW_EAST_PORT RGW_WEST_PORT RGW_EAST_TLS_PORT RGW_WEST_TLS_PORT < <(python3 - <<'PY'
import socket
socks, ports = [], []
while len(ports) < 5:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    socks.append(s)
    # keep clear of the OSD's own port range (6800-7300)
    if not 6800 <= p <= 7300:
        ports.append(p)
print(*ports)
PY
)
export RGW_MON_PORT RGW_EAST_PORT RGW_WEST_PORT RGW_EAST_TLS_PORT RGW_WEST_TLS_PORT
export RGW_MEMSTORE_BYTES=1G RGW_BUCKET=harness-a RGW_BUCKET_B=harness-b

# Our daemons: ceph/radosgw processes whose command line names DIR.
our_daemons() {
	local p cmd
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		case $cmd in
		*ceph-mon*"$DIR/"* | *ceph-osd*"$DIR/"* | *radosgw*"$DIR/"*) echo "${p#/proc/} $cmd" ;;
		esac
	done
}

cleanup() {
	local rc=$?
	if [ -e "$DIR" ]; then
		echo "cleanup: stopping the harness in $DIR"
		bash "$RGW" stop "$DIR" || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- an independent SigV4 client (python3 stdlib) -----------------------------

S3=$TEST_TMP/s3test.py
cat >"$S3" <<'PY'
"""s3test.py METHOD URL [FILE]: one SigV4-signed S3 request (path style).
PUT sends FILE; GET writes the body to FILE.  Prints the HTTP status; exit 0
on 2xx, 3 on 404, 1 otherwise.  Keys and region from RGW_* in the environment."""
import datetime, hashlib, hmac, http.client, os, sys, urllib.parse

method, url = sys.argv[1], sys.argv[2]
path_arg = sys.argv[3] if len(sys.argv) > 3 else None
ak, sk = os.environ["RGW_ACCESS_KEY_ID"], os.environ["RGW_SECRET_ACCESS_KEY"]
region = os.environ["RGW_REGION"]
body = b""
if method == "PUT" and path_arg:
    with open(path_arg, "rb") as f:
        body = f.read()
u = urllib.parse.urlsplit(url)
now = datetime.datetime.now(datetime.timezone.utc)
amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
payload = hashlib.sha256(body).hexdigest()
headers = {"host": u.netloc, "x-amz-date": amz, "x-amz-content-sha256": payload}
if method == "PUT":
    headers["x-amz-meta-sha256"] = payload
canon_uri = urllib.parse.quote(urllib.parse.unquote(u.path), safe="/-_.~")
names = sorted(headers)
creq = "\n".join([method, canon_uri, "",
                  "".join(f"{n}:{headers[n]}\n" for n in names), ";".join(names), payload])
scope = f"{day}/{region}/s3/aws4_request"
sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
key = ("AWS4" + sk).encode()
for part in (day, region, "s3", "aws4_request"):
    key = hmac.new(key, part.encode(), hashlib.sha256).digest()
sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, "
                            f"SignedHeaders={';'.join(names)}, Signature={sig}")
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
conn.request(method, canon_uri, body=body if method == "PUT" else None, headers=headers)
r = conn.getresponse()
data = r.read()
print(r.status)
if method == "GET" and path_arg and r.status == 200:
    with open(path_arg, "wb") as f:
        f.write(data)
elif r.status // 100 != 2 and data:
    sys.stderr.write(data.decode(errors="replace")[:1000] + "\n")
sys.exit(0 if r.status // 100 == 2 else 3 if r.status == 404 else 1)
PY

# ---- start ----------------------------------------------------------------------

echo "ports: mon $RGW_MON_PORT, east $RGW_EAST_PORT, west $RGW_WEST_PORT"
t0=$SECONDS
bash "$RGW" start "$DIR" || fail "rgw.sh start failed"
echo "started in $((SECONDS - t0)) s"
[ -s "$DIR/env" ] || fail "no $DIR/env after start"
# shellcheck disable=SC1091
. "$DIR/env"
for v in RGW_EAST_ENDPOINT RGW_WEST_ENDPOINT RGW_ACCESS_KEY_ID RGW_SECRET_ACCESS_KEY \
	RGW_REGION RGW_BUCKET RGW_BUCKET_B RGW_DIR RGW_SYSTEM_ACCESS_KEY_ID RGW_SYSTEM_SECRET_ACCESS_KEY; do
	[ -n "${!v:-}" ] || fail "$DIR/env does not set $v"
done
[ "$RGW_EAST_ENDPOINT" = "http://127.0.0.1:$RGW_EAST_PORT" ] || fail "RGW_EAST_ENDPOINT=$RGW_EAST_ENDPOINT"
[ "$RGW_WEST_ENDPOINT" = "http://127.0.0.1:$RGW_WEST_PORT" ] || fail "RGW_WEST_ENDPOINT=$RGW_WEST_ENDPOINT"
[ "$RGW_EAST_TLS_ENDPOINT" = "https://127.0.0.1:$RGW_EAST_TLS_PORT" ] || fail "RGW_EAST_TLS_ENDPOINT=$RGW_EAST_TLS_ENDPOINT"
[ "$RGW_WEST_TLS_ENDPOINT" = "https://127.0.0.1:$RGW_WEST_TLS_PORT" ] || fail "RGW_WEST_TLS_ENDPOINT=$RGW_WEST_TLS_ENDPOINT"
# HTTPS: a chain to the harness's CA, for 127.0.0.1 and localhost; the
# certificates meant to fail are there
for ep in "$RGW_EAST_TLS_ENDPOINT" "$RGW_WEST_TLS_ENDPOINT" "https://localhost:$RGW_EAST_TLS_PORT"; do
	st=$(curl -sS --cacert "$RGW_CA_FILE" -o /dev/null -w '%{http_code}' "$ep/") ||
		fail "no verified HTTPS answer from $ep with RGW_CA_FILE"
	[ "$st" = 200 ] || fail "$ep: HTTP $st"
done
! curl -sS -o /dev/null "$RGW_EAST_TLS_ENDPOINT/" 2>/dev/null ||
	fail "$RGW_EAST_TLS_ENDPOINT is trusted without the harness's CA"
for f in expired wronghost other-ca; do
	[ -s "$RGW_TLS_DIR/$f.pem" ] || fail "no $RGW_TLS_DIR/$f.pem"
done
[ "$RGW_BUCKET" = harness-a ] && [ "$RGW_BUCKET_B" = harness-b ] || fail "buckets: $RGW_BUCKET $RGW_BUCKET_B"
[ "$(stat -c %a "$DIR/env")" = 600 ] || fail "$DIR/env is not mode 0600"
[ "$(cat "$RGW_SECRET_ACCESS_KEY_FILE")" = "$RGW_SECRET_ACCESS_KEY" ] || fail "secret key file differs"
[ -n "$(our_daemons)" ] || fail "no daemon of $DIR is running after start"

# Loopback only: every listening socket of our daemons is on 127.0.0.1.
pids=$(our_daemons | cut -d' ' -f1 | tr '\n' ' ')
inodes=$(for p in $pids; do
	find "/proc/$p/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null
done | sed 's/socket:\[\(.*\)\]/\1/' | sort -u)
exposed=$(awk -v ino="$(echo "$inodes" | tr '\n' ' ')" '
	BEGIN { n = split(ino, a, " "); for (i = 1; i <= n; i++) mine[a[i]] = 1 }
	$4 == "0A" && ($10 in mine) && $2 !~ /^0100007F:/ { print $2 }
' /proc/net/tcp /proc/net/tcp6 2>/dev/null || true)
[ -z "$exposed" ] || fail "daemons listen on non-loopback addresses: $exposed"

# Idempotent: a second start reports and succeeds, same keys.
out=$(bash "$RGW" start "$DIR" 2>&1) || fail "second start failed: $out"
echo "$out" | grep -q 'already running' || fail "second start did not say 'already running': $out"
grep -q "$RGW_ACCESS_KEY_ID" "$DIR/env" || fail "second start changed the keys"
bash "$RGW" status "$DIR" >/dev/null || fail "status says not running"

# ---- an object: PUT to east, GET back, replicated to west --------------------------

obj=$TEST_TMP/object
python3 -c 'import os, sys; sys.stdout.buffer.write(bytes(range(256)) + os.urandom(300000))' >"$obj"
key="harness/obj-$$"
st=$(python3 "$S3" PUT "$RGW_EAST_ENDPOINT/$RGW_BUCKET/$key" "$obj") || fail "PUT to east: HTTP $st"
st=$(python3 "$S3" GET "$RGW_EAST_ENDPOINT/$RGW_BUCKET/$key" "$TEST_TMP/back") || fail "GET from east: HTTP $st"
cmp "$obj" "$TEST_TMP/back" || fail "object read back from east differs"

# A wrong secret is refused (the gateway checks SigV4 signatures).
st=$(RGW_SECRET_ACCESS_KEY=wrong-$RGW_SECRET_ACCESS_KEY python3 "$S3" GET "$RGW_EAST_ENDPOINT/$RGW_BUCKET/$key" 2>/dev/null) &&
	fail "GET with a wrong secret succeeded"
[ "$st" = 403 ] || fail "GET with a wrong secret: HTTP $st, expected 403"

t0=$(date +%s.%N)
deadline=$((SECONDS + 60))
until st=$(python3 "$S3" GET "$RGW_WEST_ENDPOINT/$RGW_BUCKET/$key" "$TEST_TMP/west" 2>/dev/null); do
	[ "$st" = 404 ] || fail "GET from west: HTTP $st"
	((SECONDS < deadline)) || fail "object did not reach west within 60 s"
	sleep 0.1
done
echo "replicated to west in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s"
cmp "$obj" "$TEST_TMP/west" || fail "object read from west differs"

# The second bucket exists on both sides and is independent.
st=$(python3 "$S3" PUT "$RGW_WEST_ENDPOINT/$RGW_BUCKET_B/from-west" "$obj") || fail "PUT to west $RGW_BUCKET_B: HTTP $st"
st=$(python3 "$S3" GET "$RGW_EAST_ENDPOINT/$RGW_BUCKET/from-west" 2>/dev/null) &&
	fail "an object of $RGW_BUCKET_B is visible in $RGW_BUCKET"
[ "$st" = 404 ] || fail "GET of a missing key: HTTP $st, expected 404"

# ---- stop --------------------------------------------------------------------------

bash "$RGW" stop "$DIR" || fail "rgw.sh stop failed"
left=$(our_daemons)
[ -z "$left" ] || fail "daemons of $DIR still running after stop: $left"
[ ! -e "$DIR" ] || fail "$DIR still exists after stop"
bash "$RGW" stop "$DIR" || fail "a second stop failed"
bash "$RGW" status "$DIR" >/dev/null 2>&1 && fail "status says running after stop"
echo "harness stopped cleanly"
