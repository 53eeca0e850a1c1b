#!/usr/bin/env bash
# SIGINT, SIGTERM and a second signal (issue 11, item 1), directory store:
#   (a) SIGTERM in the middle of a backup's upload (max_read_rate slows it):
#       exit 143 soon (the time is printed), one "interrupted (SIGTERM)" line
#       on stderr saying what was undone, no snapshot, journal empty, no
#       temp file nor backup directory in the store, list shows nothing;
#   (b) Ctrl-C on a terminal (^C written to a pty: the tty driver sends
#       SIGINT to the foreground group): exit 130, the same cleanup;
#   (c) a second SIGTERM while the first unwinds: exit 143 at once; the next
#       backup removes the snapshot and temp files left and succeeds;
#   (d) a restore interrupted by SIGTERM: exit 143, the message names the
#       target and what it leaves there;
#   (e) --json: the failure carries the interruption.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"

state=$TEST_TMP/state
store=$TEST_TMP/store
mkdir -p "$store"
part=$(mk_subvol sg-part)

cleanup() {
	local sv
	for sv in "$TEST_BTRFS"/sg-*; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT

# 64 MiB read at 8 MiB/s: about 8 s of upload to interrupt
"$GENDATA" "$part" --json-bytes 64M --json-file-size 4M --small-files 200 --seed 5 >/dev/null
cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $state
host = sghost
max_read_rate = 8M
# every backup a full: the signals must find a data stream to stop
max_chain = 0
[partition sg-part]
path = $part
[region main]
store = file
path = $store
EOF
conf=(--config "$TEST_TMP/snapship.conf")

# sig_run HOW OUT ERR WATCH ARGS...: run ARGS; once a file matches the glob
# WATCH (an upload's temp file, a file in a restore's target), deliver:
# term (SIGTERM a second later), term-now, twice (SIGTERM, and again 0.2 s
# later), kill (SIGKILL), tty-int (^C on its terminal a second later);
# prints "rc seconds reached" (from the signal to the exit; tests/tools/sigrun.py)
sig_run() {
	local how=$1 out=$2 err=$3 watch=$4 delay=0
	shift 4
	case $how in
	term | tty-int) delay=1 ;;	# well into the upload
	term-now) how=term ;;
	esac
	python3 "$SRC_DIR/tests/tools/sigrun.py" --when-glob "$watch" --delay "$delay" \
		--out "$out" --err "$err" "$how" -- "$@"
}

tmp_glob="$store/**/.*.tmp-*"
# cleaned_up WHAT: no snapshot, journal empty, no temp file or backup dir
cleaned_up() {
	no_snapship_snapshots "$TEST_BTRFS"
	[ -z "$(ls -A "$state/journal" 2>/dev/null)" ] ||
		fail "$1: the journal holds $(ls "$state/journal")"
	[ -z "$(find "$store" -name '.*.tmp-*')" ] ||
		fail "$1: temp files left in the store: $(find "$store" -name '.*.tmp-*')"
	[ -z "$(find "$store" -mindepth 3 -type d)" ] ||
		fail "$1: backup directories left in the store: $(find "$store" -mindepth 3 -type d)"
	"$SNAPSHIP" "${conf[@]}" list >"$TEST_TMP/list" 2>&1 || true
	grep -q "no backups of sghost" "$TEST_TMP/list" ||
		fail "$1: list shows a backup: $(cat "$TEST_TMP/list")"
}
one_line() {	# one_line SIG WHAT: exactly one line on stderr, the interruption
	local lines
	# on a terminal: the echoed ^C and the progress line (\r, ESC[K) aside
	lines=$(tr '\r' '\n' <"$TEST_TMP/err" | sed -e 's/\x1b\[K//g' -e 's/\^C//g' |
		grep -vE '^\s*$|^\^C$|^snapship: sg-part: .* read, .* MiB/s$' || true)
	echo "   stderr: $lines"
	[ "$(wc -l <<<"$lines")" = 1 ] || fail "$2: expected one line on stderr, got: $lines"
	grep -qE "snapship: error: interrupted \\($1\\): backup of sg-part cancelled in its upload phase: .*upload.* aborted.*snapshot released; nothing committed" <<<"$lines" ||
		fail "$2: the line does not say what was undone: $lines"
}

# ---- (a) SIGTERM mid-upload -------------------------------------------------

read -r rc secs _ < <(sig_run term "$TEST_TMP/out" "$TEST_TMP/err" "$tmp_glob" \
	"$SNAPSHIP" "${conf[@]}" backup)
echo "-- (a) SIGTERM mid-upload: exit $rc, ${secs}s from the signal to the exit"
[ "$rc" = 143 ] || fail "(a) exit $rc, expected 143: $(cat "$TEST_TMP/err")"
python3 -c "import sys; sys.exit(float('$secs') > 30)" || fail "(a) took ${secs}s to stop"
one_line SIGTERM "(a)"
cleaned_up "(a)"

# ---- (b) Ctrl-C on a terminal ------------------------------------------------

read -r rc secs _ < <(sig_run tty-int "$TEST_TMP/out" "$TEST_TMP/err" "$tmp_glob" \
	"$SNAPSHIP" "${conf[@]}" backup)
echo "-- (b) ^C on a pty: exit $rc, ${secs}s"
[ "$rc" = 130 ] || fail "(b) exit $rc, expected 130: $(cat "$TEST_TMP/err")"
python3 -c "import sys; sys.exit(float('$secs') > 30)" || fail "(b) took ${secs}s to stop"
one_line SIGINT "(b)"
cleaned_up "(b)"

# ---- (c) a second signal: at once; the next run cleans up --------------------

# a post_snapshot hook holds the run in its freeze phase (a running hook is
# waited for), so the second SIGTERM surely comes while the first is pending
sed "s|^path = $part\$|&\npre_snapshot = true\npost_snapshot = sleep 3|" "$TEST_TMP/snapship.conf" >"$TEST_TMP/hook.conf"
grep -q post_snapshot "$TEST_TMP/hook.conf" || fail "(c) no hook in the config"
read -r rc secs _ < <(sig_run twice "$TEST_TMP/out" "$TEST_TMP/err" "$state/journal/*" \
	"$SNAPSHIP" --config "$TEST_TMP/hook.conf" backup)
echo "-- (c) SIGTERM twice: exit $rc, ${secs}s: $(cat "$TEST_TMP/err")"
[ "$rc" = 143 ] || fail "(c) exit $rc, expected 143"
# at once: no unwinding (that would have printed its line and released
# the snapshot once the hook ended); what the first stop had no time to
# undo is the next run's business
[ ! -s "$TEST_TMP/err" ] || fail "(c) the second signal did not exit at once: the run unwound"
[ -n "$(ls -A "$state/journal" 2>/dev/null)" ] || fail "(c) expected the snapshot left in the journal"
sleep 3    # the hook (its own process group) ends
"$SNAPSHIP" "${conf[@]}" backup >"$TEST_TMP/out" 2>"$TEST_TMP/err2" ||
	fail "(c) the backup after the interruption failed: $(cat "$TEST_TMP/err2")"
echo "   next run: $(cat "$TEST_TMP/err2")"
grep -q "removed 1 snapshot(s) left behind" "$TEST_TMP/err2" ||
	fail "(c) the next run did not say it removed the snapshot left behind"
no_snapship_snapshots "$TEST_BTRFS"
[ -z "$(ls -A "$state/journal" 2>/dev/null)" ] || fail "(c) the journal is not empty after the next run"
[ -z "$(find "$store" -name '.*.tmp-*')" ] || fail "(c) temp files stay after the next run"
[ "$(find "$store" -name manifest.json | wc -l)" = 1 ] || fail "(c) expected exactly one backup"

# what an exit at once in the middle of the upload leaves (SIGKILL: as a
# second signal there would) the next run removes too: temp files, snapshot
read -r rc secs _ < <(sig_run kill "$TEST_TMP/out" "$TEST_TMP/err" "$tmp_glob" \
	"$SNAPSHIP" "${conf[@]}" backup)
left=$(find "$store" -name '.*.tmp-*' | wc -l)
echo "-- (c) killed mid-upload: exit $rc; left $left temp file(s), $(ls "$state/journal" | wc -l) journal entr(y/ies)"
[ "$left" -gt 0 ] || fail "(c) expected temp files left by the killed run"
"$SNAPSHIP" "${conf[@]}" backup >"$TEST_TMP/out" 2>"$TEST_TMP/err2" ||
	fail "(c) the backup after the killed one failed: $(cat "$TEST_TMP/err2")"
echo "   next run: $(cat "$TEST_TMP/err2")"
no_snapship_snapshots "$TEST_BTRFS"
[ -z "$(ls -A "$state/journal" 2>/dev/null)" ] || fail "(c) the journal is not empty after the next run"
[ -z "$(find "$store" -name '.*.tmp-*')" ] || fail "(c) temp files stay after the next run"
[ "$(find "$store" -name manifest.json | wc -l)" = 2 ] || fail "(c) expected exactly two backups"

# ---- (d) restore interrupted -------------------------------------------------

t=$TEST_BTRFS/sg-restore
read -r rc secs _ < <(sig_run term-now "$TEST_TMP/out" "$TEST_TMP/err" "$t/segments/*" \
	"$SNAPSHIP" "${conf[@]}" restore sg-part --to "$t")
echo "-- (d) restore, SIGTERM: exit $rc, ${secs}s: $(cat "$TEST_TMP/err")"
[ "$rc" = 143 ] || fail "(d) exit $rc, expected 143"
grep -qE "interrupted \(SIGTERM\): restore of backup .* of sg-part cancelled after [0-9]+ entries.*; a partial restore is left in the new subvolume $t" "$TEST_TMP/err" ||
	fail "(d) the message does not name the target and what it leaves"

# ---- (e) --json of an interrupted backup ---------------------------------------

read -r rc secs _ < <(sig_run term "$TEST_TMP/out" "$TEST_TMP/err" "$tmp_glob" \
	"$SNAPSHIP" "${conf[@]}" --json backup)
echo "-- (e) --json backup, SIGTERM: exit $rc, ${secs}s"
[ "$rc" = 143 ] || fail "(e) exit $rc, expected 143"
python3 - "$TEST_TMP/out" <<-'EOF' || fail "(e) the JSON does not carry the interruption: $(cat "$TEST_TMP/out")"
	import json, sys
	doc = json.load(open(sys.argv[1]))
	row = [r for r in doc if r.get("partition") == "sg-part"]
	assert row and row[0]["status"] == "failed", doc
	assert row[0]["error"].startswith("interrupted (SIGTERM): backup of sg-part cancelled"), row
EOF
[ "$(find "$store" -name manifest.json | wc -l)" = 2 ] || fail "(e) a manifest was added"
no_snapship_snapshots "$TEST_BTRFS"
echo "ok"
