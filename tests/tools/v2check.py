#!/usr/bin/env python3
"""Rebuild a backup's tree from a directory store with stock tools only.

    v2check.py rebuild STORE HOST PARTITION ID DEST
        Reads the backup's manifest and index (zstd -dc), and for every
        regular file with content the tar entry at its location: the offset
        in the data object of the backup its "ref" names (this one when
        absent), decompressed with zstd -dc and read with Python's tarfile.
        Makes DEST the tree the index describes (content, modes, owners,
        times, xattrs from xattr_map, symlinks, hard links, devices, fifos,
        holes where the index says sparse).  A large file in blocks
        (doc/incremental.md "Large files in blocks") is put together from
        its runs: blocks [b, b+n) from the data of the tar entry at the
        run's offset, skip blocks in, whose pax record SNAPSHIP.part
        ("START SIZE"; absent: a whole file) must put block b there; every
        block's XXH3-128 is checked against bxxh3.  Checks that every ref is
        in the manifest's references and that every referenced data object
        has the size and SHA-256 its record says.  Exit 1 with a message
        otherwise.

    v2check.py tarlist STORE HOST PARTITION ID
        The regular files the backup's own data object holds, one path a
        line (tar -t of it, directories and links aside).

Version 1 backups work too (no ref: everything is in their own object).
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

BLOCK = 4096


def _libxxhash():
    import ctypes

    class H128(ctypes.Structure):
        _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]
    try:
        lib = ctypes.CDLL("libxxhash.so.0")
    except OSError:
        return None
    lib.XXH3_128bits.restype = H128
    lib.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lib.XXH3_128bits


_XXH3 = _libxxhash()


def xxh3_128(data):
    """XXH3-128 as the index has it (libxxhash, or xxhsum -H2)."""
    if _XXH3 is not None:
        h = _XXH3(bytes(data), len(data))
        return "%016x%016x" % (h.high64, h.low64)
    p = subprocess.run(["xxhsum", "-H2", "-"], input=bytes(data), stdout=subprocess.PIPE,
                       check=True)
    return p.stdout.split()[0].decode().split("_")[-1]


def die(msg):
    print("v2check: " + msg, file=sys.stderr)
    sys.exit(1)


def unzstd(path):
    return subprocess.run(["zstd", "-dcq", path], check=True,
                          stdout=subprocess.PIPE).stdout


def backup_dir(store, host, part, bid):
    return os.path.join(store, host, part, bid)


def load(store, host, part, bid):
    d = backup_dir(store, host, part, bid)
    with open(os.path.join(d, "manifest.json"), "rb") as f:
        man = json.load(f)
    idx = [json.loads(l) for l in unzstd(os.path.join(d, "index.jsonl.zst")).splitlines() if l]
    return man, idx


def entry_path(e, key):
    if key in e:
        return e[key].encode()
    if key + "_hex" in e:
        return bytes.fromhex(e[key + "_hex"])
    return None


class Objects:
    """The tar streams of the data objects, decompressed once each."""

    def __init__(self, store, host, part, man):
        self.store, self.host, self.part, self.own = store, host, part, man["backup_id"]
        self.refs = {r["id"]: r for r in man.get("references", [])}
        self.tars = {}

    def tar(self, bid):
        if bid not in self.tars:
            path = os.path.join(backup_dir(self.store, self.host, self.part, bid), "data.tar.zst")
            if bid != self.own:
                if bid not in self.refs:
                    die(f"ref {bid} is not in the manifest's references")
                raw = open(path, "rb").read()
                r = self.refs[bid]
                if len(raw) != r["size"] or hashlib.sha256(raw).hexdigest() != r["sha256"]:
                    die(f"data object of {bid} does not match its reference record")
            bio = io.BytesIO(unzstd(path))
            self.tars[bid] = (bio, tarfile.open(fileobj=bio, mode="r:"))
        return self.tars[bid][1]

    def content(self, bid, off):
        return self.entry(bid, off)[1]

    def entry(self, bid, off):
        """(tarinfo, data) of the file entry at off of bid's stream."""
        tf = self.tar(bid)
        self.tars[bid][0].seek(off)   # next() reads from here when offset == tell()
        tf.offset = off
        tf.members = []
        tf.firstmember = None
        ti = tf.next()
        if ti is None or not ti.isfile():
            die(f"no file entry at offset {off} of {bid}'s data: {ti and (ti.name, ti.type, ti.offset)} tar_offset_after={tf.offset}")
        return ti, tf.extractfile(ti).read()


def blocked(objs, bid, e, rel):
    """A file in blocks, put together from its runs (or its one location),
    every block checked."""
    bs, size = e["bsize"], e["size"]
    runs = e.get("runs") or [{"b": 0, "n": -(-size // bs), "offset": e["offset"],
                              "skip": 0, "ref": e.get("ref", bid)}]
    out = bytearray(size)
    for r in runs:
        ti, data = objs.entry(r.get("ref", bid), r["offset"])
        part = ti.pax_headers.get("SNAPSHIP.part")
        start = int(part.split()[0]) if part else 0
        if start + r["skip"] * bs != r["b"] * bs:
            die(f"{rel!r}: run {r} does not match its entry (SNAPSHIP.part {part!r})")
        lo, hi = r["b"] * bs, min((r["b"] + r["n"]) * bs, size)
        chunk = data[r["skip"] * bs:r["skip"] * bs + hi - lo]
        if len(chunk) != hi - lo:
            die(f"{rel!r}: run {r}: its entry holds {len(data)} bytes")
        out[lo:hi] = chunk
    for i in range(0, size, bs):
        if xxh3_128(out[i:i + bs]) != e["bxxh3"][i // bs * 32:i // bs * 32 + 32]:
            die(f"{rel!r}: block {i // bs} does not match its checksum")
    if "xxh3" in e and xxh3_128(out) != e["xxh3"]:
        die(f"{rel!r}: does not match its checksum")
    return bytes(out)


def write_file(path, data, sparse):
    with open(path, "wb") as f:
        if not sparse:
            f.write(data)
            return
        zero = bytes(BLOCK)
        for i in range(0, len(data), BLOCK):
            blk = data[i:i + BLOCK]
            if blk == zero[:len(blk)]:
                f.seek(len(blk), os.SEEK_CUR)
            else:
                f.write(blk)
        f.truncate(len(data))


def rebuild(store, host, part, bid, dest):
    man, idx = load(store, host, part, bid)
    objs = Objects(store, host, part, man)
    dest = dest.encode()
    os.makedirs(dest, exist_ok=True)
    dirs = []
    for e in idx:
        rel = entry_path(e, "path")
        if rel == b".":
            continue
        p = os.path.join(dest, rel)
        t = e["type"]
        if t == "d":
            os.mkdir(p)
            dirs.append((p, e))
            continue
        if t == "f":
            data = b""
            if "bsize" in e:
                data = blocked(objs, bid, e, rel)
            elif e.get("size", 0) > 0:
                data = objs.content(e.get("ref", bid), e["offset"])
                if len(data) != e["size"]:
                    die(f"{rel!r}: {len(data)} bytes at its location, index says {e['size']}")
            write_file(p, data, e.get("sparse", False))
        elif t == "h":
            os.link(os.path.join(dest, entry_path(e, "link")), p)
            continue
        elif t == "l":
            os.symlink(entry_path(e, "link"), p)
        elif t == "p":
            os.mkfifo(p)
        elif t in "cb":
            os.mknod(p, (0o20000 if t == "c" else 0o60000) | e["mode"], e["rdev"])
        meta(p, e, t == "l")
    for p, e in reversed(dirs):
        meta(p, e, False)


def meta(p, e, link):
    import base64
    for name, val in (e.get("xattr_map") or {}).items():
        os.setxattr(p, name, base64.b64decode(val), follow_symlinks=not link)
    os.chown(p, e["uid"], e["gid"], follow_symlinks=not link)
    if not link:
        os.chmod(p, e["mode"])
    os.utime(p, ns=(e["mtime_ns"], e["mtime_ns"]), follow_symlinks=not link)


def tarlist(store, host, part, bid):
    path = os.path.join(backup_dir(store, host, part, bid), "data.tar.zst")
    with tarfile.open(fileobj=io.BytesIO(unzstd(path)), mode="r:") as tf:
        for ti in tf:
            if ti.isfile():
                print(ti.name)


def main():
    if len(sys.argv) == 7 and sys.argv[1] == "rebuild":
        rebuild(*sys.argv[2:7])
    elif len(sys.argv) == 6 and sys.argv[1] == "tarlist":
        tarlist(*sys.argv[2:6])
    else:
        die(__doc__)


if __name__ == "__main__":
    main()
