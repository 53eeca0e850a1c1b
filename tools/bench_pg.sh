#!/usr/bin/env bash
# Impact of a backup on a live database (issue 12, doc/BENCHMARKS.md):
# PostgreSQL 15 (Debian's postgresql-15) whose data directory is a btrfs
# subvolume (the partition) on a loop btrfs, under pgbench (TPC-B like,
# CLIENTS clients, DURATION seconds per run), in interleaved rounds of:
#
#   alone     pgbench only
#   snapship  pgbench while `snapship backup` of the partition runs in a loop
#             (the agent's defaults: low_impact = adaptive)
#   off       the same with `[agent] low_impact = off` (fixed priorities only)
#   cgroup    adaptive, watching the cluster's own cgroup (pressure_cgroup: the
#             cluster is moved into a cgroup v2 of its own)
#   peer      pgbench while `btrfs subvolume snapshot -r` + `tar | zstd -T0 -3`
#             runs in a loop
#
# Per mode: median TPS, median p99 latency (from pgbench's per-transaction
# log), their ratios to alone, and the backups' own wall times.  Then the page
# cache left behind by a backup that began cold.
#
#   bash tools/bench_pg.sh [BUILD_DIR]          (needs root; make first)
#
# Environment:
#   SCALE=200        pgbench -i -s SCALE (5.5 GB with its WAL at 200)
#   DURATION=30      seconds of each pgbench run
#   ROUNDS=3         interleaved rounds (each runs every mode once)
#   CLIENTS=4        pgbench clients (and threads)
#   MODES="alone snapship off cgroup peer"
#   BENCH_DIR=/var/tmp   where the sparse loop image lives
#   PG_PORT=54329    the private cluster's port (socket in a private dir)
#
# A backup loop keeps running after pgbench ends until its current backup
# completes (so every round yields at least one backup wall time), then the
# next mode starts.  Exit 0 when the benchmark ran; cleans up after itself
# (postgres by pg_ctl stop, backup loops by pid, the mount, the loop device).
set -euo pipefail

B=${1:-build}
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
SNAPSHIP=$SRC_DIR/$B/snapship
SCALE=${SCALE:-200}
DURATION=${DURATION:-30}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-4}
MODES=${MODES:-alone snapship off cgroup peer}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
PG_PORT=${PG_PORT:-54329}
PGBIN=/usr/lib/postgresql/15/bin

die() { echo "bench_pg: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root (loop btrfs, snapshots, drop_caches)"
for v in SCALE DURATION ROUNDS CLIENTS; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[ -x "$SNAPSHIP" ] || die "no $SNAPSHIP: run make first"
if [ ! -x "$PGBIN/pg_ctl" ] || ! command -v pgbench >/dev/null 2>&1; then
	log "installing postgresql-15 (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt=(apt-get -q -o DPkg::Lock::Timeout=300)
	"${apt[@]}" install -y --no-install-recommends postgresql-15 postgresql-client-15 >&2 ||
		{ "${apt[@]}" update >&2 && "${apt[@]}" install -y --no-install-recommends postgresql-15 postgresql-client-15 >&2; } ||
		die "apt-get install postgresql-15 failed"
fi
for c in btrfs mkfs.btrfs losetup zstd tar awk runuser fincore; do
	command -v "$c" >/dev/null 2>&1 || die "needs $c"
done

WORK=$(mktemp -d "$BENCH_DIR/snapship-bench-pg.XXXXXX")
MNT=$WORK/mnt
SOCK=$WORK/sock
LOOP=
CG=
MCG=
LOOP_PID=
PG_UP=0

pg() { runuser -u postgres -- "$@"; }

stop_loop() {
	[ -n "$LOOP_PID" ] || return 0
	kill -TERM -- "-$LOOP_PID" 2>/dev/null || true
	wait "$LOOP_PID" 2>/dev/null || true
	LOOP_PID=
}

cleanup() {
	local rc=$?

	trap - EXIT INT TERM
	stop_loop
	[ "$PG_UP" = 1 ] && pg "$PGBIN/pg_ctl" -D "$MNT/pg" -m fast -w stop >/dev/null 2>&1
	for d in "$CG" "$MCG"; do
		[ -n "$d" ] && [ -d "$d" ] && { rmdir "$d" 2>/dev/null || true; }
	done
	if mountpoint -q "$MNT" 2>/dev/null; then
		for s in "$MNT"/peer-snap "$MNT"/pg/.snapship*; do
			[ -e "$s" ] && btrfs subvolume delete "$s" >/dev/null 2>&1
		done
		umount "$MNT" 2>/dev/null || { sleep 2; umount "$MNT"; } || umount -l "$MNT"
	fi
	[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the partition: a subvolume on a loop btrfs, a cluster in it ----------
mkdir -p "$MNT" "$SOCK" "$WORK/state" "$WORK/logs"
truncate -s 24G "$WORK/btrfs.img"
mkfs.btrfs -q "$WORK/btrfs.img" >/dev/null 2>&1 || die "mkfs.btrfs failed"
LOOP=$(losetup --find --show --direct-io=on "$WORK/btrfs.img" 2>/dev/null) ||
	LOOP=$(losetup --find --show "$WORK/btrfs.img")
mount "$LOOP" "$MNT"
btrfs subvolume create "$MNT/pg" >/dev/null
chown postgres: "$MNT/pg" "$SOCK" "$WORK/logs"
chmod 700 "$MNT/pg"
chmod 755 "$WORK"
pg "$PGBIN/initdb" -D "$MNT/pg" -A trust -U postgres >/dev/null
cat >>"$MNT/pg/postgresql.conf" <<EOF
listen_addresses = ''
port = $PG_PORT
unix_socket_directories = '$SOCK'
max_wal_size = 4GB
EOF
pg "$PGBIN/pg_ctl" -D "$MNT/pg" -l "$WORK/logs/postgres.log" -w start >/dev/null
PG_UP=1
PSQL=(pg psql -q -h "$SOCK" -p "$PG_PORT" -d postgres)
PGB=(pg pgbench -h "$SOCK" -p "$PG_PORT")

# The database's own cgroup (v2), so the adaptive mode can watch its pressure
# rather than the whole host's (which includes the backup's own stalls).
case " $MODES " in
*" cgroup "*)
	for u in /sys/fs/cgroup/unified /sys/fs/cgroup; do
		[ -f "$u/cgroup.procs" ] && [ -f "$u/io.pressure" ] && { CG=$u/snapship-bench-pg.$$; break; }
	done
	[ -n "$CG" ] || die "mode cgroup: no cgroup v2 hierarchy with PSI (io.pressure)"
	mkdir "$CG"
	pm=$(head -1 "$MNT/pg/postmaster.pid")
	for p in $pm $(pgrep -P "$pm"); do
		echo "$p" >"$CG/cgroup.procs"
	done
	;;
esac

log "pgbench -i -s $SCALE"
"${PGB[@]}" -i -q -s "$SCALE" postgres >/dev/null 2>&1 || die "pgbench -i failed"
DATA_BYTES=$(du -sb "$MNT/pg" | awk '{print $1}')
log "partition: $((DATA_BYTES / 1048576)) MiB"

for m in snapship off cgroup; do
	{
		printf '[agent]\nhost = bench\nstate_dir = %s\n' "$WORK/state"
		[ "$m" = off ] && echo "low_impact = off"
		[ "$m" = cgroup ] && echo "pressure_cgroup = $CG"
		printf '[partition pg]\npath = %s\n' "$MNT/pg"
	} >"$WORK/$m.conf"
done

# --- backup loops (own process group; walls appended to a file) ------------
snapship_loop() {   # CONF WALLS
	local i=0 t0 t1
	while [ ! -e "$WORK/stop" ]; do
		i=$((i + 1))
		mkdir -p "$MNT/store.$i"
		t0=$(date +%s.%N)
		"$SNAPSHIP" --config "$1" backup pg --to "$MNT/store.$i" >/dev/null ||
			{ echo "bench_pg: snapship backup failed (see above)" >&2; rm -rf "$MNT/store.$i"; return 0; }
		t1=$(date +%s.%N)
		echo "$t0 $t1" | awk '{printf "%.1f\n", $2 - $1}' >>"$2"
		rm -rf "$MNT/store.$i"
	done
}

peer_loop() {   # WALLS
	local t0 t1
	while [ ! -e "$WORK/stop" ]; do
		t0=$(date +%s.%N)
		btrfs subvolume snapshot -r "$MNT/pg" "$MNT/peer-snap" >/dev/null
		tar -C "$MNT/peer-snap" -cf - . | zstd -q -T0 -3 >"$MNT/peer.tar.zst"
		btrfs subvolume delete "$MNT/peer-snap" >/dev/null
		t1=$(date +%s.%N)
		echo "$t0 $t1" | awk '{printf "%.1f\n", $2 - $1}' >>"$1"
		rm -f "$MNT/peer.tar.zst"
	done
}

start_loop() {   # MODE WALLS
	rm -f "$WORK/stop"
	case $1 in
	snapship | off | cgroup) setsid bash -c "$(declare -f snapship_loop); WORK=$WORK MNT=$MNT SNAPSHIP=$SNAPSHIP snapship_loop $WORK/$1.conf $2" & ;;
	peer) setsid bash -c "$(declare -f peer_loop); WORK=$WORK MNT=$MNT peer_loop $2" & ;;
	esac
	LOOP_PID=$!
}

# wait for the loop's current backup to complete (at most 300 s), then stop it
finish_loop() {
	local i
	touch "$WORK/stop"
	for i in $(seq 300); do
		kill -0 "$LOOP_PID" 2>/dev/null || break
		sleep 1
	done
	stop_loop
	rm -rf "$MNT"/store.* "$MNT/peer.tar.zst"
	[ -e "$MNT/peer-snap" ] && btrfs subvolume delete "$MNT/peer-snap" >/dev/null 2>&1
	return 0
}

psi_total() { awk '/^some/ {sub("total=", "", $5); print $5}' "/proc/pressure/$1"; }

# one pgbench run: prints "TPS P99_MS"
run_pgbench() {   # TAG
	local dir=$WORK/logs/$1 tps
	mkdir -p "$dir"
	chown postgres: "$dir"
	"${PSQL[@]}" -c CHECKPOINT
	tps=$(cd "$dir" && "${PGB[@]}" -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" -l \
		--log-prefix="$dir/tx" postgres 2>/dev/null |
		awk '/^tps = / {print $3; exit}')
	[ -n "$tps" ] || die "pgbench run $1 failed"
	# per-transaction log: client tx latency_us script epoch epoch_us
	cat "$dir"/tx.* | awk '{print $3}' | sort -n |
		awk -v tps="$tps" '{v[NR] = $1} END {i = int(NR * 0.99); if (i < 1) i = 1;
			printf "%s %.2f\n", tps, v[i] / 1000}'
	rm -rf "$dir"
}

median() { sort -g | awk '{v[NR] = $1} END {if (!NR) {print "-"; exit}
	if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

log "warm-up ($DURATION s)"
run_pgbench warmup >/dev/null
: >"$WORK/results"
for r in $(seq "$ROUNDS"); do
	for m in $MODES; do
		log "round $r/$ROUNDS: $m"
		[ "$m" = alone ] || start_loop "$m" "$WORK/walls.$m"
		io0=$(psi_total io) cpu0=$(psi_total cpu)
		res=$(run_pgbench "$m.$r")
		io1=$(psi_total io) cpu1=$(psi_total cpu)
		[ "$m" = alone ] || finish_loop
		echo "$m $res $(awk -v a="$io0" -v b="$io1" -v c="$cpu0" -v d="$cpu1" -v t="$DURATION" \
			'BEGIN {printf "%.1f %.1f", (b - a) / t / 1e4, (d - c) / t / 1e4}')" >>"$WORK/results"
		log "  $(tail -1 "$WORK/results")"
	done
done

# --- the page cache a backup that began cold leaves behind -----------------
log "page cache after a cold backup (postgres stopped)"
pg "$PGBIN/pg_ctl" -D "$MNT/pg" -m fast -w stop >/dev/null
PG_UP=0
sync
echo 3 >/proc/sys/vm/drop_caches
mkdir -p "$MNT/store.cold"
# the page cache the backup itself brings in is charged to a memory cgroup
# (v1) of its own: other jobs on the host do not count
if [ -f /sys/fs/cgroup/memory/cgroup.procs ]; then
	MCG=/sys/fs/cgroup/memory/snapship-bench-pg.$$
	mkdir "$MCG"
fi
cached0=$(awk '/^Cached:/ {print $2 * 1024}' /proc/meminfo)
(
	[ -n "$MCG" ] && echo "$BASHPID" >"$MCG/cgroup.procs"
	exec "$SNAPSHIP" --config "$WORK/snapship.conf" backup pg --to "$MNT/store.cold" >/dev/null
)
cached1=$(awk '/^Cached:/ {print $2 * 1024}' /proc/meminfo)
charged=-1
[ -n "$MCG" ] && charged=$(awk '$1 == "cache" {print $2}' "$MCG/memory.stat")
# the backup's own output (the store is on the same filesystem) is not the partition's data
store_res=$(find "$MNT/store.cold" -type f -print0 | xargs -0 fincore -b -n -r -o RES 2>/dev/null |
	awk '{s += $1} END {print s + 0}')
live_res=$(find "$MNT/pg" -type f -print0 | xargs -0 fincore -b -n -r -o RES 2>/dev/null |
	awk '{s += $1} END {print s + 0}')
rm -rf "$MNT/store.cold"

# --- report ------------------------------------------------------------------
echo "snapship impact on a live database: PostgreSQL 15, pgbench -c $CLIENTS -j $CLIENTS -T $DURATION (TPC-B like), scale $SCALE ($((DATA_BYTES / 1048576)) MiB), $ROUNDS interleaved rounds"
echo "host: $(nproc) CPUs, $(uname -r), loop btrfs on $(df --output=source "$BENCH_DIR" | tail -1), load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "$CG" ] && echo "adaptive mode watches the cluster's cgroup $CG"
printf '%-9s %9s %7s %9s %7s %9s %9s  %s\n' mode "TPS" "ratio" "p99 ms" "ratio" "io some%" "cpu some%" "backup wall s (median, n)"
base_tps=$(awk '$1 == "alone" {print $2}' "$WORK/results" | median)
base_p99=$(awk '$1 == "alone" {print $3}' "$WORK/results" | median)
for m in $MODES; do
	tps=$(awk -v m="$m" '$1 == m {print $2}' "$WORK/results" | median)
	p99=$(awk -v m="$m" '$1 == m {print $3}' "$WORK/results" | median)
	io=$(awk -v m="$m" '$1 == m {print $4}' "$WORK/results" | median)
	cpu=$(awk -v m="$m" '$1 == m {print $5}' "$WORK/results" | median)
	wall=-
	if [ -s "$WORK/walls.$m" ]; then
		wall="$(median <"$WORK/walls.$m") ($(wc -l <"$WORK/walls.$m"): $(tr '\n' ' ' <"$WORK/walls.$m"))"
	fi
	printf '%-9s %9.1f %7.2f %9.2f %7.2f %9s %9s  %s\n' "$m" "$tps" \
		"$(awk -v a="$tps" -v b="$base_tps" 'BEGIN {print a / b}')" "$p99" \
		"$(awk -v a="$p99" -v b="$base_p99" 'BEGIN {print a / b}')" "$io" "$cpu" "$wall"
done
echo "runs (mode TPS p99_ms io_some% cpu_some%):"
sed 's/^/  /' "$WORK/results"
awk -v a="$cached0" -v b="$cached1" -v d="$DATA_BYTES" -v l="$live_res" -v s="$store_res" -v c="$charged" 'BEGIN {
	printf "page cache after a cold backup of the %.0f MiB partition (goal: <= 5 %% of it left behind):\n", d / 1048576
	if (c >= 0)
		printf "  charged to the backup'"'"'s memory cgroup: %.0f MiB, of which its output in the store %.0f MiB; the rest %.0f MiB = %.1f %% of the partition\n",
			c / 1048576, s / 1048576, (c - s) / 1048576, (c - s) * 100 / d
	printf "  host Cached grew %.0f MiB (other jobs included); the live files resident: %.1f %%\n", (b - a) / 1048576, l * 100 / d}'
