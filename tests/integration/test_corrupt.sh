#!/usr/bin/env bash
# Damaged and hostile stores (design §1 step 6, §4, §8): snapship notices
# every kind of damage, says which backup and what is wrong, exits 1, and
# never writes outside a restore target whatever the archive says.
#   (a) bytes flipped inside a frame: restore fails ("corrupt", naming the
#       frame or backup); quick verify (sizes only) may pass, verify --deep
#       reports BAD (also as --json);
#   (a2) a seek-table checksum altered: restore and verify --deep fail;
#   (b) data.tar.zst truncated: restore and verify fail ("truncated"/sizes);
#   (c) manifest.json removed: the backup is not listed, restore says so;
#   (d) index damaged: restore fails naming the index; an index that is
#       consistent with the manifest but misses an entry: restore fails;
#   (e) forged backups (valid seekable zstd, index and manifest) whose tar
#       holds '../evil', '/abs', a symlink to outside followed by an entry
#       through it, a '..' symlink, absolute and '..' hard-link targets, a
#       hard link through a planted symlink, a symlink replaced by a file, a
#       device node without --devices: nothing is written outside the
#       target (the restore fails or skips the entry).  A benign
#       forged backup restores fine, so the forging itself is right.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 zstd xxhsum
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"
check=$SRC_DIR/tools/seektable_check.py
[ -f "$check" ] || fail "$check is missing"

state=$TEST_TMP/state
good=$TEST_TMP/store
mkdir -p "$good"
part=$(mk_subvol cor-part)
trap 'btrfs subvolume delete "$part" >/dev/null 2>&1 || true' EXIT

# 12 MiB: 4 frames of 4 MiB
"$GENDATA" "$part" --json-bytes 12M --json-file-size 3M --small-files 100 --seed 4 >/dev/null
"$SNAPSHIP" --state-dir "$state" backup "$part" --to "$good" >/dev/null || fail "backup failed"
no_snapship_snapshots "$TEST_BTRFS"
mf=$(find "$good" -name manifest.json)
[ "$(wc -l <<<"$mf")" = 1 ] || fail "expected one backup, found: $mf"
rel=${mf#"$good"/}
rel=${rel%/manifest.json}	# <host>/cor-part/<id>
id=${rel##*/}
"$SNAPSHIP" verify --from "$good" --deep >/dev/null || fail "verify --deep fails on the good backup"

n=0
# fresh_copy: a copy of the good store; prints its path
fresh_copy() {
	n=$((n + 1))
	local c=$TEST_TMP/copy$n
	cp -a "$good" "$c"
	echo "$c"
}

# run_expect CODE REGEX WHAT CMD...: exit CODE, output matches REGEX (-iE)
run_expect() {
	local code=$1 re=$2 what=$3 rc=0
	shift 3
	"$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	echo "-- $what: exit $rc: $(cat "$TEST_TMP/out" "$TEST_TMP/err" | head -c 500)"
	[ "$rc" = "$code" ] || fail "$what: exit $rc, expected $code"
	cat "$TEST_TMP/out" "$TEST_TMP/err" | grep -qiE -- "$re" ||
		fail "$what: output does not match /$re/"
}

flip() {	# flip FILE OFFSET COUNT: invert COUNT bytes at OFFSET
	python3 - "$@" <<-'EOF'
		import sys
		p, off, cnt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
		with open(p, "r+b") as f:
		    f.seek(off)
		    b = f.read(cnt)
		    f.seek(off)
		    f.write(bytes(x ^ 0xFF for x in b))
	EOF
}

# ---- (a) bytes flipped in the middle of a frame -------------------------------

c=$(fresh_copy)
data=$c/$rel/data.tar.zst
size=$(stat -c %s "$data")
# the middle of frame 1
read -r f1_off f1_len < <(python3 - "$data" <<-'EOF'
	import struct, sys
	b = open(sys.argv[1], "rb").read()
	n, desc, magic = struct.unpack_from("<IBI", b, len(b) - 9)
	esz = 12 if desc & 0x80 else 8
	t = len(b) - 9 - n * esz
	c0 = struct.unpack_from("<I", b, t)[0]
	c1 = struct.unpack_from("<I", b, t + esz)[0]
	print(c0, c1)
EOF
)
flip "$data" $((f1_off + f1_len / 2)) 16
[ "$(stat -c %s "$data")" = "$size" ] || fail "test bug: flip changed the size"
run_expect 1 'corrupt' "(a) restore of a corrupted frame" \
	"$SNAPSHIP" restore cor-part --from "$c" --to "$TEST_TMP/ra"
grep -qiE "frame|$id" "$TEST_TMP/err" || fail "(a) the message names neither the frame nor the backup"
# quick verify checks sizes only, so it may pass here; it must not crash
rc=0
"$SNAPSHIP" verify --from "$c" >"$TEST_TMP/out" 2>&1 || rc=$?
echo "-- (a) quick verify: exit $rc: $(cat "$TEST_TMP/out")"
[ "$rc" = 0 ] || [ "$rc" = 1 ] || fail "(a) quick verify exited $rc"
run_expect 1 "$id.*corrupt.*(corrupt|checksum)" "(a) verify --deep reports BAD" \
	"$SNAPSHIP" verify --from "$c" --deep
run_expect 1 '"status": *"bad"' "(a) verify --deep --json" \
	"$SNAPSHIP" verify --from "$c" --deep --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d[0]["status"]=="bad" and d[0]["error"], d' \
	"$TEST_TMP/out" || fail "(a) verify --deep --json is not valid JSON with status bad and an error"
rm -rf "$c" "$TEST_TMP/ra"

# ---- (a2) a seek-table checksum altered (frames intact) ---------------------------

c=$(fresh_copy)
data=$c/$rel/data.tar.zst
frames=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["compression"]["frames"])' "$c/$rel/manifest.json")
# entry i checksum at size - 9 - 12*(frames - i) + 8; take entry 0
flip "$data" $((size - 9 - 12 * frames + 8)) 1
run_expect 1 'corrupt|checksum|differs' "(a2) restore with a bad seek-table checksum" \
	"$SNAPSHIP" restore cor-part --from "$c" --to "$TEST_TMP/ra2"
run_expect 1 "$id.*(corrupt|missing)" "(a2) verify --deep with a bad seek-table checksum" \
	"$SNAPSHIP" verify --from "$c" --deep
rm -rf "$c" "$TEST_TMP/ra2"

# ---- (b) truncated data object ------------------------------------------------------

c=$(fresh_copy)
data=$c/$rel/data.tar.zst
truncate -s $((size / 2)) "$data"
run_expect 1 "truncated" "(b) restore of a truncated object" \
	"$SNAPSHIP" restore cor-part --from "$c" --to "$TEST_TMP/rb"
grep -q "$id" "$TEST_TMP/err" || fail "(b) the message does not name backup $id"
[ ! -e "$TEST_TMP/rb" ] || [ -z "$(ls -A "$TEST_TMP/rb")" ] ||
	fail "(b) a restore of a truncated backup wrote files before noticing"
run_expect 1 "$id.*(corrupt|missing).*(truncated|has $((size / 2)) bytes)" "(b) verify of a truncated object" \
	"$SNAPSHIP" verify --from "$c"
run_expect 1 "$id.*(corrupt|missing)" "(b) verify --deep of a truncated object" \
	"$SNAPSHIP" verify --from "$c" --deep
# cut just the seek table's last byte off
cp "$good/$rel/data.tar.zst" "$data"
truncate -s $((size - 1)) "$data"
run_expect 1 "truncated|seek table|footer|bytes" "(b) restore with the footer cut" \
	"$SNAPSHIP" restore cor-part --from "$c" --to "$TEST_TMP/rb2"
rm -rf "$c" "$TEST_TMP/rb" "$TEST_TMP/rb2"

# ---- (c) manifest removed ------------------------------------------------------------

c=$(fresh_copy)
rm "$c/$rel/manifest.json"
out=$("$SNAPSHIP" list --from "$c" cor-part --json) || fail "(c) list fails without the manifest"
[ "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' <<<"$out")" = 0 ] ||
	fail "(c) a backup without manifest is listed: $out"
"$SNAPSHIP" list --from "$c" | grep -q "$id" && fail "(c) list (text) shows the backup without manifest"
run_expect 1 "no backup" "(c) restore without a manifest" \
	"$SNAPSHIP" restore cor-part --from "$c" --to "$TEST_TMP/rc"
run_expect 1 "no backup.*$id|$id.*(not found|no backup)" "(c) restore --id without a manifest" \
	"$SNAPSHIP" restore cor-part --from "$c" --to "$TEST_TMP/rc" --id "$id"
[ ! -e "$TEST_TMP/rc" ] || fail "(c) restore created its target although there is no backup"
# a manifest that is not JSON: not listed, and verify reports it
printf '{ not json' >"$c/$rel/manifest.json"
run_expect 1 "BAD|unreadable|manifest" "(c) verify with an unreadable manifest" \
	"$SNAPSHIP" verify --from "$c"
rm -rf "$c"

# ---- (d) index damaged -------------------------------------------------------------------

c=$(fresh_copy)
flip "$c/$rel/index.jsonl.zst" 60 4
run_expect 1 "index.*corrupt|corrupt.*index" "(d) restore with a corrupted index" \
	"$SNAPSHIP" restore cor-part --from "$c" --to "$TEST_TMP/rd"
grep -q "$id" "$TEST_TMP/err" || fail "(d) the message does not name backup $id"
run_expect 1 "$id.*corrupt.*index" "(d) verify --deep with a corrupted index" \
	"$SNAPSHIP" verify --from "$c" --deep
rm -rf "$c" "$TEST_TMP/rd"

# an index consistent with the manifest (sha256 and size updated) that misses
# one file: the data holds an entry the index does not know
c=$(fresh_copy)
python3 - "$c/$rel" <<-'EOF'
	import hashlib, json, os, subprocess, sys
	d = sys.argv[1]
	idx = os.path.join(d, "index.jsonl.zst")
	lines = subprocess.run(["zstd", "-dqc", idx], stdout=subprocess.PIPE, check=True).stdout.splitlines(True)
	lines = [l for l in lines if b'"segments/seg-000001.json"' not in l]
	z = subprocess.run(["zstd", "-qc"], input=b"".join(lines), stdout=subprocess.PIPE, check=True).stdout
	open(idx, "wb").write(z)
	mp = os.path.join(d, "manifest.json")
	m = json.load(open(mp))
	m["index"]["sha256"] = hashlib.sha256(z).hexdigest()
	m["index"]["size"] = len(z)
	json.dump(m, open(mp, "w"), indent=2)
EOF
run_expect 1 "index|corrupt" "(d) restore with an index missing an entry" \
	"$SNAPSHIP" restore cor-part --from "$c" --to "$TEST_TMP/rd2"
run_expect 1 "$id.*(corrupt|missing)" "(d) verify --deep with an index missing an entry" \
	"$SNAPSHIP" verify --from "$c" --deep
rm -rf "$c" "$TEST_TMP/rd2"

# ---- (e) forged, hostile archives ----------------------------------------------------------

hostile=$TEST_TMP/hostile
mkdir -p "$hostile"
tpl=$good/$rel/manifest.json
host=${rel%%/*}

# forge SPEC_JSON ID: a backup ID of cor-part in $hostile/store whose tar
# holds the entries of SPEC (a JSON list of {name, type: file|dir|symlink|
# hardlink|char, data, target}); valid seekable zstd, index and manifest.
forge() {
	local fid=$2
	mkdir -p "$hostile/store/$host/cor-part/$fid"
	python3 - "$1" "$tpl" "$hostile/store/$host/cor-part/$fid" "$fid" "$check" <<-'EOF' || fail "forging a backup failed"
		import hashlib, io, json, os, subprocess, sys, tarfile
		spec, tpl, out, fid, check = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
		buf = io.BytesIO()
		t = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)
		index = []
		types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
		         "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE}
		letters = {"file": "f", "dir": "d", "symlink": "l", "hardlink": "h", "char": "c"}
		for e in [{"name": ".", "type": "dir"}] + spec:
		    ti = tarfile.TarInfo(e["name"])
		    ti.type = types[e["type"]]
		    ti.mode = 0o755 if e["type"] == "dir" else 0o644
		    ti.mtime = 1700000000
		    if "target" in e:
		        ti.linkname = e["target"]
		    data = e.get("data", "").encode()
		    if e["type"] == "char":
		        ti.devmajor, ti.devminor = 1, 3
		    off = buf.tell()
		    if e["type"] == "file":
		        ti.size = len(data)
		        t.addfile(ti, io.BytesIO(data))
		    else:
		        t.addfile(ti)
		    name = e["name"].rstrip("/") or "."
		    ent = {"type": letters[e["type"]], "mode": ti.mode, "uid": 0, "gid": 0,
		           "size": ti.size, "mtime_ns": ti.mtime * 10**9, "offset": off, "path": name}
		    if "target" in e:
		        ent["link"] = e["target"]
		    if e["type"] == "file":     # the XXH3-128 every file entry carries
		        ent["xxh3"] = subprocess.run(["xxhsum", "-H2", "-"], input=data, stdout=subprocess.PIPE,
		                                     check=True).stdout.split()[0].decode().split("_")[-1]
		    index.append(ent)
		t.close()
		raw = os.path.join(out, "raw.tar")
		open(raw, "wb").write(buf.getvalue())
		data_path = os.path.join(out, "data.tar.zst")
		subprocess.run([sys.executable, check, "make", raw, data_path, "--frame-size", "65536"], check=True)
		os.unlink(raw)
		iz = subprocess.run(["zstd", "-qc"], input="".join(json.dumps(x) + "\n" for x in index).encode(),
		                    stdout=subprocess.PIPE, check=True).stdout
		open(os.path.join(out, "index.jsonl.zst"), "wb").write(iz)
		db = open(data_path, "rb").read()
		m = json.load(open(tpl))
		key = "/".join(m["data"]["key"].split("/")[:-2]) + "/" + fid + "/"
		m["backup_id"] = fid
		m["data"] = {"key": key + "data.tar.zst", "size": len(db), "sha256": hashlib.sha256(db).hexdigest()}
		m["index"] = {"key": key + "index.jsonl.zst", "size": len(iz), "sha256": hashlib.sha256(iz).hexdigest()}
		m["compression"]["frames"] = (len(buf.getvalue()) + 65535) // 65536
		m["compression"]["frame_size"] = 65536
		m["counts"].update(entries=len(index), files=sum(1 for e in spec if e["type"] == "file"),
		                   logical_bytes=sum(len(e.get("data", "")) for e in spec),
		                   tar_bytes=len(buf.getvalue()), stored_bytes=len(db) + len(iz))
		json.dump(m, open(os.path.join(out, "manifest.json"), "w"), indent=2)
	EOF
}

# every path an attack aims at, all outside the targets
outside=$hostile/outside
mkdir -p "$outside"
printf 'victim\n' >"$hostile/victim"
victim_sum=$(sha256sum <"$hostile/victim")
assert_nothing_outside() {
	local what=$1 f
	for f in "$hostile/evil" "$hostile/evil2" "$hostile/abs-evil" "$outside/pwned" \
		"$hostile/up-evil" "$hostile/targets/evil" "$TEST_TMP/evil" "/tmp/snapship-test-pwned"; do
		[ ! -e "$f" ] || fail "$what: the restore wrote $f outside its target"
	done
	[ -z "$(ls -A "$outside")" ] || fail "$what: the restore wrote into $outside: $(ls -A "$outside")"
	[ "$(sha256sum <"$hostile/victim")" = "$victim_sum" ] || fail "$what: the restore changed $hostile/victim"
	[ "$(stat -c %h "$hostile/victim")" = 1 ] || fail "$what: the restore hard-linked $hostile/victim"
}
mkdir -p "$hostile/targets"
hn=0
# hostile_restore WHAT SPEC [RESTORE OPTIONS]: forge, restore, check
hostile_restore() {
	local what=$1 spec=$2 fid rc=0
	shift 2
	hn=$((hn + 1))
	fid=$(printf '20300101T0000%02dZ-%06x' "$hn" "$hn")
	forge "$spec" "$fid"
	"$SNAPSHIP" restore cor-part --from "$hostile/store" --id "$fid" \
		--to "$hostile/targets/t$hn" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	echo "-- (e) $what: exit $rc: $(cat "$TEST_TMP/out" "$TEST_TMP/err" | head -c 400)"
	assert_nothing_outside "(e) $what"
	LAST_RC=$rc
	LAST_TARGET=$hostile/targets/t$hn
}

# the control: a benign forged backup restores, so failures below are the attacks'
hostile_restore "benign control" '[{"name":"ok.txt","type":"file","data":"fine\n"},{"name":"sub","type":"dir"},{"name":"sub/inner","type":"file","data":"inner\n"},{"name":"sub/rel-link","type":"symlink","target":"inner"}]'
[ "$LAST_RC" = 0 ] || fail "(e) a benign forged backup does not restore; the forging is wrong"
[ "$(cat "$LAST_TARGET/ok.txt")" = fine ] && [ "$(cat "$LAST_TARGET/sub/inner")" = inner ] ||
	fail "(e) the benign forged backup restored the wrong content"
python3 "$check" -q "$(find "$hostile/store" -name data.tar.zst | head -n 1)" >/dev/null ||
	fail "(e) the forged data object is not valid seekable zstd"

hostile_restore "../ path" "[{\"name\":\"ok.txt\",\"type\":\"file\",\"data\":\"ok\"},{\"name\":\"../evil\",\"type\":\"file\",\"data\":\"pwned\"}]"
[ "$LAST_RC" != 0 ] || [ ! -e "$LAST_TARGET/../evil" ] || fail "(e) ../evil was written"
grep -qiE 'unsafe|\.\.|refus' "$TEST_TMP/err" || [ "$LAST_RC" = 0 ] || fail "(e) ../ path: the error does not say the path is unsafe"

hostile_restore "deep ../ path" "[{\"name\":\"a\",\"type\":\"dir\"},{\"name\":\"a/../../../evil2\",\"type\":\"file\",\"data\":\"pwned\"}]"
[ "$LAST_RC" != 0 ] || fail "(e) a/../../../evil2: the restore succeeded"

hostile_restore "absolute path" "[{\"name\":\"$hostile/abs-evil\",\"type\":\"file\",\"data\":\"pwned\"}]"
[ "$LAST_RC" != 0 ] || [ -e "$LAST_TARGET/${hostile#/}/abs-evil" ] ||
	fail "(e) absolute path: the restore succeeded without putting the file inside the target"

hostile_restore "symlink to outside, then a file through it" \
	"[{\"name\":\"link\",\"type\":\"symlink\",\"target\":\"$outside\"},{\"name\":\"link/pwned\",\"type\":\"file\",\"data\":\"pwned\"}]"

hostile_restore "relative symlink .., then a file through it" \
	"[{\"name\":\"up\",\"type\":\"symlink\",\"target\":\"..\"},{\"name\":\"up/up-evil\",\"type\":\"file\",\"data\":\"pwned\"}]"
# (the target's parent is $hostile/targets: up/up-evil would be there)
[ ! -e "$hostile/targets/up-evil" ] || fail "(e) the restore wrote through a planted '..' symlink"

hostile_restore "symlink dir to outside, then a dir and file through it" \
	"[{\"name\":\"d\",\"type\":\"symlink\",\"target\":\"$hostile\"},{\"name\":\"d/outside/pwned\",\"type\":\"file\",\"data\":\"pwned\"}]"

hostile_restore "hard link to an absolute path" \
	"[{\"name\":\"hl\",\"type\":\"hardlink\",\"target\":\"$hostile/victim\"}]"
[ "$LAST_RC" != 0 ] || fail "(e) a hard link to an absolute path was accepted"

hostile_restore "hard link to ../" \
	"[{\"name\":\"hl\",\"type\":\"hardlink\",\"target\":\"../../victim\"}]"
[ "$LAST_RC" != 0 ] || fail "(e) a hard link to ../../victim was accepted"

hostile_restore "hard link through a planted symlink" \
	"[{\"name\":\"d\",\"type\":\"symlink\",\"target\":\"$hostile\"},{\"name\":\"h\",\"type\":\"hardlink\",\"target\":\"d/victim\"}]"

hostile_restore "symlink, then a file of the same name (write through the link)" \
	"[{\"name\":\"f\",\"type\":\"symlink\",\"target\":\"$hostile/victim\"},{\"name\":\"f\",\"type\":\"file\",\"data\":\"pwned\"}]"

hostile_restore "device node without --devices" \
	"[{\"name\":\"null\",\"type\":\"char\"}]"
[ ! -e "$LAST_TARGET/null" ] || fail "(e) a device node from the archive was created without --devices"

no_snapship_snapshots "$TEST_BTRFS"
[ -z "$(ls -A "$state/journal" 2>/dev/null)" ] || fail "journal not empty"
echo "corrupt ok"
