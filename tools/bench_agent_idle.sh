#!/usr/bin/env bash
# The agent's cost between backups (issue 12, Figures): CPU share and memory
# of `snapship agent` while it waits for the next due backup. The process
# `snapship agent` becomes is the supervisor snapship-agentd (design "The
# daemon"): it is what is sampled, and each sample says whether a worker
# (`snapship agent --worker`, its child) is present and, if so, its VmRSS.
#
#   bash tools/bench_agent_idle.sh [BUILD_DIR] [SECONDS]
#
# Makes a loop btrfs with one partition (GENDATA_MB of JSON, default 64),
# starts the agent (interval 1h, metrics_file set, a directory store), waits
# for its first backup to commit, then samples the idle agent for SECONDS
# (default 120): CPU ticks (utime+stime), VmRSS, RssAnon, RssFile and PSS
# (smaps_rollup), at the start and the end of the window. Stops the agent
# (SIGTERM) and removes everything it made.
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-120}
GENDATA_MB=${GENDATA_MB:-64}
SNAPSHIP=$(realpath "$BUILD/snapship")
GENDATA=$(realpath "$BUILD/gendata")
[ "$(id -u)" = 0 ] || { echo "needs root (loop btrfs)" >&2; exit 2; }
WORK=$(mktemp -d /var/tmp/snapship-idle.XXXXXX)
MNT=$WORK/mnt LOOP="" APID=""
cleanup() {
	[ -n "$APID" ] && kill -TERM "$APID" 2>/dev/null && wait "$APID" 2>/dev/null
	if mountpoint -q "$MNT" 2>/dev/null; then
		btrfs subvolume delete "$MNT"/.snapship/* >/dev/null 2>&1 || true
		umount "$MNT" 2>/dev/null || umount -l "$MNT"
	fi
	[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
truncate -s 4G "$WORK/btrfs.img"
mkfs.btrfs -q "$WORK/btrfs.img" >/dev/null 2>&1
mkdir -p "$MNT" "$WORK/store"
LOOP=$(losetup --find --show "$WORK/btrfs.img")
mount "$LOOP" "$MNT"
btrfs subvolume create "$MNT/db" >/dev/null
"$GENDATA" "$MNT/db" --json-bytes "${GENDATA_MB}M" >/dev/null
cat >"$WORK/snapship.conf" <<CONF
[agent]
state_dir = $WORK/state
host = idlebench
interval = 1h
metrics_file = $WORK/snapship.prom
[partition db]
path = $MNT/db
[region local]
store = file
path = $WORK/store
primary = yes
CONF
"$SNAPSHIP" --config "$WORK/snapship.conf" agent >"$WORK/agent.log" 2>&1 &
APID=$!
for _ in $(seq 600); do
	grep -q "committed" "$WORK/agent.log" && break
	kill -0 "$APID" 2>/dev/null || { cat "$WORK/agent.log"; exit 1; }
	sleep 0.5
done
grep -q "committed" "$WORK/agent.log" || { echo "no backup committed in 300 s" >&2; cat "$WORK/agent.log"; exit 1; }
# metrics and prune after the commit; then the worker hands over (at most 60 s)
sleep 5
for _ in $(seq 600); do
	[ -z "$(pgrep -P "$APID" || true)" ] && break
	sleep 0.1
done
echo "agent pid $APID: $(readlink "/proc/$APID/exe")"
worker() {	# the worker's line: present (its VmRSS) or not
	local w
	w=$(pgrep -P "$APID" | head -1 || true)
	if [ -n "$w" ]; then
		echo "       worker pid $w present, VmRSS $(awk '/^VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$w/status")"
	else
		echo "       no worker: the supervisor alone"
	fi
}
sample() {	# sample LABEL: one line of the agent's (the supervisor's) memory
	local rss anon file pss
	rss=$(awk '/^VmRSS/ {print $2}' "/proc/$APID/status")
	anon=$(awk '/^RssAnon/ {print $2}' "/proc/$APID/status")
	file=$(awk '/^RssFile/ {print $2}' "/proc/$APID/status")
	pss=$(awk '/^Pss:/ {print $2}' "/proc/$APID/smaps_rollup")
	awk -v l="$1" -v r="$rss" -v a="$anon" -v f="$file" -v p="$pss" 'BEGIN {
		printf "%-6s VmRSS %6.1f MiB  RssAnon %5.1f MiB  RssFile %5.1f MiB (shared libraries)  PSS %5.1f MiB\n",
			l, r / 1024, a / 1024, f / 1024, p / 1024 }'
}
# the supervisor's and its reaped workers' (cutime, cstime) CPU ticks
ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$APID/stat"; }
hz=$(getconf CLK_TCK)
echo "snapship agent idle, $SECS s after its first backup ($GENDATA_MB MiB partition), $(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo '?')"
sample start
worker
t0=$(ticks)
w0=$(date +%s.%N)
sleep "$SECS"
t1=$(ticks)
w1=$(date +%s.%N)
sample end
worker
python3 - "$t0" "$t1" "$w0" "$w1" "$hz" <<'PY'
import sys
t0, t1, w0, w1, hz = (float(x) for x in sys.argv[1:])
cpu = (t1 - t0) / hz
print(f"CPU    {cpu:.2f} s over {w1 - w0:.0f} s = {100 * cpu / (w1 - w0):.3f} % of one core "
      f"(resolution {100 / hz / (w1 - w0):.3f} %)")
PY
