/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_INDEX_H
#define SNAPSHIP_AGENT_INDEX_H

/*
 * The file index of a backup: one JSON object per entry, in stream order,
 * zstd-compressed (index.jsonl.zst).  Written while packing; read back for
 * restores (checksums, and offsets to fetch only the frames one file needs).
 *
 * Version 2 fields (doc/incremental.md), written for every entry since the
 * walk became sorted and ignored by readers before them: ino, igen,
 * ctime_ns, xattr_map (name -> base64 value).  ref (the backup holding a
 * file's content, absent: this one) is read and checked here; only forged
 * and incremental backups carry it.  Large files (pack.h "Large files in
 * blocks"): bsize, bxxh3 (each block's XXH3-128, hex, concatenated), bext
 * (each block's extent fingerprint, 16 hex digits each; optional) and runs
 * ([{"b", "n", "offset", "skip", "ref"?}], when the content is not one
 * whole tar entry at offset) — checked here for shape (sizes, order,
 * coverage); whether a run's tar entry holds its blocks is the restore's
 * check.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/catalog.h"
#include "stream/pack.h"

/*
 * What an index line may hold (a store is untrusted): lines of up to
 * 4 MiB (the streaming reader's buffer), up to 1024 extended attributes per
 * entry, names of 1..255 bytes without NUL, values of up to 64 KiB (Linux's
 * XATTR_SIZE_MAX).  The writer refuses an entry past these with a message
 * naming the file, rather than write an index nobody could read.
 */
#define INDEX_LINE_MAX (4u << 20)
#define INDEX_XATTR_MAX 1024
#define INDEX_XATTR_NAME_MAX 255
#define INDEX_XATTR_VALUE_MAX 65536

struct err;
struct sink;

struct index_writer;

int index_writer_new(struct sink *sink, int level, struct index_writer **w_ret,
		     struct err *err);
/* The same writing through out(ctx, ...) (an encrypted index: the
 * sealing writer, stream/seal.h) instead of a sink. */
typedef int (*index_out_fn)(void *ctx, const void *buf, size_t len, struct err *err);
int index_writer_new_fn(index_out_fn out, void *ctx, int level,
			struct index_writer **w_ret, struct err *err);
/* pack_entry_fn-compatible: ctx is the index_writer. */
int index_writer_add(void *ctx, const struct pack_entry_info *e,
		     struct err *err);
/* Flush the compressed stream into the sink (does not commit the sink). */
int index_writer_finish(struct index_writer *w, struct err *err);
void index_writer_free(struct index_writer *w);

struct index_entry {
	char *path;
	char *link;               /* symlink or hard-link target; NULL: none */
	bool link_legacy;         /* "(not UTF-8)": an old index's stand-in */
	char type;                /* enum pack_type */
	bool has_sum, has_rdev;
	bool sparse;              /* size counts holes the data does not hold */
	bool xattrs;              /* "xattrs": extended attributes or ACLs */
	unsigned char xxh3[16];
	uint32_t mode;            /* permission bits, as backed up */
	int64_t uid, gid;
	int64_t mtime_ns;
	uint64_t size;            /* regular files and hard links: the content's */
	uint64_t offset;
	uint64_t rdev;            /* devices */
	bool has_offset;          /* false: no location (made from the index) */
	/* version 2 (0 / "" / none when the index predates them) */
	uint64_t ino, igen;
	int64_t ctime_ns;
	char ref[BACKUP_ID_LEN + 1]; /* the backup holding the content; "" this one */
	struct index_xattr *xattr;   /* xattr_map, decoded; owned */
	size_t nxattr;
	/* A large file's blocks (bsize, bxxh3, bext, runs; NULL: not in
	 * blocks); owned.  Its runs always cover the file: an entry with one
	 * whole location (offset, ref) gets that one run. */
	struct pack_blocks *blk;
};

struct index_xattr {
	char *name;
	unsigned char *value;
	size_t len;
};

/* Free what an entry owns (path, link, xattrs, blocks) and zero it. */
void index_entry_clear(struct index_entry *e);
void index_blocks_free(struct pack_blocks *b);
/* A deep copy (NULL: out of memory). */
struct pack_blocks *index_blocks_dup(const struct pack_blocks *b);

/*
 * Streaming reader: entries one at a time from a compressed index, in
 * constant memory (the zstd window, one input buffer and one line of at
 * most INDEX_LINE_MAX), each checked exactly as index_load checks it
 * (index_load is built on it; only the duplicate-path check needs the
 * whole index and stays in index_load).
 *
 * index_read_fn: read up to len compressed bytes into buf; *got_ret = 0 at
 * the end.  Errors are returned as they are.
 */
typedef int (*index_read_fn)(void *ctx, void *buf, size_t len, size_t *got_ret,
			     struct err *err);
struct index_reader;
struct store;

/* From a buffer: zbuf stays the caller's and must outlive the reader. */
int index_reader_open_buf(const void *zbuf, size_t zlen,
			  struct index_reader **r_ret, struct err *err);
/* From a store object, read in 256 KiB ranges; store stays the caller's,
 * key is copied. */
int index_reader_open_store(struct store *store, const char *key,
			    struct index_reader **r_ret, struct err *err);
int index_reader_open_fn(index_read_fn read, void *ctx,
			 struct index_reader **r_ret, struct err *err);
/*
 * The next entry into *e (the caller's: index_entry_clear it, also after an
 * error it is zeroed).  1 = an entry, 0 = the end (the stream was whole),
 * negative = error (-EBADMSG: corrupt, truncated, a line too long).
 */
int index_reader_next(struct index_reader *r, struct index_entry *e,
		      struct err *err);
/* Lines read so far. */
size_t index_reader_lines(const struct index_reader *r);
void index_reader_free(struct index_reader *r);

/*
 * The entries, a hash of their paths (seeded per load: a crafted index
 * cannot make its paths collide) and, for restores, which entries the data
 * has matched.  A path listed twice makes the index corrupt.
 */
struct index {
	struct index_entry *e;    /* in stream order */
	size_t n;
	size_t *hash;             /* open addressing: entry number + 1, 0 = empty */
	size_t hcap;
	uint64_t seed;
	uint32_t *seen;           /* per entry: the pass that matched it, 0 none */
	uint32_t pass;
};

/* Parse a whole compressed index (as stored). */
int index_load(const void *zbuf, size_t zlen, struct index **idx_ret,
	       struct err *err);
void index_free(struct index *idx);
/* Entry number of path, or (size_t)-1. */
size_t index_find(const struct index *idx, const char *path);

/*
 * Matching the data's entries with the index: each pass over the data (one
 * per range read) may match an entry once.  index_mark returns 1 the first
 * time entry i is matched, 0 if an earlier pass matched it (overlapping
 * ranges), -1 if this pass already did (the data holds it twice).
 */
void index_pass_begin(struct index *idx);
int index_mark(struct index *idx, size_t i);
bool index_seen(const struct index *idx, size_t i);

#endif
