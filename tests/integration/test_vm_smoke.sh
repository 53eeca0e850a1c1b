#!/usr/bin/env bash
# The qemu guest of tools/vm.sh (issue 16: LVM needs device-mapper, which
# this machine's kernel lacks) boots and does what the LVM tests will need:
#   - the dm modules (dm-mod, dm-snapshot, dm-thin-pool) are loaded;
#   - pvcreate/vgcreate on a virtio disk, a thin pool and a thin LV, ext4 on
#     it, mounted, a file written;
#   - a thin snapshot (lvcreate -s, lvchange -ay -K) mounted ro,noload holds
#     the file as it was, while the origin is changed after the snapshot;
#   - the same with xfs on a thin LV (snapshot mounted ro,nouuid), and with
#     ext4 on a thick LV (a classic snapshot with its own size);
#   - build/snapship runs inside: --version, and a backup of a small btrfs
#     subvolume (mkfs.btrfs on the second disk) to a directory store,
#     restored and compared with the source;
#   - the guest's script status comes back: the script ends with exit 42
#     when all passed (one boot is costly: no second run for a failure).
# With no kernel package to be had (apt with no sources, an empty cache),
# tools/vm.sh exits 77 with its reason on stderr.
# Prints the boot time and the whole test's wall. Skips (77) when tools/vm.sh
# does (no qemu, no kernel package reachable).
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"
need_root
BUILD_DIR=${BUILD_DIR:-$SRC_DIR/build}
[ -x "$BUILD_DIR/snapship" ] || fail "no $BUILD_DIR/snapship (run make)"
[ -x "$BUILD_DIR/gendata" ] || fail "no $BUILD_DIR/gendata (run make)"

t0=$SECONDS
cd "$TEST_TMP"

# ---- the guest's script -----------------------------------------------------
cat >guest.sh <<'EOF'
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
uptime_s() { cut -d' ' -f1 /proc/uptime; }

for m in dm_mod dm_snapshot dm_thin_pool virtio_blk ext4 xfs btrfs; do
	[ -d "/sys/module/$m" ] || fail "module $m is not loaded"
done
read -r vda vdb <<<"$VM_DISKS"
[ -b "$vda" ] && [ -b "$vdb" ] || fail "disks $VM_DISKS are not block devices"

pvcreate -q "$vda"
vgcreate -q vg "$vda"
lvcreate -q --type thin-pool -L 160M -n pool vg
lvcreate -q -V 1G -T vg/pool -n data
mkfs.ext4 -q /dev/vg/data
mkdir -p /mnt/data /mnt/snap
mount -t ext4 /dev/vg/data /mnt/data
"$GENDATA" /mnt/data/d --json-bytes 2M --json-file-size 1M --small-files 50 --seed 7 >/dev/null
echo before >/mnt/data/f
sync
(cd /mnt/data && find . -type f | sort | xargs sha256sum) >/tmp/sums

t=$(uptime_s)
lvcreate -q -s vg/data -n snap
echo "thin snapshot made in $(awk -v a="$t" -v b="$(uptime_s)" 'BEGIN { print b - a }') s (guest clock)"
echo after >/mnt/data/f
lvchange -q -ay -K vg/snap
mount -t ext4 -o ro,noload /dev/vg/snap /mnt/snap
[ "$(cat /mnt/snap/f)" = before ] || fail "the snapshot's file is '$(cat /mnt/snap/f)', not 'before'"
[ "$(cat /mnt/data/f)" = after ] || fail "the origin's file is not 'after'"
(cd /mnt/snap && sha256sum -c /tmp/sums >/dev/null) || fail "the snapshot's files differ from the origin's at snapshot time"
out=$(lvs -o lv_name,lv_attr,origin,pool_lv --reportformat json vg)
grep -Eq '"lv_name" *: *"snap"' <<<"$out" || fail "lvs --reportformat json does not list the snapshot: $out"
umount /mnt/snap
lvremove -q -y vg/snap
echo "ok: ext4 on a thin LV, thin snapshot mounted ro,noload"

lvcreate -q -V 512M -T vg/pool -n xdata
mkfs.xfs -q /dev/vg/xdata
mkdir -p /mnt/x /mnt/xs
mount -t xfs /dev/vg/xdata /mnt/x
echo xfs >/mnt/x/f
sync
lvcreate -q -s vg/xdata -n xsnap
lvchange -q -ay -K vg/xsnap
mount -t xfs -o ro,nouuid /dev/vg/xsnap /mnt/xs
[ "$(cat /mnt/xs/f)" = xfs ] || fail "the xfs snapshot's file is not there"
umount /mnt/xs /mnt/x
lvremove -q -y vg/xsnap vg/xdata
echo "ok: xfs on a thin LV, thin snapshot mounted ro,nouuid"

lvcreate -q -L 64M -n thick vg
mkfs.ext4 -q /dev/vg/thick
mkdir -p /mnt/t /mnt/ts
mount -t ext4 /dev/vg/thick /mnt/t
echo thick >/mnt/t/f
sync
lvcreate -q -s -L 16M -n tsnap vg/thick
echo changed >/mnt/t/f
mount -t ext4 -o ro,noload /dev/vg/tsnap /mnt/ts
[ "$(cat /mnt/ts/f)" = thick ] || fail "the classic snapshot's file is '$(cat /mnt/ts/f)', not 'thick'"
umount /mnt/ts /mnt/t
lvremove -q -y vg/tsnap vg/thick
echo "ok: ext4 on a thick LV, classic snapshot mounted ro,noload"
umount /mnt/data

"$SNAPSHIP" --version | grep -q '^snapship ' || fail "snapship --version"
mkfs.btrfs -q -f "$vdb" >/dev/null
mkdir -p /mnt/b
mount -t btrfs "$vdb" /mnt/b
btrfs subvolume create /mnt/b/data >/dev/null
"$GENDATA" /mnt/b/data --json-bytes 2M --json-file-size 1M --small-files 50 --seed 7 >/dev/null
mkdir -p /mnt/b/store /tmp/state /tmp/restored
t=$(uptime_s)
"$SNAPSHIP" -q --host vm --state-dir /tmp/state backup /mnt/b/data --to /mnt/b/store
echo "snapship backup of btrfs in $(awk -v a="$t" -v b="$(uptime_s)" 'BEGIN { print b - a }') s (guest clock)"
"$SNAPSHIP" -q --host vm restore data --from /mnt/b/store --to /tmp/restored/data
(cd /mnt/b/data && find . -type f | sort | xargs sha256sum) >/tmp/bsums
(cd /tmp/restored/data && sha256sum -c /tmp/bsums >/dev/null) || fail "the restored tree differs from the source"
[ "$(cd /mnt/b/data && find . | wc -l)" = "$(cd /tmp/restored/data && find . | wc -l)" ] ||
	fail "the restored tree has another number of entries"
echo "ok: snapship backup of btrfs to a directory store and restore, in the guest"
umount /mnt/b
exit 42	# all passed: a status the host must see come back (fail exits 1)
EOF

# ---- the run ------------------------------------------------------------------
rc=0
vm_run guest.sh --disk 400 --disk 400 --timeout 240 --log console.log || rc=$?
[ $rc -ne 0 ] || fail "tools/vm.sh exited 0, not with the guest script's status 42"
[ $rc -eq 42 ] || fail "the guest's script failed (exit $rc); its console is above"
for w in "ok: ext4 on a thin LV" "ok: xfs on a thin LV" "ok: ext4 on a thick LV" \
	"ok: snapship backup of btrfs"; do
	grep -q "^$w" console.log || fail "the console lacks '$w'"
done

# ---- no kernel to be had: a skip with the reason ------------------------------
# apt with no sources and an empty cache (no network needed, nothing booted;
# after the run above, which installed the host packages)
mkdir -p nolists/partial nocache
printf '%s\n' "Dir::State::lists \"$PWD/nolists/\";" 'Dir::Etc::sourcelist "/dev/null";' \
	"Dir::Etc::sourceparts \"$PWD/nolists/\";" 'Dir::Cache::pkgcache "";' \
	'Dir::Cache::srcpkgcache "";' >apt.conf
printf 'exit 0\n' >zero.sh
rc=0
APT_CONFIG=$PWD/apt.conf SNAPSHIP_VM_CACHE=$PWD/nocache \
	bash "$SRC_DIR/tools/vm.sh" run zero.sh --build "$BUILD_DIR" 2>skip.err || rc=$?
[ $rc -eq 77 ] || fail "with no kernel package to be had, tools/vm.sh exited $rc, not 77: $(cat skip.err)"
grep -q '^SKIP: vm.sh: apt knows no package linux-image-amd64' skip.err ||
	fail "no skip reason on stderr: $(cat skip.err)"
echo "ok: no kernel package: exit 77, $(cat skip.err)"

boot=$(grep -o '^VM-READY [0-9.]*' console.log | cut -d' ' -f2)
echo "guest boot (guest clock at the script's start): ${boot:-?} s; whole test: $((SECONDS - t0)) s"
