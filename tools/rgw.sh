#!/usr/bin/env bash
# The object-store harness: a throw-away single-node Ceph cluster with two RGW
# zones in one zonegroup, `east` (master) and `west`, which replicate to each
# other asynchronously -- a real S3 implementation with geo-replication, on
# loopback, for tests, the demo and benchmarks (doc: ../shared/design.md §10).
#
#   bash tools/rgw.sh start  [DIR]   start it (idempotent), print endpoints and keys
#   bash tools/rgw.sh stop   [DIR]   stop the daemons by pid file, remove DIR
#   bash tools/rgw.sh status [DIR]   exit 0 when every daemon runs, 1 when not
#   bash tools/rgw.sh env    [DIR]   print DIR/env (exit 1 when not running)
#   bash tools/rgw.sh zone-stop  DIR ZONE   stop one zone's gateway (east|west)
#   bash tools/rgw.sh zone-start DIR ZONE   start it again (same arguments)
#
# Typical use:
#   bash tools/rgw.sh start "$DIR" && . "$DIR/env"
#   ... talk S3 to $RGW_EAST_ENDPOINT / $RGW_WEST_ENDPOINT, bucket $RGW_BUCKET,
#       keys $RGW_ACCESS_KEY_ID / $RGW_SECRET_ACCESS_KEY, SigV4 region $RGW_REGION
#   bash tools/rgw.sh stop "$DIR"
#
# DIR defaults to $RGW_DIR, else /var/tmp/snapship-rgw.  Everything lives
# under DIR: ceph.conf, monmap, mon data, OSD data, run dir, admin sockets,
# pid files and logs (DIR/log/*.log).  Object data is in RAM (memstore).
# DIR/env is a sourceable file (mode 0600, it holds secrets) exporting:
#   RGW_DIR RGW_EAST_ENDPOINT RGW_WEST_ENDPOINT RGW_REGION RGW_BUCKET RGW_BUCKET_B
#   RGW_ACCESS_KEY_ID RGW_SECRET_ACCESS_KEY RGW_SECRET_ACCESS_KEY_FILE
#   RGW_SYSTEM_ACCESS_KEY_ID RGW_SYSTEM_SECRET_ACCESS_KEY
#   RGW_EAST_PORT RGW_WEST_PORT RGW_MON_PORT RGW_DNS_NAME RGW_S3 CEPH_CONF
#   RGW_EAST_TLS_ENDPOINT RGW_WEST_TLS_ENDPOINT RGW_EAST_TLS_PORT RGW_WEST_TLS_PORT
#   RGW_CA_FILE RGW_TLS_DIR
# Each zone also answers HTTPS (beast ssl_endpoint) on its TLS port, with a
# certificate for 127.0.0.1 and localhost signed by a CA the harness makes
# (openssl, under DIR/tls; RGW_CA_FILE is that CA's certificate).  DIR/tls
# also holds certificates meant to fail, for TLS tests to serve: expired.pem
# (127.0.0.1/localhost, expired; same CA), wronghost.pem (only for
# wrong-host.invalid; same CA) with their keys (*.key), and other-ca.pem, a
# CA that signed nothing of the harness's.
# RGW_REGION is the zonegroup's name, `snapship` (RGW accepts any region in a
# SigV4 scope, but a CreateBucket LocationConstraint must be `snapship`).
# Virtual-hosted addressing works with Host: BUCKET.$RGW_DNS_NAME:PORT
# (BUCKET.localhost does not resolve here: connect to 127.0.0.1 anyway, e.g.
# curl --connect-to).
# RGW_SECRET_ACCESS_KEY_FILE holds the secret alone (mode 0600).  RGW_S3 is a
# small python3 SigV4 client (DIR/s3.py) using those variables:
#   python3 "$RGW_S3" put|get|head|delete|mkbucket|ls URL [FILE]
# CEPH_CONF lets `radosgw-admin sync status --rgw-zone=west` etc. work directly.
#
# zone-stop/zone-start take one zone's gateway down and up again, e.g. to test
# replication catching up after an outage: zone-stop sends SIGTERM (SIGKILL
# 15 s later) to the daemon of its pid file and waits until its port is
# closed; zone-start runs radosgw as start did and waits until the port
# answers HTTP (RGW_START_TIMEOUT).  Both are idempotent.  The restarted zone
# resumes replication once the stopped gateway's sync leases expire (10 s
# after their last renewal, see ceph.conf), at its next retry (1, 3, 7, 15,
# 31 s after zone-start): measured 0-27 s, so allow about 30 s.  While a zone is stopped, `status`
# and `env` exit 1 and `start` starts a fresh cluster.
#
# Environment (start):
#   RGW_EAST_PORT=7480 RGW_WEST_PORT=7481 RGW_MON_PORT=6789   loopback ports
#   RGW_EAST_TLS_PORT=7482 RGW_WEST_TLS_PORT=7483             their HTTPS ports
#   RGW_BUCKET=snapship RGW_BUCKET_B=snapship-b                buckets to create
#   RGW_MEMSTORE_BYTES=6G   the OSD's capacity, in RAM, used as data arrives.
#                           Both zones' copies count (1 GB uploaded to east
#                           uses 2 GB of it), the OSD's resident memory is
#                           about twice what it holds, and deleted objects are
#                           freed by RGW's GC 1-2 minutes later.  When it is
#                           full, writes hang (they do not fail).
#   RGW_START_TIMEOUT=120   seconds before a start gives up
#   RGW_KEEP_ON_FAIL=1      keep DIR (logs) when a start fails
#
# Installs ceph-mon ceph-osd radosgw ceph-common python3 from Debian when
# missing (needs root then; a second run needs no network).
# Exit status: 0 ok, 1 failure (with a message; a failed start stops what it
# started, shows the end of the relevant logs and removes DIR).
set -euo pipefail

PROG=rgw
MARKER=.snapship-rgw
PKGS=(ceph-mon ceph-osd radosgw ceph-common python3 openssl)
REALM=snapship
ZONEGROUP=snapship		# also the SigV4 region name (the zonegroup's api_name)
DAEMONS=(client.rgw.west client.rgw.east osd.0 mon.a)	# stop order

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

usage() {
	{
		echo "usage: bash tools/rgw.sh start|stop|status|env [DIR]"
		echo "       bash tools/rgw.sh zone-stop|zone-start DIR east|west"
	} >&2
	exit 1
}

[ $# -ge 1 ] || usage
CMD=$1
ZONE=""
case $CMD in
zone-stop | zone-start)
	[ $# -eq 3 ] || usage
	ZONE=$3
	case $ZONE in east | west) ;; *) die "zone $ZONE: not east or west" ;; esac
	;;
*) [ $# -le 2 ] || usage ;;
esac
DIR=${2:-${RGW_DIR:-/var/tmp/snapship-rgw}}
[ -n "$DIR" ] || die "empty DIR"
DIR=$(realpath -m -- "$DIR")
case $DIR in
/ | /var | /var/tmp | /tmp | /root | /home | /usr | /etc) die "refusing to use $DIR as the harness directory" ;;
esac
CONF=$DIR/ceph.conf

# ---- daemons by pid file ----------------------------------------------------

pidfile() { echo "$DIR/run/$1.pid"; }

# daemon_pid NAME: the pid of our daemon NAME if it is running (its pid file
# names a live process whose command line mentions our ceph.conf).
daemon_pid() {
	local f pid
	f=$(pidfile "$1")
	[ -s "$f" ] || return 1
	pid=$(tr -dc '0-9' <"$f")
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	{ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$CONF" || return 1
	echo "$pid"
}

all_running() {
	local d
	for d in "${DAEMONS[@]}"; do
		daemon_pid "$d" >/dev/null || return 1
	done
}

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# terminate PID...: SIGTERM, wait up to 15 s, then SIGKILL (and wait 5 s).
terminate() {
	local pids=("$@") pid i left
	[ ${#pids[@]} -gt 0 ] || return 0
	kill -TERM "${pids[@]}" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		if ((i == 150)); then
			log "killing ${pids[*]} (still running 15 s after SIGTERM)"
			kill -KILL "${pids[@]}" 2>/dev/null || true
		fi
		left=()
		for pid in "${pids[@]}"; do
			alive "$pid" && left+=("$pid")
		done
		[ ${#left[@]} -eq 0 ] && return 0
		pids=("${left[@]}")
		sleep 0.1
	done
	log "warning: ${pids[*]} survived SIGKILL"
}

# stop_daemons: stop every daemon of DIR by its pid file: the gateways first
# (they hang in shutdown while the OSD goes away under them), then the OSD
# and the monitor.
stop_daemons() {
	local d pid first=() last=()
	for d in "${DAEMONS[@]}"; do
		pid=$(daemon_pid "$d") || continue
		case $d in client.*) first+=("$pid") ;; *) last+=("$pid") ;; esac
	done
	terminate "${first[@]}"
	terminate "${last[@]}"
	rm -f "$DIR"/run/*.pid
}

# is_ours: DIR holds a harness (or nothing at all).
is_ours() {
	[ -e "$DIR/$MARKER" ] && return 0
	[ -d "$DIR" ] && [ -z "$(ls -A "$DIR")" ]
}

# clear_dir: empty DIR (and the short admin socket dir a deep DIR uses).
clear_dir() {
	local asok
	asok=$(readlink "$DIR/asok" 2>/dev/null || true)
	case $asok in /tmp/rgw-asok.*) rm -rf -- "$asok" ;; esac
	find "$DIR" -xdev -mindepth 1 -delete
}

remove_dir() {
	[ -d "$DIR" ] || return 0
	is_ours || die "$DIR does not look like a harness directory (no $MARKER); not removing it"
	clear_dir
	rmdir -- "$DIR"
}

# lock: serialise start/stop on one DIR (flock on the directory itself).
lock_dir() {
	for _ in 1 2 3; do
		mkdir -p "$DIR"
		exec 9<"$DIR"
		flock -w 300 9 || die "timed out waiting for another rgw.sh on $DIR"
		# A concurrent stop may have removed the directory we locked.
		[ "$(stat -c %d:%i "$DIR" 2>/dev/null)" = "$(stat -L -c %d:%i /proc/self/fd/9)" ] && return 0
		exec 9<&-
	done
	die "cannot lock $DIR"
}

# ---- packages -----------------------------------------------------------------

ensure_packages() {
	local p missing=()
	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})"
	log "installing ${missing[*]}"
	local out
	out=$(mktemp)
	export DEBIAN_FRONTEND=noninteractive
	local apt=(apt-get -q -o DPkg::Lock::Timeout=300)
	if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >"$out" 2>&1; then
		# Stale or missing package lists: update once, then try again.
		if ! "${apt[@]}" update >>"$out" 2>&1 ||
			! "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >>"$out" 2>&1; then
			tail -n 20 "$out" >&2
			rm -f "$out"
			die "apt-get install ${missing[*]} failed"
		fi
	fi
	rm -f "$out"
}

# ---- the S3 client (python3 stdlib, SigV4) -------------------------------------

write_s3py() {
	cat >"$1" <<'PY'
#!/usr/bin/env python3
"""Minimal S3 client with AWS SigV4 (python3 stdlib), for the rgw harness.

  s3.py put URL [FILE|-]     PUT an object (FILE, stdin with -, or empty)
  s3.py get URL [FILE]       GET an object to FILE (default stdout)
  s3.py head URL             HEAD; prints the status and headers
  s3.py delete URL           DELETE an object or (empty) bucket
  s3.py mkbucket URL         PUT a bucket (200, or 409 BucketAlreadyOwnedByYou: ok)
  s3.py ls URL               ListObjectsV2 of the bucket in URL; one key per line
  s3.py wait URL [SECONDS]   until URL answers HTTP at all (any status)

URL is path-style: http://host:port/bucket[/key].  Keys come from
RGW_ACCESS_KEY_ID / RGW_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY), the region from RGW_REGION (or AWS_REGION).
Exit 0 on 2xx, 1 otherwise (the response body goes to stderr).
"""
import datetime, hashlib, hmac, http.client, os, sys, time, urllib.parse
import xml.etree.ElementTree as ET


def env(*names, default=None):
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    if default is None:
        sys.exit("s3.py: set " + " or ".join(names))
    return default


def sign(method, url, headers, payload_hash):
    ak = env("RGW_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")
    sk = env("RGW_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")
    region = env("RGW_REGION", "AWS_REGION", default="us-east-1")
    u = urllib.parse.urlsplit(url)
    t = datetime.datetime.now(datetime.timezone.utc)
    amzdate, date = t.strftime("%Y%m%dT%H%M%SZ"), t.strftime("%Y%m%d")
    headers["host"] = u.netloc
    headers["x-amz-date"] = amzdate
    headers["x-amz-content-sha256"] = payload_hash
    path = urllib.parse.quote(urllib.parse.unquote(u.path) or "/", safe="/-_.~")
    q = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
    cq = "&".join(urllib.parse.quote(k, safe="-_.~") + "=" + urllib.parse.quote(v, safe="-_.~")
                  for k, v in sorted(q))
    hs = sorted((k.lower(), str(v).strip()) for k, v in headers.items())
    signed = ";".join(k for k, _ in hs)
    creq = "\n".join([method, path, cq, "".join(f"{k}:{v}\n" for k, v in hs), signed, payload_hash])
    scope = f"{date}/{region}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + sk).encode()
    for part in (date, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, "
                                f"SignedHeaders={signed}, Signature={sig}")
    return u, path + ("?" + cq if cq else "")


def request(method, url, body=b"", length=None, payload_hash=None, timeout=300):
    headers = {}
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest()
    u, target = sign(method, url, headers, payload_hash)
    if method in ("PUT", "POST"):
        headers["Content-Length"] = str(len(body) if length is None else length)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    conn.request(method, target, body=body if body != b"" else None, headers=headers)
    return conn.getresponse()


def fail(resp, what):
    body = resp.read()
    sys.stderr.write(f"s3.py: {what}: HTTP {resp.status} {resp.reason}\n")
    if body:
        sys.stderr.write(body.decode(errors="replace")[:2000] + "\n")
    sys.exit(1)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    cmd, url = argv[1], argv[2]
    arg = argv[3] if len(argv) > 3 else None
    if cmd == "put":
        if arg is None:
            r = request("PUT", url)
        elif arg == "-":
            data = sys.stdin.buffer.read()
            r = request("PUT", url, data)
        else:
            h = hashlib.sha256()
            with open(arg, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            with open(arg, "rb") as f:
                r = request("PUT", url, f, os.fstat(f.fileno()).st_size, h.hexdigest())
        if r.status // 100 != 2:
            fail(r, "PUT " + url)
        r.read()
    elif cmd == "get":
        r = request("GET", url)
        if r.status // 100 != 2:
            fail(r, "GET " + url)
        out = open(arg, "wb") if arg and arg != "-" else sys.stdout.buffer
        for chunk in iter(lambda: r.read(1 << 20), b""):
            out.write(chunk)
        out.flush()
    elif cmd == "head":
        r = request("HEAD", url)
        r.read()
        print(r.status, r.reason)
        for k, v in r.getheaders():
            print(f"{k}: {v}")
        if r.status // 100 != 2:
            sys.exit(1)
    elif cmd == "delete":
        r = request("DELETE", url)
        if r.status // 100 != 2:
            fail(r, "DELETE " + url)
        r.read()
    elif cmd == "mkbucket":
        r = request("PUT", url)
        body = r.read()
        if r.status // 100 != 2 and not (r.status == 409 and b"BucketAlreadyOwnedByYou" in body):
            sys.stderr.write(f"s3.py: PUT bucket {url}: HTTP {r.status} {body.decode(errors='replace')}\n")
            sys.exit(1)
    elif cmd == "ls":
        token = None
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        while True:
            q = "list-type=2" + ("&continuation-token=" + urllib.parse.quote(token, safe="") if token else "")
            r = request("GET", url.rstrip("/") + "/?" + q)
            if r.status // 100 != 2:
                fail(r, "LIST " + url)
            root = ET.fromstring(r.read())
            for c in root.iter(ns + "Contents"):
                print(c.find(ns + "Key").text)
            token = root.findtext(ns + "NextContinuationToken")
            if root.findtext(ns + "IsTruncated") != "true" or not token:
                break
    elif cmd == "wait":
        u = urllib.parse.urlsplit(url)
        deadline = time.monotonic() + float(arg or 60)
        while True:
            try:
                c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=2)
                c.request("GET", "/")
                c.getresponse().read()
                return
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"s3.py: {url} did not answer within {arg or 60} s")
                time.sleep(0.1)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
PY
}

# ---- start ------------------------------------------------------------------------

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_port() {
	local name=$1 v=$2
	[[ $v =~ ^[0-9]+$ ]] && ((v > 0 && v < 65536)) || die "$name=$v is not a port number"
	port_in_use "$v" && die "port $v ($name) is already in use on 127.0.0.1 (set $name)"
	((v < 6800 || v > 7300)) ||
		log "warning: $name=$v is in the range OSDs bind to (6800-7300): another cluster's OSD may take it"
	return 0
}

randkey() {	# randkey LEN ALPHABET
	python3 -c 'import secrets, sys; n, a = int(sys.argv[1]), sys.argv[2]; print("".join(secrets.choice(a) for _ in range(n)))' "$1" "$2"
}

STEP=""		# what start is doing (for the failure message)
STEP_LOG=""	# the log that tells why it failed
START_OK=0

# run_step LOG DESCRIPTION CMD...: run CMD (bounded by the start deadline),
# output appended to LOG.
run_step() {
	STEP_LOG=$1 STEP=$2
	shift 2
	local budget=$((DEADLINE - SECONDS))
	((budget > 0)) || die "start timed out (${START_TIMEOUT}s) before: $STEP"
	echo "+ [$(elapsed "$T0")s] $*" >>"$STEP_LOG"
	# 9<&-: the daemons must not inherit (and so hold forever) our lock.
	timeout -k 5 "$budget" "$@" >>"$STEP_LOG" 2>&1 9<&-
}

CEPH=(ceph -c "$CONF" --connect-timeout 20)
RGWADMIN=(radosgw-admin -c "$CONF" -n client.admin)

on_start_exit() {
	local rc=$?
	[ "$START_OK" = 1 ] && return 0
	trap - EXIT INT TERM HUP
	[ "$rc" -ne 0 ] || rc=1
	{
		echo "$PROG: start failed${STEP:+ at: $STEP}"
		if [ -n "$STEP_LOG" ] && [ -s "$STEP_LOG" ]; then
			echo "---- last lines of $STEP_LOG"
			tail -n 25 "$STEP_LOG"
			echo "----"
		fi
		local d
		for d in "${DAEMONS[@]}"; do
			[ -s "$DIR/log/$d.log" ] && [ "$DIR/log/$d.log" != "$STEP_LOG" ] || continue
			if ! daemon_pid "$d" >/dev/null && grep -qE '^[0-9T:.+-]+ [0-9a-f]+ -1 ' "$DIR/log/$d.log"; then
				echo "---- $d: its last errors ($DIR/log/$d.log)"
				grep -E '^[0-9T:.+-]+ [0-9a-f]+ -1 ' "$DIR/log/$d.log" | tail -n 5
			fi
		done
	} >&2
	stop_daemons
	if [ "${RGW_KEEP_ON_FAIL:-0}" = 1 ]; then
		log "keeping $DIR (RGW_KEEP_ON_FAIL=1); remove it with: bash tools/rgw.sh stop $DIR"
	else
		remove_dir
	fi
	exit "$rc"
}

write_conf() {
	local fsid=$1
	cat >"$CONF" <<EOF
# snapship rgw harness: single-node cluster, loopback only, everything under $DIR
[global]
fsid = $fsid
mon host = [v1:127.0.0.1:$MON_PORT]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
keyring = $DIR/keyring
run dir = $DIR/run
log file = $DIR/log/\$name.log
admin socket = $ASOK_DIR/\$name.asok
mon data = $DIR/mon/\$cluster-\$id
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
# data copied into 64 KiB pages (the default keeps whole network buffers,
# pinning about twice the data); the resident size is ~2x the data either way
memstore page set = true
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon allow pool delete = true
# the mon stops when its disk (here DIR's) has less than crit % free
mon data avail crit = 1
mon data avail warn = 2
# every map change (pool creation, osd boot) waits for one of these: 1 s by default
paxos propose interval = 0.1

[mon]
pid file = $DIR/run/\$name.pid

[osd]
pid file = $DIR/run/\$name.pid
# placed in the CRUSH map by the harness: at start-up the OSD's own
# "osd crush create-or-move" races with its first monmap and can fail with
# "wrong fsid" (seen with a fast paxos)
osd crush update on start = false
osd class update on start = false
# stopping: don't wait (5 s) for a monitor that is stopping at the same time
osd fast shutdown notify mon = false

[client]
# command-line clients (ceph, radosgw-admin): one admin socket each
admin socket = $ASOK_DIR/\$name.\$pid.asok
rgw realm = $REALM
# virtual-hosted addressing: Host: BUCKET.localhost:PORT (connect to 127.0.0.1)
rgw dns name = localhost
rgw zonegroup = $ZONEGROUP
# deleted objects give their memory back within about a minute, not 2 h
rgw gc obj min wait = 60
rgw gc processor period = 60
rgw data notify interval msec = 100
rgw md notify interval msec = 100
# a stopped gateway keeps its sync leases (renewed every period/2) until they
# expire: a zone started again (zone-start) resumes replication only then
# (the default, 120 s, makes that take 2 minutes)
rgw sync lease period = 10

[client.rgw.east]
pid file = $DIR/run/\$name.pid
admin socket = $ASOK_DIR/\$name.asok
rgw zone = east
rgw frontends = beast endpoint=127.0.0.1:$EAST_PORT ssl_endpoint=127.0.0.1:$EAST_TLS_PORT ssl_certificate=$DIR/tls/server.pem ssl_private_key=$DIR/tls/server.key

[client.rgw.west]
pid file = $DIR/run/\$name.pid
admin socket = $ASOK_DIR/\$name.asok
rgw zone = west
rgw frontends = beast endpoint=127.0.0.1:$WEST_PORT ssl_endpoint=127.0.0.1:$WEST_TLS_PORT ssl_certificate=$DIR/tls/server.pem ssl_private_key=$DIR/tls/server.key
EOF
}

show_summary() {
	# shellcheck disable=SC1091
	(
		. "$DIR/env"
		cat <<EOF
east (master):  $RGW_EAST_ENDPOINT $RGW_EAST_TLS_ENDPOINT
west:           $RGW_WEST_ENDPOINT $RGW_WEST_TLS_ENDPOINT
CA (https):     $RGW_CA_FILE
region (SigV4): $RGW_REGION
buckets:        $RGW_BUCKET $RGW_BUCKET_B
access key:     $RGW_ACCESS_KEY_ID
secret key:     $RGW_SECRET_ACCESS_KEY
system keys:    $RGW_SYSTEM_ACCESS_KEY_ID $RGW_SYSTEM_SECRET_ACCESS_KEY
env file:       . $DIR/env
EOF
	)
}

# wait_for DESCRIPTION DAEMON CMD...: poll CMD until it succeeds; fail at
# once when DAEMON exits meanwhile (radosgw writes its pid file a moment
# after its parent returns: give it 10 s to appear).
wait_for() {
	local what=$1 daemon=$2 since=$SECONDS
	shift 2
	STEP="waiting for $what"
	STEP_LOG=$DIR/log/$daemon.log
	while ! "$@" >/dev/null 2>&1 9<&-; do
		if ! daemon_pid "$daemon" >/dev/null &&
			{ [ -e "$(pidfile "$daemon")" ] || ((SECONDS - since > 10)); }; then
			die "$daemon is not running (log: $STEP_LOG)"
		fi
		((SECONDS < DEADLINE)) || die "timed out (${START_TIMEOUT}s) $STEP"
		sleep 0.2
	done
	echo "= [$(elapsed "$T0")s] done $STEP" >>"$DIR/log/setup.log"
}

# start_rgw ZONE: start ZONE's gateway (it daemonizes; the port comes later).
start_rgw() {
	run_step "$DIR/log/client.rgw.$1.log" "starting radosgw $1" radosgw -c "$CONF" -n "client.rgw.$1"
}

# https_answers URL: the gateway's HTTPS frontend completes a verified
# handshake with the harness's CA and answers (any HTTP status).
https_answers() {
	python3 - "$1" "$DIR/tls/ca.pem" <<'PY'
import ssl, sys, urllib.error, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
try:
    urllib.request.urlopen(sys.argv[1], timeout=2, context=ctx)
except urllib.error.HTTPError:
    pass
PY
}

# make_tls TLSDIR: the harness's CA and certificates (see the header).
make_tls() {
	local t=$1 log=$DIR/log/setup.log
	mkdir -p "$t"
	# cert NAME CA SAN DAYS: NAME.key and NAME.pem for SAN, signed by CA
	cert() {
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$t/$1.key" -out "$t/$1.csr" -subj "/CN=snapship test $1" >>"$log" 2>&1 &&
			printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$3" >"$t/$1.ext" &&
			openssl x509 -req -in "$t/$1.csr" -CA "$t/$2.pem" -CAkey "$t/$2.key" -CAcreateserial \
				-days "$4" -extfile "$t/$1.ext" -out "$t/$1.pem" >>"$log" 2>&1 &&
			rm -f "$t/$1.csr" "$t/$1.ext"
	}
	local ca
	for ca in ca other-ca; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$t/$ca.key" -out "$t/$ca.pem" -days 30 -subj "/CN=snapship test $ca" \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
			>>"$log" 2>&1 || die "openssl: cannot make the test CA $ca (log: $log)"
	done
	cert server ca "IP:127.0.0.1,DNS:localhost" 30 &&
		cert expired ca "IP:127.0.0.1,DNS:localhost" -1 &&
		cert wronghost ca "DNS:wrong-host.invalid" 30 ||
		die "openssl: cannot make the test certificates (log: $log)"
	chmod 600 "$t"/*.key
}

osd_up() { "${CEPH[@]}" osd dump 2>/dev/null | grep -q '^osd\.0 up'; }

bucket_on_west() {
	local b
	for b in "$BUCKET" "$BUCKET_B"; do
		RGW_ACCESS_KEY_ID=$USER_AK RGW_SECRET_ACCESS_KEY=$USER_SK RGW_REGION=$ZONEGROUP \
			python3 "$DIR/s3.py" head "$WEST_URL/$b" || return 1
	done
}

cmd_start() {
	EAST_PORT=${RGW_EAST_PORT:-7480}
	WEST_PORT=${RGW_WEST_PORT:-7481}
	MON_PORT=${RGW_MON_PORT:-6789}
	EAST_TLS_PORT=${RGW_EAST_TLS_PORT:-7482}
	WEST_TLS_PORT=${RGW_WEST_TLS_PORT:-7483}
	BUCKET=${RGW_BUCKET:-snapship}
	BUCKET_B=${RGW_BUCKET_B:-snapship-b}
	START_TIMEOUT=${RGW_START_TIMEOUT:-120}
	MEMSTORE_BYTES=$(numfmt --from=iec "${RGW_MEMSTORE_BYTES:-6G}" 2>/dev/null) ||
		die "RGW_MEMSTORE_BYTES=${RGW_MEMSTORE_BYTES:-} is not a size (e.g. 6G, 8589934592)"
	((MEMSTORE_BYTES >= 1 << 28)) || die "RGW_MEMSTORE_BYTES must be at least 256M"
	[[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "RGW_START_TIMEOUT=$START_TIMEOUT is not a number of seconds"
	[[ $BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "RGW_BUCKET=$BUCKET is not a valid bucket name"
	[[ $BUCKET_B =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "RGW_BUCKET_B=$BUCKET_B is not a valid bucket name"
	[ "$BUCKET" != "$BUCKET_B" ] || die "RGW_BUCKET and RGW_BUCKET_B are both $BUCKET"
	EAST_URL=http://127.0.0.1:$EAST_PORT
	WEST_URL=http://127.0.0.1:$WEST_PORT

	if [ -e "$DIR" ] && ! is_ours; then
		die "$DIR exists and is not a harness directory (no $MARKER): choose another DIR"
	fi
	ensure_packages
	lock_dir

	if [ -e "$DIR/$MARKER" ]; then
		if all_running && [ -s "$DIR/env" ]; then
			log "already running in $DIR"
			show_summary
			return 0
		fi
		log "$DIR holds a harness that is not (fully) running; cleaning it up first"
		stop_daemons
		clear_dir
	fi

	T0=$(now)
	DEADLINE=$((SECONDS + START_TIMEOUT))
	trap on_start_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	check_port RGW_MON_PORT "$MON_PORT"
	check_port RGW_EAST_PORT "$EAST_PORT"
	check_port RGW_WEST_PORT "$WEST_PORT"
	check_port RGW_EAST_TLS_PORT "$EAST_TLS_PORT"
	check_port RGW_WEST_TLS_PORT "$WEST_TLS_PORT"
	[ "$(printf '%s\n' "$MON_PORT" "$EAST_PORT" "$WEST_PORT" "$EAST_TLS_PORT" "$WEST_TLS_PORT" | sort -u | wc -l)" = 5 ] ||
		die "RGW_MON_PORT, RGW_EAST_PORT, RGW_WEST_PORT, RGW_EAST_TLS_PORT and RGW_WEST_TLS_PORT must differ"

	touch "$DIR/$MARKER"
	mkdir -p "$DIR"/{run,log,mon,osd/ceph-0}
	chmod 700 "$DIR"
	# Unix socket paths are limited to 107 bytes: fall back to a short
	# directory (removed with DIR) when DIR is deep.
	ASOK_DIR=$DIR/run
	if ((${#ASOK_DIR} + 27 > 107)); then
		ASOK_DIR=$(mktemp -d /tmp/rgw-asok.XXXXXX)
		ln -s "$ASOK_DIR" "$DIR/asok"
		log "DIR is deep: admin sockets go to $ASOK_DIR"
	fi
	: >"$DIR/keyring"
	write_s3py "$DIR/s3.py"
	local fsid osd_uuid
	fsid=$(cat /proc/sys/kernel/random/uuid)
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	write_conf "$fsid"
	local SETUP=$DIR/log/setup.log
	: >"$SETUP"
	make_tls "$DIR/tls"

	# -- monitor (msgr v1 only: a v2 or unprefixed address makes clients hang)
	log "starting mon on 127.0.0.1:$MON_PORT"
	run_step "$SETUP" "monmaptool" monmaptool --create --fsid "$fsid" \
		--addv a "[v1:127.0.0.1:$MON_PORT]" "$DIR/monmap"
	run_step "$SETUP" "ceph-mon --mkfs" ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap"
	run_step "$DIR/log/mon.a.log" "starting ceph-mon" ceph-mon -c "$CONF" -i a
	wait_for "the monitor" mon.a "${CEPH[@]}" mon stat

	# -- one memstore OSD
	log "starting osd (memstore, $(numfmt --to=iec "$MEMSTORE_BYTES"))"
	run_step "$SETUP" "ceph osd new" "${CEPH[@]}" osd new "$osd_uuid" 0
	run_step "$SETUP" "ceph osd crush add" "${CEPH[@]}" osd crush add osd.0 1.0 root=default host=localhost
	run_step "$SETUP" "ceph-osd --mkfs" ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid"
	run_step "$DIR/log/osd.0.log" "starting ceph-osd" ceph-osd -c "$CONF" -i 0
	wait_for "osd.0 to be up" osd.0 osd_up

	# -- multisite: realm, zonegroup, east (master), system user, west, period
	log "configuring realm $REALM, zonegroup $ZONEGROUP, zones east (master) and west"
	local SYS_AK SYS_SK USER_AK USER_SK
	SYS_AK=SYS$(randkey 17 ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789)
	SYS_SK=$(randkey 40 ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789)
	USER_AK=SNAP$(randkey 16 ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789)
	USER_SK=$(randkey 40 ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789)
	run_step "$SETUP" "realm create" "${RGWADMIN[@]}" realm create --rgw-realm="$REALM" --default
	run_step "$SETUP" "zonegroup create" "${RGWADMIN[@]}" zonegroup create --rgw-realm="$REALM" \
		--rgw-zonegroup="$ZONEGROUP" --endpoints="$EAST_URL" --master --default
	run_step "$SETUP" "zone create east" "${RGWADMIN[@]}" zone create --rgw-realm="$REALM" \
		--rgw-zonegroup="$ZONEGROUP" --rgw-zone=east --endpoints="$EAST_URL" --master --default \
		--access-key="$SYS_AK" --secret="$SYS_SK"
	run_step "$SETUP" "system user create" "${RGWADMIN[@]}" user create --rgw-zone=east \
		--uid=snapship-sync --display-name="snapship multisite sync" --system \
		--access-key="$SYS_AK" --secret="$SYS_SK"
	run_step "$SETUP" "zone create west" "${RGWADMIN[@]}" zone create --rgw-realm="$REALM" \
		--rgw-zonegroup="$ZONEGROUP" --rgw-zone=west --endpoints="$WEST_URL" \
		--access-key="$SYS_AK" --secret="$SYS_SK"
	run_step "$SETUP" "period update --commit" "${RGWADMIN[@]}" period update --commit \
		--rgw-realm="$REALM" --rgw-zonegroup="$ZONEGROUP" --rgw-zone=east
	# The S3 user, on the metadata master (east); west gets it by metadata sync.
	run_step "$SETUP" "S3 user create" "${RGWADMIN[@]}" user create --rgw-zone=east \
		--uid=snapship --display-name=snapship --access-key="$USER_AK" --secret="$USER_SK"

	# -- east, and the buckets on it (SigV4 PUT), before west exists: west's
	# first (full) metadata sync then brings it the system user at once.  A
	# west started earlier answers east's change notifications with 403 until
	# it knows that user, and falls back to polling every 20 s (pacific).
	log "starting radosgw east on $EAST_URL"
	start_rgw east
	wait_for "radosgw east to answer on $EAST_URL" client.rgw.east python3 "$DIR/s3.py" wait "$EAST_URL" 1
	wait_for "radosgw east to answer on https://127.0.0.1:$EAST_TLS_PORT" client.rgw.east \
		https_answers "https://127.0.0.1:$EAST_TLS_PORT"
	local b
	for b in "$BUCKET" "$BUCKET_B"; do
		run_step "$SETUP" "creating bucket $b" env RGW_ACCESS_KEY_ID="$USER_AK" \
			RGW_SECRET_ACCESS_KEY="$USER_SK" RGW_REGION="$ZONEGROUP" \
			python3 "$DIR/s3.py" mkbucket "$EAST_URL/$b"
	done

	# -- west, then wait until it knows the user and the buckets
	log "starting radosgw west on $WEST_URL"
	start_rgw west
	wait_for "radosgw west to answer on $WEST_URL" client.rgw.west python3 "$DIR/s3.py" wait "$WEST_URL" 1
	wait_for "radosgw west to answer on https://127.0.0.1:$WEST_TLS_PORT" client.rgw.west \
		https_answers "https://127.0.0.1:$WEST_TLS_PORT"
	wait_for "user and buckets to reach west (metadata sync)" client.rgw.west bucket_on_west

	# -- env file
	umask 077
	printf '%s\n' "$USER_SK" >"$DIR/secret_access_key"
	{
		echo "# snapship rgw harness ($DIR): . this file"
		local kv
		for kv in \
			"RGW_DIR=$DIR" \
			"RGW_EAST_ENDPOINT=$EAST_URL" \
			"RGW_WEST_ENDPOINT=$WEST_URL" \
			"RGW_REGION=$ZONEGROUP" \
			"RGW_BUCKET=$BUCKET" \
			"RGW_BUCKET_B=$BUCKET_B" \
			"RGW_ACCESS_KEY_ID=$USER_AK" \
			"RGW_SECRET_ACCESS_KEY=$USER_SK" \
			"RGW_SECRET_ACCESS_KEY_FILE=$DIR/secret_access_key" \
			"RGW_SYSTEM_ACCESS_KEY_ID=$SYS_AK" \
			"RGW_SYSTEM_SECRET_ACCESS_KEY=$SYS_SK" \
			"RGW_EAST_PORT=$EAST_PORT" \
			"RGW_WEST_PORT=$WEST_PORT" \
			"RGW_MON_PORT=$MON_PORT" \
			"RGW_EAST_TLS_ENDPOINT=https://127.0.0.1:$EAST_TLS_PORT" \
			"RGW_WEST_TLS_ENDPOINT=https://127.0.0.1:$WEST_TLS_PORT" \
			"RGW_EAST_TLS_PORT=$EAST_TLS_PORT" \
			"RGW_WEST_TLS_PORT=$WEST_TLS_PORT" \
			"RGW_CA_FILE=$DIR/tls/ca.pem" \
			"RGW_TLS_DIR=$DIR/tls" \
			"RGW_S3=$DIR/s3.py" \
			"RGW_DNS_NAME=localhost" \
			"CEPH_CONF=$CONF"; do
			printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
		done
	} >"$DIR/env.tmp"
	mv "$DIR/env.tmp" "$DIR/env"

	START_OK=1
	trap - EXIT INT TERM HUP
	log "started in $(elapsed "$T0") s"
	show_summary
}

# ---- stop / status / env ----------------------------------------------------------

cmd_stop() {
	if [ ! -e "$DIR" ]; then
		log "not running ($DIR does not exist)"
		return 0
	fi
	is_ours || die "$DIR is not a harness directory (no $MARKER); not touching it"
	lock_dir
	stop_daemons
	remove_dir
	log "stopped; removed $DIR"
}

cmd_status() {
	local d pid rc=0
	if [ ! -e "$DIR/$MARKER" ]; then
		echo "not running ($DIR is not a harness directory)"
		return 1
	fi
	for d in "${DAEMONS[@]}"; do
		if pid=$(daemon_pid "$d"); then
			printf '%-16s running (pid %s)\n' "$d" "$pid"
		else
			printf '%-16s not running\n' "$d"
			rc=1
		fi
	done
	if [ "$rc" = 0 ] && [ -s "$DIR/env" ]; then
		show_summary
		# Object data lives in the OSD's memory (memstore, both zones' copies).
		local rss
		rss=$(awk '/^VmRSS:/ { printf "%.1f GiB", $2 / 1048576 }' "/proc/$(daemon_pid osd.0)/status" 2>/dev/null || true)
		[ -z "$rss" ] || echo "osd.0 memory:   $rss resident (memstore capacity $(awk '/^memstore device bytes/ { print $NF }' "$CONF" | numfmt --to=iec))"
	else
		rc=1
	fi
	return "$rc"
}

cmd_env() {
	if [ -e "$DIR/$MARKER" ] && all_running && [ -s "$DIR/env" ]; then
		cat "$DIR/env"
	else
		die "not running in $DIR (bash tools/rgw.sh start $DIR)"
	fi
}

# ---- zone-stop / zone-start ------------------------------------------------------

# zone_port ZONE: the port ZONE's gateway listens on (from ceph.conf).
zone_port() {
	awk -v s="[client.rgw.$1]" '$0 == s { in_s = 1; next } /^\[/ { in_s = 0 }
		in_s && /^rgw frontends/ { sub(/.* endpoint=[^ ]*:/, ""); sub(/ .*/, ""); print; exit }' "$CONF"
}

# zone_setup: check DIR holds a harness, lock it, set PORT and URL of $ZONE.
zone_setup() {
	[ -e "$DIR/$MARKER" ] && [ -s "$CONF" ] ||
		die "not running in $DIR (bash tools/rgw.sh start $DIR)"
	lock_dir
	PORT=$(zone_port "$ZONE")
	[[ $PORT =~ ^[0-9]+$ ]] || die "no port for zone $ZONE in $CONF"
	URL=http://127.0.0.1:$PORT
}

cmd_zone_stop() {
	local d=client.rgw.$ZONE pid i
	zone_setup
	if pid=$(daemon_pid "$d"); then
		log "stopping radosgw $ZONE (pid $pid)"
		terminate "$pid"
	else
		log "radosgw $ZONE is not running"
	fi
	rm -f "$(pidfile "$d")"
	for ((i = 0; i < 100; i++)); do
		port_in_use "$PORT" || break
		sleep 0.1
	done
	! port_in_use "$PORT" || die "127.0.0.1:$PORT still accepts connections"
	log "radosgw $ZONE stopped ($URL is closed)"
}

cmd_zone_start() {
	local d=client.rgw.$ZONE pid
	zone_setup
	if pid=$(daemon_pid "$d"); then
		log "radosgw $ZONE is already running (pid $pid)"
		return 0
	fi
	daemon_pid mon.a >/dev/null && daemon_pid osd.0 >/dev/null ||
		die "the cluster in $DIR is not running (bash tools/rgw.sh start $DIR)"
	port_in_use "$PORT" && die "port $PORT (zone $ZONE) is in use by another process"
	START_TIMEOUT=${RGW_START_TIMEOUT:-120}
	[[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "RGW_START_TIMEOUT=$START_TIMEOUT is not a number of seconds"
	T0=$(now)
	DEADLINE=$((SECONDS + START_TIMEOUT))
	rm -f "$(pidfile "$d")"
	log "starting radosgw $ZONE on $URL"
	start_rgw "$ZONE" || die "radosgw $ZONE failed to start (log: $DIR/log/$d.log)"
	# A gateway that does not come up is stopped again.
	if ! (wait_for "radosgw $ZONE to answer on $URL" "$d" python3 "$DIR/s3.py" wait "$URL" 1); then
		pid=$(daemon_pid "$d") && terminate "$pid"
		rm -f "$(pidfile "$d")"
		exit 1
	fi
	log "radosgw $ZONE started in $(elapsed "$T0") s (pid $(daemon_pid "$d" || echo '?'))"
}

case $CMD in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
zone-stop) cmd_zone_stop ;;
zone-start) cmd_zone_start ;;
-h | --help | help) usage ;;
*) usage ;;
esac
