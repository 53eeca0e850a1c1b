#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tamper with an encrypted backup in a directory store, as an attacker who
holds the bucket but not the key would: rewrite the data object's frames
and its (plain) seek table, and fix up the manifest's clear-text fields
(data.size, data.sha256, counts.tar_bytes, compression.frames) so that only
the frames' authentication can tell.

  enc_tamper.py BACKUP_DIR flip K          a bit flipped in frame K
  enc_tamper.py BACKUP_DIR swap I J        frames I and J swapped
  enc_tamper.py BACKUP_DIR splice K OTHER  frame K replaced by frame K of
                                           the backup in directory OTHER
  enc_tamper.py BACKUP_DIR truncate K      only frames 0..K-1 kept
  enc_tamper.py BACKUP_DIR fingerprint     the manifest's key fingerprint
                                           changed
"""
import hashlib
import json
import os
import struct
import sys

SKIP_MAGIC = 0x184D2A5E
SEEK_MAGIC = 0x8F92EAB1


def frames(path):
    with open(path, "rb") as f:
        b = f.read()
    n, desc, magic = struct.unpack("<IBI", b[-9:])
    assert magic == SEEK_MAGIC and desc & 0x80 == 0, "not a sealed object"
    tsize = 8 + 8 * n + 9
    t = b[len(b) - tsize:]
    m, size = struct.unpack("<II", t[:8])
    assert m == SKIP_MAGIC and size == tsize - 8
    out, off = [], 0
    for i in range(n):
        c, d = struct.unpack("<II", t[8 + 8 * i:16 + 8 * i])
        out.append([b[off:off + c], d])
        off += c
    return out


def write(path, fr):
    body = b"".join(f[0] for f in fr)
    table = struct.pack("<II", SKIP_MAGIC, 8 * len(fr) + 9)
    table += b"".join(struct.pack("<II", len(f[0]), f[1]) for f in fr)
    table += struct.pack("<IBI", len(fr), 0, SEEK_MAGIC)
    with open(path, "wb") as f:
        f.write(body + table)
    return body + table


def main():
    bdir, op = sys.argv[1], sys.argv[2]
    data = os.path.join(bdir, "data.tar.zst")
    mpath = os.path.join(bdir, "manifest.json")
    with open(mpath) as f:
        man = json.load(f)
    if op == "fingerprint":
        fp = man["encryption"]["fingerprint"]
        man["encryption"]["fingerprint"] = ("0" if fp[0] != "0" else "1") + fp[1:]
    else:
        fr = frames(data)
        if op == "flip":
            k = int(sys.argv[3])
            c = bytearray(fr[k][0])
            c[len(c) // 2] ^= 0x08
            fr[k][0] = bytes(c)
        elif op == "swap":
            i, j = int(sys.argv[3]), int(sys.argv[4])
            fr[i], fr[j] = fr[j], fr[i]
        elif op == "splice":
            k = int(sys.argv[3])
            other = frames(os.path.join(sys.argv[4], "data.tar.zst"))
            fr[k] = other[k]
        elif op == "truncate":
            fr = fr[:int(sys.argv[3])]
        else:
            sys.exit("unknown operation " + op)
        obj = write(data, fr)
        man["data"]["size"] = len(obj)
        man["data"]["sha256"] = hashlib.sha256(obj).hexdigest()
        man["counts"]["tar_bytes"] = sum(f[1] for f in fr)
        man["compression"]["frames"] = len(fr)
    with open(mpath, "w") as f:
        json.dump(man, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
