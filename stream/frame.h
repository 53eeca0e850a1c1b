/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_STREAM_FRAME_H
#define SNAPSHIP_STREAM_FRAME_H

/*
 * Seekable zstd: a byte stream cut into independent zstd frames of a fixed
 * uncompressed size, compressed in parallel by a worker pool, followed by the
 * standard seekable-format seek table (a skippable frame), so stock
 * `zstd -d` reads it and snapship can decompress any frame on its own.
 *
 * Writing: framer_new() → framer_write()* → framer_finish() → framer_free().
 * The output callback is called in stream order from one internal thread.
 * Memory: (workers + 2) × (frame_size + compressed frame) at most.
 *
 * Reading: seek_table_parse() on the tail of an object, then an unframer
 * decompresses a range of frames in parallel, fetching compressed bytes
 * through a callback, and hands them out in order.
 */

#include <stddef.h>
#include <stdint.h>

struct err;
struct seal_key;

#define FRAME_SIZE_DEFAULT (4u << 20)
#define FRAME_SIZE_MAX (64u << 20)   /* the largest frame_size a backup uses */
#define SEEK_FRAME_MIN 9u            /* bytes of the smallest zstd frame */
#define SEEK_FOOTER_SIZE 9u
#define SEEK_SKIPPABLE_MAGIC 0x184D2A5Eu
#define SEEK_MAGIC 0x8F92EAB1u

/* Called in order with compressed bytes.  Nonzero (negative errno) aborts. */
typedef int (*framer_out_fn)(void *ctx, const void *buf, size_t len,
			     struct err *err);

struct framer_opts {
	int level;            /* zstd level, 1..19 */
	size_t frame_size;    /* uncompressed bytes per frame; 0 = default */
	unsigned workers;     /* compression threads; 0 = online CPUs */
	int cpu_priority;     /* of the compression threads: FRAMER_CPU_* */
	/*
	 * Client-side encryption (stream/seal.h): each frame is sealed as
	 * piece n (its number) with the last-frame flag on the last one;
	 * the seek table records the sealed sizes and no checksums (the
	 * tags authenticate; a checksum of the content would say something
	 * about it).  Borrowed; NULL: plain frames.
	 */
	const struct seal_key *seal;
};

enum {
	FRAMER_CPU_NORMAL = 0,   /* leave as the caller's */
	FRAMER_CPU_LOW = 1,      /* nice 10 */
	FRAMER_CPU_IDLE = 2,     /* SCHED_IDLE: runs only when a CPU is idle */
};

struct framer_stats {
	uint64_t bytes_in;    /* uncompressed */
	uint64_t bytes_out;   /* compressed, including the seek table */
	uint32_t frames;
};

struct framer;

int framer_new(const struct framer_opts *opts, framer_out_fn out, void *ctx,
	       struct framer **framer_ret, struct err *err);
/* Not thread safe: one producer. */
int framer_write(struct framer *f, const void *buf, size_t len,
		 struct err *err);
/* Flush the last frame, wait for all output, write the seek table. */
int framer_finish(struct framer *f, struct framer_stats *stats_ret,
		  struct err *err);
/* Stops workers (also mid-stream, abandoning output).  NULL is a no-op. */
void framer_free(struct framer *f);

/* Seek table. */
struct seek_entry {
	uint64_t c_off;       /* offset of the frame in the object */
	uint64_t d_off;       /* offset of its content in the stream */
	uint32_t c_size;
	uint32_t d_size;
	uint32_t checksum;    /* low 32 bits of XXH64 of the content */
};

struct seek_table {
	uint32_t nframes;
	int has_checksums;
	uint64_t c_total;     /* sum of c_size (object size minus seek table) */
	uint64_t d_total;
	struct seek_entry *e; /* nframes entries; owned */
	/* The caller sets it after seek_table_parse when the object's frames
	 * are sealed (framer_opts.seal): the unframer then opens each frame
	 * as piece k, the last flag on frame nframes - 1 only.  Borrowed. */
	const struct seal_key *seal;
};

/*
 * How many bytes of the tail of an object of obj_size bytes are needed:
 * call with the last SEEK_FOOTER_SIZE bytes to learn the whole table size
 * (*need_ret) and the frames it claims (*nframes_ret, may be NULL).  A
 * table that the object cannot hold (larger than the object, or more frames
 * than SEEK_FRAME_MIN bytes each leave room for) is refused (-EBADMSG), so
 * a caller never allocates by what a hostile footer claims.
 */
int seek_table_size(const unsigned char *footer, size_t len, uint64_t obj_size,
		    size_t *need_ret, uint32_t *nframes_ret, struct err *err);
/*
 * Parse the seek table from the last `len` bytes of an object of size
 * obj_size (len >= the size seek_table_size() returned).  Checks every
 * field: sizes must add up to obj_size; every frame holds 1..frame_size
 * bytes (frame_size: the backup's, 1..1 GiB) and SEEK_FRAME_MIN to
 * ZSTD_compressBound(frame_size) compressed bytes (+ a 16-byte tag when
 * sealed).  So every frame the
 * unframer decompresses needs at most frame_size + its bound of memory.
 * *st_ret: seek_table_free().
 */
int seek_table_parse(const unsigned char *tail, size_t len, uint64_t obj_size,
		     uint32_t frame_size, struct seek_table **st_ret,
		     struct err *err);
void seek_table_free(struct seek_table *st);
/*
 * A sealed object (st->seal): does its last frame (its c_size bytes in
 * buf) open as the last frame its backup wrote?  0, or -EBADMSG naming
 * why (the object cut at a frame boundary, ...).  Lets a reader that
 * needs only some frames (a restore with --path) still refuse a truncated
 * object up front.  0 for a plain table.
 */
int seek_table_open_last(const struct seek_table *st, const void *buf, size_t len,
			 struct err *err);
/*
 * A sealed object: open frame k (its c_size bytes in buf) into out
 * (c_size - 16 bytes of zstd frame; out may be buf).  -EBADMSG naming why
 * as the unframer does.  0 and nothing done for a plain table.
 */
int seek_table_open_frame(const struct seek_table *st, uint32_t k, const void *buf,
			  size_t len, void *out, struct err *err);
/* Index of the frame holding stream offset d_off, or nframes (d_off at or
 * past d_total): check before using it as an index. */
uint32_t seek_table_find(const struct seek_table *st, uint64_t d_off);
/* Index of the frame that starts at object offset c_off, or nframes. */
uint32_t seek_table_find_c(const struct seek_table *st, uint64_t c_off);

/*
 * Fetch len compressed bytes at off (thread safe; called from workers).
 * attempt is 0 for a frame's first fetch; when the bytes fetched do not
 * decode (corrupt), the unframer asks again with attempt 1, 2, ...: a
 * caller with other copies of the object returns the next copy's bytes, one
 * without returns -ENODATA and the frame's error stands.
 */
typedef int (*unframer_fetch_fn)(void *ctx, uint64_t off, size_t len,
				 unsigned attempt, void *buf, struct err *err);

struct unframer;

#define UNFRAME_MEM (96u << 20)   /* frame buffers in flight, see above */

/*
 * Decompress frames [first, last] of st in parallel (workers, 0 = CPUs),
 * at most `inflight` frames ahead (0 = workers + 2, fewer when that many
 * of the range's largest frames would take more than UNFRAME_MEM; at least
 * one).  Each frame's header, size and checksum is verified; a frame is
 * decompressed into a buffer of exactly its seek table size, so no frame
 * takes more memory than the table says.  When st->seal is set, a frame
 * that does not authenticate fails with -EBADMSG naming why when it can
 * tell (another frame of this object in its place, the object cut at a
 * frame boundary) and otherwise as altered or from another backup.
 */
int unframer_new(const struct seek_table *st, uint32_t first, uint32_t last,
		 unsigned workers, unsigned inflight, unframer_fetch_fn fetch,
		 void *ctx, struct unframer **u_ret, struct err *err);
/*
 * Next frame's content, in order: *buf_ret valid until the next call.
 * cbuf_ret/clen_ret (may be NULL) receive the frame's compressed bytes, so a
 * caller can hash the object in order.  Returns 0 with *len_ret = 0 at the
 * end.
 */
int unframer_next(struct unframer *u, const void **buf_ret, size_t *len_ret,
		  const void **cbuf_ret, size_t *clen_ret, struct err *err);
void unframer_free(struct unframer *u);

#endif
