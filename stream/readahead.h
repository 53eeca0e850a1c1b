/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_STREAM_READAHEAD_H
#define SNAPSHIP_STREAM_READAHEAD_H

/*
 * Read-ahead with failover for the unframer: compressed bytes of one
 * seekable-zstd object held by several sources (copies), read through a
 * callback.  It knows no store and no region: a source is a number.
 *
 * One thread reads the frames of a range in order, several whole frames per
 * read (up to READAHEAD_BLOCK bytes), into a ring of READAHEAD_SLOTS blocks;
 * the unframer's workers copy their frames out of it through
 * readahead_fetch().  One read per eight frames instead of one per frame: a
 * quarter of the gateway's work per byte on an object store, and over a
 * long link the next block is on its way while the workers decompress the
 * current one.  A frame larger than a block is not read ahead: its worker
 * reads it alone, so read-ahead memory stays SLOTS x BLOCK.
 *
 * Failover: reads go to the current source (0 at first).  When a read fails
 * (other than -ENOMEM) the current source becomes the next one, for that
 * read and every later one, until the last source fails: then the block's
 * error stands, for every frame of that block and every frame after it.  A
 * frame that does not decode (the unframer asks again with attempt > 0) is
 * read again from the source after the one it came from.
 *
 * Use: readahead_new() once per object → for each range of frames
 * readahead_start(), unframer_new(..., readahead_fetch, ra, ...), read,
 * readahead_cancel(), unframer_free(), readahead_stop() → readahead_free().
 */

#include <stddef.h>
#include <stdint.h>

struct err;
struct seek_table;

#define READAHEAD_BLOCK (8u << 20)   /* bytes of whole frames per read */
#define READAHEAD_SLOTS 2            /* blocks held at once */

struct readahead_ops {
	/*
	 * Read exactly len bytes at off of the object from source src
	 * (0 .. nsources - 1) into buf.  0, or a negative errno with err set
	 * (fewer bytes than len is an error).  Called from the read-ahead
	 * thread and the unframer's workers at once: must be thread safe.
	 */
	int (*read)(void *ctx, size_t src, uint64_t off, size_t len, void *buf,
		    struct err *err);
	/*
	 * Optional: source src failed with *why; it and every later read go
	 * on from source src + 1.  Called once per source, under a lock.
	 */
	void (*failover)(void *ctx, size_t src, const struct err *why);
	/*
	 * Optional: the frame at off, read from source bad, did not decode;
	 * it is read again from source src.
	 */
	void (*retry)(void *ctx, size_t bad, size_t src, uint64_t off);
};

struct readahead;

/*
 * A read-ahead over st (borrowed: must outlive it) with nsources >= 1
 * sources read through ops (copied) with ctx (borrowed).  *ra_ret:
 * readahead_free().
 */
int readahead_new(const struct seek_table *st, size_t nsources,
		  const struct readahead_ops *ops, void *ctx,
		  struct readahead **ra_ret, struct err *err);

/*
 * Start reading frames [first, last] of st ahead (one thread).  Without a
 * started range, readahead_fetch() reads each frame when asked.  At most one
 * range at a time: readahead_stop() the one before.
 */
int readahead_start(struct readahead *ra, uint32_t first, uint32_t last,
		    struct err *err);

/*
 * The unframer's fetch callback (an unframer_fetch_fn, ctx = ra): len bytes
 * at off, from the range's block holding them, else read directly; with
 * attempt > 0 from the attempt-th source after the one the frame came from
 * (-ENODATA when there is none).  A fetch waiting for a block after
 * readahead_cancel() fails with -ECANCELED.
 */
int readahead_fetch(void *ra, uint64_t off, size_t len, unsigned attempt,
		    void *buf, struct err *err);

/* Release every fetch waiting for a block (before the unframer is freed).
 * No-op without a started range. */
void readahead_cancel(struct readahead *ra);

/* End the range: cancel, join the thread, free the blocks.  No-op without
 * a started range. */
void readahead_stop(struct readahead *ra);

/* Stops a started range and frees ra.  NULL is a no-op. */
void readahead_free(struct readahead *ra);

#endif
