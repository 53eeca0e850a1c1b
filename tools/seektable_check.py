#!/usr/bin/env python3
"""Check (or write) a zstd seekable-format object, independently of snapship.

    seektable_check.py [check] FILE [--no-decompress] [-q]
        Parse FILE's seek table per the zstd seekable format spec
        (contrib/seekable_format/zstd_seekable_compression_format.md) and
        check it against the data:
          - footer (last 9 bytes): u32 LE number of frames, descriptor byte
            (bit 7 checksum flag, bits 2-6 reserved = 0), u32 LE magic
            0x8F92EAB1;
          - the table is a skippable frame: u32 LE magic 0x184D2A5E, u32 LE
            size = entries + 9;
          - entries (u32 c_size, u32 d_size[, u32 checksum]) add up:
            sum(c_size) + table frame size == file size;
          - every frame slice is exactly one zstd frame (header and blocks
            walked, nothing before or after it), decompresses on its own
            with `zstd -d` to d_size bytes, and its checksum is the low 32
            bits of XXH64(content, seed 0).
        Prints a summary; exits 0 when everything holds, 1 on any mismatch,
        2 on usage errors.

    seektable_check.py make IN OUT [--frame-size N] [--level L]
        Write a seekable object: IN cut into frames of N bytes (default
        4 MiB), each compressed on its own with `zstd`, then the seek table
        (with checksums).  For tests that need to craft an archive.

    seektable_check.py xxh64 FILE
        Print XXH64 (seed 0) of FILE in hex (the pure Python implementation).

Python 3 standard library only; uses the zstd command.  XXH64 is computed
with the `xxh64sum` command when installed, else in pure Python.
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile

SKIPPABLE_MAGIC = 0x184D2A5E
SEEKABLE_MAGIC = 0x8F92EAB1
ZSTD_MAGIC = 0xFD2FB528
FOOTER_SIZE = 9
MAX_FRAMES = 0x8000000  # ZSTD_SEEKABLE_MAXFRAMES

# ---------------------------------------------------------------- XXH64

P1 = 0x9E3779B185EBCA87
P2 = 0xC2B2AE3D27D4EB4F
P3 = 0x165667B19E3779F9
P4 = 0x85EBCA77C2B2AE63
P5 = 0x27D4EB2F165667C5
M64 = 0xFFFFFFFFFFFFFFFF


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _round(acc, lane):
    acc = (acc + lane * P2) & M64
    acc = _rotl(acc, 31)
    return (acc * P1) & M64


def _merge(acc, val):
    acc ^= _round(0, val)
    return (acc * P1 + P4) & M64


def xxh64_py(data, seed=0):
    """XXH64 per the xxHash specification (doc/xxhash_spec.md)."""
    n = len(data)
    i = 0
    if n >= 32:
        v1 = (seed + P1 + P2) & M64
        v2 = (seed + P2) & M64
        v3 = seed & M64
        v4 = (seed - P1) & M64
        limit = n - 32
        unpack = struct.Struct("<4Q").unpack_from
        while i <= limit:
            a, b, c, d = unpack(data, i)
            v1 = (_rotl((v1 + a * P2) & M64, 31) * P1) & M64
            v2 = (_rotl((v2 + b * P2) & M64, 31) * P1) & M64
            v3 = (_rotl((v3 + c * P2) & M64, 31) * P1) & M64
            v4 = (_rotl((v4 + d * P2) & M64, 31) * P1) & M64
            i += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & M64
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = (seed + P5) & M64
    h = (h + n) & M64
    while i + 8 <= n:
        (k,) = struct.unpack_from("<Q", data, i)
        h ^= _round(0, k)
        h = (_rotl(h, 27) * P1 + P4) & M64
        i += 8
    if i + 4 <= n:
        (k,) = struct.unpack_from("<I", data, i)
        h ^= (k * P1) & M64
        h = (_rotl(h, 23) * P2 + P3) & M64
        i += 4
    while i < n:
        h ^= (data[i] * P5) & M64
        h = (_rotl(h, 11) * P1) & M64
        i += 1
    h ^= h >> 33
    h = (h * P2) & M64
    h ^= h >> 29
    h = (h * P3) & M64
    h ^= h >> 32
    return h


# Known answers (xxHash's own test vectors / `xxh64sum`).
_VECTORS = [(b"", 0xEF46DB3751D8E999), (b"abc", 0x44BC2CF5AD770999)]


def _self_test():
    for data, want in _VECTORS:
        got = xxh64_py(data)
        if got != want:
            raise SystemExit("seektable_check: XXH64 self-test failed on %r: %016x != %016x"
                             % (data, got, want))


def xxh64(data):
    """XXH64 of bytes: the xxh64sum command when present, else pure Python."""
    tool = shutil.which("xxh64sum")
    if tool:
        p = subprocess.run([tool, "-"], input=data, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=False)
        if p.returncode == 0:
            word = p.stdout.split()[0].decode()
            # Output is the canonical (big-endian) hex of the 64-bit value;
            # some builds prefix the algorithm ("XXH64_...").
            word = word.split("_")[-1]
            return int(word, 16)
    return xxh64_py(data)


# ---------------------------------------------------------------- zstd frames


def zstd_frame_length(buf, pos=0):
    """Walk one zstd frame at buf[pos:] (header, blocks, checksum) and return
    (length, frame_content_size or None).  Raises ValueError if malformed."""
    if len(buf) - pos < 6:
        raise ValueError("too short for a zstd frame")
    (magic,) = struct.unpack_from("<I", buf, pos)
    if magic != ZSTD_MAGIC:
        raise ValueError("no zstd frame magic (found 0x%08x)" % magic)
    p = pos + 4
    fhd = buf[p]
    p += 1
    fcs_flag = fhd >> 6
    single = (fhd >> 5) & 1
    if (fhd >> 3) & 1:
        raise ValueError("reserved bit set in the frame header")
    checksum = (fhd >> 2) & 1
    did = fhd & 3
    if not single:
        p += 1  # window descriptor
    p += (0, 1, 2, 4)[did]
    fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    fcs = None
    if fcs_size:
        if p + fcs_size > len(buf):
            raise ValueError("frame header runs past the end")
        raw = int.from_bytes(buf[p:p + fcs_size], "little")
        fcs = raw + 256 if fcs_size == 2 else raw
        p += fcs_size
    while True:
        if p + 3 > len(buf):
            raise ValueError("block header runs past the end")
        h = int.from_bytes(buf[p:p + 3], "little")
        p += 3
        last = h & 1
        btype = (h >> 1) & 3
        bsize = h >> 3
        if btype == 3:
            raise ValueError("reserved block type")
        p += 1 if btype == 1 else bsize
        if p > len(buf):
            raise ValueError("block runs past the end")
        if last:
            break
    if checksum:
        p += 4
        if p > len(buf):
            raise ValueError("frame checksum runs past the end")
    return p - pos, fcs


def zstd_decompress(data):
    p = subprocess.run(["zstd", "-d", "-c", "-q"], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if p.returncode != 0:
        raise ValueError("zstd -d failed: %s" % p.stderr.decode(errors="replace").strip())
    return p.stdout


# ---------------------------------------------------------------- check


class Problems:
    def __init__(self, quiet):
        self.n = 0
        self.quiet = quiet

    def __call__(self, msg):
        self.n += 1
        print("MISMATCH: " + msg)

    def info(self, msg):
        if not self.quiet:
            print(msg)


def check(path, decompress=True, quiet=False):
    bad = Problems(quiet)
    with open(path, "rb") as f:
        obj = f.read()
    size = len(obj)
    if size < FOOTER_SIZE + 8:
        bad("%s: %d bytes is too short for a seek table" % (path, size))
        return 1
    nframes, desc, magic = struct.unpack_from("<IBI", obj, size - FOOTER_SIZE)
    if magic != SEEKABLE_MAGIC:
        bad("footer magic is 0x%08x, expected 0x%08x" % (magic, SEEKABLE_MAGIC))
        return 1
    has_sum = bool(desc & 0x80)
    if desc & 0x7C:
        bad("descriptor 0x%02x has reserved bits 2-6 set" % desc)
    if desc & 0x03:
        bad("descriptor 0x%02x has unused bits 0-1 set" % desc)
    if nframes > MAX_FRAMES:
        bad("%d frames is more than the format allows" % nframes)
        return 1
    esize = 12 if has_sum else 8
    table_payload = nframes * esize + FOOTER_SIZE
    table_size = table_payload + 8
    if table_size > size:
        bad("the seek table (%d bytes for %d frames) is larger than the file (%d)"
            % (table_size, nframes, size))
        return 1
    tpos = size - table_size
    smagic, ssize = struct.unpack_from("<II", obj, tpos)
    if smagic != SKIPPABLE_MAGIC:
        bad("skippable frame magic before the table is 0x%08x, expected 0x%08x"
            % (smagic, SKIPPABLE_MAGIC))
    if ssize != table_payload:
        bad("skippable frame size is %d, expected %d (%d entries + 9)"
            % (ssize, table_payload, nframes * esize))
    entries = []
    p = tpos + 8
    for _ in range(nframes):
        if has_sum:
            entries.append(struct.unpack_from("<III", obj, p))
        else:
            c, d = struct.unpack_from("<II", obj, p)
            entries.append((c, d, None))
        p += esize
    c_total = sum(e[0] for e in entries)
    d_total = sum(e[1] for e in entries)
    if c_total + table_size != size:
        bad("sum(c_size) %d + table %d = %d, but the file has %d bytes"
            % (c_total, table_size, c_total + table_size, size))
        return 1
    bad.info("%s: %d bytes, %d frames, checksums %s, %d bytes uncompressed, table %d bytes"
             % (path, size, nframes, "yes" if has_sum else "no", d_total, table_size))
    off = 0
    for i, (c, d, s) in enumerate(entries):
        sl = obj[off:off + c]
        where = "frame %d (at %d, %d bytes)" % (i, off, c)
        off += c
        if c == 0:
            bad("%s: empty frame" % where)
            continue
        try:
            flen, fcs = zstd_frame_length(sl)
        except ValueError as e:
            bad("%s: not a zstd frame: %s" % (where, e))
            continue
        if flen != c:
            bad("%s: holds a zstd frame of %d bytes, not exactly one frame" % (where, flen))
            continue
        if fcs is not None and fcs != d:
            bad("%s: frame header says %d bytes of content, the table %d" % (where, fcs, d))
        if not decompress:
            continue
        try:
            content = zstd_decompress(sl)
        except ValueError as e:
            bad("%s: %s" % (where, e))
            continue
        if len(content) != d:
            bad("%s: decompresses to %d bytes, the table says %d" % (where, len(content), d))
        if s is not None:
            got = xxh64(content) & 0xFFFFFFFF
            if got != s:
                bad("%s: checksum 0x%08x, the table says 0x%08x" % (where, got, s))
    if bad.n:
        print("%s: %d mismatch(es)" % (path, bad.n))
        return 1
    print("%s: ok: %d frames, %d -> %d bytes, seek table consistent%s"
          % (path, nframes, d_total, c_total, "" if decompress else " (not decompressed)"))
    return 0


# ---------------------------------------------------------------- make


def make(src, dst, frame_size=4 << 20, level=3):
    with open(src, "rb") as f:
        data = f.read()
    entries = []
    with open(dst, "wb") as out:
        for off in range(0, len(data), frame_size) if data else []:
            chunk = data[off:off + frame_size]
            p = subprocess.run(["zstd", "-q", "-c", "-%d" % level, "--no-check"],
                               input=chunk, stdout=subprocess.PIPE, check=True)
            out.write(p.stdout)
            entries.append((len(p.stdout), len(chunk), xxh64(chunk) & 0xFFFFFFFF))
        payload = b"".join(struct.pack("<III", *e) for e in entries)
        payload += struct.pack("<IBI", len(entries), 0x80, SEEKABLE_MAGIC)
        out.write(struct.pack("<II", SKIPPABLE_MAGIC, len(payload)) + payload)
    return 0


def main(argv):
    args = argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    _self_test()
    if args[0] == "make":
        fs, lvl, pos = 4 << 20, 3, []
        it = iter(args[1:])
        for a in it:
            if a == "--frame-size":
                fs = int(next(it))
            elif a == "--level":
                lvl = int(next(it))
            else:
                pos.append(a)
        if len(pos) != 2 or fs <= 0:
            print("usage: seektable_check.py make IN OUT [--frame-size N] [--level L]",
                  file=sys.stderr)
            return 2
        return make(pos[0], pos[1], fs, lvl)
    if args[0] == "xxh64":
        if len(args) != 2:
            return 2
        with open(args[1], "rb") as f:
            print("%016x" % xxh64_py(f.read()))
        return 0
    if args[0] == "check":
        args = args[1:]
    decompress = "--no-decompress" not in args
    quiet = "-q" in args
    files = [a for a in args if a not in ("--no-decompress", "-q")]
    if len(files) != 1:
        print("usage: seektable_check.py [check] FILE [--no-decompress] [-q]", file=sys.stderr)
        return 2
    if not os.path.isfile(files[0]):
        print("seektable_check: %s: no such file" % files[0], file=sys.stderr)
        return 2
    return check(files[0], decompress, quiet)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
