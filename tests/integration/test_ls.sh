#!/usr/bin/env bash
# snapship ls (issue 11, item 11): the files of a backup from its index.
#   - the top directory, a subdirectory, one file: the names of the source,
#     sorted, with mode, owner, size, time; symlink and hard-link targets;
#     a name with control characters escaped (never raw on the terminal);
#   - --json: every entry's name, type, mode, uid, gid, size, mtime_ns and
#     link as the source has them; a name that is not UTF-8 as name_hex;
#   - --id: an older backup's files; the latest by default;
#   - a PATH not in the backup: exit 1 saying so; an unsafe PATH: exit 2;
#   - configured regions: the primary's index damaged, ls reads region b's.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 mkfifo
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"

state=$TEST_TMP/state
store=$TEST_TMP/store
mkdir -p "$store"
part=$(mk_subvol ls-part)
trap 'btrfs subvolume delete "$part" >/dev/null 2>&1 || true' EXIT

"$GENDATA" "$part" --json-bytes 2M --json-file-size 512K --small-files 40 --dirs 4 --seed 3 >/dev/null
mkdir "$part/etc"
printf 'hello\n' >"$part/etc/motd"
chown 1234:567 "$part/etc/motd"
chmod 4750 "$part/etc/motd"
touch -d '2005-05-05 05:05:05.123456789 UTC' "$part/etc/motd"
ln -s ../segments "$part/etc/segs"
ln "$part/etc/motd" "$part/etc/motd.hard"
mkfifo "$part/etc/pipe"
printf 'x' >"$part/etc/bad$(printf '\033')[31mname"
printf 'y' >"$part/etc/$(printf 'lat\xe9n')"
"$SNAPSHIP" --state-dir "$state" backup "$part" --to "$store" >/dev/null || fail "backup failed"
S=("$SNAPSHIP" --state-dir "$state")

# run CODE WHAT ARGS...: snapship ARGS exits CODE; output in $TEST_TMP/out, err
run() {
	local code=$1 what=$2 rc=0
	shift 2
	"${S[@]}" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	[ "$rc" = "$code" ] || { cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "$what: exit $rc, expected $code"; }
}
# names DIR: the names in DIR, sorted bytewise, escaped as snapship does (C0, ESC, non-UTF-8)
names() {
	python3 - "$1" <<-'EOF'
		import os, sys
		def esc(b):
		    s = b.decode("utf-8", "surrogateescape")
		    out = ""
		    for ch in s:
		        o = ord(ch)
		        if 0xdc80 <= o <= 0xdcff:
		            out += "\\x%02x" % (o - 0xdc00)
		        elif o < 0x20 or o == 0x7f or 0x80 <= o < 0xa0:
		            out += "\\x%02x" % o
		        elif ch == "\\":
		            out += "\\\\"
		        else:
		            out += ch
		    return out
		for n in sorted(os.listdir(os.fsencode(sys.argv[1]))):
		    print(esc(n))
	EOF
}
# listed: the names ls printed (the last field of each row, link targets cut)
listed() { tail -n +2 "$TEST_TMP/out" | sed -E 's/ (->|link to) .*$//' | awk '{ print $NF }'; }

# ---- the top directory, a subdirectory, one file -------------------------------

run 0 "ls top" ls ls-part --from "$store"
cat "$TEST_TMP/out"
head -1 "$TEST_TMP/out" | grep -qE "^ls-part [0-9T]+Z-[0-9a-f]+ .*: [0-9]+ entries in the top directory$" ||
	fail "ls: the heading is $(head -1 "$TEST_TMP/out")"
[ "$(listed)" = "$(names "$part")" ] || { diff <(listed) <(names "$part") || true; fail "ls: the top directory's names differ from the source's"; }

run 0 "ls etc" ls ls-part --from "$store" ./etc/
cat "$TEST_TMP/out"
[ "$(listed)" = "$(names "$part/etc")" ] || { diff <(listed) <(names "$part/etc") || true; fail "ls etc: the names differ"; }
grep -qE '^-rwsr-x---  +1234 +567 +6 2005-05-05 05:05:05Z  motd( link to etc/motd\.hard)?$' "$TEST_TMP/out" ||
	fail "ls etc: the motd line is wrong"
grep -qE '^lrwxrwxrwx .*  segs -> \.\./segments$' "$TEST_TMP/out" || fail "ls etc: no symlink target"
grep -qE '^-rwsr-x--- .* motd\.hard link to etc/motd$|^-rwsr-x--- .* motd link to etc/motd\.hard$' "$TEST_TMP/out" ||
	fail "ls etc: no hard-link target"
grep -qE '^p[rw-]{9} +[0-9]+ +[0-9]+ +- [0-9-]+ [0-9:]+Z  pipe$' "$TEST_TMP/out" || fail "ls etc: the fifo line is wrong"
grep -qF 'bad\x1b[31mname' "$TEST_TMP/out" || fail "ls etc: the control characters are not escaped"
grep -qF 'lat\xe9n' "$TEST_TMP/out" || fail "ls etc: the non-UTF-8 name is not escaped"
! grep -q $'\033' "$TEST_TMP/out" || fail "ls etc: a raw ESC reached the terminal"

f=$(cd "$part/segments" && find . -maxdepth 1 -type f -printf "%P\n" | LC_ALL=C sort | head -1)
run 0 "ls one file" ls ls-part --from "$store" "segments/$f"
[ "$(wc -l <"$TEST_TMP/out")" = 2 ] || fail "ls of one file: $(cat "$TEST_TMP/out")"
grep -qE " $(stat -c %s "$part/segments/$f") .*  segments/$f$" "$TEST_TMP/out" || fail "ls of one file: $(cat "$TEST_TMP/out")"

# ---- --json: every entry as the source has it ----------------------------------

for dir in . etc segments; do
	run 0 "ls --json $dir" ls ls-part --from "$store" --json "$dir"
	python3 - "$part" "$dir" "$TEST_TMP/out" <<-'EOF' || fail "ls --json $dir does not match the source"
		import json, os, stat, sys
		root, d, doc = os.fsencode(sys.argv[1]), sys.argv[2], json.load(open(sys.argv[3]))
		assert doc["partition"] == "ls-part" and doc["type"] == "dir" and doc["path"] == d, doc
		assert doc["backup_id"] and doc["host"] and isinstance(doc["time"], int), doc
		base = root if d == "." else os.path.join(root, os.fsencode(d))
		got = {}
		for e in doc["entries"]:
		    name = e["name"].encode() if "name" in e else bytes.fromhex(e["name_hex"])
		    got[name] = e
		want = sorted(os.listdir(base))
		assert sorted(got) == want, (sorted(got), want)
		order = [e["name"].encode() if "name" in e else bytes.fromhex(e["name_hex"]) for e in doc["entries"]]
		assert order == want, "not sorted by name"
		types = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo"}
		for name, e in got.items():
		    st = os.lstat(os.path.join(base, name))
		    t = types[stat.S_IFMT(st.st_mode)]
		    if e["type"] == "hardlink":
		        assert t == "file" and st.st_nlink > 1, (name, e)
		        assert os.path.samefile(os.path.join(root, e["link"].encode()), os.path.join(base, name)), e
		    else:
		        assert e["type"] == t, (name, e, t)
		    assert e["mode"] == "%04o" % stat.S_IMODE(st.st_mode), (name, e)
		    assert (e["uid"], e["gid"]) == (st.st_uid, st.st_gid), (name, e)
		    assert e["mtime_ns"] == st.st_mtime_ns and e["mtime"] == st.st_mtime_ns // 10**9, (name, e)
		    if t == "file":
		        assert e["size"] == st.st_size, (name, e)
		    if t == "symlink":
		        assert e["link"].encode() == os.readlink(os.path.join(base, name)), (name, e)
		    rel = name if d == "." else os.fsencode(d) + b"/" + name
		    p = e["path"].encode() if "path" in e else bytes.fromhex(e["path_hex"])
		    assert p == rel, (p, rel)
		print("ls --json", d, ":", len(got), "entries match")
	EOF
done
run 0 "ls --json etc (name_hex)" ls ls-part --from "$store" --json etc
grep -q '"name_hex": "6c6174e96e"' "$TEST_TMP/out" || fail "ls --json: the non-UTF-8 name is not given as name_hex"

# ---- --id: an older backup ------------------------------------------------------

old=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$TEST_TMP/out")
echo new >"$part/etc/added-later"
sleep 1.1   # backup ids have a one-second timestamp
"${S[@]}" backup "$part" --to "$store" >/dev/null || fail "second backup failed"
run 0 "ls latest" ls ls-part --from "$store" etc
grep -q ' added-later$' "$TEST_TMP/out" || fail "ls: the latest backup lacks added-later"
run 0 "ls --id old" ls ls-part --from "$store" --id "$old" etc
! grep -q 'added-later' "$TEST_TMP/out" || fail "ls --id $old lists a file of the later backup"
grep -q "^ls-part $old " "$TEST_TMP/out" || fail "ls --id: the heading does not name $old"

# ---- errors ---------------------------------------------------------------------

run 1 "ls of a path not in the backup" ls ls-part --from "$store" etc/nope
grep -q 'etc/nope is not in backup' "$TEST_TMP/err" || fail "ls etc/nope: $(cat "$TEST_TMP/err")"
for bad in ../etc /etc etc/../..; do
	run 2 "ls $bad" ls ls-part --from "$store" "$bad"
done
run 2 "ls without a partition" ls --from "$store"

# ---- configured regions: read failover ------------------------------------------

mkdir -p "$TEST_TMP/a" "$TEST_TMP/b"
cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $TEST_TMP/state2
host = lshost
[partition ls-part]
path = $part
[region a]
store = file
path = $TEST_TMP/a
primary = yes
[region b]
store = file
path = $TEST_TMP/b
replication = agent
EOF
C=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
"${C[@]}" backup >/dev/null || fail "configured backup failed"
"${C[@]}" ls ls-part etc >"$TEST_TMP/good" || fail "configured ls failed"
grep -q 'from region a' "$TEST_TMP/good" || fail "configured ls: $(head -1 "$TEST_TMP/good")"
idx=$(find "$TEST_TMP/a" -name index.jsonl.zst)
size=$(stat -c %s "$idx")
printf '\xff\xff\xff\xff' | dd of="$idx" bs=1 seek=$((size / 2)) conv=notrunc status=none
rc=0
"${C[@]}" ls ls-part etc >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
cat "$TEST_TMP/err"
[ "$rc" = 0 ] || fail "ls with a damaged primary index: exit $rc"
grep -q 'region b' "$TEST_TMP/err" || fail "ls does not say it read region b"
diff <(tail -n +2 "$TEST_TMP/good") <(tail -n +2 "$TEST_TMP/out") || fail "ls from region b differs"
run 1 "ls --region a with its index damaged" --config "$TEST_TMP/snapship.conf" ls ls-part --region a etc
echo "ls ok"
