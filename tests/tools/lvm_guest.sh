# shellcheck shell=bash
# Helpers for the LVM tests' scripts inside the qemu guest (tools/vm.sh),
# sourced there as /src/lvm_guest.sh by tests/integration/test_lvm_*.sh.
# Real LVM: a VG on the first virtio disk, thin or thick LVs with ext4 or
# xfs mounted under /srv, snapship from /build, stores on the guest's tmpfs.

G_STATE=/tmp/st
G_STORE=/tmp/store
G_CONF=/tmp/snapship.conf
REC=32           # the writer's record size, bytes

gfail() {
	echo "FAIL: $*"
	exit 1
}

# A VG vg0 on the first disk.
mk_vg() {
	local disk=${VM_DISKS%% *}
	pvcreate -q "$disk" >/dev/null || gfail "cannot pvcreate $disk"
	vgcreate -q vg0 "$disk" >/dev/null || gfail "cannot make vg0 on $disk"
}

# mk_lv thin|thick NAME SIZE_MB FS: an LV with a filesystem mounted at
# /srv/NAME (thin ones in vg0/pool, made on first use, POOL_MB big).
mk_lv() {
	local kind=$1 name=$2 mb=$3 fs=$4
	if [ "$kind" = thin ]; then
		lvs vg0/pool >/dev/null 2>&1 ||
			lvcreate -q -L "${POOL_MB:-96}M" -T vg0/pool >/dev/null ||
			gfail "lvcreate pool"
		lvcreate -q -V "${mb}M" -T vg0/pool -n "$name" >/dev/null || gfail "lvcreate $name"
	else
		lvcreate -q -L "${mb}M" -n "$name" vg0 >/dev/null || gfail "lvcreate $name"
	fi
	case $fs in
	ext4) mkfs.ext4 -q "/dev/mapper/vg0-$name" ;;
	xfs) mkfs.xfs -q "/dev/mapper/vg0-$name" ;;
	esac || gfail "mkfs.$fs $name"
	mkdir -p "/srv/$name"
	mount "/dev/mapper/vg0-$name" "/srv/$name" || gfail "mount $name"
}

# fill DIR MB: some fixed data (MB random 1 MiB files and small ones).
fill() {
	local dir=$1 mb=$2 i
	mkdir -p "$dir/small"
	for i in $(seq 1 "$mb"); do
		dd if=/dev/urandom of="$dir/f$i" bs=1M count=1 2>/dev/null
	done
	for i in $(seq 1 50); do
		echo "small file $i" >"$dir/small/s$i"
	done
	sync
}

# writer_start FILE: append REC-byte records "R<seq>...\n", each fsync'ed,
# until writer_stop.
writer_start() {
	local file=$1
	: >"$file"
	(
		n=0
		while [ ! -e /tmp/writer.stop ]; do
			printf 'R%08d-%021d\n' "$n" "$n" |
				dd of="$file" bs=$REC count=1 oflag=append conv=notrunc,fsync 2>/dev/null
			n=$((n + 1))
		done
	) &
	WRITER=$!
	# let it write a few records before the backup
	while [ "$(stat -c %s "$file")" -lt $((REC * 10)) ]; do sleep 0.1; done
}

writer_stop() {
	touch /tmp/writer.stop
	wait "$WRITER"
	rm -f /tmp/writer.stop
}

# check_records FILE: every record complete and in order, none torn.
check_records() {
	local file=$1 size n
	size=$(stat -c %s "$file")
	[ $((size % REC)) -eq 0 ] || gfail "$file: $size bytes, not whole $REC-byte records (torn)"
	n=$((size / REC))
	[ "$n" -gt 0 ] || gfail "$file: no records"
	awk -v n="$n" '{ want = sprintf("R%08d-%021d", NR - 1, NR - 1);
		if ($0 != want) { print "record " NR - 1 ": \"" $0 "\""; exit 1 } }
		END { if (NR != n) exit 1 }' "$file" || gfail "$file: records out of order or damaged"
	echo "$file: $n records, all whole and in order"
}

# No snapshot LV of ours left, nothing mounted under the state dir.
no_leftovers() {
	if lvs --noheadings -o lv_name vg0 | grep -q snapship-; then
		lvs -a
		gfail "a snapship-* LV is left"
	fi
	if grep -q " $G_STATE/lvm/" /proc/self/mountinfo; then
		cat /proc/self/mountinfo
		gfail "a snapshot is still mounted under $G_STATE/lvm"
	fi
	[ -z "$(ls -A "$G_STATE/journal" 2>/dev/null)" ] || gfail "journal entries left: $(ls "$G_STATE/journal")"
}

# conf PARTITION PATH [KEY=VALUE...]: a config with one partition and a
# directory store.
conf() {
	local part=$1 path=$2 kv
	shift 2
	{
		printf '[agent]\nhost = g\nstate_dir = %s\n' "$G_STATE"
		printf '[partition %s]\npath = %s\n' "$part" "$path"
		for kv in "$@"; do printf '%s = %s\n' "${kv%%=*}" "${kv#*=}"; done
		printf '[region local]\nstore = file\npath = %s\n' "$G_STORE"
	} >"$G_CONF"
	mkdir -p "$G_STATE" "$G_STORE"
}

# backup_restore_check PART DIR: back up DIR (a writer running in it),
# restore, check the records and the fixed files.
backup_restore_check() {
	local part=$1 dir=$2 t0 t1 out=/tmp/restore-$1
	writer_start "$dir/log"
	t0=$(cut -d' ' -f1 /proc/uptime)
	"$SNAPSHIP" -q --config "$G_CONF" backup "$part" || gfail "backup of $part failed"
	t1=$(cut -d' ' -f1 /proc/uptime)
	writer_stop
	echo "backup of $part: $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s"
	no_leftovers
	"$SNAPSHIP" -q --config "$G_CONF" restore "$part" --to "$out" || gfail "restore of $part failed"
	check_records "$out/log"
	[ "$(stat -c %s "$out/log")" -le "$(stat -c %s "$dir/log")" ] || gfail "restored log is longer than the source"
	for f in "$dir"/f* "$dir"/small/*; do
		cmp -s "$f" "$out/${f#"$dir"/}" || gfail "restored ${f#"$dir"/} differs"
	done
	echo "$part: restored, fixed files identical"
	rm -rf "$out"
}
