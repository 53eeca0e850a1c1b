#!/usr/bin/env bash
# A backup is one point in time (design §1 steps 1 and 7):
#   - changes made to the live partition while a (rate-limited, slow) backup
#     is streaming are not in it: a file created afterwards is absent, an
#     appended file has its old content, a deleted file is present;
#   - pre_snapshot runs before the snapshot exists, post_snapshot after it
#     was taken and before the data is streamed, both with SNAPSHIP_* env,
#     in that order; the manifest records both hooks;
#   - a failing pre hook fails the backup (exit 1, message names the hook and
#     its status), the post hook still runs, no snapshot leaks, no backup;
#   - a pre hook that overruns hook_timeout is killed, the backup fails, the
#     post hook still runs, no snapshot leaks.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 sha256sum
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"

state=$TEST_TMP/state
store=$TEST_TMP/store
markers=$TEST_TMP/markers
mkdir -p "$store"
part=$(mk_subvol pit-part)
snapdir=$TEST_BTRFS/.snapship
bgpid=""

cleanup() {
	local sv
	[ -n "$bgpid" ] && kill -9 "$bgpid" 2>/dev/null && wait "$bgpid" 2>/dev/null
	for sv in "$TEST_BTRFS/pit-restore" "$part"; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT

no_leaks() {
	no_snapship_snapshots "$TEST_BTRFS"
	if [ -d "$state/journal" ] && [ -n "$(ls -A "$state/journal")" ]; then
		fail "journal not empty after $1: $(ls -A "$state/journal")"
	fi
}

count_backups() {
	"$SNAPSHIP" --state-dir "$state" list --from "$store" pit-part --json |
		python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

# write_config FILE [EXTRA PARTITION LINES...]
write_config() {
	local f=$1
	shift
	{
		printf '[agent]\nstate_dir = %s\nmax_read_rate = 4M\n\n' "$state"
		printf '[partition pit-part]\npath = %s\n' "$part"
		local l
		for l in "$@"; do printf '%s\n' "$l"; done
		printf '\n[region local]\nstore = file\npath = %s\n' "$store"
	} >"$f"
}

# The hooks are scripts, so config lines stay short.  hook.sh NAME [STATUS]
# appends "NAME <time> <#snapshots> <env>" to the markers file (the
# snapshot count tells whether the snapshot existed when the hook ran) and
# exits STATUS; slow-hook.sh records its pid and sleeps.
hook_sh=$TEST_TMP/hook.sh
cat >"$hook_sh" <<EOF
#!/bin/sh
n=\$(ls -d "$snapdir"/snapship-* 2>/dev/null | wc -l)
echo "\$1 \$(date +%s.%N) \$n \$SNAPSHIP_HOOK \$SNAPSHIP_PARTITION \$SNAPSHIP_SOURCE" >>"$markers"
exit \${2:-0}
EOF
slow_sh=$TEST_TMP/slow-hook.sh
cat >"$slow_sh" <<EOF
#!/bin/sh
echo \$\$ >"$TEST_TMP/hook.pid"
exec sleep 30
EOF
chmod +x "$hook_sh" "$slow_sh"

# ~24 MiB: 6 s at 4 MiB/s
"$GENDATA" "$part" --json-bytes 24M --json-file-size 4M --small-files 100 --seed 11 >/dev/null
printf 'original content\n' >"$part/appended.txt"
printf 'doomed\n' >"$part/deleted.txt"
old_sum=$(sha256sum <"$part/appended.txt")
doomed_sum=$(sha256sum <"$part/deleted.txt")
seg_sum=$(sha256sum <"$part/segments/seg-000005.json")

# ---- changes during a slow backup are not in it; hooks in order ---------------

conf=$TEST_TMP/snapship.conf
write_config "$conf" "pre_snapshot = $hook_sh pre" "post_snapshot = $hook_sh post"
"$SNAPSHIP" --config "$conf" config check || fail "config check rejects $conf"

t0=$(date +%s.%N)
"$SNAPSHIP" --config "$conf" backup pit-part >"$TEST_TMP/bg.out" 2>"$TEST_TMP/bg.err" &
bgpid=$!
# wait for the snapshot (and its journal entry)
for _ in $(seq 1 200); do
	if compgen -G "$snapdir/snapship-*" >/dev/null; then break; fi
	kill -0 "$bgpid" 2>/dev/null || break
	sleep 0.05
done
compgen -G "$snapdir/snapship-*" >/dev/null ||
	{ cat "$TEST_TMP/bg.err"; fail "no snapshot appeared under $snapdir while the backup ran"; }
ls "$state/journal"/*.journal >/dev/null 2>&1 || fail "a snapshot exists but the journal has no entry"
kill -0 "$bgpid" 2>/dev/null ||
	fail "the backup finished before the live partition could be changed (max_read_rate not applied?)"

# change the live partition mid-backup
printf 'created after the snapshot\n' >"$part/new.txt"
printf 'appended after the snapshot\n' >>"$part/appended.txt"
rm "$part/deleted.txt"
printf 'overwritten after the snapshot' | dd of="$part/segments/seg-000005.json" bs=1 seek=100 conv=notrunc status=none
mkdir "$part/new-dir"
still_running=0
kill -0 "$bgpid" 2>/dev/null && still_running=1

rc=0
wait "$bgpid" || rc=$?
bgpid=""
t1=$(date +%s.%N)
cat "$TEST_TMP/bg.out" "$TEST_TMP/bg.err"
[ "$rc" = 0 ] || fail "backup exited $rc"
[ "$still_running" = 1 ] || fail "the backup finished while the partition was being changed; the test proves nothing"
echo "backup took $(python3 -c "print(round($t1 - $t0, 1))") s"
no_leaks "the backup"

# the hooks: pre (no snapshot yet), then post (snapshot there), env set
cat "$markers"
[ "$(wc -l <"$markers")" = 2 ] || fail "expected 2 hook runs, got: $(cat "$markers")"
read -r n1 pre_t pre_snaps pre_what pre_part pre_src < <(sed -n 1p "$markers")
read -r n2 post_t post_snaps post_what post_part post_src < <(sed -n 2p "$markers")
[ "$n1 $n2" = "pre post" ] || fail "hooks ran in the order $n1, $n2"
[ "$pre_snaps" = 0 ] || fail "the pre_snapshot hook ran when a snapshot already existed"
[ "$post_snaps" = 1 ] || fail "the post_snapshot hook ran without the snapshot in place ($post_snaps snapshots)"
[ "$pre_what $post_what" = "pre_snapshot post_snapshot" ] || fail "SNAPSHIP_HOOK was '$pre_what', '$post_what'"
[ "$pre_part" = pit-part ] && [ "$post_part" = pit-part ] || fail "SNAPSHIP_PARTITION was '$pre_part', '$post_part'"
[ "$pre_src" = "$part" ] && [ "$post_src" = "$part" ] ||
	fail "SNAPSHIP_SOURCE was '$pre_src', '$post_src', expected $part"

mf=$(find "$store" -name manifest.json)
[ "$(wc -l <<<"$mf")" = 1 ] || fail "expected one manifest, found: $mf"
python3 - "$mf" "$pre_t" "$post_t" <<-'EOF' || fail "the manifest's hooks or snapshot time are wrong"
	import json, sys
	m = json.load(open(sys.argv[1]))
	pre, post = float(sys.argv[2]), float(sys.argv[3])
	assert m["hooks"] == ["pre_snapshot", "post_snapshot"], m["hooks"]
	t = m["snapshot"]["time_ns"] / 1e9
	assert pre <= t <= post, ("snapshot time %f not between the hooks %f..%f" % (t, pre, post))
EOF

# restore: the tree as it was at the snapshot
dst=$TEST_BTRFS/pit-restore
"$SNAPSHIP" restore pit-part --from "$store" --to "$dst" >/dev/null || fail "restore failed"
[ ! -e "$dst/new.txt" ] || fail "a file created after the snapshot is in the backup"
[ ! -e "$dst/new-dir" ] || fail "a directory created after the snapshot is in the backup"
[ -f "$dst/deleted.txt" ] || fail "a file deleted after the snapshot is missing from the backup"
[ "$(sha256sum <"$dst/deleted.txt")" = "$doomed_sum" ] || fail "deleted.txt has the wrong content"
[ "$(sha256sum <"$dst/appended.txt")" = "$old_sum" ] ||
	fail "appended.txt has content appended after the snapshot: $(cat "$dst/appended.txt")"
[ "$(sha256sum <"$dst/segments/seg-000005.json")" = "$seg_sum" ] ||
	fail "a segment overwritten after the snapshot has the new bytes in the backup"
btrfs subvolume delete "$dst" >/dev/null
no_leaks "the restore"

# ---- a failing pre hook --------------------------------------------------------

: >"$markers"
conf2=$TEST_TMP/failing-pre.conf
write_config "$conf2" "pre_snapshot = $hook_sh pre 3" "post_snapshot = $hook_sh post"
rc=0
"$SNAPSHIP" --config "$conf2" backup pit-part >"$TEST_TMP/f.out" 2>"$TEST_TMP/f.err" || rc=$?
cat "$TEST_TMP/f.out" "$TEST_TMP/f.err"
[ "$rc" = 1 ] || fail "a failing pre hook gave exit $rc, expected 1"
grep -q 'pre_snapshot' "$TEST_TMP/f.err" && grep -qE '(status|code) 3' "$TEST_TMP/f.err" ||
	fail "the error does not name the pre_snapshot hook and its exit status 3"
grep -q '^post ' "$markers" || fail "the post_snapshot hook did not run after the pre hook failed"
[ "$(sed -n 1p "$markers" | cut -d' ' -f1)" = pre ] || fail "hooks out of order: $(cat "$markers")"
[ "$(count_backups)" = 1 ] || fail "a backup with a failed pre hook is listed"
no_leaks "the failing pre hook"

# ---- a pre hook that overruns hook_timeout ---------------------------------------

: >"$markers"
conf3=$TEST_TMP/slow-pre.conf
write_config "$conf3" "pre_snapshot = $slow_sh" "post_snapshot = $hook_sh post" "hook_timeout = 1s"
rc=0
t0=$SECONDS
"$SNAPSHIP" --config "$conf3" backup pit-part >"$TEST_TMP/t.out" 2>"$TEST_TMP/t.err" || rc=$?
cat "$TEST_TMP/t.out" "$TEST_TMP/t.err"
[ "$rc" = 1 ] || fail "a pre hook past its timeout gave exit $rc, expected 1"
[ $((SECONDS - t0)) -lt 15 ] || fail "the hook was not killed at its 1 s timeout"
grep -qiE 'did not finish|timed? ?out|timeout' "$TEST_TMP/t.err" || fail "the error does not say the hook timed out"
grep -q '^post ' "$markers" || fail "the post_snapshot hook did not run after the pre hook timed out"
hookpid=$(cat "$TEST_TMP/hook.pid")
[ -n "$hookpid" ] || fail "the slow hook did not record its pid"
# killed processes may linger a moment as zombies until init reaps them
for _ in $(seq 1 30); do
	st=$(ps -o stat= -p "$hookpid" 2>/dev/null || true)
	[ -z "$st" ] || [[ $st == Z* ]] && break
	sleep 0.1
done
st=$(ps -o stat= -p "$hookpid" 2>/dev/null || true)
if [ -n "$st" ] && [[ $st != Z* ]]; then
	kill -9 "$hookpid"
	fail "the timed-out hook (pid $hookpid) is still running"
fi
[ "$(count_backups)" = 1 ] || fail "a backup with a timed-out pre hook is listed"
no_leaks "the timed-out pre hook"

echo "point in time ok"
