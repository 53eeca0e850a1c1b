#!/usr/bin/env bash
# LVM thin snapshots, in a qemu guest with device-mapper (tools/vm.sh; this
# kernel has none):
#   - ext4 and xfs on thin LVs, the partition a directory inside the
#     filesystem: a backup while a writer appends fsync'ed fixed-size
#     records restores every record whole and in order, and the fixed files
#     identical; no snapshot LV, mount or journal entry is left;
#   - kill -9 right after the snapshot: the LV and its mount stay, and the
#     next run removes them (and no other LV);
#   - restore --to-lv VG/NAME --size S makes a new LV with a filesystem of
#     the backup's type (xfs, ext4; recorded in the manifest) holding the
#     restore; an existing LV is refused;
#   - refusals with a clear message: a full thin pool, a plain partition.
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_root
[ -x "${SNAPSHIP:-}" ] || fail "SNAPSHIP='${SNAPSHIP:-}' is not an executable (run make)"

body=$TEST_TMP/thin.sh
cat >"$body" <<'GUEST'
POOL_MB=352
mk_vg
mk_lv thin db 64 ext4
mk_lv thin dbx 320 xfs       # mkfs.xfs wants 300 MB; thin: only what is written
fill /srv/db/orders 8
fill /srv/dbx/data/main 8

# ext4 on thin, the partition a directory two levels down
conf orders /srv/db/orders
backup_restore_check orders /srv/db/orders
# xfs on thin
conf main /srv/dbx/data/main
backup_restore_check main /srv/dbx/data/main

# restore --to-lv: a new LV with a new filesystem of the backup's type
grep -rq '"fstype": "xfs"' "$G_STORE"/g/main/*/manifest.json || gfail "the manifest does not record xfs"
"$SNAPSHIP" -q --config "$G_CONF" restore main --to-lv vg0/restx --size 320M || gfail "restore --to-lv of main failed"
[ "$(blkid -o value -s TYPE /dev/mapper/vg0-restx)" = xfs ] || gfail "vg0/restx is not xfs"
conf orders /srv/db/orders
"$SNAPSHIP" -q --config "$G_CONF" restore orders --to-lv vg0/rest4 --size 48M || gfail "restore --to-lv of orders failed"
[ "$(blkid -o value -s TYPE /dev/mapper/vg0-rest4)" = ext4 ] || gfail "vg0/rest4 is not ext4"
grep -q " $G_STATE/lvm/restore-" /proc/self/mountinfo && gfail "a restore volume is still mounted"
for lv in restx rest4; do
	mkdir -p "/mnt/$lv" && mount -o ro "/dev/mapper/vg0-$lv" "/mnt/$lv"
done
check_records /mnt/restx/log
check_records /mnt/rest4/log
cmp /srv/dbx/data/main/f3 /mnt/restx/f3 && cmp /srv/db/orders/small/s7 /mnt/rest4/small/s7 ||
	gfail "a file restored into a new LV differs"
umount /mnt/restx /mnt/rest4
rc=0
"$SNAPSHIP" --config "$G_CONF" restore orders --to-lv vg0/rest4 --size 48M >/tmp/exists.log 2>&1 || rc=$?
cat /tmp/exists.log
[ "$rc" -ne 0 ] && grep -q "logical volume vg0/rest4 exists" /tmp/exists.log || gfail "--to-lv over an existing LV was not refused"
echo "restore --to-lv: ext4 and xfs volumes made and filled"

# kill -9 after the snapshot: the next run removes the LV and its mount
conf orders /srv/db/orders
rc=0
SNAPSHIP_FAULT=backup.snapshot@1:kill "$SNAPSHIP" -q --config "$G_CONF" backup orders || rc=$?
[ "$rc" -eq 137 ] || gfail "the killed backup exited $rc, not 137"
lvs --noheadings -o lv_name vg0 | grep -q snapship-orders- || gfail "the kill left no snapshot LV to recover"
grep -q " $G_STATE/lvm/snapship-orders-" /proc/self/mountinfo || gfail "the kill left no mount to recover"
lvs --noheadings -o lv_name vg0 | sort >/tmp/lvs.before
"$SNAPSHIP" --config "$G_CONF" clean >/tmp/clean.log 2>&1 || { cat /tmp/clean.log; gfail "clean failed"; }
cat /tmp/clean.log
grep -q "removed 1 leftover snapshot" /tmp/clean.log || gfail "clean did not say it removed the snapshot"
no_leftovers
lvs --noheadings -o lv_name vg0 | sort >/tmp/lvs.after
[ "$(grep -vc snapship- /tmp/lvs.before)" -eq "$(wc -l </tmp/lvs.after)" ] || gfail "recovery removed another LV"
# and a crash recovered by the next backup itself
rc=0
SNAPSHIP_FAULT=backup.snapshot@1:kill "$SNAPSHIP" -q --config "$G_CONF" backup orders || rc=$?
[ "$rc" -eq 137 ] || gfail "the second killed backup exited $rc"
"$SNAPSHIP" -q --config "$G_CONF" backup orders || gfail "the backup after a kill failed"
no_leftovers
echo "kill -9 after the snapshot: recovered"

# refusal: a full thin pool (error when full, so writes fail, not queue)
lvcreate -q -L 8M -T vg0/small --errorwhenfull y >/dev/null
lvcreate -q -V 64M -T vg0/small -n full >/dev/null
mkfs.ext4 -q /dev/mapper/vg0-full
mkdir -p /srv/full && mount /dev/mapper/vg0-full /srv/full
mkdir -p /srv/full/data
dd if=/dev/urandom of=/srv/full/data/big bs=1M count=16 conv=fsync 2>/dev/null || true
lvs vg0/small
rc=0
"$SNAPSHIP" --host g --state-dir "$G_STATE" backup /srv/full/data --to "$G_STORE" >/tmp/full.log 2>&1 || rc=$?
cat /tmp/full.log
[ "$rc" -ne 0 ] || gfail "a backup on a full thin pool succeeded"
grep -q "thin pool vg0/small is full" /tmp/full.log || gfail "no clear message for a full thin pool"
no_leftovers

# refusal: a plain partition (no LVM, no btrfs)
disk2=${VM_DISKS#* }
mkfs.ext4 -q "$disk2"
mkdir -p /srv/plain && mount "$disk2" /srv/plain && mkdir /srv/plain/data
rc=0
"$SNAPSHIP" --host g --state-dir "$G_STATE" backup /srv/plain/data --to "$G_STORE" >/tmp/plain.log 2>&1 || rc=$?
cat /tmp/plain.log
[ "$rc" -ne 0 ] || gfail "a backup of a plain partition succeeded"
grep -q "is on ext4, not btrfs, and not on an LVM logical volume" /tmp/plain.log ||
	gfail "no clear message for a plain partition"
# snapshot = lvm forced on it says the same, with the key
conf plainp /srv/plain/data snapshot=lvm
rc=0
"$SNAPSHIP" --config "$G_CONF" backup plainp >/tmp/plain2.log 2>&1 || rc=$?
cat /tmp/plain2.log
[ "$rc" -ne 0 ] && grep -q "not an LVM logical volume, but its \[partition\] has snapshot = lvm" /tmp/plain2.log ||
	gfail "snapshot = lvm on a plain partition: no clear refusal"
echo "refusals: clear"
GUEST

vm_lvm_run "$body" --disk 1024 --disk 64 --mem 1024 --timeout 560
