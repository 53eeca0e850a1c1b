#!/usr/bin/env python3
"""Forge backups in a directory store, as an attacker who can write to the
store would: valid or hostile seekable zstd data, index and manifest.

Import it (tests/tools on sys.path) or run it:

    forge.py backup STORE HOST PART ID SPEC_JSON [--frame-size N]
        [--manifest-set PATH=JSON]... [--index-jsonl FILE]
        [--format 2 [--parent ID]]
        Write STORE/HOST/PART/ID/{data.tar.zst,index.jsonl.zst,manifest.json}
        for the entries of SPEC_JSON (a JSON list, see tar_and_index()).
        --manifest-set changes one manifest field after it is built, e.g.
        --manifest-set 'partition="../../.."' or 'compression.frame_size=1'.
        --index-jsonl replaces the index with the given JSON lines.
        --format 2: a version 2 (incremental) backup, see forge_backup_v2():
        a file of the spec may say {"ref": OLDER_ID, "offset": N} or
        {"ref_path": PATH} (looked up in the index of "ref", default the
        parent) instead of "data"; --parent names the parent (default: the
        newest backup referenced, none: a full).

Library:
    zstd_frame(data, level=3, checksum=True) -> bytes   one zstd frame
    seekable(frames) -> bytes     frames: [(compressed, d_size, xxh64_low32)]
    seekable_from(raw, frame_size) -> (bytes, nframes)
    tar_and_index(spec) -> (tar_bytes, [index entries])
    forge_backup(store, host, part, bid, spec) -> (dir, manifest, entries)
    forge_backup_v2(store, host, part, bid, spec, parent=None) -> the same
    read_backup(store, host, part, bid) -> (manifest, index entries)
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


# ---- format version 2 (doc/incremental.md) --------------------------------

def read_backup(store, host, part, bid):
    """(manifest, index entries) of a backup in a directory store."""
    d = os.path.join(store, host, part, bid)
    with open(os.path.join(d, "manifest.json")) as f:
        man = json.load(f)
    with open(os.path.join(d, "index.jsonl.zst"), "rb") as f:
        raw = subprocess.run(["zstd", "-q", "-d", "-c"], input=f.read(),
                             stdout=subprocess.PIPE, check=True).stdout
    return man, [json.loads(line) for line in raw.decode().splitlines() if line]


def _index_path(ent):
    return ent["path"] if "path" in ent else os.fsdecode(bytes.fromhex(ent["path_hex"]))


def _resolve_ref(store, host, part, e, parent, cache):
    """(ref id, offset, older index entry or None) of a spec file that
    points at older content; an older entry that itself points further is
    followed to the backup holding the content."""
    bid = e.get("ref", parent)
    if not bid:
        raise ValueError("%s: ref_path without ref or --parent" % e["name"])
    if bid not in cache:
        cache[bid] = read_backup(store, host, part, bid)
    _, ents = cache[bid]
    if "ref_path" in e:
        old = [x for x in ents if _index_path(x) == e["ref_path"]]
        if not old:
            raise ValueError("%s: %s is not in backup %s" % (e["name"], e["ref_path"], bid))
        old = old[0]
        return old.get("ref", bid), old["offset"], old
    old = [x for x in ents if x.get("offset") == e["offset"] and x["type"] == "f"
           and not x.get("ref")]
    return bid, e["offset"], old[0] if old else None


def _v2_fields(ent, n):
    """ino, igen, ctime_ns as a packer writes them (identity: spec order)."""
    ent.setdefault("ino", 256 + n)
    ent.setdefault("igen", 1)
    ent.setdefault("ctime_ns", ent["mtime_ns"])
    return ent


def tar_and_index_v2(store, host, part, spec, parent=None):
    """The data (a pax tar of the files with content of their own: not
    referenced, not empty) and the complete index of a version 2 backup,
    plus the ids referenced and the bytes: (tar, index, refs, new_bytes,
    referenced_bytes, unchanged)."""
    cache = {}
    own = [e for e in spec if e["type"] == "file" and not ("ref" in e or "ref_path" in e)
           and e.get("data")]
    raw, own_ents = tar_and_index(own, root=False)
    own_by_name = {e["name"]: x for e, x in zip(own, own_ents)}
    index, refs = [], set()
    new_bytes = ref_bytes = unchanged = 0
    root = tar_and_index([], root=True)[1][0]
    root.pop("offset")
    index.append(_v2_fields(root, 0))
    for n, e in enumerate(spec, 1):
        if e["name"] in own_by_name:
            ent = own_by_name[e["name"]]
            new_bytes += ent["size"]
        elif e["type"] == "file" and ("ref" in e or "ref_path" in e):
            bid, off, old = _resolve_ref(store, host, part, e, parent, cache)
            plain = {k: v for k, v in e.items() if k not in ("ref", "ref_path", "offset")}
            ent = tar_and_index([plain], root=False)[1][0]
            ent["offset"], ent["ref"] = off, bid
            if old is not None:
                ent["size"] = old["size"]
                ent["xxh3"] = old["xxh3"]
                if old.get("sparse"):
                    ent["sparse"] = True
            refs.add(bid)
            ref_bytes += ent["size"]
            unchanged += 1
        else:
            ent = tar_and_index([e], root=False)[1][0]
            ent.pop("offset")   # made from the index alone: no location
            if "index" in e and e["index"] and "offset" in e["index"]:
                ent["offset"] = e["index"]["offset"]
        if "index" in e:
            if e["index"] is None:
                continue
            for k, v in e["index"].items():
                if v is None:
                    ent.pop(k, None)
                else:
                    ent[k] = v
        index.append(_v2_fields(ent, n))
    return raw, index, sorted(refs), new_bytes, ref_bytes, unchanged


def forge_backup_v2(store, host, part, bid, spec, parent=None, frame_size=65536,
                    index=None):
    """A version 2 backup of spec; returns (dir, manifest, index entries).
    parent: its id (None: the newest referenced one, or a full when none)."""
    raw, ents, refs, new_bytes, ref_bytes, unchanged = \
        tar_and_index_v2(store, host, part, spec, parent)
    if index is not None:
        ents = index
    if parent is None and refs:
        parent = refs[-1]
    data, nframes = seekable_from(raw, frame_size)
    ib = index_bytes(ents)
    files = sum(1 for e in spec if e["type"] == "file")
    man = manifest(host, part, bid, data, ib, nframes, frame_size, len(raw),
                   len(ents), files, new_bytes + ref_bytes)
    man["format_version"] = 2
    man["snapshot"]["source_uuid"] = "11111111-2222-3333-4444-555555555555"
    references = []
    for r in refs:
        rm, _ = read_backup(store, host, part, r)
        references.append({"id": r, "key": rm["data"]["key"], "size": rm["data"]["size"],
                           "sha256": rm["data"]["sha256"],
                           "etag": rm["data"].get("etag", "")})
    man["references"] = references
    man["parent"] = parent
    if parent:
        pm, _ = read_backup(store, host, part, parent)
        if pm["format_version"] >= 2:
            man["chain"], man["full_id"] = pm["chain"] + 1, pm["full_id"]
        else:
            man["chain"], man["full_id"] = 1, parent
    else:
        man["chain"], man["full_id"] = 0, bid
    man["counts"].update(new_bytes=new_bytes, referenced_bytes=ref_bytes,
                         unchanged=unchanged, changed=0,
                         new=sum(1 for e in ents if e["type"] == "f" and "ref" not in e and e["size"]),
                         deleted=0, meta_only=0, renamed=0)
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
    frame_size, sets, ijsonl, fmt, parent = 65536, [], None, 1, None
    rest = argv[7:]
    while rest:
        opt = rest.pop(0)
        if opt == "--frame-size":
            frame_size = int(rest.pop(0))
        elif opt == "--format":
            fmt = int(rest.pop(0))
        elif opt == "--parent":
            parent = rest.pop(0)
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
    if fmt == 2:
        d, man, _ = forge_backup_v2(store, host, part, bid, spec, parent, frame_size, index)
    elif fmt == 1 and parent is None:
        d, man, _ = forge_backup(store, host, part, bid, spec, frame_size, index)
    else:
        sys.stderr.write("forge.py: --format 1 or 2; --parent only with 2\n")
        return 2
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
