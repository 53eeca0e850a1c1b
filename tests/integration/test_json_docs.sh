#!/usr/bin/env bash
# doc/snapship.8 says what the code does (issue 11, item 12):
#  - every option a command takes (main.c's table) is in its COMMANDS entry
#    (status --from was not);
#  - every JSON field documented in JSON OUTPUT shows up in real outputs of
#    its command, and every field they carry is documented (verify --json
#    lacked the documented geo), over runs that make each optional field
#    appear: two directory regions (replication = agent), a backup with the
#    secondary gone (at risk: detail), a failed backup, verify and repair of
#    a missing copy, status with a partition never backed up, restore
#    (by id, and --at with and without a next backup), ls --at, list --at,
#    config check with an error, a failed run, a drill that passes and one
#    that fails (and status after each: its last drill), and prune (a dry run, a
#    region down, its pending deletions finished, a primary gone).
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_cmd python3
MANCHECK=$SRC_DIR/tests/tools/mancheck.py

out=$(python3 "$MANCHECK" options "$SRC_DIR/doc/snapship.8" "$SRC_DIR/agent/main.c" "$SRC_DIR/agent/cli.c") ||
	fail "the man page's COMMANDS miss options: $out"

need_btrfs
sv=$(mk_subvol jd-part)
"$GENDATA" "$sv" --json-bytes 1M --json-file-size 256K --small-files 50 >/dev/null
# what ls's optional fields describe: links, a device, names that are not UTF-8
ln -s target-of-link "$sv/a-link"
touch "$sv/a-file" && ln "$sv/a-file" "$sv/a-hardlink"
mknod "$sv/a-device" c 1 3
touch "$sv/$(printf 'not-utf8-\xff')"
ln -s "$(printf 'to-\xfe')" "$sv/a-link-not-utf8"
mkdir -p "$TEST_TMP/a" "$TEST_TMP/b" "$TEST_TMP/outs"
conf() {	# conf FILE [EXTRA PARTITION SECTION LINES]
	cat >"$1" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = jdhost
[partition jd-part]
path = $sv
${2:-}
[region a]
store = file
path = $TEST_TMP/a
primary = yes
[region b]
store = file
path = $TEST_TMP/b
replication = agent
EOF
}
conf "$TEST_TMP/snapship.conf"
conf "$TEST_TMP/never.conf" "[partition jd-never]
path = $sv"
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
O=$TEST_TMP/outs
n=0
# j EXPECTED_RC CMD SNAPSHIP [ARGS...]: run snapship --json ARGS; keep the
# output as CMD.N.json
j() {
	local want=$1 cmd=$2 rc=0
	shift 2
	n=$((n + 1))
	"$1" --json "${@:2}" >"$O/$cmd.$n.json" 2>"$O/$cmd.$n.err" || rc=$?
	[ "$rc" = "$want" ] || fail "$cmd ($*): exit $rc, expected $want: $(cat "$O/$cmd.$n.err" "$O/$cmd.$n.json")"
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$O/$cmd.$n.json" ||
		fail "$cmd ($*): not JSON: $(cat "$O/$cmd.$n.json")"
}

j 0 backup "${S[@]}" backup
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["backup_id"])' "$O/backup.$n.json")
j 0 status "${S[@]}" status                       # the latest geo-protected: lag_s
mv "$TEST_TMP/b" "$TEST_TMP/b.away"
# status must see this one as the latest (its regions carry the detail),
# also when both backups fall in one second (catalog_cmp_age)
j 0 backup "${S[@]}" backup                       # at risk: detail
mv "$TEST_TMP/b.away" "$TEST_TMP/b"
j 2 backup "${S[@]}" backup no-such-part          # a failure: error
j 0 list "${S[@]}" list
j 3 status "${S[@]}" status
j 5 status "$SNAPSHIP" --config "$TEST_TMP/never.conf" status
j 1 verify "${S[@]}" verify                       # the at-risk backup: error
j 0 repair "${S[@]}" repair
j 0 verify "${S[@]}" verify --deep
j 0 status "${S[@]}" status
j 0 list "${S[@]}" list
j 0 restore "${S[@]}" restore jd-part --id "$id" --to "$TEST_BTRFS/jd-r" --devices
# --at: the pick and the next newer one (the first backup: a next), the
# newest (none after it); list --at with a partition that has none so old
first=$(python3 -c 'import datetime, json, sys
t = min(b["time"] for b in json.load(open(sys.argv[1])))
print(datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))' "$O/list.5.json")
j 0 restore "${S[@]}" restore jd-part --at "$first" --to "$TEST_TMP/jd-at1"
j 0 restore "${S[@]}" restore jd-part --at now --to "$TEST_TMP/jd-at2" --path a-file
j 0 list--at "${S[@]}" list --at now
j 0 list--at "${S[@]}" list jd-part --at 2000-01-01
j 0 ls "${S[@]}" ls jd-part
j 0 ls "${S[@]}" ls jd-part --at now
j 0 hosts "${S[@]}" hosts
j 0 drill "${S[@]}" drill --scratch "$TEST_BTRFS/jd-drill"   # from b, the secondary
j 0 status "${S[@]}" status                       # the last drill: passed
j 1 drill "$SNAPSHIP" --config "$TEST_TMP/never.conf" drill --region a \
	--partition jd-never --scratch "$TEST_BTRFS/jd-drill"   # missing: failure
j 5 status "$SNAPSHIP" --config "$TEST_TMP/never.conf" status   # a failed drill
# prune with this partition's own keep_last = 1: the decisions, a region
# down (pending, with details), the pending deletions finished, a failure
conf "$TEST_TMP/prune.conf" "keep_last = 1"
P=("$SNAPSHIP" --config "$TEST_TMP/prune.conf")
j 0 prune "${P[@]}" prune --dry-run
mv "$TEST_TMP/b" "$TEST_TMP/b.away"
j 1 prune "${P[@]}" prune
mv "$TEST_TMP/b.away" "$TEST_TMP/b"
j 0 prune "${P[@]}" prune jd-part
mv "$TEST_TMP/a" "$TEST_TMP/a.away"
j 1 prune "${P[@]}" prune
mv "$TEST_TMP/a.away" "$TEST_TMP/a"
conf "$TEST_TMP/bad.conf" "[partition jd-gone]
path = $TEST_TMP/nowhere"
j 1 config "$SNAPSHIP" --config "$TEST_TMP/bad.conf" config check
j 0 config "${S[@]}" config check
j 1 failed "$SNAPSHIP" list --from "$TEST_TMP/no-store"
out=$(python3 "$MANCHECK" json "$SRC_DIR/doc/snapship.8" "$O") ||
	fail "the man page's JSON OUTPUT and the real outputs disagree:
$out"
echo PASS
