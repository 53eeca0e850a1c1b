// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the seekable-zstd data object (data.tar.zst) as a store
 * hands it over.  The input is the whole object.
 *
 *   1. seek_table_size() on the footer, then seek_table_parse() twice, as
 *      restore calls them: on the whole object, and on just the tail the
 *      footer asked for (the range restore fetches);
 *   2. the parsed table must be consistent: frames back to back from
 *      offset 0, sizes adding up to the object, seek_table_find() and
 *      seek_table_find_c() answering within it;
 *   3. when the object's content is small (≤ 8 MiB in ≤ 256 frames; more
 *      is the business of the memory bounds of restore, not of a parser),
 *      every frame is decompressed through an unframer fetching from the
 *      input, so the zstd frames and their checksums are fuzzed too;
 *   4. a table without checksums (an encrypted backup's) is unframed again
 *      with a fixed key (st->seal): opening each frame, and naming why one
 *      does not open (the search for the frame it holds) on hostile
 *      sizes; and the whole input is opened as a sealed stream (the
 *      encrypted index's segments).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "stream/frame.h"
#include "stream/seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define UNFRAME_MAX_BYTES (8u << 20)
#define UNFRAME_MAX_FRAMES 256u

struct obj {
	const uint8_t *p;
	size_t len;
};

static __attribute__((noreturn)) void bug(const char *what)
{
	fprintf(stderr, "fuzz_seektable: %s\n", what);
	abort();
}

static int fetch(void *ctx, uint64_t off, size_t len, unsigned attempt,
		 void *buf, struct err *err)
{
	const struct obj *o = ctx;

	if (attempt)
		return -ENODATA;           /* one copy only */
	if (off > o->len || len > o->len - off)
		bug("the unframer asked for bytes past the end of the object");
	memcpy(buf, o->p + off, len);
	(void)err;
	return 0;
}

static void check_table(const struct seek_table *st, size_t need, size_t size)
{
	uint64_t c = 0, d = 0;

	for (uint32_t i = 0; i < st->nframes; i++) {
		const struct seek_entry *e = &st->e[i];

		if (e->c_off != c || e->d_off != d)
			bug("frames are not back to back");
		c += e->c_size;
		d += e->d_size;
		if (seek_table_find_c(st, e->c_off) != i)
			bug("seek_table_find_c does not find a frame by its own offset");
	}
	if (c != st->c_total || d != st->d_total || c + need != size)
		bug("the table's totals do not add up to the object");
	if (seek_table_find_c(st, st->c_total) != st->nframes)
		bug("seek_table_find_c finds a frame at the seek table");
	for (int k = 0; k < 4; k++) {
		uint64_t at = k == 0 ? 0 : k == 1 ? st->d_total / 2 :
			      k == 2 ? (st->d_total ? st->d_total - 1 : 0) : st->d_total;
		uint32_t f = seek_table_find(st, at);

		if (f > st->nframes)
			bug("seek_table_find answers past the table");
		if (f < st->nframes &&
		    (st->e[f].d_off + st->e[f].d_size <= at ||
		     (st->e[f].d_size && st->e[f].d_off > at)))
			bug("seek_table_find answers a frame that does not hold the offset");
		if (f == st->nframes && at < st->d_total)
			bug("seek_table_find finds no frame for an offset inside the stream");
	}
}

static void unframe_all(const struct seek_table *st, const uint8_t *data, size_t size)
{
	struct obj o = { data, size };
	struct unframer *u = NULL;
	struct err err = { 0 };
	uint64_t got = 0;

	if (!st->nframes || st->nframes > UNFRAME_MAX_FRAMES ||
	    st->d_total > UNFRAME_MAX_BYTES)
		return;
	if (unframer_new(st, 0, st->nframes - 1, 1, 2, fetch, &o, &u, &err))
		return;
	for (;;) {
		const void *buf, *cbuf;
		size_t len, clen;

		if (unframer_next(u, &buf, &len, &cbuf, &clen, &err))
			break;
		if (!len && !buf)
			break;
		got += len;
		if (got > st->d_total)
			bug("the unframer hands out more than the table says");
	}
	unframer_free(u);
}

/* A fixed key (the fuzzer cannot forge a tag: it exercises the failure
 * paths, and what comes before them). */
static void keys(struct seal_key **data_ret, struct seal_key **index_ret)
{
	static struct seal_key *kd, *ki;
	struct err err = { 0 };

	if (!kd) {
		struct seal_master *m = seal_alloc(sizeof(*m));

		if (!m)
			bug("out of memory");
		memset(m->key, 0x5a, sizeof(m->key));
		if (seal_key_new(m, "20261203T080000Z-aaaaaa", SEAL_KIND_DATA, &kd, &err) ||
		    seal_key_new(m, "20261203T080000Z-aaaaaa", SEAL_KIND_INDEX, &ki, &err))
			bug("seal_key_new failed");
		seal_master_free(m);
	}
	*data_ret = kd;
	*index_ret = ki;
}

static void unseal_stream(const struct seal_key *k, const uint8_t *data, size_t size)
{
	struct err err = { 0 };
	void *out = NULL;
	size_t len = 0;

	if (size > UNFRAME_MAX_BYTES)
		return;
	if (!seal_unstream_buf(k, "fuzz", data, size, &out, &len, &err) && len > size)
		bug("a sealed stream opened into more bytes than it holds");
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seal_key *kd, *ki;

	struct seek_table *st = NULL, *st2 = NULL;
	struct err err = { 0 };
	size_t need = 0;
	uint32_t nframes = 0;
	/* restore parses with the manifest's frame size: small and largest */
	uint32_t frame_size = size && (data[0] & 1) ? FRAME_SIZE_MAX : 65536;

	keys(&kd, &ki);
	unseal_stream(ki, data, size);
	if (seek_table_size(data, size, size, &need, &nframes, &err))
		return 0;
	if (need <= size &&
	    !seek_table_parse(data + size - need, need, size, frame_size, &st2,
			      &err)) {
		check_table(st2, need, size);
		seek_table_free(st2);
	}
	err_clear(&err);
	if (seek_table_parse(data, size, size, frame_size, &st, &err))
		return 0;
	if (need > size)
		bug("a table longer than the object parsed");
	check_table(st, need, size);
	unframe_all(st, data, size);
	if (!st->has_checksums) {
		st->seal = kd;
		unframe_all(st, data, size);
		st->seal = NULL;
	}
	seek_table_free(st);
	return 0;
}
