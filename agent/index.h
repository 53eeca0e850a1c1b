/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_INDEX_H
#define SNAPSHIP_AGENT_INDEX_H

/*
 * The file index of a backup: one JSON object per entry, in stream order,
 * zstd-compressed (index.jsonl.zst).  Written while packing; read back for
 * restores (checksums, and offsets to fetch only the frames one file needs).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/pack.h"

struct err;
struct sink;

struct index_writer;

int index_writer_new(struct sink *sink, int level, struct index_writer **w_ret,
		     struct err *err);
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
	unsigned char xxh3[16];
	uint32_t mode;            /* permission bits, as backed up */
	int64_t uid, gid;
	int64_t mtime_ns;
	uint64_t size;            /* regular files and hard links: the content's */
	uint64_t offset;
	uint64_t rdev;            /* devices */
};

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
