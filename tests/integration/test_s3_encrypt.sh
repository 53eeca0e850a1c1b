#!/usr/bin/env bash
# Client-side encryption (issue 15 item 1) on Ceph RGW (east alone): an
# encrypted backup restores whole and with --path (ranged reads of only the
# frames needed), verify --deep and drill pass, snapship cat | zstd -d |
# tar -x gives the tree; two encrypted incrementals (the second of a
# version 2 parent, its sealed index in ranged GETs) restore and verify
# --deep; the stored objects hold no file name nor content
# in clear; the wrong key fails before anything is written; a bit flipped
# in a frame of the stored data object (rewritten in the bucket with
# snapship's own credentials) is named.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"
need_btrfs
need_rgw
need_cmd python3 zstd tar
python3 -c "import boto3" 2>/dev/null || skip "needs python3-boto3"
export RGW_REGION

prefix="enc-$$/"
sv=$(mk_subvol se-part)
"$GENDATA" "$sv" --json-bytes 3M --json-file-size 512K --small-files 100 --dirs 4 >/dev/null
mkdir -p "$sv/sub" "$TEST_TMP/keys" "$TEST_TMP/out"
echo "PLAINTEXT-MARKER-$$ in a file" >"$sv/sub/secret-name-s3q.txt"
cleanup() {
	local d
	for d in "$TEST_BTRFS"/se-r*; do
		[ -d "$d" ] && { btrfs subvolume delete "$d" >/dev/null 2>&1 || rm -rf "$d"; }
	done
	return 0
}
trap cleanup EXIT
"$SNAPSHIP" key generate "$TEST_TMP/keys/k1" >"$TEST_TMP/gen1" || fail "key generate"
"$SNAPSHIP" key generate "$TEST_TMP/keys/k2" >/dev/null || fail "key generate"
fp1=$(sed -n 's/.*fingerprint \([0-9a-f]\{16\}\).*/\1/p' "$TEST_TMP/gen1")

conf() {	# conf FILE KEY_FILE
	cat >"$1" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = sehost
frame_size = 64K
encryption = aes-256-gcm
key_file = $2
[partition se-part]
path = $sv
$(rgw_region east prefix="$prefix")
EOF
}
conf "$TEST_TMP/c1.conf" "$TEST_TMP/keys/k1"
conf "$TEST_TMP/c2.conf" "$TEST_TMP/keys/k2"
S=("$SNAPSHIP" --config "$TEST_TMP/c1.conf")

"${S[@]}" backup se-part >"$TEST_TMP/out/backup" 2>&1 || fail "backup: $(cat "$TEST_TMP/out/backup")"
id=$("${S[@]}" list --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])') ||
	fail "list --json: no backup"
base=$prefix"sehost/se-part/$id"

# the stored objects, read back through the S3 API: nothing in clear
python3 - "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "$base" "$RGW_ACCESS_KEY_ID" "$RGW_SECRET_ACCESS_KEY_FILE" \
	"$TEST_TMP/obj" <<'EOF' || fail "cannot fetch the stored objects"
import os, sys, boto3
ep, bucket, base, kid, kfile, out = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id=kid,
                  aws_secret_access_key=open(kfile).read().strip(), region_name=os.environ.get("RGW_REGION") or "us-east-1")
for name in ("data.tar.zst", "index.jsonl.zst", "manifest.json"):
    open(out + "." + name, "wb").write(s3.get_object(Bucket=bucket, Key=base + "/" + name)["Body"].read())
EOF
for f in "$TEST_TMP"/obj.*; do
	for w in secret-name-s3q PLAINTEXT-MARKER "$sv"; do
		grep -q -a -- "$w" "$f" && fail "$f holds \"$w\" in clear"
	done
done
grep -q "\"fingerprint\": \"$fp1\"" "$TEST_TMP/obj.manifest.json" || fail "manifest lacks the fingerprint"

"${S[@]}" restore se-part --to "$TEST_BTRFS/se-r1" >"$TEST_TMP/out/r1" 2>&1 || fail "restore: $(cat "$TEST_TMP/out/r1")"
assert_trees_equal "$sv" "$TEST_BTRFS/se-r1"
"${S[@]}" restore se-part --to "$TEST_BTRFS/se-r2" --path sub --json >"$TEST_TMP/out/r2" 2>"$TEST_TMP/out/r2.err" ||
	fail "restore --path: $(cat "$TEST_TMP/out/r2" "$TEST_TMP/out/r2.err")"
cmp "$sv/sub/secret-name-s3q.txt" "$TEST_BTRFS/se-r2/sub/secret-name-s3q.txt" || fail "restore --path: differs"
python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
assert d["frames_read"] < d["frames_total"], d' "$TEST_TMP/out/r2" ||
	fail "restore --path read every frame: $(cat "$TEST_TMP/out/r2")"
"${S[@]}" verify --deep >"$TEST_TMP/out/v" 2>&1 || fail "verify --deep: $(cat "$TEST_TMP/out/v")"
"${S[@]}" drill --scratch "$TEST_BTRFS/se-rdrill" >"$TEST_TMP/out/d" 2>&1 || fail "drill: $(cat "$TEST_TMP/out/d")"
mkdir -p "$TEST_TMP/untar"
"${S[@]}" cat se-part 2>"$TEST_TMP/out/cat" | zstd -q -d | tar -x -C "$TEST_TMP/untar" ||
	fail "cat | zstd -d | tar -x: $(cat "$TEST_TMP/out/cat")"
diff -r "$sv" "$TEST_TMP/untar" >/dev/null || fail "cat | zstd -d | tar -x differs"

# the wrong key: one error naming the fingerprint, nothing written
rc=0
"$SNAPSHIP" --config "$TEST_TMP/c2.conf" restore se-part --to "$TEST_BTRFS/se-r3" >"$TEST_TMP/out/wrong" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "encrypted with key $fp1" "$TEST_TMP/out/wrong" ||
	fail "wrong key: rc $rc: $(cat "$TEST_TMP/out/wrong")"
[ ! -e "$TEST_BTRFS/se-r3" ] || fail "the wrong key created the target"

# an encrypted chain on RGW: two incrementals (the second's parent a
# version 2 one: its sealed index read in ranged GETs, opened segment by
# segment); the latest restores equal, every backup verifies deep
for n in 1 2; do
	sleep 1
	echo "chain change $n $$" >"$sv/sub/chain-$n.txt"
	echo "more $n" >>"$sv/sub/secret-name-s3q.txt"
	"${S[@]}" backup se-part >"$TEST_TMP/out/ci$n" 2>&1 || fail "incremental $n: $(cat "$TEST_TMP/out/ci$n")"
	grep -q "incremental from" "$TEST_TMP/out/ci$n" ||
		fail "encrypted backup $n on RGW is not an incremental: $(cat "$TEST_TMP/out/ci$n")"
done
"${S[@]}" restore se-part --to "$TEST_BTRFS/se-rc" >"$TEST_TMP/out/rc" 2>&1 ||
	fail "restore of the encrypted incremental: $(cat "$TEST_TMP/out/rc")"
assert_trees_equal "$sv" "$TEST_BTRFS/se-rc"
"${S[@]}" verify --deep >"$TEST_TMP/out/vc" 2>&1 || fail "verify --deep of the chain: $(cat "$TEST_TMP/out/vc")"

# a bit flipped in frame 2 of the stored data object (the seek table and
# the manifest's SHA-256 fixed up, as an attacker holding the bucket can)
python3 - "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "$base" "$RGW_ACCESS_KEY_ID" "$RGW_SECRET_ACCESS_KEY_FILE" <<'EOF' ||
import hashlib, json, os, struct, sys, boto3
ep, bucket, base, kid, kfile = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id=kid,
                  aws_secret_access_key=open(kfile).read().strip(), region_name=os.environ.get("RGW_REGION") or "us-east-1")
d = bytearray(s3.get_object(Bucket=bucket, Key=base + "/data.tar.zst")["Body"].read())
n = struct.unpack("<I", d[-9:-5])[0]
t = d[len(d) - (8 + 8 * n + 9):]
sizes = [struct.unpack("<I", t[8 + 8 * i:12 + 8 * i])[0] for i in range(n)]
off = sum(sizes[:2])
d[off + sizes[2] // 2] ^= 0x20
s3.put_object(Bucket=bucket, Key=base + "/data.tar.zst", Body=bytes(d))
m = json.loads(s3.get_object(Bucket=bucket, Key=base + "/manifest.json")["Body"].read())
m["data"]["sha256"] = hashlib.sha256(d).hexdigest()
m["data"]["etag"] = s3.head_object(Bucket=bucket, Key=base + "/data.tar.zst")["ETag"].strip('"')
s3.put_object(Bucket=bucket, Key=base + "/manifest.json", Body=json.dumps(m, indent=2, sort_keys=True).encode())
EOF
	fail "cannot tamper with the stored object"
rc=0
"${S[@]}" restore se-part --id "$id" --to "$TEST_BTRFS/se-r4" >"$TEST_TMP/out/flip" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "frame 2 (at byte [0-9]*) does not authenticate" "$TEST_TMP/out/flip" ||
	fail "flipped bit: rc $rc: $(cat "$TEST_TMP/out/flip")"
echo "ok: encrypted backups on RGW round trip (a chain of incrementals too), refuse the wrong key and name a flipped bit"
