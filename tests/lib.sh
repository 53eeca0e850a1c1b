# shellcheck shell=bash
# Helpers for integration tests. Source it:   . "$SRC_DIR/tests/lib.sh"
#
# Environment given by tests/run.sh:
#   SNAPSHIP    the snapship binary under test
#   GENDATA     the dataset generator
#   TEST_BTRFS  mount point of a scratch btrfs (loop) filesystem (root only)
#   TEST_TMP    a fresh scratch directory for this test (removed afterwards)
#   SRC_DIR     the repository root
#
# Exit codes understood by the runner: 0 pass, 77 skip, anything else fail.
# Every helper works under `set -euo pipefail`.

# ---- verdicts -------------------------------------------------------------

# skip REASON: this test cannot run here.
skip() {
	echo "SKIP: $*"
	exit 77
}

# fail MSG: the test failed.
fail() {
	echo "FAIL: $*"
	exit 1
}

need_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
}

# need_cmd CMD...: skip unless every command is installed.
need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "needs $c"
	done
}

# need_pkg CMD PACKAGE: CMD, installing the Debian PACKAGE that has it when
# missing (as root, apt-get as tools/rgw.sh does); skip when that fails.
need_pkg() {
	local cmd=$1 pkg=$2 apt=(apt-get -q -o DPkg::Lock::Timeout=300)
	command -v "$cmd" >/dev/null 2>&1 && return 0
	[ "$(id -u)" -eq 0 ] || skip "needs $cmd (apt-get install $pkg)"
	echo "installing $pkg for $cmd (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	"${apt[@]}" install -y --no-install-recommends "$pkg" >/dev/null 2>&1 ||
		{ "${apt[@]}" update >/dev/null 2>&1 &&
			"${apt[@]}" install -y --no-install-recommends "$pkg" >/dev/null 2>&1; } ||
		skip "needs $cmd: apt-get install $pkg failed"
	command -v "$cmd" >/dev/null 2>&1 || skip "needs $cmd: $pkg installed but no $cmd"
}

# need_btrfs: skip unless $TEST_BTRFS is a mounted btrfs filesystem.
need_btrfs() {
	need_root
	[ -n "${TEST_BTRFS:-}" ] || skip "needs btrfs (TEST_BTRFS not set)"
	[ -d "$TEST_BTRFS" ] || skip "needs btrfs (TEST_BTRFS=$TEST_BTRFS is not a directory)"
	[ "$(stat -f -c %T "$TEST_BTRFS" 2>/dev/null)" = btrfs ] ||
		skip "needs btrfs (TEST_BTRFS=$TEST_BTRFS is not on btrfs)"
	command -v btrfs >/dev/null 2>&1 || skip "needs btrfs-progs"
}

# need_rgw: skip unless the runner started the S3 object store (Ceph RGW,
# tools/rgw.sh); then its variables (RGW_EAST_ENDPOINT, RGW_WEST_ENDPOINT,
# RGW_ACCESS_KEY_ID, RGW_SECRET_ACCESS_KEY, RGW_REGION, RGW_BUCKET, the HTTPS
# ones RGW_EAST_TLS_ENDPOINT, RGW_WEST_TLS_ENDPOINT, RGW_CA_FILE, ...) are
# set.  The runner starts the store only for tests with a line starting
# "need_rgw".
need_rgw() {
	need_root
	[ -n "${RGW_ENV:-}" ] && [ -f "$RGW_ENV" ] ||
		skip "needs the S3 object store (tools/rgw.sh did not start, or not run by tests/run.sh)"
	# shellcheck disable=SC1090
	. "$RGW_ENV"
}

# mk_subvol NAME: create the btrfs subvolume $TEST_BTRFS/NAME; prints its path.
mk_subvol() {
	local path="${TEST_BTRFS:?need_btrfs first}/$1" out
	out=$(btrfs subvolume create "$path" 2>&1) ||
		fail "mk_subvol $1: btrfs subvolume create $path: $out"
	echo "$path"
}

# ---- tree comparison ------------------------------------------------------

# Where helpers keep temporary files: the test's scratch dir when there is
# one (the runner removes it even if the test is killed).
_lib_tmpdir() {
	if [ -n "${TEST_TMP:-}" ] && [ -d "$TEST_TMP" ]; then
		echo "$TEST_TMP"
	else
		echo "${TMPDIR:-/tmp}"
	fi
}

# tree_manifest DIR: a sorted, deterministic description of every entry
# under DIR (DIR itself is left out unless TREE_MANIFEST_ROOT=1), one entry
# per line, so that two trees are identical byte for byte and metadata for
# metadata exactly when their manifests are:
#
#   E <path> type=<f|d|l|p|s|b|c> mode=<octal> uid=<n> gid=<n> mtime=<s.ns>
#     [size=<n> sha256=<hex> sparse=<0|1> link=<first path of its hard-link group>]
#     [target=<symlink target>] [rdev=<major>:<minor>]
#   X <path> <xattr name>=<value>       (getfattr -d; ACLs and security.selinux left out)
#   A <path> <acl entry>                (getfacl -n, extended ACLs only)
#
# Paths are relative to DIR and shell-quoted (printf %q) in E lines; X and A
# lines use getfattr/getfacl's own quoting. Hard links are shown by group,
# not inode number: a file with more than one name inside DIR gets
# link=<its first name in sorted order>, so copies compare equal. Sizes are
# left out for directories (they depend on the filesystem), and atime/ctime
# are never compared. sparse=1 means at least 4 KiB less allocated than the
# size (st_blocks * 512 + 4096 <= size): the file has holes.
tree_manifest() {
	local dir=${1:?usage: tree_manifest DIR}
	[ -d "$dir" ] || fail "tree_manifest: $dir is not a directory"
	(
		set -euo pipefail
		export LC_ALL=C
		cd "$dir" || exit 1
		local root=${TREE_MANIFEST_ROOT:-0} mindepth=1
		[ "$root" = 1 ] && mindepth=0

		local tmp
		tmp=$(mktemp -d -p "$(_lib_tmpdir)") || exit 1
		# shellcheck disable=SC2064 # expand now: $tmp is local
		trap "rm -rf '$tmp'" EXIT

		# Content hashes, keyed by relative path, computed in parallel: big
		# files one per process, small ones in batches. Each sha256sum writes
		# its own file, so records never interleave.
		local jobs sum_cmd
		jobs=$(nproc 2>/dev/null || echo 2)
		# shellcheck disable=SC2016 # expanded by sh -c
		sum_cmd='out=$(mktemp "$0/sha.XXXXXX") && exec sha256sum -z -- "$@" >"$out"'
		find . -mindepth 1 -type f -size +1024k -printf './%P\0' |
			xargs -0 -r -n 1 -P "$jobs" sh -c "$sum_cmd" "$tmp"
		find . -mindepth 1 -type f ! -size +1024k -printf './%P\0' |
			xargs -0 -r -n 512 -P "$jobs" sh -c "$sum_cmd" "$tmp"
		cat /dev/null "$tmp"/sha.* >"$tmp/sha" 2>/dev/null || true
		declare -A sha=()
		local -a recs=()
		local rec name
		mapfile -d '' -t recs <"$tmp/sha"
		for rec in "${recs[@]}"; do
			name=${rec:66}		# "<64 hex>  ./<path>"
			sha["${name#./}"]=${rec:0:64}
		done

		# Every entry: 11 NUL-terminated fields, see the -printf format.
		find . -mindepth "$mindepth" \
			-printf '%P\0%y\0%m\0%U\0%G\0%s\0%T@\0%l\0%D:%i\0%n\0%b\0' >"$tmp/entries"
		mapfile -d '' -t recs <"$tmp/entries"
		local -a paths=() lines=()
		declare -A first_of=() count_of=()
		local p y m u g s t l di n b key line mode q i
		for ((i = 0; i + 10 < ${#recs[@]}; i += 11)); do
			p=${recs[i]} y=${recs[i + 1]} m=${recs[i + 2]} u=${recs[i + 3]}
			g=${recs[i + 4]} s=${recs[i + 5]} t=${recs[i + 6]} l=${recs[i + 7]}
			di=${recs[i + 8]} n=${recs[i + 9]} b=${recs[i + 10]}
			[ -z "$p" ] && p=.
			printf -v mode '%04o' "$((8#$m))"
			# %T@ has 10 fractional digits; the 10th is always 0.
			line="type=$y mode=$mode uid=$u gid=$g mtime=${t%?}"
			case $y in
			f)
				line+=" size=$s sha256=${sha[$p]:-unreadable}"
				# A hole of at least one 4 KiB block (so inline or tail-packed
				# small files do not count as sparse).
				if ((b * 512 + 4096 <= s)); then line+=" sparse=1"; else line+=" sparse=0"; fi
				if ((n > 1)); then
					key=$di
					count_of[$key]=$((${count_of[$key]:-0} + 1))
					if [ -z "${first_of[$key]:-}" ] || [[ $p < ${first_of[$key]} ]]; then
						first_of[$key]=$p
					fi
					line+=" @ino=$key"
				fi
				;;
			l)
				printf -v q '%q' "$l"
				line+=" target=$q"
				;;
			b | c)
				line+=" rdev=$(stat -c '%Hr:%Lr' -- "$p")"
				;;
			esac
			paths+=("$p")
			lines+=("$line")
		done
		unset recs sha

		local i
		for i in "${!paths[@]}"; do
			line=${lines[$i]}
			if [[ $line == *" @ino="* ]]; then
				key=${line##* @ino=}
				line=${line% @ino=*}
				if [ "${count_of[$key]}" -gt 1 ]; then
					printf -v q '%q' "${first_of[$key]}"
					line+=" link=$q"
				fi
			fi
			printf 'E %q %s\n' "${paths[$i]}" "$line"
		done

		# Extended attributes. getfattr prints "# file: NAME", then NAME=VALUE lines.
		if command -v getfattr >/dev/null 2>&1; then
			getfattr -R -P -h -d -m - --absolute-names . 2>/dev/null |
				awk -v root="$root" '
					/^# file: / { f = substr($0, 9); sub(/^\.\//, "", f); next }
					/^$/ { next }
					/^(system\.posix_acl_(access|default)|security\.selinux)=/ { next }
					{ if (f != "." || root == 1) print "X " f " " $0 }
				' || true
		fi

		# Extended ACLs (files with only the base entries are skipped by -s).
		if command -v getfacl >/dev/null 2>&1; then
			getfacl -R -P -s -p -n -E . 2>/dev/null |
				awk -v root="$root" '
					/^# file: / { f = substr($0, 9); sub(/^\.\//, "", f); next }
					/^#/ || /^$/ { next }
					{ if (f != "." || root == 1) print "A " f " " $0 }
				' || true
		fi
	) | LC_ALL=C sort
	# The subshell result is the pipeline's first status under pipefail.
	return "${PIPESTATUS[0]}"
}

# assert_trees_equal A B: fail, showing the difference, unless the trees match.
assert_trees_equal() {
	local a=${1:?usage: assert_trees_equal A B} b=${2:?usage: assert_trees_equal A B}
	local ma mb
	ma=$(mktemp -p "$(_lib_tmpdir)") || fail "assert_trees_equal: mktemp failed"
	mb=$(mktemp -p "$(_lib_tmpdir)") || fail "assert_trees_equal: mktemp failed"
	if ! tree_manifest "$a" >"$ma"; then
		rm -f "$ma" "$mb"
		fail "assert_trees_equal: cannot list $a"
	fi
	if ! tree_manifest "$b" >"$mb"; then
		rm -f "$ma" "$mb"
		fail "assert_trees_equal: cannot list $b"
	fi
	if ! diff -u --label "$a" --label "$b" "$ma" "$mb" >"$ma.diff"; then
		head -n 200 "$ma.diff"
		local n
		n=$(grep -c '^[-+][^-+]' "$ma.diff" || true)
		rm -f "$ma" "$mb" "$ma.diff"
		fail "trees differ: $a vs $b ($n manifest lines differ, diff above)"
	fi
	rm -f "$ma" "$mb" "$ma.diff"
}

# ---- snapshot leftovers ---------------------------------------------------

# no_snapship_snapshots DIR: fail if a subvolume or directory named
# snapship-* exists under DIR (a snapshot snapship should have released).
no_snapship_snapshots() {
	local dir=${1:?usage: no_snapship_snapshots DIR} found=""
	if [ "$(stat -f -c %T "$dir" 2>/dev/null)" = btrfs ] && command -v btrfs >/dev/null 2>&1; then
		found=$(btrfs subvolume list -o "$dir" 2>/dev/null |
			awk '{ p = $NF; n = p; sub(/.*\//, "", n); if (n ~ /^snapship-/) print "subvolume " p }' || true)
		found+=$'\n'
	fi
	found+=$(find "$dir" -maxdepth 3 -name 'snapship-*' -print 2>/dev/null || true)
	found=$(printf '%s\n' "$found" | sed '/^$/d' | sort -u)
	[ -z "$found" ] || fail "leftover snapship snapshots under $dir: $(echo "$found" | tr '\n' ' ')"
}

# ---- S3 regions and stored objects ------------------------------------------

# rgw_region NAME [KEY=VALUE...]: a [region NAME] section on the harness's
# RGW (need_rgw first): store, endpoint (east), bucket ($RGW_BUCKET),
# sigv4_region and the S3 user's credentials, each replaced by a KEY=VALUE
# of the same key; other KEY=VALUEs follow (prefix=..., primary=yes, ...).
rgw_region() {
	local name=${1:?usage: rgw_region NAME [KEY=VALUE...]} kv k
	shift
	local -A v=([store]=s3 [endpoint]=${RGW_EAST_ENDPOINT:?need_rgw first} [bucket]=$RGW_BUCKET
		[sigv4_region]=$RGW_REGION [access_key_id]=$RGW_ACCESS_KEY_ID
		[secret_access_key_file]=$RGW_SECRET_ACCESS_KEY_FILE)
	local order=(store endpoint bucket sigv4_region access_key_id secret_access_key_file)
	for kv in "$@"; do
		k=${kv%%=*}
		[ -n "${v[$k]+set}" ] || order+=("$k")
		v[$k]=${kv#*=}
	done
	printf '[region %s]\n' "$name"
	for k in "${order[@]}"; do
		printf '%s = %s\n' "$k" "${v[$k]}"
	done
}

# corrupt_frames FILE [OUT]: flip one byte every 4 KiB of the first half of
# a stored data object (its frames, not the seek table at the end), size
# kept; into OUT, else in place.
corrupt_frames() {
	python3 - "${1:?usage: corrupt_frames FILE [OUT]}" "${2:-$1}" <<-'PY'
		import sys
		b = bytearray(open(sys.argv[1], "rb").read())
		for off in range(1000, len(b) // 2, 4096):
		    b[off] ^= 0xff
		open(sys.argv[2], "wb").write(bytes(b))
	PY
}

# vm_run SCRIPT [OPTION...]: SCRIPT run by bash as root in the qemu guest
# with device-mapper (tools/vm.sh run: --disk MB, --timeout S, --log FILE,
# --env NAME=VALUE, --file SRC[:DEST], ...; the build directory is
# $BUILD_DIR). Returns the script's exit status; a test that cannot have the
# guest here exits 77 (tools/vm.sh printed the reason, "SKIP: vm.sh: ...").
vm_run() {
	local rc=0
	bash "$SRC_DIR/tools/vm.sh" run "$@" --build "${BUILD_DIR:-$SRC_DIR/build}" || rc=$?
	[ "$rc" -ne 77 ] || exit 77
	return "$rc"
}

# vm_lvm_run BODY [OPTION...]: vm_run of the guest script BODY (a file)
# after "set -euo pipefail" and the LVM tests' guest helpers
# (tests/tools/lvm_guest.sh, sourced from /src/lvm_guest.sh).
vm_lvm_run() {
	local body=${1:?usage: vm_lvm_run BODY [OPTION...]} script
	shift
	script=$(_lib_tmpdir)/guest-$(basename "$body")
	{
		echo 'set -euo pipefail'
		echo '. /src/lvm_guest.sh'
		cat "$body"
	} >"$script"
	vm_run "$script" --file "$SRC_DIR/tests/tools/lvm_guest.sh:/src/lvm_guest.sh" "$@"
}

# mk_race_tree DIR: a tree whose walk is long after its first big read —
# 0big.bin (12 MiB, first in walk order), then d/ with 6000 small files with
# a random 64-byte xattr each (their index entries fill well over 512 KiB):
# for tests that change a parent's index while a backup's pass 2 reads it.
mk_race_tree() {
	python3 - "${1:?usage: mk_race_tree DIR}" <<-'PY' || fail "cannot make the race tree in $1"
		import os, sys
		root = sys.argv[1]
		with open(os.path.join(root, '0big.bin'), 'wb') as f:
		    f.write(os.urandom(12 << 20))
		os.mkdir(os.path.join(root, 'd'))
		for i in range(6000):
		    p = os.path.join(root, 'd', 'f%05d' % i)
		    with open(p, 'wb') as f:
		        f.write(os.urandom(32))
		    os.setxattr(p, 'user.r', os.urandom(64))
	PY
}
