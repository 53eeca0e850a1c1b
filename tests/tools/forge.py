#!/usr/bin/env python3
"""Forge backups in a directory store, as an attacker who can write to the
store would: valid or hostile seekable zstd data, index and manifest.

Import it (tests/tools on sys.path) or run it:

    forge.py backup STORE HOST PART ID SPEC_JSON [--frame-size N]
        [--manifest-set PATH=JSON]... [--index-jsonl FILE]
        Write STORE/HOST/PART/ID/{data.tar.zst,index.jsonl.zst,manifest.json}
        for the entries of SPEC_JSON (a JSON list, see tar_and_index()).
        --manifest-set changes one manifest field after it is built, e.g.
        --manifest-set 'partition="../../.."' or 'compression.frame_size=1'.
        --index-jsonl replaces the index with the given JSON lines.

Library:
    zstd_frame(data, level=3, checksum=True) -> bytes   one zstd frame
    seekable(frames) -> bytes     frames: [(compressed, d_size, xxh64_low32)]
    seekable_from(raw, frame_size) -> (bytes, nframes)
    tar_and_index(spec) -> (tar_bytes, [index entries])
    write_backup(store, host, part, bid, data, index_bytes, manifest)
    manifest(host, part, bid, data, index_bytes, **counts) -> dict
    zstd_compress(data) -> bytes  (whole stream, for the index)
    xxh64(data) -> int

Only the Python standard library and the `zstd` and `xxhsum` commands
(xxhsum -H2 gives the XXH3-128 that an index stores for a file's content;
every forged file entry carries it unless the spec's "index" overrides it).
"""

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tools"))
import seektable_check  # noqa: E402  (tools/seektable_check.py)

SKIPPABLE_MAGIC = 0x184D2A5E
SEEKABLE_MAGIC = 0x8F92EAB1

xxh64 = seektable_check.xxh64


def xxh3_128(data):
    """XXH3-128 of data as the index stores it (canonical hex)."""
    p = subprocess.run(["xxhsum", "-H2", "-"], input=data, stdout=subprocess.PIPE,
                       check=True)
    return p.stdout.split()[0].decode().split("_")[-1]


def zstd_frame(data, level=3, checksum=True):
    """One zstd frame holding data (content size in the header)."""
    args = ["zstd", "-q", "-c", "-%d" % level]
    if not checksum:
        args.append("--no-check")
    return subprocess.run(args, input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def zstd_compress(data):
    return zstd_frame(data)


def seekable(frames):
    """Concatenate frames [(compressed, d_size, check32)] and append the
    seek table (with checksums).  d_size and check32 may lie."""
    out = b"".join(f[0] for f in frames)
    payload = b"".join(struct.pack("<III", len(c), d & 0xFFFFFFFF, s & 0xFFFFFFFF)
                       for c, d, s in frames)
    payload += struct.pack("<IBI", len(frames), 0x80, SEEKABLE_MAGIC)
    return out + struct.pack("<II", SKIPPABLE_MAGIC, len(payload)) + payload


def seekable_from(raw, frame_size=65536):
    frames = []
    for off in range(0, len(raw), frame_size):
        chunk = raw[off:off + frame_size]
        frames.append((zstd_frame(chunk), len(chunk), xxh64(chunk) & 0xFFFFFFFF))
    return seekable(frames), len(frames)


_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
          "fifo": tarfile.FIFOTYPE}
_LETTERS = {"file": "f", "dir": "d", "symlink": "l", "hardlink": "h", "char": "c",
            "block": "b", "fifo": "p"}


def tar_and_index(spec, root=True):
    """A pax tar of spec's entries and the index entries that describe them.

    spec: list of dicts: name, type (file|dir|symlink|hardlink|char|block|
    fifo), data (str or bytes, files; hard links may carry data too), target
    (links), mode, uid, gid, mtime, pax (dict of extra pax headers),
    index (dict merged into the index entry; None = leave the entry out).
    root: put a "." directory first, as snapship does."""
    buf = io.BytesIO()
    t = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)
    index = []
    for e in ([{"name": ".", "type": "dir"}] if root else []) + list(spec):
        ti = tarfile.TarInfo(e["name"])
        ti.type = _TYPES[e["type"]]
        ti.mode = e.get("mode", 0o755 if e["type"] == "dir" else 0o644)
        ti.uid = e.get("uid", 0)
        ti.gid = e.get("gid", 0)
        ti.mtime = e.get("mtime", 1700000000)
        if "target" in e:
            ti.linkname = e["target"]
        if e["type"] in ("char", "block"):
            ti.devmajor, ti.devminor = 1, 3
        if e.get("pax"):
            ti.pax_headers = dict(e["pax"])
        data = e.get("data", b"")
        if isinstance(data, str):
            data = data.encode()
        off = buf.tell()
        if data or e["type"] == "file":
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        else:
            t.addfile(ti)
        ent = {"type": _LETTERS[e["type"]], "mode": ti.mode, "uid": ti.uid,
               "gid": ti.gid, "size": ti.size if e["type"] == "file" else 0,
               "mtime_ns": ti.mtime * 10**9, "offset": off,
               "path": e["name"].rstrip("/") or "."}
        if "target" in e:
            ent["link"] = e["target"]
        if e["type"] == "file":
            ent["xxh3"] = xxh3_128(data)
        if "index" in e:
            if e["index"] is None:
                continue
            for k, v in e["index"].items():   # None: leave the field out
                if v is None:
                    ent.pop(k, None)
                else:
                    ent[k] = v
        index.append(ent)
    t.close()
    return buf.getvalue(), index


def index_bytes(entries):
    return zstd_compress("".join(json.dumps(x) + "\n" for x in entries).encode())


def manifest(host, part, bid, data, ibytes, frames, frame_size, tar_bytes=0,
             entries=0, files=0, logical_bytes=0):
    key = "%s/%s/%s/" % (host, part, bid)
    return {
        "format_version": 1, "tool_version": "forge", "backup_id": bid,
        "host": host, "partition": part, "source": "/forged",
        "snapshot": {"uuid": "00000000-0000-0000-0000-000000000000",
                     "generation": 1, "time_ns": 1700000000 * 10**9},
        "started_ns": 1700000000 * 10**9, "finished_ns": 1700000001 * 10**9,
        "counts": {"entries": entries, "files": files, "dirs": 1, "others": 0,
                   "logical_bytes": logical_bytes, "tar_bytes": tar_bytes,
                   "stored_bytes": len(data) + len(ibytes)},
        "compression": {"algo": "zstd", "level": 3, "frame_size": frame_size,
                        "frames": frames},
        "data": {"key": key + "data.tar.zst", "size": len(data),
                 "sha256": hashlib.sha256(data).hexdigest()},
        "index": {"key": key + "index.jsonl.zst", "size": len(ibytes),
                  "sha256": hashlib.sha256(ibytes).hexdigest()},
        "hooks": [], "encryption": {"mode": "none"},
    }


def write_backup(store, host, part, bid, data, ibytes, man):
    d = os.path.join(store, host, part, bid)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "data.tar.zst"), "wb") as f:
        f.write(data)
    with open(os.path.join(d, "index.jsonl.zst"), "wb") as f:
        f.write(ibytes)
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(man, f, indent=2)
    return d


def forge_backup(store, host, part, bid, spec, frame_size=65536, index=None):
    """A complete backup of spec; returns (dir, manifest, index entries)."""
    raw, ents = tar_and_index(spec)
    if index is not None:
        ents = index
    data, nframes = seekable_from(raw, frame_size)
    ib = index_bytes(ents)
    files = sum(1 for e in spec if e["type"] == "file")
    logical = sum(len(e.get("data", b"")) for e in spec)
    man = manifest(host, part, bid, data, ib, nframes, frame_size, len(raw),
                   len(ents), files, logical)
    return write_backup(store, host, part, bid, data, ib, man), man, ents


def _set(obj, path, value):
    keys = path.split(".")
    for k in keys[:-1]:
        obj = obj[k]
    obj[keys[-1]] = value


def main(argv):
    if len(argv) < 7 or argv[1] != "backup":
        sys.stderr.write(__doc__)
        return 2
    store, host, part, bid, spec = argv[2:6] + [json.loads(argv[6])]
    frame_size, sets, ijsonl = 65536, [], None
    rest = argv[7:]
    while rest:
        opt = rest.pop(0)
        if opt == "--frame-size":
            frame_size = int(rest.pop(0))
        elif opt == "--manifest-set":
            sets.append(rest.pop(0))
        elif opt == "--index-jsonl":
            ijsonl = rest.pop(0)
        else:
            sys.stderr.write("forge.py: unknown option %s\n" % opt)
            return 2
    index = None
    if ijsonl:
        with open(ijsonl) as f:
            index = [json.loads(line) for line in f if line.strip()]
    d, man, _ = forge_backup(store, host, part, bid, spec, frame_size, index)
    if sets:
        for s in sets:
            path, _, value = s.partition("=")
            _set(man, path, json.loads(value))
        with open(os.path.join(d, "manifest.json"), "w") as f:
            json.dump(man, f, indent=2)
    print(d)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
