#!/usr/bin/env bash
# LVM thick (classic) snapshots, in a qemu guest with device-mapper
# (tools/vm.sh):
#   - ext4 on a thick LV: a backup while a writer appends fsync'ed records
#     restores every record whole and in order; nothing is left behind;
#   - a snapshot that overflows during the backup (lvm_snapshot_size too
#     small for the writes a post_snapshot hook makes) fails the backup
#     with a clear message, commits nothing, and leaves nothing behind;
#   - a volume group without room for the snapshot is refused clearly.
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_root
[ -x "${SNAPSHIP:-}" ] || fail "SNAPSHIP='${SNAPSHIP:-}' is not an executable (run make)"

body=$TEST_TMP/thick.sh
cat >"$body" <<'GUEST'
mk_vg
mk_lv thick db 64 ext4
fill /srv/db/orders 12

conf orders /srv/db/orders lvm_snapshot_size=50%
backup_restore_check orders /srv/db/orders
n_before=$(find "$G_STORE" -name manifest.json | wc -l)
[ "$n_before" -eq 1 ] || gfail "expected 1 manifest after the first backup, found $n_before"

# overflow: a 4 MiB snapshot, and the hook rewrites 12 MiB after it is made
hook='for i in 1 2 3 4 5 6 7 8 9 10 11 12; do dd if=/dev/urandom of=/srv/db/orders/f$i bs=1M count=1 conv=notrunc,fsync 2>/dev/null; done'
conf orders /srv/db/orders lvm_snapshot_size=4M pre_snapshot=true "post_snapshot=$hook"
rc=0
"$SNAPSHIP" --config "$G_CONF" backup orders >/tmp/over.log 2>&1 || rc=$?
cat /tmp/over.log
[ "$rc" -ne 0 ] || gfail "a backup whose snapshot overflowed succeeded"
grep -q "thick snapshot vg0/snapship-orders-.* overflowed during the backup" /tmp/over.log ||
	gfail "no clear message for the overflow"
grep -q "raise lvm_snapshot_size" /tmp/over.log || gfail "the message does not say what to do"
[ "$(find "$G_STORE" -name manifest.json | wc -l)" -eq "$n_before" ] || gfail "the overflowed backup committed a manifest"
no_leftovers
echo "overflow: failed cleanly"

# refusal: no room in the VG for the snapshot
lvcreate -q -l 100%FREE -n filler vg0 >/dev/null
conf orders /srv/db/orders
rc=0
"$SNAPSHIP" --config "$G_CONF" backup orders >/tmp/room.log 2>&1 || rc=$?
cat /tmp/room.log
[ "$rc" -ne 0 ] || gfail "a thick snapshot without room in the VG succeeded"
grep -q "volume group vg0 has 0 B free, but a thick snapshot of vg0/db needs" /tmp/room.log ||
	grep -q "volume group vg0 has .* free, but a thick snapshot of vg0/db needs" /tmp/room.log ||
	gfail "no clear message for a full VG"
lvs --noheadings -o lv_name vg0 | grep -q filler || gfail "the filler LV is gone"
no_leftovers
echo "refusals: clear"
GUEST

vm_lvm_run "$body" --disk 160 --mem 1024 --timeout 560
