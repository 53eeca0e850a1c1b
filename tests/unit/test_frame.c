// SPDX-License-Identifier: MIT
/* Seekable zstd framing: round trips, the seek table, corruption. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zstd.h>

#include "common/err.h"
#include "stream/frame.h"
#include "stream/seal.h"

struct buf {
	unsigned char *p;
	size_t len, cap;
	int fail_after;       /* make the output fail after N calls (0 = never) */
	int calls;
};

static int buf_out(void *ctx, const void *data, size_t len, struct err *err)
{
	struct buf *b = ctx;

	if (b->fail_after && ++b->calls > b->fail_after)
		return err_set(err, -ENOSPC, "test sink full");
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

static unsigned char *make_input(size_t n)
{
	unsigned char *in = malloc(n ? n : 1);
	uint64_t x = 88172645463325252ULL;

	assert_non_null(in);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* compressible but not constant */
		in[i] = (unsigned char)("{\"id\":1234,\"name\":\"abc\"}\n"[i % 26] ^ ((x & 7) == 0 ? 1 : 0));
	}
	return in;
}

static struct buf frame_it(const unsigned char *in, size_t n, size_t frame_size,
			   unsigned workers, size_t piece, struct framer_stats *st)
{
	struct framer_opts o = { .level = 3, .frame_size = frame_size, .workers = workers };
	struct buf b = { 0 };
	struct framer *f;
	struct err err = { 0 };

	assert_int_equal(framer_new(&o, buf_out, &b, &f, &err), 0);
	for (size_t off = 0; off < n; off += piece)
		assert_int_equal(framer_write(f, in + off, n - off < piece ? n - off : piece, &err), 0);
	assert_int_equal(framer_finish(f, st, &err), 0);
	framer_free(f);
	return b;
}

struct obj {
	const unsigned char *p;
	size_t len;
	int fetches;
};

static int obj_fetch(void *ctx, uint64_t off, size_t len, unsigned attempt,
		     void *buf, struct err *err)
{
	struct obj *o = ctx;

	if (attempt)
		return -ENODATA;      /* one copy only */
	if (off + len > o->len)
		return err_set(err, -EIO, "fetch past end");
	memcpy(buf, o->p + off, len);
	__atomic_add_fetch(&o->fetches, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static void roundtrip(size_t n, size_t frame_size, unsigned workers, size_t piece)
{
	unsigned char *in = make_input(n), *out;
	struct framer_stats st;
	struct buf b = frame_it(in, n, frame_size, workers, piece, &st);
	struct seek_table *t = NULL;
	struct unframer *u = NULL;
	struct err err = { 0 };
	struct obj o = { b.p, b.len, 0 };
	size_t got = 0;

	assert_int_equal(st.bytes_in, n);
	assert_int_equal(st.bytes_out, b.len);
	assert_int_equal(st.frames, (n + frame_size - 1) / frame_size);
	/* stock zstd decodes the whole object (skipping the seek table) */
	out = malloc(n + 1);
	assert_int_equal(ZSTD_decompress(out, n + 1, b.p, b.len), n);
	assert_memory_equal(out, in, n);

	assert_int_equal(seek_table_parse(b.p, b.len, b.len, (uint32_t)frame_size, &t, &err), 0);
	assert_int_equal(t->nframes, st.frames);
	assert_int_equal(t->d_total, n);
	assert_true(t->has_checksums);
	/* every frame decodes on its own and matches its entry */
	memset(out, 0, n);
	if (t->nframes) {
		assert_int_equal(unframer_new(t, 0, t->nframes - 1, workers, 0, obj_fetch, &o, &u, &err), 0);
		for (;;) {
			const void *d;
			size_t dl;

			assert_int_equal(unframer_next(u, &d, &dl, NULL, NULL, &err), 0);
			if (!dl)
				break;
			memcpy(out + got, d, dl);
			got += dl;
		}
		unframer_free(u);
	}
	assert_int_equal(got, n);
	assert_memory_equal(out, in, n);
	/* the frame holding a given offset */
	if (n) {
		uint32_t i = seek_table_find(t, n - 1);

		assert_true(t->e[i].d_off <= n - 1 && n - 1 < t->e[i].d_off + t->e[i].d_size);
	}
	/* the frame starting at a given object offset; none inside a frame */
	for (uint32_t i = 0; i < t->nframes; i++) {
		assert_int_equal(seek_table_find_c(t, t->e[i].c_off), i);
		if (t->e[i].c_size > 1)
			assert_int_equal(seek_table_find_c(t, t->e[i].c_off + 1), t->nframes);
	}
	assert_int_equal(seek_table_find_c(t, t->c_total), t->nframes);
	seek_table_free(t);
	free(out);
	free(in);
	free(b.p);
}

static void test_roundtrip_sizes(void **state)
{
	(void)state;
	roundtrip(0, 4096, 2, 100);
	roundtrip(1, 4096, 2, 100);
	roundtrip(4096, 4096, 2, 4096);            /* exactly one frame */
	roundtrip(4097, 4096, 3, 1000);            /* one byte into a second */
	roundtrip(1 << 20, 64 << 10, 4, 12345);    /* many frames, odd pieces */
	roundtrip(3 << 20, 1 << 20, 1, 1 << 22);   /* one worker, big writes */
}

static void test_partial_range(void **state)
{
	size_t n = 1 << 20, fs = 64 << 10;
	unsigned char *in = make_input(n);
	struct framer_stats st;
	struct buf b = frame_it(in, n, fs, 2, 7777, &st);
	struct seek_table *t = NULL;
	struct unframer *u = NULL;
	struct err err = { 0 };
	struct obj o = { b.p, b.len, 0 };
	const void *d;
	size_t dl;

	(void)state;
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, (uint32_t)fs, &t, &err), 0);
	assert_int_equal(unframer_new(t, 5, 6, 2, 0, obj_fetch, &o, &u, &err), 0);
	assert_int_equal(unframer_next(u, &d, &dl, NULL, NULL, &err), 0);
	assert_int_equal(dl, fs);
	assert_memory_equal(d, in + 5 * fs, fs);
	assert_int_equal(unframer_next(u, &d, &dl, NULL, NULL, &err), 0);
	assert_memory_equal(d, in + 6 * fs, fs);
	assert_int_equal(unframer_next(u, &d, &dl, NULL, NULL, &err), 0);
	assert_int_equal(dl, 0);
	unframer_free(u);
	assert_int_equal(o.fetches, 2);     /* only the frames asked for */
	seek_table_free(t);
	free(in);
	free(b.p);
}

static void test_corrupt_frame_detected(void **state)
{
	size_t n = 256 << 10, fs = 64 << 10;
	unsigned char *in = make_input(n);
	struct framer_stats st;
	struct buf b = frame_it(in, n, fs, 2, n, &st);
	struct seek_table *t = NULL;
	struct unframer *u = NULL;
	struct err err = { 0 };
	struct obj o = { b.p, b.len, 0 };
	const void *d;
	size_t dl;
	int ret = 0;

	(void)state;
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, (uint32_t)fs, &t, &err), 0);
	b.p[t->e[2].c_off + t->e[2].c_size / 2] ^= 0x55;   /* inside frame 2 */
	assert_int_equal(unframer_new(t, 0, t->nframes - 1, 2, 0, obj_fetch, &o, &u, &err), 0);
	for (int i = 0; i < 8 && !ret; i++) {
		ret = unframer_next(u, &d, &dl, NULL, NULL, &err);
		if (!ret && !dl)
			break;
	}
	assert_int_equal(ret, -EBADMSG);
	assert_non_null(strstr(err.msg, "frame 2"));
	unframer_free(u);
	seek_table_free(t);
	free(in);
	free(b.p);
}

/* Two copies of one object, the first damaged: attempt n reads copy n. */
struct copies {
	const unsigned char *copy[2];
	size_t len;
	int second_reads;
};

static int copies_fetch(void *ctx, uint64_t off, size_t len, unsigned attempt,
			void *buf, struct err *err)
{
	struct copies *c = ctx;

	if (attempt > 1)
		return -ENODATA;
	if (off + len > c->len)
		return err_set(err, -EIO, "fetch past end");
	memcpy(buf, c->copy[attempt] + off, len);
	if (attempt)
		__atomic_add_fetch(&c->second_reads, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static void test_corrupt_frame_from_other_copy(void **state)
{
	size_t n = 512 << 10, fs = 64 << 10;
	unsigned char *in = make_input(n), *bad;
	struct framer_stats st;
	struct buf b = frame_it(in, n, fs, 2, n, &st);
	struct seek_table *t = NULL;
	struct unframer *u = NULL;
	struct err err = { 0 };
	struct copies c;
	size_t got = 0;

	(void)state;
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, (uint32_t)fs, &t, &err), 0);
	bad = malloc(b.len);
	assert_non_null(bad);
	memcpy(bad, b.p, b.len);
	bad[t->e[3].c_off + t->e[3].c_size / 2] ^= 0x55;   /* frame 3 */
	bad[t->e[5].c_off + 1] ^= 0x01;                     /* frame 5 */
	c = (struct copies){ { bad, b.p }, b.len, 0 };
	assert_int_equal(unframer_new(t, 0, t->nframes - 1, 2, 0, copies_fetch, &c, &u, &err), 0);
	for (;;) {
		const void *d;
		size_t dl;

		assert_int_equal(unframer_next(u, &d, &dl, NULL, NULL, &err), 0);
		if (!dl)
			break;
		assert_memory_equal(d, in + got, dl);
		got += dl;
	}
	assert_int_equal(got, n);
	/* only the two damaged frames came from the second copy */
	assert_int_equal(c.second_reads, 2);
	unframer_free(u);

	/* both copies damaged at frame 3: the frame's error stands */
	c.copy[1] = bad;
	c.second_reads = 0;
	assert_int_equal(unframer_new(t, 3, 3, 1, 0, copies_fetch, &c, &u, &err), 0);
	{
		const void *d;
		size_t dl;

		assert_int_equal(unframer_next(u, &d, &dl, NULL, NULL, &err), -EBADMSG);
		assert_non_null(strstr(err.msg, "frame 3"));
	}
	unframer_free(u);
	seek_table_free(t);
	free(bad);
	free(in);
	free(b.p);
}

static void test_bad_tables_rejected(void **state)
{
	size_t n = 200000;
	unsigned char *in = make_input(n);
	struct framer_stats st;
	struct buf b = frame_it(in, n, 65536, 2, n, &st);
	struct seek_table *t = NULL;
	struct err err = { 0 };

	(void)state;
	/* truncated object: the size no longer adds up */
	assert_int_equal(seek_table_parse(b.p + 1, b.len - 1, b.len - 1, 65536, &t, &err), -EBADMSG);
	err_clear(&err);
	/* wrong magic */
	b.p[b.len - 1] ^= 1;
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, 65536, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "seek table"));
	b.p[b.len - 1] ^= 1;
	err_clear(&err);
	/* a frame size in the table changed */
	b.p[b.len - 9 - 12 * st.frames] ^= 1;
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, 65536, &t, &err), -EBADMSG);
	/* too short to hold a footer: a corrupt object, not a usage error */
	err_clear(&err);
	assert_int_equal(seek_table_parse(b.p, 4, 4, 65536, &t, &err), -EBADMSG);
	err_clear(&err);
	assert_int_equal(seek_table_parse(b.p, 0, 0, 65536, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "too short"));
	assert_null(t);
	free(in);
	free(b.p);
}

/* ---- hostile tables: what a crafted object claims is checked first ---- */

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

struct fr {
	const void *c;        /* compressed bytes (NULL: clen zero bytes) */
	size_t clen;
	uint32_t c_size, d_size;   /* what the table says */
};

/* An object of frames f[0..n) and a seek table (no checksums) for them. */
static struct buf forge(const struct fr *f, size_t n)
{
	struct buf b = { 0 };
	unsigned char e[12];

	for (size_t i = 0; i < n; i++) {
		unsigned char *z = calloc(1, f[i].clen + 1);

		assert_non_null(z);
		if (f[i].c)
			memcpy(z, f[i].c, f[i].clen);
		buf_out(&b, z, f[i].clen, NULL);
		free(z);
	}
	put32(e, SEEK_SKIPPABLE_MAGIC);
	put32(e + 4, (uint32_t)(8 * n + SEEK_FOOTER_SIZE));
	buf_out(&b, e, 8, NULL);
	for (size_t i = 0; i < n; i++) {
		put32(e, f[i].c_size);
		put32(e + 4, f[i].d_size);
		buf_out(&b, e, 8, NULL);
	}
	put32(e, (uint32_t)n);
	e[4] = 0;
	put32(e + 5, SEEK_MAGIC);
	buf_out(&b, e, SEEK_FOOTER_SIZE, NULL);
	return b;
}

/* A footer claiming 16.7M frames on a tiny object: refused before any
 * allocation, by seek_table_size() (what the object can hold). */
static void test_frame_count_vs_object(void **state)
{
	unsigned char foot[SEEK_FOOTER_SIZE + 100] = { 0 };
	struct seek_table *t = NULL;
	struct err err = { 0 };
	uint32_t nf = 0;
	size_t need = 0;
	unsigned char z[SEEK_FRAME_MIN];
	struct fr one = { z, sizeof(z), sizeof(z), 1 };
	struct fr tiny[3] = { { z, 3, 3, 1 }, { z, 3, 3, 1 }, { z, 3, 3, 1 } };
	struct buf b;

	(void)state;
	memset(z, 0, sizeof(z));
	put32(foot + 100, 16700000);
	foot[104] = 0x80;
	put32(foot + 105, SEEK_MAGIC);
	assert_int_equal(seek_table_size(foot, sizeof(foot), sizeof(foot), &need, &nf, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "16700000 frames"));
	err_clear(&err);
	assert_int_equal(seek_table_parse(foot, sizeof(foot), sizeof(foot), 65536, &t, &err),
			 -EBADMSG);
	assert_null(t);
	/* a table larger than the object: the object's size, not len, counts */
	err_clear(&err);
	assert_int_equal(seek_table_size(foot, sizeof(foot), 40, &need, &nf, &err), -EBADMSG);

	/* one frame of SEEK_FRAME_MIN bytes: just fits */
	b = forge(&one, 1);
	err_clear(&err);
	assert_int_equal(seek_table_size(b.p, b.len, b.len, &need, &nf, &err), 0);
	assert_int_equal(nf, 1);
	assert_int_equal(need, 8 + 8 + SEEK_FOOTER_SIZE);
	free(b.p);
	/* three frames of 3 bytes: sizes add up, but no zstd frame is that
	 * small, so 3 frames cannot fit in 9 bytes */
	b = forge(tiny, 3);
	err_clear(&err);
	assert_int_equal(seek_table_size(b.p, b.len, b.len, &need, &nf, &err), -EBADMSG);
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, 65536, &t, &err), -EBADMSG);
	assert_null(t);
	free(b.p);
}

/* Frames claiming more than the backup's frame size, or more compressed
 * bytes than compressing frame_size bytes can give, or nothing. */
static void test_frame_sizes_vs_frame_size(void **state)
{
	/* forged tables have no checksums, as a sealed object's: a frame may
	 * hold its 16-byte tag besides */
	size_t n = 200000, bound = ZSTD_compressBound(4096) + SEAL_TAG_LEN;
	unsigned char *in = make_input(n);
	struct framer_stats st;
	struct buf b = frame_it(in, n, 65536, 2, n, &st);
	struct seek_table *t = NULL;
	struct err err = { 0 };
	struct fr big = { NULL, bound + 1, (uint32_t)bound + 1, 4096 };
	struct fr ok = { NULL, bound, (uint32_t)bound, 4096 };
	struct fr empty = { NULL, 64, 64, 0 };
	struct fr gib = { NULL, 64, 64, 1u << 30 };

	(void)state;
	/* written with 64 KiB frames: fine for 64 KiB, refused for 32 KiB */
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, 65536, &t, &err), 0);
	seek_table_free(t);
	t = NULL;
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, 32768, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "entry 0"));
	assert_null(t);
	/* a frame size out of range */
	err_clear(&err);
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, 0, &t, &err), -EBADMSG);
	free(b.p);

	/* c_size over ZSTD_compressBound(frame_size) */
	b = forge(&big, 1);
	err_clear(&err);
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, 4096, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "entry 0"));
	assert_null(t);
	free(b.p);
	b = forge(&ok, 1);
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, 4096, &t, &err), 0);
	seek_table_free(t);
	t = NULL;
	free(b.p);
	/* an empty frame (snapship never writes one) */
	b = forge(&empty, 1);
	err_clear(&err);
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, 4096, &t, &err), -EBADMSG);
	free(b.p);
	/* 1 GiB claimed with a 64 KiB frame size */
	b = forge(&gib, 1);
	err_clear(&err);
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, 65536, &t, &err), -EBADMSG);
	assert_null(t);
	free(b.p);
	free(in);
}

/* Offsets past the end of the stream or the object find no frame. */
static void test_find_past_end(void **state)
{
	size_t n = 300000, fs = 65536;
	unsigned char *in = make_input(n);
	struct framer_stats st;
	struct buf b = frame_it(in, n, fs, 2, n, &st);
	struct seek_table *t = NULL;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(seek_table_parse(b.p, b.len, b.len, (uint32_t)fs, &t, &err), 0);
	assert_int_equal(t->nframes, 5);
	assert_int_equal(seek_table_find(t, 0), 0);
	assert_int_equal(seek_table_find(t, n - 1), 4);
	assert_int_equal(seek_table_find(t, n), t->nframes);
	assert_int_equal(seek_table_find(t, n + 12345), t->nframes);
	assert_int_equal(seek_table_find(t, UINT64_MAX), t->nframes);
	assert_int_equal(seek_table_find_c(t, t->c_total), t->nframes);
	assert_int_equal(seek_table_find_c(t, b.len), t->nframes);
	assert_int_equal(seek_table_find_c(t, UINT64_MAX), t->nframes);
	seek_table_free(t);
	free(in);
	free(b.p);
}

/* A frame holding more than its table entry says: the header's content
 * size, or (without one) the output buffer of exactly d_size stops it. */
static void test_frame_larger_than_claimed(void **state)
{
	size_t n = 60000, zl, zl2;
	unsigned char *in = calloc(1, n), *z, *z2;
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	struct seek_table *t = NULL;
	struct unframer *u = NULL;
	struct err err = { 0 };
	const void *d;
	size_t dl;
	struct buf b;
	struct obj o;

	(void)state;
	assert_non_null(in);
	assert_non_null(cc);
	z = malloc(ZSTD_compressBound(n));
	z2 = malloc(ZSTD_compressBound(n));
	zl = ZSTD_compress(z, ZSTD_compressBound(n), in, n, 1);
	assert_false(ZSTD_isError(zl));
	/* the same without a content size in the header */
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
	{
		ZSTD_outBuffer ob = { z2, ZSTD_compressBound(n), 0 };
		ZSTD_inBuffer ib = { in, n, 0 };

		assert_int_equal(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end), 0);
		zl2 = ob.pos;
	}
	assert_int_equal(ZSTD_getFrameContentSize(z2, zl2), ZSTD_CONTENTSIZE_UNKNOWN);
	for (int k = 0; k < 2; k++) {
		struct fr f = { k ? z2 : z, k ? zl2 : zl, (uint32_t)(k ? zl2 : zl), 1000 };

		b = forge(&f, 1);
		o = (struct obj){ b.p, b.len, 0 };
		err_clear(&err);
		assert_int_equal(seek_table_parse(b.p, b.len, b.len, 65536, &t, &err), 0);
		assert_int_equal(unframer_new(t, 0, 0, 1, 0, obj_fetch, &o, &u, &err), 0);
		assert_int_equal(unframer_next(u, &d, &dl, NULL, NULL, &err), -EBADMSG);
		assert_non_null(strstr(err.msg, "frame 0"));
		if (!k)
			assert_non_null(strstr(err.msg, "header claims 60000"));
		unframer_free(u);
		seek_table_free(t);
		t = NULL;
		free(b.p);
	}
	ZSTD_freeCCtx(cc);
	free(z);
	free(z2);
	free(in);
}

static void test_output_failure_propagates(void **state)
{
	struct framer_opts o = { .level = 1, .frame_size = 4096, .workers = 2 };
	struct buf b = { .fail_after = 2 };
	unsigned char *in = make_input(1 << 20);
	struct framer *f;
	struct err err = { 0 };
	int ret = 0;

	(void)state;
	assert_int_equal(framer_new(&o, buf_out, &b, &f, &err), 0);
	for (size_t off = 0; off < (1 << 20) && !ret; off += 4096)
		ret = framer_write(f, in + off, 4096, &err);
	if (!ret)
		ret = framer_finish(f, NULL, &err);
	assert_int_equal(ret, -ENOSPC);
	assert_non_null(strstr(err.msg, "test sink full"));
	framer_free(f);
	free(b.p);
	free(in);
}

static void test_bad_level(void **state)
{
	struct framer_opts o = { .level = 99 };
	struct framer *f = NULL;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(framer_new(&o, buf_out, NULL, &f, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "level"));
	framer_free(NULL);
}

/* ------------------------------------------------------- sealed frames */

static struct buf frame_sealed(const unsigned char *in, size_t n, size_t fs,
			       const struct seal_key *k)
{
	struct framer_opts o = { .level = 3, .frame_size = fs, .workers = 2, .seal = k };
	struct buf b = { 0 };
	struct framer *f;
	struct err err = { 0 };

	assert_int_equal(framer_new(&o, buf_out, &b, &f, &err), 0);
	for (size_t off = 0; off < n; off += 777)
		assert_int_equal(framer_write(f, in + off, n - off < 777 ? n - off : 777, &err), 0);
	assert_int_equal(framer_finish(f, NULL, &err), 0);
	framer_free(f);
	return b;
}

/* An object of the frames pick[] (each from table t of object src[i]),
 * with a seek table of their sizes, as an attacker would write it. */
static struct buf rebuild(const struct buf **src, const struct seek_table **t,
			  const uint32_t *pick, size_t n)
{
	struct buf b = { 0 };
	struct err err = { 0 };
	unsigned char h[8], e[8], foot[9];

	for (size_t i = 0; i < n; i++)
		buf_out(&b, src[i]->p + t[i]->e[pick[i]].c_off, t[i]->e[pick[i]].c_size, &err);
	put32(h, SEEK_SKIPPABLE_MAGIC);
	put32(h + 4, (uint32_t)(n * 8 + 9));
	buf_out(&b, h, 8, &err);
	for (size_t i = 0; i < n; i++) {
		put32(e, t[i]->e[pick[i]].c_size);
		put32(e + 4, t[i]->e[pick[i]].d_size);
		buf_out(&b, e, 8, &err);
	}
	put32(foot, (uint32_t)n);
	foot[4] = 0;
	put32(foot + 5, SEEK_MAGIC);
	buf_out(&b, foot, 9, &err);
	return b;
}

/* Read all of obj with key k: 0, or the error with its message. */
static int read_sealed(const struct buf *obj, const struct seal_key *k, size_t fs,
		       const unsigned char *want, size_t n, struct err *err)
{
	struct seek_table *t = NULL;
	struct unframer *u = NULL;
	struct obj o = { obj->p, obj->len, 0 };
	size_t got = 0;
	int ret;

	assert_int_equal(seek_table_parse(obj->p, obj->len, obj->len, (uint32_t)fs, &t, err), 0);
	t->seal = k;
	assert_int_equal(unframer_new(t, 0, t->nframes - 1, 2, 0, obj_fetch, &o, &u, err), 0);
	for (;;) {
		const void *d;
		size_t dl;

		ret = unframer_next(u, &d, &dl, NULL, NULL, err);
		if (ret || !dl)
			break;
		if (want) {
			assert_true(got + dl <= n);
			assert_memory_equal(d, want + got, dl);
		}
		got += dl;
	}
	if (!ret && want)
		assert_int_equal(got, n);
	unframer_free(u);
	seek_table_free(t);
	return ret;
}

static void expect_bad(const struct buf *obj, const struct seal_key *k, size_t fs,
		       const char *why)
{
	struct err err = { 0 };

	assert_int_equal(read_sealed(obj, k, fs, NULL, 0, &err), -EBADMSG);
	if (!strstr(err.msg, why))
		fail_msg("wanted \"%s\", got: %s", why, err.msg);
}

static void test_sealed(void **state)
{
	const size_t n = 300000, fs = 32768;
	unsigned char *in = make_input(n), *in2 = make_input(n);
	struct seal_master *m = seal_alloc(sizeof(*m));
	struct seal_key *k = NULL, *k2 = NULL;
	struct seek_table *t = NULL, *t2 = NULL;
	struct err err = { 0 };
	struct buf a, a2, x;

	(void)state;
	assert_non_null(m);
	memset(m->key, 7, sizeof(m->key));
	assert_int_equal(seal_key_new(m, "20261203T080000Z-aaaaaa", SEAL_KIND_DATA, &k, &err), 0);
	assert_int_equal(seal_key_new(m, "20261203T090000Z-bbbbbb", SEAL_KIND_DATA, &k2, &err), 0);
	a = frame_sealed(in, n, fs, k);
	a2 = frame_sealed(in2, n, fs, k2);
	/* no plain zstd frame in the object: stock zstd cannot read it */
	assert_true(ZSTD_isError(ZSTD_getFrameContentSize(a.p, a.len)) ||
		    ZSTD_getFrameContentSize(a.p, a.len) == ZSTD_CONTENTSIZE_ERROR);
	assert_int_equal(read_sealed(&a, k, fs, in, n, &err), 0);
	/* the wrong key, and a plain reader */
	expect_bad(&a, k2, fs, "does not authenticate");

	assert_int_equal(seek_table_parse(a.p, a.len, a.len, (uint32_t)fs, &t, &err), 0);
	assert_int_equal(seek_table_parse(a2.p, a2.len, a2.len, (uint32_t)fs, &t2, &err), 0);
	assert_false(t->has_checksums);
	assert_int_equal(t->nframes, (n + fs - 1) / fs);
	{
		const struct buf *s[10] = { &a, &a, &a, &a, &a, &a, &a, &a, &a, &a };
		const struct seek_table *ts[10] = { t, t, t, t, t, t, t, t, t, t };
		uint32_t same[10] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 };
		uint32_t swap[10] = { 0, 1, 3, 2, 4, 5, 6, 7, 8, 9 };

		assert_int_equal(t->nframes, 10);
		/* the rebuild itself is faithful */
		x = rebuild(s, ts, same, 10);
		assert_int_equal(x.len, a.len);
		assert_memory_equal(x.p, a.p, a.len);
		free(x.p);
		/* a flipped bit in frame 4 */
		a.p[t->e[4].c_off + 20] ^= 0x10;
		expect_bad(&a, k, fs, "frame 4 (at byte");
		expect_bad(&a, k, fs, "does not authenticate");
		a.p[t->e[4].c_off + 20] ^= 0x10;
		/* frames 2 and 3 swapped */
		x = rebuild(s, ts, swap, 10);
		expect_bad(&x, k, fs, "frame 2 (at byte");
		expect_bad(&x, k, fs, "holds frame 3");
		free(x.p);
		/* cut at a frame boundary, with a seek table to match */
		x = rebuild(s, ts, same, 6);
		expect_bad(&x, k, fs, "truncated");
		free(x.p);
		/* frame 5 of another backup spliced in */
		s[5] = &a2;
		ts[5] = t2;
		x = rebuild(s, ts, same, 10);
		expect_bad(&x, k, fs, "frame 5 (at byte");
		expect_bad(&x, k, fs, "from another backup");
		free(x.p);
	}
	seek_table_free(t);
	seek_table_free(t2);
	seal_key_free(k);
	seal_key_free(k2);
	seal_master_free(m);
	free(a.p);
	free(a2.p);
	free(in);
	free(in2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_sizes),
		cmocka_unit_test(test_partial_range),
		cmocka_unit_test(test_corrupt_frame_detected),
		cmocka_unit_test(test_corrupt_frame_from_other_copy),
		cmocka_unit_test(test_bad_tables_rejected),
		cmocka_unit_test(test_frame_count_vs_object),
		cmocka_unit_test(test_frame_sizes_vs_frame_size),
		cmocka_unit_test(test_find_past_end),
		cmocka_unit_test(test_frame_larger_than_claimed),
		cmocka_unit_test(test_output_failure_propagates),
		cmocka_unit_test(test_bad_level),
		cmocka_unit_test(test_sealed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
