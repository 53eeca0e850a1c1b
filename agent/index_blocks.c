// SPDX-License-Identifier: MIT
/*
 * Large files in blocks in the index (doc/incremental.md "Large files in
 * blocks"): bsize, bxxh3, bext and runs written and read, with their
 * shape checked (sizes, order, coverage); the entries' owned copies.
 */
#include "agent/index.h"
#include "agent/index_priv.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

/* bsize, bxxh3, bext and, unless the content is one whole entry at the
 * entry's offset, runs. */
int index_put_blocks(json_t *o, const struct pack_entry_info *e, struct err *err)
{
	const struct pack_blocks *b = e->blocks;
	size_t n = b->nblocks;
	char *hex = malloc(32 * n + 1);
	json_t *runs = NULL;
	int ret = -ENOMEM;

	if (!hex)
		goto out;
	for (size_t i = 0; i < n; i++)
		util_hex(b->xxh3[i], 16, hex + 32 * i);
	json_object_set_new(o, "bsize", json_integer(b->bsize));
	if (json_object_set_new(o, "bxxh3", json_string(hex)))
		goto out;
	if (b->ext) {
		for (size_t i = 0; i < n; i++)
			snprintf(hex + 16 * i, 17, "%016llx", (unsigned long long)b->ext[i]);
		if (json_object_set_new(o, "bext", json_string(hex)))
			goto out;
	}
	if (e->no_offset) {
		runs = json_array();
		if (!runs)
			goto out;
		for (size_t i = 0; i < b->nrun; i++) {
			const struct pack_run *r = &b->run[i];
			json_t *jr = json_pack("{s:I, s:I, s:I, s:I}", "b", (json_int_t)r->first,
					       "n", (json_int_t)r->n, "offset", (json_int_t)r->offset,
					       "skip", (json_int_t)r->skip);

			if (!jr || (r->ref[0] && json_object_set_new(jr, "ref", json_string(r->ref))) ||
			    json_array_append_new(runs, jr))
				goto out;
		}
		json_object_set_new(o, "runs", runs);
		runs = NULL;
	}
	ret = 0;
out:
	free(hex);
	json_decref(runs);
	if (ret)
		return err_set(err, ret, "out of memory");
	return 0;
}

void index_blocks_free(struct pack_blocks *b)
{
	if (!b)
		return;
	free(b->xxh3);
	free(b->ext);
	free(b->run);
	free(b);
}

struct pack_blocks *index_blocks_dup(const struct pack_blocks *b)
{
	struct pack_blocks *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	*c = *b;
	c->xxh3 = malloc((size_t)b->nblocks * 16);
	c->ext = b->ext ? malloc((size_t)b->nblocks * sizeof(*c->ext)) : NULL;
	c->run = malloc((b->nrun ? b->nrun : 1) * sizeof(*c->run));
	if (!c->xxh3 || (b->ext && !c->ext) || !c->run) {
		c->ext = b->ext ? c->ext : NULL;
		index_blocks_free(c);
		return NULL;
	}
	memcpy(c->xxh3, b->xxh3, (size_t)b->nblocks * 16);
	if (b->ext)
		memcpy(c->ext, b->ext, (size_t)b->nblocks * sizeof(*c->ext));
	memcpy(c->run, b->run, b->nrun * sizeof(*c->run));
	return c;
}

/* One run of "runs": b, n >= 1, offset, skip, ref (a backup id) or none. */
static int parse_run(json_t *jr, struct pack_run *r)
{
	json_int_t b = -1, n = -1, off = -1, skip = -1;
	const char *ref = NULL;

	if (json_unpack(jr, "{s:I, s:I, s:I, s:I, s?s}", "b", &b, "n", &n,
			"offset", &off, "skip", &skip, "ref", &ref) ||
	    b < 0 || n < 1 || off < 0 || skip < 0 || skip > (json_int_t)PACK_BLOCKS_MAX)
		return -1;
	if (ref && catalog_id_time(ref) < 0)
		return -1;
	r->first = (uint64_t)b;
	r->n = (uint64_t)n;
	r->offset = (uint64_t)off;
	r->skip = (uint64_t)skip;
	snprintf(r->ref, sizeof(r->ref), "%s", ref ? ref : "");
	return 0;
}

/* runs (or the entry's one location) into b: in order, each starting where
 * the last ended, together covering [0, nblocks). */
static int parse_runs(json_t *runs, struct index_entry *e, struct pack_blocks *b)
{
	size_t n = runs ? json_array_size(runs) : 1;
	uint64_t next = 0;

	if ((runs && (!json_is_array(runs) || !n || n > b->nblocks)) ||
	    (runs && e->has_offset) || (!runs && !e->has_offset))
		return -1;
	b->run = calloc(n, sizeof(*b->run));
	if (!b->run)
		return -ENOMEM;
	b->nrun = n;
	if (!runs) {
		b->run[0] = (struct pack_run){ .first = 0, .n = b->nblocks, .offset = e->offset };
		memcpy(b->run[0].ref, e->ref, sizeof(b->run[0].ref));
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct pack_run *r = &b->run[i];

		if (parse_run(json_array_get(runs, i), r) || r->first != next ||
		    r->n > b->nblocks - next)
			return -1;
		next += r->n;
	}
	return next == b->nblocks ? 0 : -1;
}

/*
 * A large file's blocks: only on a regular, not sparse file of at least
 * PACK_BLOCKED_MIN bytes, bsize a power of two in [PACK_BSIZE_READ_MIN,
 * PACK_BSIZE_MAX] giving at most PACK_BLOCKS_MAX blocks (not necessarily
 * what pack_block_size gives today); bxxh3 of 32 and bext of 16 hex digits
 * per block.
 */
int index_parse_blocks(json_t *o, struct index_entry *e, const char **why)
{
	json_t *jb = json_object_get(o, "bsize"), *runs = json_object_get(o, "runs");
	const char *sum = json_string_value(json_object_get(o, "bxxh3"));
	const char *ext = json_string_value(json_object_get(o, "bext"));
	struct pack_blocks *b;
	uint32_t want;
	int ret;

	if (!jb && !runs && !json_object_get(o, "bxxh3") && !json_object_get(o, "bext"))
		return 0;
	*why = "bad blocks";
	if (!json_is_integer(jb) || json_integer_value(jb) < PACK_BSIZE_READ_MIN ||
	    json_integer_value(jb) > PACK_BSIZE_MAX ||
	    (json_integer_value(jb) & (json_integer_value(jb) - 1)) ||
	    e->type != PACK_FILE || e->sparse || !sum || e->size < PACK_BLOCKED_MIN ||
	    (json_object_get(o, "bext") && !ext))
		return -EBADMSG;
	want = (uint32_t)json_integer_value(jb);
	if ((e->size + want - 1) / want > PACK_BLOCKS_MAX)
		return -EBADMSG;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	e->blk = b;
	b->bsize = want;
	b->nblocks = (uint32_t)((e->size + want - 1) / want);
	if (strlen(sum) != 32 * (size_t)b->nblocks || (ext && strlen(ext) != 16 * (size_t)b->nblocks))
		return -EBADMSG;
	b->xxh3 = malloc((size_t)b->nblocks * 16);
	b->ext = ext ? malloc((size_t)b->nblocks * sizeof(*b->ext)) : NULL;
	if (!b->xxh3 || (ext && !b->ext))
		return -ENOMEM;
	if (index_unhex(sum, (unsigned char *)b->xxh3, 16 * (size_t)b->nblocks))
		return -EBADMSG;
	for (size_t i = 0; ext && i < b->nblocks; i++) {
		unsigned char v[8];

		if (index_unhex(ext + 16 * i, v, 8))
			return -EBADMSG;
		b->ext[i] = 0;
		for (int k = 0; k < 8; k++)
			b->ext[i] = b->ext[i] << 8 | v[k];
	}
	ret = parse_runs(runs, e, b);
	if (ret)
		return ret == -ENOMEM ? ret : -EBADMSG;
	return 0;
}
