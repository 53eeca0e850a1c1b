#!/usr/bin/env bash
# The LVM figures of issue 16, inside the qemu guest (tools/vm.sh; TCG
# emulation, so the numbers compare only with each other):
#   - how long lvcreate keeps the origin suspended while it takes a thin
#     and a thick snapshot: from lvcreate -vvvv's "Suspending" line for the
#     origin to its "Resuming" line (stderr lines stamped as they arrive,
#     so an upper bound by the pipe's latency), and lvcreate's whole wall;
#   - the backup wall of the same data on LVM-thin ext4 and on btrfs.
#   bash tools/bench_lvm.sh BUILD_DIR      (as root; RUNS, default 3; MB, default 48)
set -euo pipefail
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BUILD=$(cd "${1:-build}" && pwd -P)
RUNS=${RUNS:-3}
MB=${MB:-48}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/bench.sh" <<GUEST
RUNS=$RUNS MB=$MB
GUEST
cat >>"$tmp/bench.sh" <<'GUEST'
set -euo pipefail
. /src/lvm_guest.sh
disk1=${VM_DISKS%% *} disk2=${VM_DISKS#* }
mk_vg
POOL_MB=$((MB * 3 + 64)) mk_lv thin db $((MB * 2 + 32)) ext4
lvcreate -q -L $((MB * 2 + 32))M -n thick vg0 >/dev/null && mkfs.ext4 -q /dev/mapper/vg0-thick
mkdir -p /srv/thick && mount /dev/mapper/vg0-thick /srv/thick
mkfs.btrfs -q "$disk2" && mkdir -p /srv/btrfs && mount "$disk2" /srv/btrfs
btrfs subvolume create /srv/btrfs/data >/dev/null
fill /srv/db/data "$MB"
cp -a /srv/db/data/. /srv/btrfs/data/
cp -a /srv/db/data/. /srv/thick/
sync
echo 3 >/proc/sys/vm/drop_caches

# stamp each line of stdin with the guest's monotonic seconds
stamp() { while IFS= read -r l; do echo "$EPOCHREALTIME $l"; done; }
suspend_s() {   # suspend_s LOG ORIGIN_DM_NAME: Suspending..Resuming of the origin
	awk -v o="$2" '$0 ~ "Suspending " o "[ (]" && !s { s = $1 }
		$0 ~ "Resuming " o "[ (]" && s && !r { r = $1 }
		END { if (s && r) printf "%.2f", r - s; else printf "?" }' "$1"
}
for kind in thin thick; do
	for r in $(seq 1 "$RUNS"); do
		origin=db name=b$r args=(-s -n "b$r" vg0/db)
		[ $kind = thick ] && { origin=thick name=k$r; args=(-s -L 16M -n "k$r" vg0/thick); }
		t0=$EPOCHREALTIME
		lvcreate -vv "${args[@]}" 2>&1 >/dev/null | stamp >/tmp/lvc.log
		t1=$EPOCHREALTIME
		echo "RESULT lvcreate $kind run $r: suspended $(suspend_s /tmp/lvc.log "vg0-$origin") s, lvcreate wall $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
		lvremove -f "vg0/$name" >/dev/null
	done
done
grep -m3 -E "Suspending|Resuming" /tmp/lvc.log | sed 's/^/sample: /' || true

for r in $(seq 1 "$RUNS"); do
	for what in lvm-thin:/srv/db/data lvm-thick:/srv/thick btrfs:/srv/btrfs/data; do
		rm -rf /tmp/st /tmp/store; mkdir -p /tmp/store
		echo 3 >/proc/sys/vm/drop_caches
		t0=$EPOCHREALTIME
		"$SNAPSHIP" -q --host g --state-dir /tmp/st backup "${what#*:}" --name data --to /tmp/store --full
		t1=$EPOCHREALTIME
		echo "RESULT backup ${what%%:*} run $r: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s for $MB MiB"
	done
done
GUEST
bash "$SRC_DIR/tools/vm.sh" run "$tmp/bench.sh" --build "$BUILD" \
	--file "$SRC_DIR/tests/tools/lvm_guest.sh:/src/lvm_guest.sh" \
	--disk $((MB * 8 + 256)) --disk $((MB * 4 + 256)) --mem 1536 --timeout 1500 --log "$tmp/console.log" --quiet
grep -E "^(RESULT|sample)" "$tmp/console.log"
# medians: suspended and lvcreate wall per kind, backup wall per filesystem
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else printf "?" }'; }
echo "== medians of $RUNS runs ($MB MiB; TCG guest: compare only with each other)"
for kind in thin thick; do
	echo "lvcreate $kind: origin suspended $(awk -v k="$kind" '$2 == "lvcreate" && $3 == k { print $7 }' "$tmp/console.log" | median) s, lvcreate wall $(awk -v k="$kind" '$2 == "lvcreate" && $3 == k { print $11 }' "$tmp/console.log" | median) s"
done
for fs in lvm-thin lvm-thick btrfs; do
	echo "backup $fs: $(awk -v f="$fs" '$2 == "backup" && $3 == f { print $6 }' "$tmp/console.log" | median) s"
done
