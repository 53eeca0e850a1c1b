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
	char type;
	bool has_sum;
	bool sparse;              /* size counts holes the data does not hold */
	unsigned char xxh3[16];
	uint64_t size;
	uint64_t offset;
};

struct index {
	struct index_entry *e;    /* in stream order */
	size_t n;
	size_t *hash;             /* open addressing: entry number + 1, 0 = empty */
	size_t hcap;
};

/* Parse a whole compressed index (as stored). */
int index_load(const void *zbuf, size_t zlen, struct index **idx_ret,
	       struct err *err);
void index_free(struct index *idx);
/* Entry number of path, or (size_t)-1. */
size_t index_find(const struct index *idx, const char *path);

#endif
