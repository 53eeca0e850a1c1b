#!/usr/bin/env bash
# tools/vm.sh: a throw-away qemu guest with device-mapper, for the tests that
# need LVM (this machine's kernel has no device-mapper; Debian's packaged
# kernel has dm-mod, dm-snapshot and dm-thin-pool as modules).
#
#   tools/vm.sh run SCRIPT [--disk SIZE_MB]... [--mem MB] [--smp N]
#                   [--timeout S] [--build DIR] [--log FILE] [--quiet]
#                   [--file SRC[:DEST]]... [--env NAME=VALUE]... [--keep]
#   tools/vm.sh shell [the same options]   an interactive bash in the guest
#   tools/vm.sh prepare [BUILD_DIR]        build the cache; print what it holds
#
# `run` boots Debian's kernel under `qemu-system-x86_64 -accel tcg` (software
# emulation: no KVM needed) with an initramfs made here, one virtio disk per
# --disk (sparse raw files in a temporary directory, /dev/vda, /dev/vdb, ...
# in the guest), and runs SCRIPT as root with bash inside, as the last step
# of /init. The serial console streams to stdout (--quiet: only on
# failure); --log FILE keeps it (--keep: the whole run directory). Exit
# status: the script's (from the guest's final "VM-EXIT <rc>" line); 124
# when --timeout (default 300 s from qemu's start) passes first; 1 when the
# guest stopped without that line; 77 (with "SKIP: reason" on stderr) when
# qemu, the kernel or busybox cannot be had here.
#
# In the guest: busybox (its applets), bash, lvm2 (udev-less lvm.conf),
# thin-provisioning-tools, e2fsprogs, xfsprogs, btrfs-progs, the modules for
# virtio, dm (snapshot, thin), ext4, xfs, btrfs and loop (already loaded),
# and the executables at the top of the build directory (default build/:
# snapship, snapship-agentd, gendata) in /build with their shared libraries.
# The script's environment: SNAPSHIP=/build/snapship GENDATA=/build/gendata
# SRC_DIR=/src (tests/lib.sh is there) VM_DISKS="/dev/vda ..." TEST_TMP
# (a fresh directory on the tmpfs /tmp), cwd /, plus each --env. --file
# copies a host file into the guest (DEST default: the same path).
#
# Cache (SNAPSHIP_VM_CACHE, default /var/cache/snapship-vm, kept across
# clones): the kernel and busybox packages (apt-get download, never
# installed on the host), the kernel and the module files extracted from it
# (keyed by the package version and the module list), and the base initramfs
# (an uncompressed cpio keyed by a hash of all its inputs: rebuilt only when
# one changed; the three newest are kept). Host
# packages it needs (qemu-system-x86, cpio, kmod, lvm2,
# thin-provisioning-tools, e2fsprogs, xfsprogs, btrfs-progs) are installed
# with apt-get when missing (root only).
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SELF=$SRC_DIR/tools/vm.sh
CACHE=${SNAPSHIP_VM_CACHE:-/var/cache/snapship-vm}
APT=(apt-get -q -o DPkg::Lock::Timeout=300)

HOST_PKGS=(qemu-system-x86 cpio kmod lvm2 thin-provisioning-tools e2fsprogs xfsprogs btrfs-progs
	util-linux bash)

# Modules loaded at boot, in this order after their dependencies (from the
# kernel's modules.dep). crc32c_generic first: libcrc32c, ext4 and btrfs ask
# the crypto API for "crc32c", and the guest has no modprobe helper for it.
MODULES=(virtio_pci virtio_blk virtio-rng crc32c_generic xxhash_generic libcrc32c
	dm-mod dm-bufio dm-persistent-data dm-snapshot dm-thin-pool loop ext4 xfs btrfs)

# Host programs copied into the guest with their libraries (symlinks to them
# too: lvm's pvcreate, lvcreate...; pdata_tools' thin_check...).
TOOLS=(/usr/bin/bash /usr/sbin/lvm /usr/sbin/dmsetup /usr/sbin/pdata_tools
	/usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/tune2fs /usr/sbin/dumpe2fs
	/usr/sbin/mkfs.xfs /usr/sbin/xfs_repair /usr/sbin/xfs_io /usr/sbin/xfs_freeze
	/usr/sbin/mkfs.btrfs /usr/bin/btrfs /usr/bin/lsblk /usr/sbin/blkid /usr/bin/findmnt
	/usr/bin/flock)

say() { echo "vm.sh: $*" >&2; }
die() {
	say "$*"
	exit 1
}
# skip REASON: this harness cannot run here (exit 77, the reason on stderr).
skip() {
	echo "SKIP: vm.sh: $*" >&2
	exit 77
}
now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

usage() {
	sed -n '6,10p' "$SELF" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# ---- host packages --------------------------------------------------------

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# host_packages: install what is missing from HOST_PKGS (as tests/lib.sh's
# need_pkg does); skip when that cannot be done.
host_packages() {
	local missing=() p
	for p in "${HOST_PKGS[@]}"; do
		installed "$p" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || skip "needs the packages ${missing[*]} (run as root to install them)"
	say "installing ${missing[*]} (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	"${APT[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
		{ "${APT[@]}" update >/dev/null 2>&1 &&
			"${APT[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } ||
		skip "apt-get install ${missing[*]} failed"
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86 installed but no qemu-system-x86_64"
}

# ---- packages downloaded into the cache (never installed) -----------------

# candidate PKG: "NAME VERSION" of the package apt would install for PKG (the
# versioned kernel package for linux-image-amd64); empty if apt knows none.
# The answer is kept in $CACHE until apt's lists change (apt-cache takes
# seconds on a busy machine).
candidate() {
	local pkg=$1 memo=$CACHE/candidate-$1 nv
	if [ -s "$memo" ] && [ "$memo" -nt /var/lib/apt/lists ]; then
		cat "$memo"
		return 0
	fi
	nv=$(apt_candidate "$pkg")
	if [ -n "$nv" ]; then
		echo "$nv" >"$memo.tmp" && mv "$memo.tmp" "$memo"
		echo "$nv"
	fi
	return 0
}

apt_candidate() {
	local pkg=$1 dep ver
	if [ "$pkg" = linux-image-amd64 ]; then
		dep=$(apt-cache depends "$pkg" 2>/dev/null |
			awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
		[ -n "$dep" ] || return 0
		pkg=$dep
	fi
	ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }')
	[ -n "$ver" ] && echo "$pkg $ver"
	return 0
}

# fetch PKG: the path of PKG's .deb in $CACHE/debs, downloaded if needed.
# Without apt (no lists, no network), the newest .deb already cached.
fetch() {
	local pkg=$1 nv name ver deb
	nv=$(candidate "$pkg")
	if [ -z "$nv" ] && [ "$(id -u)" -eq 0 ]; then
		"${APT[@]}" update >/dev/null 2>&1 || true
		nv=$(candidate "$pkg")
	fi
	mkdir -p "$CACHE/debs"
	if [ -z "$nv" ]; then
		name=$pkg
		[ "$pkg" = linux-image-amd64 ] && name='linux-image-[0-9]'
		deb=$(find "$CACHE/debs" -name "${name}*_amd64.deb" | sort -V | tail -n 1)
		[ -n "$deb" ] || skip "apt knows no package $pkg (apt-get update did not help) and none is cached in $CACHE/debs"
		echo "$deb"
		return 0
	fi
	read -r name ver <<<"$nv"
	deb=$CACHE/debs/${name}_${ver//:/%3a}_amd64.deb
	if [ ! -s "$deb" ]; then
		say "downloading $name $ver (apt-get download, into $CACHE/debs)"
		(cd "$CACHE/debs" && "${APT[@]}" download "$name=$ver" >/dev/null 2>&1) ||
			skip "apt-get download $name=$ver failed"
		[ -s "$deb" ] || skip "apt-get download $name=$ver made no $deb"
		# older versions of the same package are not needed any more
		find "$CACHE/debs" -name "${name}_*_amd64.deb" ! -name "$(basename "$deb")" -delete
	fi
	echo "$deb"
}

# ---- the kernel and its modules -------------------------------------------

# dfs_modules DEPFILE: the files of MODULES and their dependencies, in load
# order (dependencies first), relative to the modules directory.
dfs_modules() {
	awk -v want="${MODULES[*]}" '
		function norm(s) { gsub(/-/, "_", s); return s }
		function modname(p,   b) { b = p; sub(/.*\//, "", b); sub(/\.ko(\.[a-z]+)?$/, "", b); return norm(b) }
		function visit(m,   i, n, d) {
			if (m in seen) return
			seen[m] = 1
			n = split(deps[m], d, " ")
			for (i = n; i >= 1; i--) visit(modname(d[i]))
			print file[m]
		}
		{ f = $1; sub(/:$/, "", f); m = modname(f); file[m] = f
		  $1 = ""; deps[m] = $0 }
		END {
			nw = split(want, w, " ")
			for (j = 1; j <= nw; j++) {
				if (!(norm(w[j]) in file)) { print "missing module " w[j] > "/dev/stderr"; exit 1 }
				visit(norm(w[j]))
			}
		}' "$1"
}

# kernel: sets KDIR to $CACHE/kernel-<package version>-<module list hash>,
# which holds vmlinuz, modules/*.ko and modules/load.order.
kernel() {
	local deb base key tmp kver f
	deb=$(fetch linux-image-amd64) || exit $?
	base=$(basename "$deb" _amd64.deb)
	key=$(printf '%s\n' "${MODULES[@]}" | sha256sum | cut -c1-8)
	KDIR=$CACHE/kernel-$base-$key
	[ -f "$KDIR/.done" ] && return 0
	say "extracting the kernel and ${#MODULES[@]} modules from $(basename "$deb")"
	tmp=$(mktemp -d "$CACHE/tmp.XXXXXX")
	dpkg-deb -x "$deb" "$tmp/x" || { rm -rf "$tmp"; die "dpkg-deb -x $deb failed"; }
	kver=$(ls "$tmp/x/lib/modules")
	depmod -b "$tmp/x" "$kver" || { rm -rf "$tmp"; die "depmod of $kver failed"; }
	mkdir -p "$tmp/k/modules"
	cp "$tmp/x/boot/vmlinuz-$kver" "$tmp/k/vmlinuz"
	if ! dfs_modules "$tmp/x/lib/modules/$kver/modules.dep" >"$tmp/order"; then
		rm -rf "$tmp"
		die "the kernel $kver lacks a module (see above)"
	fi
	while IFS= read -r f; do
		case $f in
		*.ko) cp "$tmp/x/lib/modules/$kver/$f" "$tmp/k/modules/" ;;
		*.ko.xz) xz -dc "$tmp/x/lib/modules/$kver/$f" >"$tmp/k/modules/$(basename "$f" .xz)" ;;
		*.ko.zst) zstd -qdc "$tmp/x/lib/modules/$kver/$f" >"$tmp/k/modules/$(basename "$f" .zst)" ;;
		*) rm -rf "$tmp"; die "module $f: unknown compression" ;;
		esac
		basename "${f%.xz}" | sed 's/\.zst$//' >>"$tmp/k/modules/load.order"
	done <"$tmp/order"
	echo "$kver" >"$tmp/k/release"
	rm -rf "$KDIR"
	mv "$tmp/k" "$KDIR"
	rm -rf "$tmp"
	find "$CACHE" -maxdepth 1 -name 'kernel-*' ! -name "$(basename "$KDIR")" -exec rm -rf {} +
	touch "$KDIR/.done"
}

# ---- the base initramfs ---------------------------------------------------

# The guest's /init (busybox sh). Runs /etc/vm/script, reports its status.
# shellcheck disable=SC2016 # expanded in the guest
INIT_SH='#!/bin/sh
export PATH=/build:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
chmod 1777 /tmp	# on the rootfs (a tmpfs), so that --file can put files there
mount -t tmpfs tmpfs /run
mkdir -p /run/lvm /run/lock/lvm /var/tmp
echo
echo "VM-BOOT $(cut -d" " -f1 /proc/uptime)"
while read -r m; do
	insmod "/lib/modules/vm/$m" || echo "VM: insmod $m failed"
done </lib/modules/vm/load.order
echo "VM-MODULES $(cut -d" " -f1 /proc/uptime)"
. /etc/vm/env
n=0
while [ "$(ls /sys/block | grep -c "^vd")" -lt "$VM_NDISKS" ] && [ $n -lt 100 ]; do
	sleep 0.1
	n=$((n + 1))
done
mkdir -p "$TEST_TMP"
echo "VM-READY $(cut -d" " -f1 /proc/uptime)"
cd /
bash /etc/vm/script
rc=$?
cd /
sync
echo "VM-EXIT $rc"
poweroff -f
'

# udev-less LVM: no udev in the guest, no dmeventd, no lvmetad.
LVM_CONF='devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
	scan = [ "/dev" ]
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
}
global {
	event_activation = 0
}
'

# copy_elf ROOT FILE...: FILEs into ROOT at their paths, with the libraries
# ldd lists for them (symlinks stay symlinks, their targets come along).
copy_elf() {
	local root=$1 f t lib
	shift
	for f in "$@"; do
		[ -e "$root$f" ] || [ -L "$root$f" ] && continue
		if [ -L "$f" ]; then
			t=$(readlink "$f")
			mkdir -p "$root$(dirname "$f")"
			ln -s "$t" "$root$f"
			case $t in /*) ;; *) t=$(dirname "$f")/$t ;; esac
			copy_elf "$root" "$t"
			continue
		fi
		cp -L --parents "$f" "$root"
		while IFS= read -r lib; do
			[ -e "$root$lib" ] || cp -L --parents "$lib" "$root"
		done < <(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true)
	done
}

# tool_paths: TOOLS, and the symlinks in /usr/sbin and /usr/bin to them.
tool_paths() {
	local t
	for t in "${TOOLS[@]}"; do
		[ -e "$t" ] || die "$t is missing on the host (its package should have installed it)"
		echo "$t"
		find /usr/sbin /usr/bin -maxdepth 1 -lname "$(basename "$t")" 2>/dev/null
		find /usr/sbin /usr/bin -maxdepth 1 -lname "$t" 2>/dev/null
	done
	# mkfs.ext4 and friends are links or copies of mke2fs
	for t in /usr/sbin/mkfs.ext4 /usr/sbin/mkfs.ext2 /usr/sbin/fsck.ext4; do
		[ -e "$t" ] && echo "$t"
	done
	return 0
}

# build_bins DIR: the executables at the top of the build directory.
build_bins() {
	local f
	for f in "$1"/*; do
		[ -f "$f" ] && [ -x "$f" ] && echo "$f"
	done
	return 0
}

# manifest BUILD: one line per input of the base initramfs (path, size,
# mtime), so that its hash changes when any of them does.
manifest() {
	local build=$1 f
	{
		echo "$BB_DEB" "$KDIR"
		printf '%s\n' "$INIT_SH" "$LVM_CONF"
		sha256sum "$SELF"
		for f in $(tool_paths) $(build_bins "$build"); do
			echo "$f"
			ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true
		done | sort -u | while IFS= read -r f; do
			stat -L -c '%n %s %Y' "$f"
		done
	}
}

# base_initramfs BUILD: sets BASE to the cached base initramfs (all but the
# script and the build directory's executables), made if its inputs changed.
# Not compressed: the kernel unpacks a plain cpio (~90 MB) in less time under
# TCG than it takes to gunzip one (measured: 4 s of guest time to /init
# against 8 s with gzip -1).
base_initramfs() {
	local build=$1 hash root t0 bb
	BB_DEB=$(fetch busybox-static) || exit $?
	hash=$(manifest "$build" | sha256sum | cut -c1-16)
	BASE=$CACHE/initramfs-$hash.cpio
	[ -s "$BASE" ] && return 0
	t0=$(now)
	root=$(mktemp -d "$CACHE/tmp.XXXXXX")
	mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,tmp,run,root,mnt,etc/vm,lib/modules,build,src/tests}
	ln -s usr/bin "$root/bin"
	ln -s usr/sbin "$root/sbin"
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	bb=$(mktemp -d "$CACHE/tmp.XXXXXX")
	dpkg-deb -x "$BB_DEB" "$bb"
	cp "$bb/bin/busybox" "$root/usr/bin/busybox"
	rm -rf "$bb"
	# shellcheck disable=SC2046 # one path a word
	copy_elf "$root" $(tool_paths) $(ldd /usr/sbin/lvm | grep -o '/[^ ]*ld-linux[^ ]*')
	local dep
	for f in $(build_bins "$build"); do
		while IFS= read -r dep; do
			[ -e "$root$dep" ] || cp -L --parents "$dep" "$root"
		done < <(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true)
	done
	# busybox applets where the host's tools are not
	local a
	while IFS= read -r a; do
		a=/usr/${a#usr/}
		[ -e "$root$a" ] || [ -L "$root$a" ] || ln -s /usr/bin/busybox "$root$a"
	done < <("$root/usr/bin/busybox" --list-full)
	cp "$KDIR"/modules/*.ko "$KDIR/modules/load.order" "$root/lib/modules/" 2>/dev/null ||
		die "copying the modules from $KDIR failed"
	mkdir -p "$root/lib/modules/vm"
	mv "$root"/lib/modules/*.ko "$root/lib/modules/load.order" "$root/lib/modules/vm/"
	printf '%s' "$INIT_SH" >"$root/init"
	chmod 755 "$root/init"
	mkdir -p "$root/etc/lvm"
	printf '%s' "$LVM_CONF" >"$root/etc/lvm/lvm.conf"
	[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\n' >"$root/etc/group"
	ln -s /proc/self/mounts "$root/etc/mtab"
	[ "$(id -u)" -eq 0 ] && mknod -m 600 "$root/dev/console" c 5 1
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$BASE.tmp" ||
		die "cpio of the initramfs failed"
	rm -rf "$root"
	mv "$BASE.tmp" "$BASE"
	# keep the three newest (a debug build and a release build may alternate)
	find "$CACHE" -maxdepth 1 -name 'initramfs-*.cpio*' -printf '%T@ %p\n' |
		sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -f
	say "made $BASE ($(du -m "$BASE" | cut -f1) MB) in $(elapsed "$t0" "$(now)") s"
}

# prepare BUILD [COPY]: the cache, under a lock (runs may go on in
# parallel); COPY: where to copy the base initramfs while still locked.
prepare() {
	local build=$1 copy=${2:-}
	host_packages
	{ mkdir -p "$CACHE" 2>/dev/null && [ -w "$CACHE" ]; } ||
		skip "cannot write the cache directory $CACHE (SNAPSHIP_VM_CACHE names another)"
	exec 9>"$CACHE/lock"
	flock 9
	touch "$CACHE/lock"
	kernel
	base_initramfs "$build"
	touch "$BASE"
	[ -z "$copy" ] || cp "$BASE" "$copy"
	flock -u 9
	exec 9>&-
}

# ---- run ------------------------------------------------------------------

RUN_DIR=""
QPID=""
TPID=""	# the console streamer: tail, and sed (SPID) behind a fifo
SPID=""

stop_qemu() {
	if [ -n "$QPID" ]; then
		kill "$QPID" 2>/dev/null || true
		wait "$QPID" 2>/dev/null || true
		QPID=""
	fi
	# the streamer: tail ends by itself (--pid) once qemu is gone, after
	# the last of its output; then sed sees the end of the fifo
	local p
	for p in $TPID $SPID; do
		wait "$p" 2>/dev/null || true
	done
	TPID=""
	SPID=""
}

cleanup() {
	stop_qemu
	if [ -n "$RUN_DIR" ] && [ "${KEEP:-0}" = 1 ]; then
		say "kept $RUN_DIR (console, initrd, disk*.img)"
	elif [ -n "$RUN_DIR" ]; then
		rm -rf "$RUN_DIR"
	fi
	RUN_DIR=""
}

# quote VALUE: VALUE in single quotes for sh.
quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# run_archive SCRIPT BUILD OUT: the per-run initramfs part (the script, its
# environment, the build directory's executables, tests/lib.sh, --files).
run_archive() {
	local script=$1 build=$2 out=$3 root=$RUN_DIR/root f src dest kv i disks=""
	mkdir -p "$root/etc/vm" "$root/build" "$root/src/tests"
	cp "$script" "$root/etc/vm/script"
	for f in $(build_bins "$build"); do
		cp "$f" "$root/build/"
	done
	cp "$SRC_DIR/tests/lib.sh" "$root/src/tests/lib.sh"
	for f in "${FILES[@]}"; do
		src=${f%%:*}
		dest=${f#*:}
		[ "$f" = "$src" ] && dest=$src
		[ -e "$src" ] || die "--file $src: no such file"
		mkdir -p "$root$(dirname "$dest")"
		cp -a "$src" "$root$dest"
	done
	local letters=abcdefghijklmnop
	for ((i = 0; i < ${#DISKS[@]}; i++)); do
		disks+="${disks:+ }/dev/vd${letters:i:1}"
	done
	{
		echo "export SNAPSHIP=/build/snapship GENDATA=/build/gendata SRC_DIR=/src"
		echo "export TEST_TMP=/tmp/test VM_DISKS=$(quote "$disks") VM_NDISKS=${#DISKS[@]}"
		for kv in "${ENVS[@]}"; do
			echo "export ${kv%%=*}=$(quote "${kv#*=}")"
		done
	} >"$root/etc/vm/env"
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$out"
}

# clean_console: the serial console without its CRs and the firmware's
# terminal escapes.
clean_console() { sed -u 's/\r$//; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g'; }

# marker NAME: the value of the guest's last "NAME value" line, if any.
marker() {
	{ grep -a "^$1 " "$RUN_DIR/console" || true; } | tail -n 1 | tr -d '\r' | awk 'NF == 2 { print $2 }'
}

# parse_opts ARGS...: the options of run and shell into globals; the one
# non-option argument into SCRIPT.
parse_opts() {
	SCRIPT="" BUILD=$SRC_DIR/build MEM=1024 SMP=1 TIMEOUT=300 LOG="" QUIET=0 KEEP=0
	DISKS=() FILES=() ENVS=()
	while [ $# -gt 0 ]; do
		case $1 in
		--disk) DISKS+=("${2:?--disk needs a size in MB}"); shift ;;
		--mem) MEM=${2:?}; shift ;;
		--smp) SMP=${2:?}; shift ;;
		--timeout) TIMEOUT=${2:?}; shift ;;
		--build) BUILD=${2:?}; shift ;;
		--log) LOG=${2:?}; shift ;;
		--file) FILES+=("${2:?}"); shift ;;
		--env) ENVS+=("${2:?}"); shift ;;
		--quiet) QUIET=1 ;;
		--keep) KEEP=1 ;;
		-h | --help) usage ;;
		-*) say "unknown option $1"; usage ;;
		*) [ -z "$SCRIPT" ] || usage; SCRIPT=$1 ;;
		esac
		shift
	done
	[ -d "$BUILD" ] || die "no build directory $BUILD (run make first)"
	BUILD=$(cd "$BUILD" && pwd -P)
	local d
	for d in "${DISKS[@]}"; do
		[[ $d =~ ^[0-9]+$ ]] || die "--disk $d: a size in MB"
	done
	[ ${#DISKS[@]} -le 16 ] || die "at most 16 disks"
	[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout $TIMEOUT: seconds"
}

# setup_guest: the cache, the run directory (initrd, disks) and QEMU, the
# command line; traps that stop qemu and remove the run directory.
setup_guest() {
	trap cleanup EXIT
	trap 'cleanup; exit 129' HUP
	trap 'cleanup; exit 130' INT
	trap 'cleanup; exit 143' TERM
	RUN_DIR=$(mktemp -d /var/tmp/snapship-vm.XXXXXX)
	prepare "$BUILD" "$RUN_DIR/initrd"
	# the kernel unpacks both archives, one after the other: later files win
	run_archive "$SCRIPT" "$BUILD" "$RUN_DIR/run.cpio"
	cat "$RUN_DIR/run.cpio" >>"$RUN_DIR/initrd"
	QEMU=(qemu-system-x86_64 -accel tcg -M pc -cpu max -smp "$SMP" -m "$MEM"
		-nographic -nodefaults -no-user-config -no-reboot
		-kernel "$KDIR/vmlinuz" -initrd "$RUN_DIR/initrd"
		-append "console=ttyS0 quiet panic=-1"
		-device virtio-rng-pci)
	local i
	for ((i = 0; i < ${#DISKS[@]}; i++)); do
		truncate -s "${DISKS[i]}M" "$RUN_DIR/disk$i.img"
		QEMU+=(-drive "file=$RUN_DIR/disk$i.img,format=raw,if=virtio,cache=unsafe")
	done
}

# watch_guest: waits for the guest's VM-EXIT line, qemu's end or the
# timeout; sets RC (empty: no status came), T_READY, T_END.
watch_guest() {
	local t0=$1 i
	RC="" T_READY=""
	while kill -0 "$QPID" 2>/dev/null; do
		if [ -z "$T_READY" ] && grep -aq '^VM-READY' "$RUN_DIR/console"; then
			T_READY=$(now)
		fi
		RC=$(marker VM-EXIT)
		[ -n "$RC" ] && break
		(($(date +%s) - ${t0%.*} < TIMEOUT)) || break
		sleep 0.5
	done
	T_END=$(now)
	if [ -n "$RC" ]; then
		# it powers itself off; give it a moment before the kill
		for i in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$QPID" 2>/dev/null || break
			sleep 0.2
		done
	fi
	[ -n "$RC" ] || RC=$(marker VM-EXIT)
	[ -n "$T_READY" ] || ! grep -aq '^VM-READY' "$RUN_DIR/console" || T_READY=$T_END
}

cmd_run() {
	parse_opts "$@"
	[ -n "$SCRIPT" ] || usage
	[ -f "$SCRIPT" ] || die "no script $SCRIPT"
	setup_guest

	local t0 boot rc
	t0=$(now)
	: >"$RUN_DIR/console"
	"${QEMU[@]}" -serial stdio </dev/null >"$RUN_DIR/console" 2>&1 &
	QPID=$!
	if [ "$QUIET" = 0 ]; then
		mkfifo "$RUN_DIR/fifo"
		clean_console <"$RUN_DIR/fifo" &
		SPID=$!
		tail -n +1 -s 0.2 -f --pid="$QPID" "$RUN_DIR/console" >"$RUN_DIR/fifo" &
		TPID=$!
	fi
	watch_guest "$t0"
	stop_qemu
	rc=$RC
	[ -z "$LOG" ] || clean_console <"$RUN_DIR/console" >"$LOG"
	if [ -z "$rc" ] || [ "$rc" != 0 ]; then
		[ "$QUIET" = 0 ] || clean_console <"$RUN_DIR/console" | tail -n 60 >&2
	fi
	if [ -z "$rc" ]; then
		if (($(date +%s) - ${t0%.*} >= TIMEOUT)); then
			say "timed out after $TIMEOUT s (the guest's script did not finish)"
			rc=124
		else
			say "the guest stopped without reporting its script's status (no VM-EXIT line): see its console above"
			rc=1
		fi
	fi
	[ -n "$T_READY" ] && boot=$(elapsed "$t0" "$T_READY") || boot="?"
	say "boot $boot s (guest clock at the script's start: $(marker VM-READY) s)," \
		"wall $(elapsed "$t0" "$T_END") s, exit $rc"
	cleanup
	trap - EXIT HUP INT TERM
	return "$rc"
}

# shell: the same guest with an interactive bash on the console (qemu in
# the foreground; exit the shell to power off). For debugging.
cmd_shell() {
	parse_opts "$@"
	[ -z "$SCRIPT" ] || usage
	SCRIPT=$(mktemp /var/tmp/snapship-vm-shell.XXXXXX)
	printf '%s\n' 'echo "the guest: exit the shell to power off"' 'setsid cttyhack bash -l' >"$SCRIPT"
	setup_guest
	rm -f "$SCRIPT"
	"${QEMU[@]}" -serial mon:stdio || true
	cleanup
	trap - EXIT HUP INT TERM
}

cmd_prepare() {
	local build=${1:-$SRC_DIR/build}
	[ -d "$build" ] || die "no build directory $build (run make first)"
	prepare "$(cd "$build" && pwd -P)"
	echo "cache:     $CACHE"
	echo "kernel:    $KDIR ($(cat "$KDIR/release"))"
	echo "initramfs: $BASE ($(du -m "$BASE" | cut -f1) MB)"
}

case ${1:-} in
run) shift; cmd_run "$@" ;;
shell) shift; cmd_shell "$@" ;;
prepare) shift; cmd_prepare "$@" ;;
*) usage ;;
esac
