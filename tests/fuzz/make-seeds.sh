#!/usr/bin/env bash
# Regenerate the seed corpora that come from a real backup:
#   bash tests/fuzz/make-seeds.sh [SNAPSHIP]        (root; default build/snapship)
#
# Backs up a tiny tree (files, a directory, a relative and an absolute
# symlink, a hard-link pair, xattrs, an ACL, a fifo, a sparse file, a long
# and an odd name) with SNAPSHIP into a directory store, and writes
#   corpus/manifest/backup-manifest.json    the manifest
#   corpus/index/backup-index.jsonl.zst     the index as stored
#   corpus/index/backup-index.jsonl         the index decompressed
#   corpus/seektable/backup-data.tar.zst    the data object (frames + table)
#   corpus/extract/backup-data.tar          the data object decompressed
# then adds 300 KB of repetitive text and backs up again with 64 KiB
# frames, for a seek table of several frames that still compresses small:
#   corpus/seektable/backup-frames.tar.zst
# The btrfs filesystem is $TEST_BTRFS when set, else a loop filesystem made
# (and removed) here.  The other seeds (S3 answers, configs) are written by
# hand after tests/unit/test_s3.c and tests/unit/test_config.c.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
snapship=$(realpath "${1:-$here/../../build/snapship}")
[ -x "$snapship" ] || { echo "make-seeds: $snapship is not built (run make)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "make-seeds: needs root (btrfs snapshots)" >&2; exit 1; }
for c in btrfs mkfs.btrfs losetup zstd setfattr setfacl mkfifo; do
	command -v "$c" >/dev/null || { echo "make-seeds: needs $c" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/snapship-seeds.XXXXXX)
loop=""
mnt=""
cleanup() {
	[ -n "$mnt" ] && [ -d "$mnt/seed-part" ] && btrfs subvolume delete "$mnt/seed-part" >/dev/null 2>&1
	if [ -n "$loop" ]; then
		umount "$work/btrfs" 2>/dev/null
		losetup -d "$loop" 2>/dev/null
	fi
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT

if [ -n "${TEST_BTRFS:-}" ]; then
	mnt=$TEST_BTRFS
else
	truncate -s 256M "$work/btrfs.img"
	mkfs.btrfs -q -f "$work/btrfs.img"
	loop=$(losetup --find --show "$work/btrfs.img")
	mkdir "$work/btrfs"
	mount -t btrfs "$loop" "$work/btrfs"
	mnt=$work/btrfs
fi

part=$mnt/seed-part
btrfs subvolume create "$part" >/dev/null
mkdir -p "$part/dir/sub"
printf 'hello, seed\n' >"$part/dir/hello.txt"
head -c 3000 /dev/zero | tr '\0' 'a' >"$part/dir/sub/aaa"
ln -s ../dir/hello.txt "$part/dir/sub/rel-link"
ln -s /etc/hostname "$part/abs-link"
printf 'linked\n' >"$part/hl-a"
ln "$part/hl-a" "$part/dir/hl-b"
setfattr -n user.color -v blue "$part/dir/hello.txt"
setfacl -m u:1234:rx "$part/dir/sub"
mkfifo "$part/fifo"
truncate -s 1M "$part/sparse"
printf 'island' | dd of="$part/sparse" bs=1 seek=300000 conv=notrunc status=none
printf 'odd' >"$part/name with spaces and \$ and ü"
printf 'long' >"$part/$(printf 'l%.0s' $(seq 1 150))"
chown 1234:5678 "$part/dir/sub/aaa"
touch -d '2001-02-03 04:05:06.123456789' "$part/dir/hello.txt"

# backup NAME: back the partition up into $work/NAME; prints the backup's directory
backup() {
	mkdir -p "$work/$1"
	cat >"$work/$1.conf" <<CONF
[agent]
state_dir = $work/state
host = seedhost
frame_size = 64K
[partition seed]
path = $part
[region local]
store = file
path = $work/$1
CONF
	"$snapship" --config "$work/$1.conf" backup seed >/dev/null
	find "$work/$1" -name manifest.json -printf '%h\n' | head -n 1
}

b=$(backup small)
[ -n "$b" ] || { echo "make-seeds: the backup wrote no manifest" >&2; exit 1; }
c=$here/corpus
cp "$b/manifest.json" "$c/manifest/backup-manifest.json"
cp "$b/index.jsonl.zst" "$c/index/backup-index.jsonl.zst"
zstd -q -d -c "$b/index.jsonl.zst" >"$c/index/backup-index.jsonl"
cp "$b/data.tar.zst" "$c/seektable/backup-data.tar.zst"
zstd -q -d -c "$b/data.tar.zst" >"$c/extract/backup-data.tar"
python3 -c 'print("snapship seed: a line that compresses well\n" * 7000, end="")' >"$part/text"
b=$(backup frames)
[ -n "$b" ] || { echo "make-seeds: the second backup wrote no manifest" >&2; exit 1; }
cp "$b/data.tar.zst" "$c/seektable/backup-frames.tar.zst"
chmod 0644 "$c"/*/backup-*
ls -l "$c/manifest" "$c/index" "$c/seektable" "$c/extract"
