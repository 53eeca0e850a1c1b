#!/usr/bin/env bash
# Client-side encryption (issue 15 item 1) on a directory store and a loop
# btrfs:
#  - snapship key generate makes a 0600 file of 32 bytes and never
#    overwrites one; a group-readable key file is refused;
#  - an encrypted backup: the manifest says aes-256-gcm and the key's
#    fingerprint, holds neither the source path nor the hooks; no file name
#    and no content of the source appears in any stored object;
#  - restore (whole and --path), verify --deep and drill read it back equal;
#    snapship cat | zstd -d | tar -x gives the tree with stock tools;
#  - the wrong key fails before anything is written, naming the
#    fingerprint the backup wants and the one given;
#  - rotation: a backup made with a new key_file, the old key in
#    old_key_files: both backups restore; a passphrase key file (its salt
#    in the manifest) restores its backup;
#  - tampering, each detected and named: a bit flipped in a frame, two
#    frames swapped, a frame of another backup spliced in, the object cut
#    at a frame boundary, the manifest's fingerprint changed;
#  - incrementals: a chain full -> incr -> incr with churn (changed, new,
#    deleted, renamed files, a 6 MiB file changed in one block) restores,
#    exports, verifies, drills; the incrementals' data holds only what
#    changed; a tampered referenced frame is named; a key rotation, a
#    plain parent with encryption on and an encrypted one with it off make
#    fulls; an altered sealed parent index is a full (pass 1) or a failed
#    backup (pass 2); a passphrase chain shares one salt, one scrypt;
#  - the key's bytes (raw and hex) appear in no output and no file snapship
#    wrote.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 xxd zstd tar
TAMPER=$SRC_DIR/tests/tools/enc_tamper.py

sv=$(mk_subvol enc-part)
"$GENDATA" "$sv" --json-bytes 2M --json-file-size 256K --small-files 100 --dirs 4 >/dev/null
mkdir -p "$sv/sub"
echo "PLAINTEXT-MARKER-$$ the quick brown fox" >"$sv/sub/secret-name-q7x.txt"
store=$TEST_TMP/store
keys=$TEST_TMP/keys
mkdir -p "$store" "$keys" "$TEST_TMP/out"
cleanup() {
	local d
	for d in "$TEST_BTRFS"/enc-r*; do
		[ -d "$d" ] && { btrfs subvolume delete "$d" >/dev/null 2>&1 || rm -rf "$d"; }
	done
	return 0
}
trap cleanup EXIT

# ---- keys -----------------------------------------------------------------
"$SNAPSHIP" key generate "$keys/k1" >"$TEST_TMP/gen1" || fail "key generate: $(cat "$TEST_TMP/gen1")"
"$SNAPSHIP" key generate "$keys/k2" >"$TEST_TMP/gen2" || fail "key generate k2"
[ "$(stat -c %s:%a "$keys/k1")" = "32:600" ] || fail "key file is $(stat -c %s:%a "$keys/k1"), expected 32 bytes, mode 600"
cmp -s "$keys/k1" "$keys/k2" && fail "two generated keys are equal"
fp1=$(sed -n 's/.*fingerprint \([0-9a-f]\{16\}\).*/\1/p' "$TEST_TMP/gen1")
fp2=$(sed -n 's/.*fingerprint \([0-9a-f]\{16\}\).*/\1/p' "$TEST_TMP/gen2")
[ -n "$fp1" ] && [ -n "$fp2" ] || fail "key generate did not say a fingerprint: $(cat "$TEST_TMP/gen1")"
rc=0
"$SNAPSHIP" key generate "$keys/k1" >"$TEST_TMP/gen3" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "never overwrites" "$TEST_TMP/gen3" || fail "key generate over an existing file: rc $rc: $(cat "$TEST_TMP/gen3")"

conf() {	# conf FILE KEY_FILE [OLD_KEY_FILES]
	cat >"$1" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = enchost
frame_size = 64K
encryption = aes-256-gcm
key_file = $2
${3:+old_key_files = $3}
[partition enc-part]
path = $sv
pre_snapshot = true hook-secret-arg
[region a]
store = file
path = $store
EOF
}
conf "$TEST_TMP/c1.conf" "$keys/k1"
S1=("$SNAPSHIP" --config "$TEST_TMP/c1.conf")

# a group-readable key file is refused before anything is frozen
cp "$keys/k1" "$keys/k1-open"
chmod 640 "$keys/k1-open"
conf "$TEST_TMP/open.conf" "$keys/k1-open"
rc=0
"$SNAPSHIP" --config "$TEST_TMP/open.conf" backup enc-part >"$TEST_TMP/out/open" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q "chmod 600" "$TEST_TMP/out/open" || fail "group-readable key file: rc $rc: $(cat "$TEST_TMP/out/open")"
[ -z "$(find "$store" -name manifest.json)" ] || fail "a backup was written with a refused key file"
# config check says so too (and passes with the good file)
rc=0
"$SNAPSHIP" --config "$TEST_TMP/open.conf" config check >"$TEST_TMP/out/open-check" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "error: .*k1-open.*chmod 600" "$TEST_TMP/out/open-check" ||
	fail "config check with a group-readable key file: rc $rc: $(cat "$TEST_TMP/out/open-check")"
"$SNAPSHIP" --config "$TEST_TMP/c1.conf" config check >"$TEST_TMP/out/check" 2>&1 ||
	fail "config check with a good key file: $(cat "$TEST_TMP/out/check")"

# ---- an encrypted backup ----------------------------------------------------
"${S1[@]}" backup enc-part >"$TEST_TMP/out/b1" 2>&1 || fail "backup: $(cat "$TEST_TMP/out/b1")"
man1=$(find "$store" -name manifest.json)
[ "$(echo "$man1" | wc -l)" = 1 ] || fail "expected one manifest: $man1"
b1=$(dirname "$man1")
id1=$(basename "$b1")
python3 - "$man1" "$fp1" "$sv" <<'EOF' || fail "manifest of the encrypted backup: $(cat "$man1")"
import json, sys
m = json.load(open(sys.argv[1]))
e = m["encryption"]
assert e["mode"] == "aes-256-gcm", e
assert e["fingerprint"] == sys.argv[2], (e, sys.argv[2])
assert e["sealed"] and "salt" not in e, e
assert "source" not in m, m.get("source")
assert m["hooks"] == [], m["hooks"]
text = open(sys.argv[1]).read()
assert sys.argv[3] not in text and "hook-secret-arg" not in text
EOF
for f in "$b1"/*; do
	for w in secret-name-q7x PLAINTEXT-MARKER "$sv" hook-secret-arg; do
		grep -q -a -- "$w" "$f" && fail "$f holds \"$w\" in clear"
	done
done

# restore, whole and one path; verify --deep; drill
"${S1[@]}" restore enc-part --to "$TEST_BTRFS/enc-r1" >"$TEST_TMP/out/r1" 2>&1 ||
	fail "restore: $(cat "$TEST_TMP/out/r1")"
assert_trees_equal "$sv" "$TEST_BTRFS/enc-r1"
"${S1[@]}" restore enc-part --to "$TEST_BTRFS/enc-r2" --path sub >"$TEST_TMP/out/r2" 2>&1 ||
	fail "restore --path: $(cat "$TEST_TMP/out/r2")"
cmp "$sv/sub/secret-name-q7x.txt" "$TEST_BTRFS/enc-r2/sub/secret-name-q7x.txt" || fail "restore --path: content differs"
[ "$(find "$TEST_BTRFS/enc-r2" -type f | wc -l)" = 1 ] || fail "restore --path restored more than sub/"
"${S1[@]}" verify --deep >"$TEST_TMP/out/v1" 2>&1 || fail "verify --deep: $(cat "$TEST_TMP/out/v1")"
"${S1[@]}" drill --scratch "$TEST_BTRFS/enc-rdrill" >"$TEST_TMP/out/d1" 2>&1 ||
	fail "drill: $(cat "$TEST_TMP/out/d1")"

# snapship cat: the opened stream, for stock zstd and tar
"${S1[@]}" cat enc-part >"$TEST_TMP/cat.zst" 2>"$TEST_TMP/out/cat" || fail "cat: $(cat "$TEST_TMP/out/cat")"
mkdir -p "$TEST_TMP/untar"
zstd -q -d -c "$TEST_TMP/cat.zst" | tar -x -C "$TEST_TMP/untar" || fail "cat | zstd -d | tar -x failed"
diff -r "$sv" "$TEST_TMP/untar" >"$TEST_TMP/out/catdiff" 2>&1 || fail "cat | zstd -d | tar -x differs: $(head "$TEST_TMP/out/catdiff")"
rm -rf "$TEST_TMP/untar" "$TEST_TMP/cat.zst"

# ---- the wrong key: one clear error, nothing written ------------------------
conf "$TEST_TMP/c2only.conf" "$keys/k2"
rc=0
"$SNAPSHIP" --config "$TEST_TMP/c2only.conf" restore enc-part --to "$TEST_BTRFS/enc-r3" \
	>"$TEST_TMP/out/wrong" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "restore with the wrong key: rc $rc: $(cat "$TEST_TMP/out/wrong")"
grep -q "encrypted with key $fp1" "$TEST_TMP/out/wrong" && grep -q "$fp2" "$TEST_TMP/out/wrong" ||
	fail "the wrong key's error names neither fingerprint: $(cat "$TEST_TMP/out/wrong")"
[ ! -e "$TEST_BTRFS/enc-r3" ] || fail "the wrong key created the target $(ls -la "$TEST_BTRFS/enc-r3")"
rc=0
"$SNAPSHIP" --config "$TEST_TMP/c2only.conf" cat enc-part >"$TEST_TMP/cat-wrong" 2>"$TEST_TMP/out/cat-wrong" || rc=$?
[ "$rc" = 1 ] && [ ! -s "$TEST_TMP/cat-wrong" ] && grep -q "encrypted with key $fp1" "$TEST_TMP/out/cat-wrong" ||
	fail "cat with the wrong key: rc $rc, $(stat -c %s "$TEST_TMP/cat-wrong") bytes out: $(cat "$TEST_TMP/out/cat-wrong")"

# ---- rotation: new key_file, the old one in old_key_files -------------------
conf "$TEST_TMP/c2.conf" "$keys/k2" "$keys/k1"
S2=("$SNAPSHIP" --config "$TEST_TMP/c2.conf")
sleep 1
echo changed >"$sv/sub/after-rotation"
"${S2[@]}" backup enc-part >"$TEST_TMP/out/b2" 2>&1 || fail "backup with k2: $(cat "$TEST_TMP/out/b2")"
man2=$(find "$store" -name manifest.json -newer "$man1")
b2=$(dirname "$man2")
id2=$(basename "$b2")
grep -q "\"fingerprint\": \"$fp2\"" "$man2" || fail "the second backup is not under k2: $(cat "$man2")"
"${S2[@]}" restore enc-part --id "$id1" --to "$TEST_BTRFS/enc-r4" >"$TEST_TMP/out/r4" 2>&1 ||
	fail "restore of the k1 backup with k1 in old_key_files: $(cat "$TEST_TMP/out/r4")"
"${S2[@]}" restore enc-part --id "$id2" --to "$TEST_BTRFS/enc-r5" >"$TEST_TMP/out/r5" 2>&1 ||
	fail "restore of the k2 backup: $(cat "$TEST_TMP/out/r5")"
assert_trees_equal "$sv" "$TEST_BTRFS/enc-r5"

# a passphrase: stretched with a salt the manifest keeps; a raw key_file
# is told apart from it when the wrong one is given
printf 'correct horse battery staple\n' >"$keys/pass"
chmod 600 "$keys/pass"
conf "$TEST_TMP/c3.conf" "$keys/pass"
sleep 1
"$SNAPSHIP" --config "$TEST_TMP/c3.conf" backup enc-part >"$TEST_TMP/out/b3" 2>&1 ||
	fail "backup with a passphrase: $(cat "$TEST_TMP/out/b3")"
man3=$(find "$store" -name manifest.json -newer "$man2")
id3=$(basename "$(dirname "$man3")")
grep -q '"salt": "[0-9a-f]\{32\}"' "$man3" || fail "a passphrase backup records no salt: $(cat "$man3")"
"$SNAPSHIP" --config "$TEST_TMP/c3.conf" restore enc-part --id "$id3" --to "$TEST_BTRFS/enc-r6" \
	>"$TEST_TMP/out/r6" 2>&1 || fail "restore with a passphrase: $(cat "$TEST_TMP/out/r6")"
assert_trees_equal "$sv" "$TEST_BTRFS/enc-r6"
rc=0
"$SNAPSHIP" --config "$TEST_TMP/c3.conf" restore enc-part --id "$id1" --to "$TEST_BTRFS/enc-r7" \
	>"$TEST_TMP/out/r7" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "is a passphrase (the backup was made with a raw key)" "$TEST_TMP/out/r7" ||
	fail "a passphrase for a raw-key backup: rc $rc: $(cat "$TEST_TMP/out/r7")"

# ---- tampering ------------------------------------------------------------
# tampered CASE WANT ARGS...: a copy of backup 1 altered by enc_tamper.py,
# restored from a store of its own: fails, the message holding WANT
tampered() {
	local name=$1 want=$2 t=$TEST_TMP/t-$1 rc=0
	shift 2
	rm -rf "$t"
	mkdir -p "$t"
	cp -a "$store/." "$t/"
	rm -rf "${t:?}/enchost/enc-part/$id2" "${t:?}/enchost/enc-part/$id3"
	python3 "$TAMPER" "$t/enchost/enc-part/$id1" "$@" || fail "enc_tamper $*"
	"${S2[@]}" restore enc-part --from "$t" --id "$id1" --to "$TEST_BTRFS/enc-rt-$name" \
		>"$TEST_TMP/out/t-$name" 2>&1 || rc=$?
	[ "$rc" = 1 ] || fail "tampered ($name): rc $rc: $(cat "$TEST_TMP/out/t-$name")"
	grep -q -- "$want" "$TEST_TMP/out/t-$name" ||
		fail "tampered ($name): the error does not say \"$want\": $(cat "$TEST_TMP/out/t-$name")"
	echo "tampered ($name): $(grep -m1 error "$TEST_TMP/out/t-$name")"
}
[ -d "$store/enchost/enc-part/$id1" ] || fail "backup 1 is not at enchost/enc-part/$id1"
tampered flip "frame 3 (at byte [0-9]*) does not authenticate" flip 3
# the first bad frame in order is named (the workers open frames in parallel)
tampered swap "frame 1 (at byte [0-9]*) holds frame 2 of the same backup: frames swapped" swap 1 2
tampered splice "frame 2 (at byte [0-9]*) does not authenticate: altered, or spliced in from another backup" \
	splice 2 "$b2"
tampered truncate "cut at a frame boundary (truncated)" truncate 5
tampered fingerprint "none matches" fingerprint

# ---- incrementals: a chain under one key -------------------------------------
# full -> incr -> incr with churn (changed, new, deleted, renamed files, a
# 6 MiB file changed in one block); each restores (and exports) equal to a
# snapshot of its tree; the incrementals' data objects hold only what changed
cv=$(mk_subvol enc-chain)
"$GENDATA" "$cv" --json-bytes 1M --json-file-size 128K --small-files 60 --dirs 3 >/dev/null
head -c $((6 << 20)) /dev/urandom >"$cv/big.bin"
echo "to be renamed $$" >"$cv/rename-me.txt"
echo "to be deleted $$" >"$cv/delete-me.txt"
echo "to be changed $$" >"$cv/change-me.txt"
cstore=$TEST_TMP/cstore
mkdir -p "$cstore"
cconf() {	# cconf FILE ENCRYPTION [KEY_FILE [OLD_KEY_FILES]]
	cat >"$1" <<EOF
[agent]
state_dir = $TEST_TMP/cstate
host = chainhost
frame_size = 64K
encryption = $2
${3:+key_file = $3}
${4:+old_key_files = $4}
[partition chain]
path = $cv
[region a]
store = file
path = $cstore
EOF
}
cconf "$TEST_TMP/ck1.conf" aes-256-gcm "$keys/k1"
C1=("$SNAPSHIP" --config "$TEST_TMP/ck1.conf")
cman() { echo "$(find "$cstore/chainhost/chain" -mindepth 1 -maxdepth 1 -type d | sort | sed -n "${1}p")/manifest.json"; }
cid() { basename "$(dirname "$(cman "$1")")"; }
# jget MANIFEST EXPR: a python expression over the manifest m
jget() { python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
snap() { btrfs subvolume snapshot -r "$cv" "$TEST_BTRFS/enc-rsnap$1" >/dev/null || fail "snapshot $1"; }

"${C1[@]}" backup chain >"$TEST_TMP/out/c1" 2>&1 || fail "chain backup 1: $(cat "$TEST_TMP/out/c1")"
snap 1
sleep 1
echo "changed $$" >>"$cv/change-me.txt"
echo "new file $$" >"$cv/new-file.txt"
rm "$cv/delete-me.txt"
mv "$cv/rename-me.txt" "$cv/renamed.txt"
printf 'ONE BLOCK CHANGED' | dd of="$cv/big.bin" bs=1 seek=$((3 << 20)) conv=notrunc status=none
"${C1[@]}" backup chain >"$TEST_TMP/out/c2" 2>&1 || fail "chain backup 2: $(cat "$TEST_TMP/out/c2")"
snap 2
cid1=$(cid 1) cid2=$(cid 2)
[ "$(jget "$(cman 2)" 'm.get("parent")')" = "$cid1" ] ||
	fail "encrypted backup 2 is not an incremental of $cid1: $(cat "$TEST_TMP/out/c2")"
[ "$(jget "$(cman 2)" 'm["encryption"]["fingerprint"]')" = "$fp1" ] || fail "backup 2 is not under k1"
dsize2=$(jget "$(cman 2)" 'm["data"]["size"]')
[ "$dsize2" -lt $((512 << 10)) ] || fail "the incremental's data object is $dsize2 bytes: more than what changed"
"${C1[@]}" cat chain --id "$cid2" 2>"$TEST_TMP/out/ccat2" | zstd -q -d -c | tar -t >"$TEST_TMP/list2" ||
	fail "cat of the incremental | zstd -d | tar -t: $(cat "$TEST_TMP/out/ccat2")"
for f in change-me.txt new-file.txt big.bin; do
	grep -q "$f" "$TEST_TMP/list2" || fail "the incremental's data lacks $f: $(cat "$TEST_TMP/list2")"
done
grep -q 'renamed\.txt\|\.json' "$TEST_TMP/list2" && fail "the incremental's data holds unchanged content: $(cat "$TEST_TMP/list2")"
echo "incremental 2: data object $dsize2 bytes: $(tr '\n' ' ' <"$TEST_TMP/list2")"

sleep 1
echo "changed again $$" >>"$cv/change-me.txt"
rm "$cv/new-file.txt"
printf 'BLOCK AGAIN' | dd of="$cv/big.bin" bs=1 seek=$((5 << 20)) conv=notrunc status=none
"${C1[@]}" backup chain >"$TEST_TMP/out/c3" 2>&1 || fail "chain backup 3: $(cat "$TEST_TMP/out/c3")"
snap 3
cid3=$(cid 3)
[ "$(jget "$(cman 3)" 'm.get("parent")')" = "$cid2" ] || fail "backup 3 is not an incremental of $cid2"
[ "$(jget "$(cman 3)" '" ".join(sorted(r["id"] for r in m["references"]))')" = "$cid1 $cid2" ] ||
	fail "backup 3 does not reference backups 1 and 2: $(cat "$(cman 3)")"
for n in 1 2 3; do
	id=$(cid $n)
	"${C1[@]}" restore chain --id "$id" --to "$TEST_BTRFS/enc-rc$n" >"$TEST_TMP/out/rc$n" 2>&1 ||
		fail "restore of chain backup $n: $(cat "$TEST_TMP/out/rc$n")"
	assert_trees_equal "$TEST_BTRFS/enc-rsnap$n" "$TEST_BTRFS/enc-rc$n"
	rm -rf "$TEST_TMP/untar"
	mkdir -p "$TEST_TMP/untar"
	"${C1[@]}" export chain --id "$id" 2>"$TEST_TMP/out/ce$n" | tar -x -C "$TEST_TMP/untar" ||
		fail "export of chain backup $n | tar -x: $(cat "$TEST_TMP/out/ce$n")"
	diff -r "$TEST_BTRFS/enc-rsnap$n" "$TEST_TMP/untar" >"$TEST_TMP/out/cediff" 2>&1 ||
		fail "export of chain backup $n differs: $(head "$TEST_TMP/out/cediff")"
done
rm -rf "$TEST_TMP/untar"
"${C1[@]}" restore chain --id "$cid3" --path renamed.txt --to "$TEST_BTRFS/enc-rcp" >"$TEST_TMP/out/rcp" 2>&1 ||
	fail "restore --path of a referenced file: $(cat "$TEST_TMP/out/rcp")"
cmp "$cv/renamed.txt" "$TEST_BTRFS/enc-rcp/renamed.txt" || fail "restore --path renamed.txt differs"
"${C1[@]}" verify --deep >"$TEST_TMP/out/cv" 2>&1 || fail "verify --deep of the chain: $(cat "$TEST_TMP/out/cv")"
"${C1[@]}" ls chain --id "$cid3" >"$TEST_TMP/out/cls" 2>&1 && grep -q renamed.txt "$TEST_TMP/out/cls" ||
	fail "ls of the incremental: $(cat "$TEST_TMP/out/cls")"
"${C1[@]}" drill --scratch "$TEST_BTRFS/enc-rcdrill" >"$TEST_TMP/out/cd" 2>&1 ||
	fail "drill of the chain: $(cat "$TEST_TMP/out/cd")"

# a referenced frame of backup 1 altered: restoring backup 3 names it
t=$TEST_TMP/ct-flip
cp -a "$cstore" "$t"
python3 "$TAMPER" "$t/chainhost/chain/$cid1" flip 1 || fail "enc_tamper flip"
rc=0
"${C1[@]}" restore chain --from "$t" --id "$cid3" --to "$TEST_BTRFS/enc-rct" >"$TEST_TMP/out/ct" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "$cid1" "$TEST_TMP/out/ct" && grep -q "frame 1 (at byte [0-9]*) does not authenticate" "$TEST_TMP/out/ct" ||
	fail "a tampered referenced frame: rc $rc: $(cat "$TEST_TMP/out/ct")"
echo "tampered referenced frame: $(grep -m1 error "$TEST_TMP/out/ct")"
rm -rf "$t"

# rotation in the chain (k2 the key_file, k1 old): the next backup is a
# full, a new chain (so k1 can go once its chains are pruned); the one
# after is an incremental of it; the k1 chain still restores
cconf "$TEST_TMP/ck2.conf" aes-256-gcm "$keys/k2" "$keys/k1"
C2=("$SNAPSHIP" --config "$TEST_TMP/ck2.conf")
sleep 1
"${C2[@]}" backup chain >"$TEST_TMP/out/c4" 2>&1 || fail "chain backup 4 (k2): $(cat "$TEST_TMP/out/c4")"
[ "$(jget "$(cman 4)" 'm.get("parent")')" = None ] && grep -q "key was rotated or changed" "$TEST_TMP/out/c4" ||
	fail "the first backup after a rotation is not a full saying why: $(cat "$TEST_TMP/out/c4")"
sleep 1
echo "after rotation $$" >"$cv/rotated.txt"
"${C2[@]}" backup chain >"$TEST_TMP/out/c5" 2>&1 || fail "chain backup 5 (k2): $(cat "$TEST_TMP/out/c5")"
[ "$(jget "$(cman 5)" 'm.get("parent")')" = "$(cid 4)" ] || fail "backup 5 is not an incremental of backup 4"
"${C2[@]}" restore chain --id "$(cid 5)" --to "$TEST_BTRFS/enc-rc5" >"$TEST_TMP/out/rc5" 2>&1 ||
	fail "restore of backup 5: $(cat "$TEST_TMP/out/rc5")"
assert_trees_equal "$cv" "$TEST_BTRFS/enc-rc5"
"${C2[@]}" restore chain --id "$cid3" --to "$TEST_BTRFS/enc-rc3b" >"$TEST_TMP/out/rc3b" 2>&1 ||
	fail "restore of the k1 chain with k1 in old_key_files: $(cat "$TEST_TMP/out/rc3b")"
assert_trees_equal "$TEST_BTRFS/enc-rsnap3" "$TEST_BTRFS/enc-rc3b"

# the parent's sealed index altered (its manifest's SHA-256 fixed up): the
# next backup is a full that names the segment
b5=$(dirname "$(cman 5)")
cp "$b5/index.jsonl.zst" "$b5/manifest.json" "$TEST_TMP/"
python3 - "$(cman 5)" <<'EOF' || fail "altering backup 5's index"
import hashlib, json, os, sys
mp = sys.argv[1]
ip = os.path.join(os.path.dirname(mp), "index.jsonl.zst")
b = bytearray(open(ip, "rb").read())
b[len(b) // 2] ^= 1
open(ip, "wb").write(b)
m = json.load(open(mp))
m["index"]["sha256"] = hashlib.sha256(b).hexdigest()
json.dump(m, open(mp, "w"))
EOF
sleep 1
"${C2[@]}" backup chain >"$TEST_TMP/out/c6" 2>&1 || fail "backup over an altered parent index: $(cat "$TEST_TMP/out/c6")"
[ "$(jget "$(cman 6)" 'm.get("parent")')" = None ] && grep -q "segment 0 does not open" "$TEST_TMP/out/c6" ||
	fail "an altered encrypted parent index: not a full naming the segment: $(cat "$TEST_TMP/out/c6")"
cp "$TEST_TMP/index.jsonl.zst" "$TEST_TMP/manifest.json" "$b5/"

# encryption off over an encrypted parent, on over a plain one: fulls,
# saying why
cconf "$TEST_TMP/cplain.conf" none
sleep 1
"$SNAPSHIP" --config "$TEST_TMP/cplain.conf" backup chain >"$TEST_TMP/out/c7" 2>&1 || fail "plain backup: $(cat "$TEST_TMP/out/c7")"
[ "$(jget "$(cman 7)" 'm.get("parent")')" = None ] && grep -q "is encrypted and encryption is off" "$TEST_TMP/out/c7" ||
	fail "a plain backup over an encrypted parent: $(cat "$TEST_TMP/out/c7")"
# a passphrase chain: the incremental reuses its parent's salt (one master
# key, one fingerprint)
cconf "$TEST_TMP/cpass.conf" aes-256-gcm "$keys/pass"
CP=("$SNAPSHIP" --config "$TEST_TMP/cpass.conf")
sleep 1
"${CP[@]}" backup chain >"$TEST_TMP/out/c8" 2>&1 || fail "passphrase backup: $(cat "$TEST_TMP/out/c8")"
[ "$(jget "$(cman 8)" 'm.get("parent")')" = None ] &&
	grep -q "is not encrypted: an incremental would reference its data, stored in clear" "$TEST_TMP/out/c8" ||
	fail "an encrypted backup over a plain parent: $(cat "$TEST_TMP/out/c8")"
sleep 1
echo "passphrase chain $$" >>"$cv/change-me.txt"
"${CP[@]}" -v -v backup chain >"$TEST_TMP/out/c9" 2>&1 || fail "passphrase incremental: $(cat "$TEST_TMP/out/c9")"
[ "$(grep -c "stretching the passphrase" "$TEST_TMP/out/c9")" = 1 ] ||
	fail "the passphrase incremental did not stretch its passphrase once: $(cat "$TEST_TMP/out/c9")"
[ "$(jget "$(cman 9)" 'm.get("parent")')" = "$(cid 8)" ] || fail "passphrase backup 9 is not an incremental: $(cat "$TEST_TMP/out/c9")"
[ "$(jget "$(cman 9)" 'm["encryption"]["salt"] + m["encryption"]["fingerprint"]')" = \
	"$(jget "$(cman 8)" 'm["encryption"]["salt"] + m["encryption"]["fingerprint"]')" ] ||
	fail "the passphrase incremental does not reuse its parent's salt"
"${CP[@]}" -v -v restore chain --id "$(cid 9)" --to "$TEST_BTRFS/enc-rc9" >"$TEST_TMP/out/rc9" 2>&1 ||
	fail "restore of the passphrase incremental: $(cat "$TEST_TMP/out/rc9")"
[ "$(grep -c "stretching the passphrase" "$TEST_TMP/out/rc9")" = 1 ] ||
	fail "the restore of a passphrase chain stretched its passphrase other than once: $(cat "$TEST_TMP/out/rc9")"
# verify --deep of all nine backups (three keys): one scrypt, the chain's
cconf "$TEST_TMP/call.conf" aes-256-gcm "$keys/pass" "$keys/k1, $keys/k2"
"$SNAPSHIP" --config "$TEST_TMP/call.conf" -v -v verify chain --deep >"$TEST_TMP/out/cv9" 2>&1 ||
	fail "verify --deep of every chain: $(cat "$TEST_TMP/out/cv9")"
[ "$(grep -c "stretching the passphrase" "$TEST_TMP/out/cv9")" = 1 ] ||
	fail "verify --deep stretched the passphrase other than once: $(grep -c "stretching the passphrase" "$TEST_TMP/out/cv9")"
assert_trees_equal "$cv" "$TEST_BTRFS/enc-rc9"
echo "ok: encrypted chains: incrementals restore, export, verify; rotation and a plain/encrypted switch make fulls; a passphrase chain shares its salt"

# ---- pass 2: an encrypted parent's sealed index altered during the walk -------
# (as test_incremental_memory's plain race) 0big.bin first in walk order,
# then 6000 files whose index entries fill more than the first fetch of
# sealed segments; the walk is throttled; a byte of the parent's last
# segment flipped in place while pass 2 reads: the backup fails, naming the
# segment and saying to run it again, and commits nothing
rv=$(mk_subvol enc-race)
mk_race_tree "$rv"
rstore=$TEST_TMP/rstore
mkdir -p "$rstore"
rconf() {	# rconf FILE [AGENT LINE]
	printf '[agent]\nhost = rh\nstate_dir = %s\nencryption = aes-256-gcm\nkey_file = %s\n%s\n[partition race]\npath = %s\n[region a]\nstore = file\npath = %s\n' \
		"$TEST_TMP/rstate" "$keys/k1" "${2:-}" "$rv" "$rstore" >"$1"
}
rconf "$TEST_TMP/race.conf"
rconf "$TEST_TMP/rslow.conf" "max_read_rate = 2M"
R=("$SNAPSHIP" --config "$TEST_TMP/race.conf")
"${R[@]}" backup race >"$TEST_TMP/out/ra1" 2>&1 || fail "race backup 1: $(cat "$TEST_TMP/out/ra1")"
sleep 1
"${R[@]}" backup race >"$TEST_TMP/out/ra2" 2>&1 || fail "race backup 2: $(cat "$TEST_TMP/out/ra2")"
rman=$(find "$rstore" -name manifest.json | sort | tail -n1)
rpar=$(basename "$(dirname "$rman")")
[ "$(jget "$rman" 'm.get("parent") is not None')" = True ] || fail "race backup 2 is not an incremental: $(cat "$TEST_TMP/out/ra2")"
ridx=$(dirname "$rman")/index.jsonl.zst
rsize=$(stat -c %s "$ridx")
[ "$rsize" -gt $((512 << 10)) ] || fail "the race tree's sealed index is under 512 KiB ($rsize)"
head -c $((12 << 20)) /dev/urandom >"$rv/0big.bin"
nman=$(find "$rstore" -name manifest.json | wc -l)
sleep 1
"$SNAPSHIP" --config "$TEST_TMP/rslow.conf" backup race >"$TEST_TMP/out/ra3" 2>&1 &
rpid=$!
sleep 3
kill -0 "$rpid" 2>/dev/null || fail "the throttled backup ended within 3 s: $(cat "$TEST_TMP/out/ra3")"
python3 - "$ridx" <<'EOF' || fail "cannot alter the parent's index"
import sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(-40, 2)
    b = f.read(1)
    f.seek(-40, 2)
    f.write(bytes([b[0] ^ 1]))
EOF
rc=0
wait "$rpid" || rc=$?
[ "$rc" -ne 0 ] || fail "a backup whose encrypted parent's index changed during its walk succeeded: $(cat "$TEST_TMP/out/ra3")"
grep -q "index.jsonl.zst of the parent backup $rpar: segment [0-9]* does not open" "$TEST_TMP/out/ra3" &&
	grep -q "run the backup again" "$TEST_TMP/out/ra3" ||
	fail "pass 2 over an altered sealed index: the error does not name the segment and say to run again: $(cat "$TEST_TMP/out/ra3")"
[ "$(find "$rstore" -name manifest.json | wc -l)" = "$nman" ] || fail "the failed backup left a manifest"
echo "pass 2 over an altered sealed parent index: $(grep -m1 error "$TEST_TMP/out/ra3" | cut -c1-300)"

# ---- the key never shows ------------------------------------------------------
hex1=$(xxd -p -c 64 "$keys/k1")
hex2=$(xxd -p -c 64 "$keys/k2")
for f in "$TEST_TMP"/out/* "$TEST_TMP"/gen* $(find "$store" "$TEST_TMP/state" -type f); do
	for h in "$hex1" "$hex2"; do
		grep -q -i -- "$h" "$f" && fail "$f holds a key in hex"
	done
	python3 - "$f" "$keys/k1" "$keys/k2" <<'EOF' || fail "$f holds a key's bytes"
import sys
b = open(sys.argv[1], "rb").read()
for k in sys.argv[2:]:
    assert open(k, "rb").read() not in b
EOF
done
echo "ok: encrypted backups round trip, rotate, refuse the wrong key and name each tampering"
