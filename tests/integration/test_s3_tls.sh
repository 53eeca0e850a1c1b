#!/usr/bin/env bash
# TLS against a real object store: the RGW harness's HTTPS frontends, with a
# CA the harness made (tools/rgw.sh, RGW_CA_FILE).
#  - a good chain with ca_file: config check says the certificate is
#    verified against it; backup, list, restore (byte for byte) and
#    verify --deep over https; an endpoint without a scheme is https;
#  - a wrong CA (real RGW, ca_file another CA), an expired certificate and
#    one for another host name (served by tests/tools/tlsproxy.py in front
#    of real RGW): backup and config check fail with a message saying which
#    check failed, on which endpoint, and what to do, and leave nothing
#    behind (no snapshot, no journal entry, no object, no upload); with
#    insecure_tls the same endpoint works (only the certificate was wrong)
#    and config check warns;
#  - http:// to a host that is not loopback: refused by config check and by
#    backup before any connection; accepted (with a warning) and working
#    with allow_http = yes.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_rgw
[ -n "${RGW_CA_FILE:-}" ] && [ -f "$RGW_CA_FILE" ] ||
	skip "the RGW harness has no HTTPS frontend (RGW_CA_FILE unset)"

state=$TEST_TMP/state
part=$(mk_subvol part)
"$GENDATA" "$part" --json-bytes 12M --json-file-size 4M --small-files 50 >/dev/null
umask 077
printf '%s\n' "$RGW_SECRET_ACCESS_KEY" >"$TEST_TMP/secret"
prefix=tls-$$/
c=$TEST_TMP/c.conf

conf() {   # conf ENDPOINT [EXTRA LINE]...: region east at ENDPOINT
	local ep=$1
	shift
	{
		cat <<EOF
[agent]
state_dir = $state

[partition part]
path = $part

[region east]
store = s3
endpoint = $ep
bucket = $RGW_BUCKET
prefix = $prefix
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $TEST_TMP/secret
EOF
		printf '%s\n' "$@"
	} >"$c"
}

objects() {   # the keys under our prefix (over plain HTTP, the harness's client)
	python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep -F "$prefix" || true
}

# expect WHAT RC WORD... -- CMD...: CMD fails with RC saying every WORD and
# leaves nothing behind
expect() {
	local what=$1 want=$2 rc w
	shift 2
	local words=()
	while [ "$1" != "--" ]; do words+=("$1"); shift; done
	shift
	set +e
	"$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	rc=$?
	set -e
	echo "--- $what (exit $rc):"
	cat "$TEST_TMP/out" "$TEST_TMP/err"
	[ "$rc" = "$want" ] || fail "$what: exit $rc, expected $want"
	for w in "${words[@]}"; do
		grep -qiF -- "$w" "$TEST_TMP/out" "$TEST_TMP/err" ||
			fail "$what: the message does not say \"$w\""
	done
	! grep -qF "$RGW_SECRET_ACCESS_KEY" "$TEST_TMP/out" "$TEST_TMP/err" ||
		fail "$what: the secret key appears in the output"
	no_snapship_snapshots "$TEST_BTRFS"
	[ -z "$(ls -A "$state/journal" 2>/dev/null)" ] || fail "$what: journal entries left"
}

# nothing_stored WHAT: no object and no multipart upload under our prefix
nothing_stored() {
	local left
	[ -z "$(objects)" ] || fail "$1: objects stored: $(objects | head -3)"
	left=$(RGW_S3=$RGW_S3 python3 "$SRC_DIR/tests/tools/s3uploads.py" "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "$prefix")
	[ -z "$left" ] || fail "$1: multipart uploads left: $left"
}

PROXIES=()
cleanup_proxies() {
	local p
	for p in "${PROXIES[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}
trap cleanup_proxies EXIT

# proxy NAME ARGS...: start tlsproxy.py in front of east's plain port; sets PORT
proxy() {
	local name=$1 i
	shift
	python3 "$SRC_DIR/tests/tools/tlsproxy.py" "$@" --upstream "127.0.0.1:$RGW_EAST_PORT" \
		--portfile "$TEST_TMP/$name.port" --log "$TEST_TMP/$name.log" &
	PROXIES+=($!)
	for i in $(seq 50); do [ -s "$TEST_TMP/$name.port" ] && break; sleep 0.1; done
	[ -s "$TEST_TMP/$name.port" ] || fail "tlsproxy $name did not start"
	PORT=$(cat "$TEST_TMP/$name.port")
}

# ---- 1. a good chain: real RGW over https, verified with ca_file ----------
conf "$RGW_EAST_TLS_ENDPOINT" "ca_file = $RGW_CA_FILE"
out=$("$SNAPSHIP" --config "$c" config check) || fail "config check with a good chain failed: $out"
echo "$out"
grep -qF "region east: TLS, certificate verified against ca_file $RGW_CA_FILE" <<<"$out" ||
	fail "config check does not say the certificate is verified against ca_file: $out"
out=$("$SNAPSHIP" --json --config "$c" config check)
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["regions"][0]["tls"] == "ca_file", d' <<<"$out" ||
	fail "config check --json: tls is not ca_file: $out"

out=$("$SNAPSHIP" --config "$c" backup --json 2>"$TEST_TMP/err") ||
	fail "backup over https failed: $(cat "$TEST_TMP/err")"
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])' <<<"$out")
no_snapship_snapshots "$TEST_BTRFS"
objects | grep -q "/$id/manifest.json$" || fail "the backup's manifest is not in the bucket"
"$SNAPSHIP" --config "$c" list | grep -q "$id" || fail "list over https does not show $id"

# restore through an endpoint given without a scheme (https) and by name
conf "localhost:$RGW_EAST_TLS_PORT" "ca_file = $RGW_CA_FILE"
"$SNAPSHIP" --config "$c" config check | grep -qF "at https://localhost:$RGW_EAST_TLS_PORT ok" ||
	fail "an endpoint without a scheme is not https: $("$SNAPSHIP" --config "$c" config check)"
"$SNAPSHIP" --config "$c" restore part --to "$TEST_BTRFS/restored" >/dev/null ||
	fail "restore over https failed"
assert_trees_equal "$part" "$TEST_BTRFS/restored"
"$SNAPSHIP" --config "$c" verify --deep | grep -Eq "^part +$id +.* ok" ||
	fail "verify --deep over https does not pass: $("$SNAPSHIP" --config "$c" verify --deep)"
echo "good chain: backup $id, list, restore, verify --deep over https"

# the same store from here on: the failures must add nothing to it
python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep -F "$prefix" | while read -r k; do
	python3 "$RGW_S3" delete "$RGW_EAST_ENDPOINT/$RGW_BUCKET/$k"
done
nothing_stored "cleaning up the good backup"

# ---- 2. a wrong CA: the real server, ca_file another CA --------------------
conf "$RGW_EAST_TLS_ENDPOINT" "ca_file = $RGW_TLS_DIR/other-ca.pem"
expect "wrong CA: backup" 1 "region east" "not trusted" "$RGW_EAST_TLS_ENDPOINT" "ca_file in [region east]" -- \
	"$SNAPSHIP" --config "$c" backup
nothing_stored "wrong CA"
expect "wrong CA: config check" 1 "region east" "not trusted" "$RGW_EAST_TLS_ENDPOINT" "ca_file" -- \
	"$SNAPSHIP" --config "$c" config check
# no ca_file: the system's store does not know the harness's CA either
conf "$RGW_EAST_TLS_ENDPOINT"
expect "no ca_file" 1 "not trusted" "$RGW_EAST_TLS_ENDPOINT" -- "$SNAPSHIP" --config "$c" backup
nothing_stored "no ca_file"

# a CA file that holds no certificate
printf 'not a certificate\n' >"$TEST_TMP/bad.pem"
conf "$RGW_EAST_TLS_ENDPOINT" "ca_file = $TEST_TMP/bad.pem"
expect "unusable ca_file" 1 "region east" "cannot be used" "ca_file in [region east]" -- \
	"$SNAPSHIP" --config "$c" backup
nothing_stored "unusable ca_file"

# the same without a config: the environment says the endpoint and the CA
envs=(env AWS_ACCESS_KEY_ID="$RGW_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$RGW_SECRET_ACCESS_KEY"
	AWS_REGION="$RGW_REGION" SNAPSHIP_S3_ENDPOINT="$RGW_EAST_TLS_ENDPOINT")
"${envs[@]}" AWS_CA_BUNDLE="$RGW_CA_FILE" "$SNAPSHIP" --state-dir "$state" \
	list --from "s3://$RGW_BUCKET/$prefix" >/dev/null ||
	fail "list over https with AWS_CA_BUNDLE failed"
expect "no AWS_CA_BUNDLE" 1 "not trusted" "point AWS_CA_BUNDLE at" -- \
	"${envs[@]}" "$SNAPSHIP" --state-dir "$state" list --from "s3://$RGW_BUCKET/$prefix"

# ---- 3. an expired certificate (same CA) ------------------------------------
proxy expired --cert "$RGW_TLS_DIR/expired.pem" --key "$RGW_TLS_DIR/expired.key"
conf "https://127.0.0.1:$PORT" "ca_file = $RGW_CA_FILE"
expect "expired: backup" 1 "region east" "has expired" "https://127.0.0.1:$PORT" "renew" -- \
	"$SNAPSHIP" --config "$c" backup
nothing_stored "expired"
expect "expired: config check" 1 "has expired" "https://127.0.0.1:$PORT" -- \
	"$SNAPSHIP" --config "$c" config check
grep -q "handshake failed" "$TEST_TMP/expired.log" ||
	fail "the expired certificate's server saw no refused handshake: $(cat "$TEST_TMP/expired.log")"
# only the certificate was wrong: without verification the same server works
conf "https://127.0.0.1:$PORT" "insecure_tls = yes"
out=$("$SNAPSHIP" --config "$c" config check 2>&1) || fail "insecure_tls: config check failed: $out"
echo "$out"
grep -q "warning: \[region east\]: insecure_tls = yes: the server's TLS certificate is NOT verified" <<<"$out" ||
	fail "config check does not warn on insecure_tls: $out"
grep -qF "region east: TLS, certificate NOT verified" <<<"$out" || fail "config check: no TLS line: $out"

# ---- 4. a certificate for another host name (same CA) -----------------------
proxy wronghost --cert "$RGW_TLS_DIR/wronghost.pem" --key "$RGW_TLS_DIR/wronghost.key"
conf "https://127.0.0.1:$PORT" "ca_file = $RGW_CA_FILE"
expect "wrong host: backup" 1 "region east" "does not name that host" "https://127.0.0.1:$PORT" -- \
	"$SNAPSHIP" --config "$c" backup
nothing_stored "wrong host name"
expect "wrong host: config check" 1 "does not name that host" -- "$SNAPSHIP" --config "$c" config check

# ---- 5. plain http:// to another host --------------------------------------
# refused before connecting: the address need not answer (TEST-NET-1)
conf "http://192.0.2.123:7480"
expect "http to another host: config check" 2 "plain HTTP" "allow_http = yes" "[region east]" "https://" -- \
	"$SNAPSHIP" --config "$c" config check
expect "http to another host: backup" 2 "plain HTTP" "allow_http = yes" -- \
	"$SNAPSHIP" --config "$c" backup
nothing_stored "plain http"
expect "http to another host, no config" 2 "plain HTTP" "SNAPSHIP_S3_ALLOW_HTTP=1" -- \
	env AWS_ACCESS_KEY_ID="$RGW_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$RGW_SECRET_ACCESS_KEY" \
	SNAPSHIP_S3_ENDPOINT=http://192.0.2.123:7480 "$SNAPSHIP" --state-dir "$state" \
	backup "$part" --to "s3://$RGW_BUCKET/$prefix"
nothing_stored "plain http, no config"
# allowed explicitly: to a real server on a non-loopback address of this host
addr=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
if [ -n "$addr" ]; then
	proxy plain --plain --listen "$addr"
	conf "http://$addr:$PORT"
	expect "http without allow_http" 2 "plain HTTP" -- "$SNAPSHIP" --config "$c" config check
	conf "http://$addr:$PORT" "allow_http = yes"
	out=$("$SNAPSHIP" --config "$c" config check 2>&1) || fail "allow_http: config check failed: $out"
	echo "$out"
	grep -q "warning: \[region east\]: plain HTTP to http://$addr:$PORT (allow_http = yes)" <<<"$out" ||
		fail "config check does not warn on allow_http: $out"
	"$SNAPSHIP" --config "$c" backup >/dev/null 2>"$TEST_TMP/err" ||
		fail "backup with allow_http failed: $(cat "$TEST_TMP/err")"
	grep -q "plain HTTP (allow_http)" "$TEST_TMP/err" || fail "backup does not warn on allow_http: $(cat "$TEST_TMP/err")"
	objects | grep -q "manifest.json$" || fail "no backup stored over allow_http"
	no_snapship_snapshots "$TEST_BTRFS"
else
	echo "note: this host has no non-loopback IPv4 address: allow_http against a server is not run"
fi
# loopback http:// needs no allow_http and gets no warning
conf "$RGW_EAST_ENDPOINT"
out=$("$SNAPSHIP" --config "$c" config check 2>&1) || fail "loopback http: config check failed: $out"
grep -qF "region east: plain HTTP, not encrypted (loopback" <<<"$out" || fail "loopback http: $out"
! grep -q "warning" <<<"$out" || fail "loopback http: a warning: $out"
echo PASS
