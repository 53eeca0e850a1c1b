/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_STREAM_EXTENTS_H
#define SNAPSHIP_STREAM_EXTENTS_H

/*
 * The extent fingerprint of a file's blocks (doc/incremental.md "Large
 * files in blocks", "Extent fingerprint"): per block of bsize bytes, the
 * XXH3-64 (seed EXTENTS_SEED) of the btrfs EXTENT_DATA items that overlap
 * it, each clipped to the block.  Two snapshots of a copy-on-write file
 * whose block has the same fingerprint hold the same bytes there.  Read
 * with BTRFS_IOC_TREE_SEARCH_V2 (metadata only; its cost follows the
 * file's extent count, not its size); memory: one 64 KiB search buffer.
 *
 * Per overlapping item, the canonical little-endian record hashed is
 * 50 bytes: clipped file start (u64), clipped length (u64), type (u8),
 * compression (u8), disk_bytenr (u64), disk_num_bytes (u64), extent offset
 * moved by the clip (u64), generation (u64); an inline item: clipped start,
 * length, type, compression, 0, 0, 0, generation, then its data bytes.
 * A block no item covers hashes to XXH3-64 of nothing with that seed.
 */

#include <stdint.h>

struct err;

#define EXTENTS_SEED UINT64_C(0x736e617073686970)   /* "snapship" */

/*
 * Fill out[0 .. nblocks) for the open file fd of size bytes (nblocks =
 * ceil(size / bsize)).  0; -EOPNOTSUPP when it has none (not btrfs, the
 * tree search refused: EPERM, a NOCOW file: FS_NOCOW_FL), err untouched;
 * other negative errors with err set.  fd stays the caller's.
 */
int extents_fingerprint(int fd, uint64_t size, uint32_t bsize, uint32_t nblocks,
			uint64_t *out, struct err *err);

#endif
