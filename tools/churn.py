#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""churn.py — a database-like churn of a gendata tree, about 1 % of its bytes.

Used by tools/bench_incr.sh, tools/bench_sim30.sh and tools/bench_restic.sh
(issue 14's figures), so all three measure the same kind of change:

  * in-place rewrites of random 8 KiB pages (page-aligned offsets, the file
    size unchanged, like a database updating rows) spread over a few segment
    files: --rewrite-pct of the tree's bytes (default 0.5 %);
  * appends (JSON lines) to the 2-3 newest segment files: --append-pct
    (default 0.3 %);
  * small files: N new, N deleted, N renamed, N chmod'ed (default N: 1 % of
    the small files, i.e. 200 of gendata's 20,000; --small N to set it).

Reproducible: every choice and every byte comes from Python's random seeded
with --seed (a tree in the same state and the same seed give the same
churn).  The page contents are JSON lines like gendata's, so they compress
like the rest of the data.

Prints one JSON object (stdout): the tree's bytes before the churn, the bytes
actually written (pages + appends + new files), the whole size of the files
whose content changed (after the churn), the counts, and with --zstd the
written bytes compressed with `zstd -3` (what an ideal incremental stores).

  churn.py DIR --seed N [--rewrite-pct 0.5] [--append-pct 0.3] [--small N]
           [--segments K] [--zstd]
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys

PAGE = 8192
CITIES = ["Toronto", "Paris", "Lagos", "Osaka", "Lima", "Oslo", "Pune", "Austin"]
EVENTS = ["add_to_cart", "checkout", "page_view", "login", "refund", "search"]


def record(rng, seq):
    """One JSON line like gendata's documents (a row updated by the database)."""
    doc = {
        "_id": "%024x" % rng.getrandbits(96),
        "seq": seq,
        "updated_at": "2026-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
            rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
            rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999)),
        "rev": rng.randint(2, 40),
        "type": "event",
        "event": rng.choice(EVENTS),
        "user_id": "cus_%07d" % rng.randint(0, 9999999),
        "amount": round(rng.uniform(1, 500), 2),
        "geo": {"city": rng.choice(CITIES), "lat": round(rng.uniform(-90, 90), 4),
                "lon": round(rng.uniform(-180, 180), 4)},
        "duration_ms": rng.randint(1, 5000),
    }
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


def lines(rng, size):
    """Exactly size bytes of JSON lines, the last one padded with spaces."""
    out = bytearray()
    seq = rng.randint(1, 10 ** 9)
    while len(out) < size:
        r = record(rng, seq)
        seq += 1
        if len(out) + len(r) > size:
            pad = size - len(out)
            out += (b" " * (pad - 1) + b"\n") if pad > 0 else b""
            break
        out += r
    return bytes(out)


def regular_files(root):
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                yield p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--rewrite-pct", type=float, default=0.5)
    ap.add_argument("--append-pct", type=float, default=0.3)
    ap.add_argument("--small", type=int, default=-1,
                    help="small files new/deleted/renamed/chmod'ed each (default 1 %% of them)")
    ap.add_argument("--segments", type=int, default=4,
                    help="segment files the page rewrites are spread over")
    ap.add_argument("--zstd", action="store_true",
                    help="also report the written bytes compressed by zstd -3")
    a = ap.parse_args()

    rng = random.Random(a.seed)
    segs = sorted(regular_files(os.path.join(a.dir, "segments")))
    small = sorted(regular_files(os.path.join(a.dir, "small")))
    total = sum(os.path.getsize(p) for p in segs + small)
    if not segs:
        sys.exit("churn.py: no segment files under %s/segments" % a.dir)
    written = bytearray() if a.zstd else None
    touched = set()
    res = {"seed": a.seed, "tree_bytes": total}

    # page rewrites, spread over a few segments (not the appended ones when
    # there are enough), page-aligned, whole pages only
    app = segs[-3:] if len(segs) >= 6 else segs[-2:] if len(segs) >= 3 else segs[-1:]
    pool = [p for p in segs if p not in app] or segs
    rw = rng.sample(pool, min(a.segments, len(pool)))
    npages = int(total * a.rewrite_pct / 100 / PAGE)
    rewritten = 0
    for i in range(npages):
        p = rw[i % len(rw)]
        pages = os.path.getsize(p) // PAGE
        if pages == 0:
            continue
        data = lines(rng, PAGE)
        with open(p, "r+b") as f:
            f.seek(rng.randrange(pages) * PAGE)
            f.write(data)
        rewritten += PAGE
        touched.add(p)
        if written is not None:
            written += data
    res.update(rewrite_segments=len(rw), rewrite_pages=npages, rewrite_bytes=rewritten)

    # appends to the newest segments
    per = int(total * a.append_pct / 100 / len(app))
    appended = 0
    for p in app:
        if per <= 0:
            break
        data = lines(rng, per)
        with open(p, "ab") as f:
            f.write(data)
        appended += per
        touched.add(p)
        if written is not None:
            written += data
    res.update(append_segments=len(app) if per > 0 else 0, append_bytes=appended)

    # small files: new, deleted, renamed, chmod'ed (disjoint picks)
    n = a.small if a.small >= 0 else max(1, round(len(small) / 100))
    n = min(n, len(small) // 3)
    pick = rng.sample(small, 3 * n)
    dele, ren, chm = pick[:n], pick[n:2 * n], pick[2 * n:]
    sizes = [os.path.getsize(p) for p in rng.sample(small, min(len(small), 1000))]
    dirs = sorted({os.path.dirname(p) for p in small})
    new_bytes = 0
    for i in range(n):
        p = os.path.join(rng.choice(dirs), "new-%d-%d.json" % (a.seed, i))
        data = lines(rng, rng.choice(sizes))
        with open(p, "wb") as f:
            f.write(data)
        new_bytes += len(data)
        touched.add(p)
        if written is not None:
            written += data
    for p in dele:
        os.unlink(p)
    for i, p in enumerate(ren):
        os.rename(p, os.path.join(os.path.dirname(p), "ren-%d-%d%s" % (
            a.seed, i, os.path.splitext(p)[1])))
    for p in chm:
        os.chmod(p, 0o600 if os.stat(p).st_mode & 0o044 else 0o644)
    res.update(small_new=n, small_deleted=n, small_renamed=n, small_chmod=n,
               small_new_bytes=new_bytes)

    res["written_bytes"] = rewritten + appended + new_bytes
    res["touched_files"] = len(touched)
    res["touched_whole_bytes"] = sum(os.path.getsize(p) for p in touched)
    if written is not None and shutil.which("zstd"):
        z = subprocess.run(["zstd", "-q", "-3", "-c"], input=bytes(written),
                           stdout=subprocess.PIPE, check=True)
        res["written_zstd3_bytes"] = len(z.stdout)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
