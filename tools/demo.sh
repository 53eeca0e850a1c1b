#!/usr/bin/env bash
# The snapship demo: a loop btrfs filesystem, a partition full of JSON
# documents, a backup into a local-directory store, the partition wiped,
# restored into a new subvolume and proven identical.  Cleans up after itself.
#
#   bash tools/demo.sh [BUILD_DIR]          (make demo does this; needs root)
set -euo pipefail

B=${1:-build}
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
SNAPSHIP=$SRC_DIR/$B/snapship
GENDATA=$SRC_DIR/$B/gendata
# shellcheck source=../tests/lib.sh
. "$SRC_DIR/tests/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (it makes a loop btrfs filesystem and snapshots): sudo make demo" >&2
	exit 1
fi

WORK=$(mktemp -d /var/tmp/snapship-demo.XXXXXX)
MNT=$WORK/mnt
LOOP=
cleanup() {
	set +e
	if mountpoint -q "$MNT"; then
		umount "$MNT" || umount -l "$MNT"
	fi
	[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. a btrfs filesystem on a loop device, with a partition subvolume"
truncate -s 8G "$WORK/btrfs.img"
mkfs.btrfs -q "$WORK/btrfs.img"
mkdir -p "$MNT"
LOOP=$(losetup --find --show "$WORK/btrfs.img")
mount "$LOOP" "$MNT"
btrfs subvolume create "$MNT/orders" >/dev/null
"$GENDATA" "$MNT/orders" --json-bytes 256M --json-file-size 32M --small-files 2000
echo "partition: $MNT/orders ($(du -sh "$MNT/orders" | cut -f1))"

step "2. back it up (read-only snapshot -> io_uring -> pax -> parallel zstd -> store)"
mkdir -p "$WORK/store"
"$SNAPSHIP" --state-dir "$WORK/state" backup "$MNT/orders" --to "$WORK/store"
"$SNAPSHIP" list --from "$WORK/store"
tree_manifest "$MNT/orders" > "$WORK/before.txt"

step "3. disaster: the partition is gone"
btrfs subvolume delete "$MNT/orders" >/dev/null
ls "$MNT"

step "4. restore it into a new subvolume (every file checksum verified)"
"$SNAPSHIP" restore orders --from "$WORK/store" --to "$MNT/orders"
btrfs subvolume show "$MNT/orders" | head -1

step "5. proof: every byte and every piece of metadata is back"
tree_manifest "$MNT/orders" > "$WORK/after.txt"
if diff -q "$WORK/before.txt" "$WORK/after.txt" >/dev/null; then
	echo "identical: $(grep -c '^E ' "$WORK/after.txt") entries compared (content, mode, owner, mtime, xattrs, ACLs, links)"
else
	diff "$WORK/before.txt" "$WORK/after.txt" | head -20
	echo "demo: the restored tree differs" >&2
	exit 1
fi
if ls "$MNT"/.snapship/snapship-* >/dev/null 2>&1; then
	echo "demo: a snapshot was left behind" >&2
	exit 1
fi
echo "no snapshot left behind; cleaning up."
