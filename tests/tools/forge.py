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
        parent) instead of "data"; or, with "data"/"data_file",
        "blocks_from": {"ref": OLDER_ID, "ref_path": PATH}: in blocks, the
        unchanged ones pointing at the older entry's, the others stored as
        SNAPSHIP.part entries (tar_and_index_v2()); --parent names the
        parent (default: the newest backup referenced, none: a full).

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


def _libxxhash():
    """libxxhash's XXH3_128bits through ctypes (None: not installed)."""
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
    """XXH3-128 of data as the index stores it (canonical hex)."""
    if _XXH3 is not None:
        h = _XXH3(bytes(data), len(data))
        return "%016x%016x" % (h.high64, h.low64)
    p = subprocess.run(["xxhsum", "-H2", "-"], input=data, stdout=subprocess.PIPE,
                       check=True)
    return p.stdout.split()[0].decode().split("_")[-1]


# ---- large files in blocks (doc/incremental.md "Large files in blocks") ----

BLOCKED_MIN = 4 << 20


def block_size(size):
    """A block size readers accept (the first design's rule, 1 MiB up;
    snapship writes 16 KiB up: forged backups keep a size of their own):
    0 = not in blocks."""
    b = 1 << 20
    if size < BLOCKED_MIN:
        return 0
    while (size + b - 1) // b > 16384:
        if b >= 1 << 30:
            return 0
        b <<= 1
    return b


def block_sums(data, bsize):
    """bxxh3: every block's XXH3-128, concatenated."""
    return "".join(xxh3_128(data[i:i + bsize]) for i in range(0, len(data), bsize))


def content(e):
    """A spec entry's content: "data" (str or bytes) or "data_file" (a path)."""
    if "data_file" in e:
        with open(e["data_file"], "rb") as f:
            return f.read()
    data = e.get("data", b"")
    return data.encode() if isinstance(data, str) else data


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
    fifo), data (str or bytes, files; hard links may carry data too) or
    data_file (a path holding it), target (links), mode, uid, gid, mtime,
    pax (dict of extra pax headers), blocks (false: a file of 4 MiB or more
    is not described in blocks; by default it gets bsize and bxxh3, as
    snapship writes them), index (dict merged into the index entry; None =
    leave the entry out).
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
        data = content(e)
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
            bs = block_size(len(data))
            if bs and e.get("blocks", True) is not False and \
                    not (e.get("index") or {}).get("sparse"):
                ent["bsize"], ent["bxxh3"] = bs, block_sums(data, bs)
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
    logical = sum(len(content(e)) for e in spec)
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


def _old_entry(store, host, part, e, parent, cache):
    """(backup id, entry) of the older entry a spec file points at: "ref"
    (default: the parent) and "ref_path" or "offset"."""
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
        return bid, old[0]
    old = [x for x in ents if x.get("offset") == e["offset"] and x["type"] == "f"
           and not x.get("ref")]
    return bid, old[0] if old else None


def _resolve_ref(store, host, part, e, parent, cache):
    """(ref id, offset, older index entry or None) of a spec file that
    points at older content; an older entry that itself points further is
    followed to the backup holding the content (offset None: the older
    entry is in runs)."""
    bid, old = _old_entry(store, host, part, e, parent, cache)
    if old is None:
        return bid, e["offset"], None
    return old.get("ref", bid), old.get("offset"), old


def old_runs(bid, old):
    """An older entry's runs, each naming the backup it reads (a whole
    location is one run)."""
    if "runs" in old:
        return [dict(r, ref=r.get("ref", bid)) for r in old["runs"]]
    n = -(-old["size"] // old["bsize"])
    return [{"b": 0, "n": n, "offset": old["offset"], "skip": 0,
             "ref": old.get("ref", bid)}]


def plan_blocks(e, data, bid, old):
    """A file in blocks against an older blocked entry (as the planner
    does): the blocks whose XXH3-128 equals the old one's at the same index
    (same length) keep the old location (its runs split: skip grows); runs
    of the others become SNAPSHIP.part entries.  Returns (runs, parts):
    runs with "ref" (older) or "part": k (the k-th part, offset filled
    later); parts as spec entries of the data tar."""
    bs = block_size(len(data))
    if not old or old.get("bsize") != bs:
        raise ValueError("%s: its blocks_from entry is not in blocks of %d bytes" % (e["name"], bs))
    n, oldn = -(-len(data) // bs), -(-old["size"] // bs)
    sums, osums = block_sums(data, bs), old["bxxh3"]
    where = {}
    for r in old_runs(bid, old):
        for i in range(r["b"], r["b"] + r["n"]):
            where[i] = (r["ref"], r["offset"], r["skip"] + i - r["b"])
    runs, parts = [], []
    for i in range(n):
        same = (i < oldn and sums[32 * i:32 * i + 32] == osums[32 * i:32 * i + 32] and
                min(bs, len(data) - i * bs) == min(bs, old["size"] - i * bs))
        last = runs[-1] if runs else None
        if same:
            ref, off, skip = where[i]
            if last and last.get("ref") == ref and last["offset"] == off and \
                    last["skip"] + last["n"] == skip:
                last["n"] += 1
            else:
                runs.append({"b": i, "n": 1, "offset": off, "skip": skip, "ref": ref})
        elif last and "part" in last:
            last["n"] += 1
        else:
            runs.append({"b": i, "n": 1, "offset": None, "skip": 0, "part": len(parts)})
            parts.append(None)
    for r in runs:
        if "part" in r:
            lo, hi = r["b"] * bs, min((r["b"] + r["n"]) * bs, len(data))
            parts[r["part"]] = {"name": e["name"], "type": "file", "data": data[lo:hi],
                                "blocks": False, "mode": e.get("mode", 0o644),
                                "mtime": e.get("mtime", 1700000000),
                                "pax": {"SNAPSHIP.part": "%d %d" % (lo, len(data))}}
    return runs, parts


def _blocked_entry(e, data, runs, part_offsets, refs):
    """The index entry of a file in runs."""
    plain = {k: v for k, v in e.items() if k not in ("blocks_from", "data", "data_file", "index")}
    ent = tar_and_index([plain], root=False)[1][0]
    ent.pop("offset")
    bs = block_size(len(data))
    ent.update(size=len(data), bsize=bs, bxxh3=block_sums(data, bs), runs=[])
    for r in runs:
        out = {"b": r["b"], "n": r["n"], "skip": r["skip"]}
        if "part" in r:
            out["offset"] = part_offsets[r["part"]]
        else:
            out["offset"] = r["offset"]
            out["ref"] = r["ref"]
            refs.add(r["ref"])
        ent["runs"].append(out)
    if any("ref" in r for r in ent["runs"]):
        ent.pop("xxh3")      # content not read whole by this backup
    else:
        ent["xxh3"] = xxh3_128(data)
    return ent


def _v2_fields(ent, n):
    """ino, igen, ctime_ns as a packer writes them (identity: spec order)."""
    ent.setdefault("ino", 256 + n)
    ent.setdefault("igen", 1)
    ent.setdefault("ctime_ns", ent["mtime_ns"])
    return ent


def _ref_entry(e, bid, off, old, refs):
    """The index entry of a spec file whose content is older (whole, or in
    runs when the older entry is)."""
    plain = {k: v for k, v in e.items() if k not in ("ref", "ref_path", "offset")}
    ent = tar_and_index([plain], root=False)[1][0]
    ent["offset"], ent["ref"] = off, bid
    if old is not None:
        ent["size"] = old["size"]
        for k in ("xxh3", "sparse", "bsize", "bxxh3", "bext"):
            ent.pop(k, None)
            if k in old:
                ent[k] = old[k]
        if "runs" in old:
            ent.pop("offset")
            ent.pop("ref")
            ent["runs"] = old_runs(bid, old)
            for r in ent["runs"]:
                refs.add(r["ref"])
            return ent
    refs.add(bid)
    return ent


def tar_and_index_v2(store, host, part, spec, parent=None):
    """The data (a pax tar of the files with content of their own: not
    referenced, not empty; and the SNAPSHIP.part entries of the files in
    blocks) and the complete index of a version 2 backup, plus the ids
    referenced and the bytes: (tar, index, refs, new_bytes,
    referenced_bytes, unchanged).

    A file may say "blocks_from": {"ref": ID (default the parent),
    "ref_path": PATH}: it is in blocks, and the blocks equal to that older
    entry's (same index, same length, same XXH3-128) point at where that
    entry has them; the others are stored as SNAPSHIP.part entries."""
    cache = {}
    own, plans = [], {}
    for e in spec:
        if e["type"] != "file" or "ref" in e or "ref_path" in e:
            continue
        if "blocks_from" in e:
            data = content(e)
            bid, old = _old_entry(store, host, part, e["blocks_from"], parent, cache)
            runs, parts = plan_blocks(e, data, bid, old)
            plans[e["name"]] = (data, runs, len(own), len(parts))
            own.extend(parts)
        elif content(e):
            own.append(e)
    raw, own_ents = tar_and_index(own, root=False)
    own_by_name = {e["name"]: x for e, x in zip(own, own_ents) if "blocks_from" not in e
                   and "SNAPSHIP.part" not in e.get("pax", {})}
    index, refs = [], set()
    new_bytes = ref_bytes = unchanged = 0
    root = tar_and_index([], root=True)[1][0]
    root.pop("offset")
    index.append(_v2_fields(root, 0))
    for n, e in enumerate(spec, 1):
        if e["name"] in plans:
            data, runs, first, nparts = plans[e["name"]]
            offs = [x["offset"] for x in own_ents[first:first + nparts]]
            ent = _blocked_entry(e, data, runs, offs, refs)
            new_bytes += sum(len(p["data"]) for p in own[first:first + nparts])
        elif e["name"] in own_by_name:
            ent = own_by_name[e["name"]]
            new_bytes += ent["size"]
        elif e["type"] == "file" and ("ref" in e or "ref_path" in e):
            bid, off, old = _resolve_ref(store, host, part, e, parent, cache)
            ent = _ref_entry(e, bid, off, old, refs)
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
                         new=sum(1 for e in ents if e["type"] == "f" and "ref" not in e
                                 and "runs" not in e and e["size"]),
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
