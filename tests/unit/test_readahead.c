// SPDX-License-Identifier: MIT
/*
 * stream/readahead: frames read ahead in blocks, in order, from a fake
 * in-memory object held by several sources, one of which can fail or hand
 * out a corrupt byte; failover to the next source, retry of a frame that
 * does not decode, and a failed block's error for every later frame.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "stream/frame.h"
#include "stream/readahead.h"

#define FRAME (1u << 20)
#define NFRAMES 20
#define NSRC_MAX 3
#define NEVER UINT64_MAX

struct fake {
	const unsigned char *obj;
	size_t len;
	size_t nsources;
	uint64_t fail_from[NSRC_MAX];   /* a read reaching past this byte fails */
	uint64_t corrupt_at[NSRC_MAX];  /* this byte comes out flipped */
	pthread_mutex_t mu;
	unsigned reads[NSRC_MAX];
	unsigned failovers, retries;
	size_t failover_src[NSRC_MAX];
	size_t retry_bad, retry_src;
	uint64_t retry_off;
};

static int fake_read(void *ctx, size_t src, uint64_t off, size_t len, void *buf,
		     struct err *err)
{
	struct fake *f = ctx;

	assert_true(src < f->nsources);
	assert_true(off + len <= f->len);
	pthread_mutex_lock(&f->mu);
	f->reads[src]++;
	pthread_mutex_unlock(&f->mu);
	if (off + len > f->fail_from[src])
		return err_set(err, -EIO, "fake source %zu: cannot read %zu bytes at %llu",
			       src, len, (unsigned long long)off);
	memcpy(buf, f->obj + off, len);
	if (f->corrupt_at[src] >= off && f->corrupt_at[src] < off + len)
		((unsigned char *)buf)[f->corrupt_at[src] - off] ^= 0x55;
	return 0;
}

static void fake_failover(void *ctx, size_t src, const struct err *why)
{
	struct fake *f = ctx;

	assert_non_null(strstr(why->msg, "fake source"));
	pthread_mutex_lock(&f->mu);
	if (f->failovers < NSRC_MAX)
		f->failover_src[f->failovers] = src;
	f->failovers++;
	pthread_mutex_unlock(&f->mu);
}

static void fake_retry(void *ctx, size_t bad, size_t src, uint64_t off)
{
	struct fake *f = ctx;

	pthread_mutex_lock(&f->mu);
	f->retries++;
	f->retry_bad = bad;
	f->retry_src = src;
	f->retry_off = off;
	pthread_mutex_unlock(&f->mu);
}

static const struct readahead_ops fake_ops = {
	.read = fake_read,
	.failover = fake_failover,
	.retry = fake_retry,
};

/* The object: NFRAMES frames of incompressible data, and its seek table. */
static unsigned char *input;
static unsigned char *object;
static size_t object_len;
static struct seek_table *table;

struct out {
	unsigned char *p;
	size_t len, cap;
};

static int out_write(void *ctx, const void *data, size_t len, struct err *err)
{
	struct out *o = ctx;

	(void)err;
	if (o->len + len > o->cap) {
		o->cap = (o->len + len) * 2;
		o->p = realloc(o->p, o->cap);
		assert_non_null(o->p);
	}
	memcpy(o->p + o->len, data, len);
	o->len += len;
	return 0;
}

static int setup(void **state)
{
	struct framer_opts fo = { .level = 1, .frame_size = FRAME, .workers = 2 };
	struct out o = { 0 };
	struct framer *fr;
	struct err err = { 0 };
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	(void)state;
	input = malloc((size_t)NFRAMES * FRAME);
	if (!input)
		return -1;
	for (size_t i = 0; i < (size_t)NFRAMES * FRAME; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		input[i] = (unsigned char)x;
	}
	if (framer_new(&fo, out_write, &o, &fr, &err) ||
	    framer_write(fr, input, (size_t)NFRAMES * FRAME, &err) ||
	    framer_finish(fr, NULL, &err))
		return -1;
	framer_free(fr);
	object = o.p;
	object_len = o.len;
	return seek_table_parse(object, object_len, object_len, FRAME, &table, &err);
}

static int teardown(void **state)
{
	(void)state;
	seek_table_free(table);
	free(object);
	free(input);
	return 0;
}

static void fake_init(struct fake *f, size_t nsources)
{
	memset(f, 0, sizeof(*f));
	f->obj = object;
	f->len = object_len;
	f->nsources = nsources;
	for (size_t i = 0; i < NSRC_MAX; i++)
		f->fail_from[i] = f->corrupt_at[i] = NEVER;
	pthread_mutex_init(&f->mu, NULL);
}

/*
 * The first frame of each block: whole frames, as many as fit in
 * READAHEAD_BLOCK bytes.  Returns the number of blocks.
 */
static unsigned block_starts(uint32_t *starts)
{
	unsigned n = 0;
	uint32_t f = 0;

	while (f < table->nframes) {
		uint64_t len = table->e[f].c_size;

		starts[n++] = f;
		while (++f < table->nframes && len + table->e[f].c_size <= READAHEAD_BLOCK)
			len += table->e[f].c_size;
	}
	return n;
}

/* Decompress every frame through the read-ahead; 0 or the unframer's error. */
static int read_all(struct readahead *ra, bool start, struct out *o, struct err *err)
{
	struct unframer *u;
	int ret;

	if (start)
		assert_int_equal(readahead_start(ra, 0, table->nframes - 1, err), 0);
	assert_int_equal(unframer_new(table, 0, table->nframes - 1, 2, 0,
				      readahead_fetch, ra, &u, err), 0);
	for (;;) {
		const void *d;
		size_t dlen;

		ret = unframer_next(u, &d, &dlen, NULL, NULL, err);
		if (ret || !dlen)
			break;
		out_write(o, d, dlen, NULL);
	}
	readahead_cancel(ra);
	unframer_free(u);
	readahead_stop(ra);
	return ret;
}

static void assert_all_read(const struct out *o)
{
	assert_int_equal(o->len, (size_t)NFRAMES * FRAME);
	assert_memory_equal(o->p, input, o->len);
}

static void test_blocks_in_order(void **state)
{
	uint32_t starts[NFRAMES];
	unsigned nblocks = block_starts(starts);
	struct readahead *ra;
	struct fake f;
	struct out o = { 0 };
	struct err err = { 0 };

	(void)state;
	/* several frames per block, several blocks: the ring is exercised */
	assert_true(nblocks > 2 && nblocks < NFRAMES);
	fake_init(&f, 1);
	assert_int_equal(readahead_new(table, 1, &fake_ops, &f, &ra, &err), 0);
	assert_int_equal(read_all(ra, true, &o, &err), 0);
	assert_all_read(&o);
	/* one read per block, not per frame */
	assert_int_equal(f.reads[0], nblocks);
	assert_int_equal(f.failovers, 0);
	/* a second range on the same read-ahead */
	o.len = 0;
	assert_int_equal(read_all(ra, true, &o, &err), 0);
	assert_all_read(&o);
	assert_int_equal(f.reads[0], 2 * nblocks);
	readahead_free(ra);
	free(o.p);
}

static void test_no_range_reads_each_frame(void **state)
{
	struct readahead *ra;
	struct fake f;
	struct out o = { 0 };
	struct err err = { 0 };

	(void)state;
	fake_init(&f, 1);
	assert_int_equal(readahead_new(table, 1, &fake_ops, &f, &ra, &err), 0);
	assert_int_equal(read_all(ra, false, &o, &err), 0);
	assert_all_read(&o);
	assert_int_equal(f.reads[0], NFRAMES);
	readahead_free(ra);
	free(o.p);
}

static void test_failover_mid_range(void **state)
{
	uint32_t starts[NFRAMES];
	unsigned nblocks = block_starts(starts);
	struct readahead *ra;
	struct fake f;
	struct out o = { 0 };
	struct err err = { 0 };

	(void)state;
	/* source 0 answers the first block, then fails */
	fake_init(&f, 2);
	f.fail_from[0] = table->e[starts[1]].c_off + 1;
	assert_int_equal(readahead_new(table, 2, &fake_ops, &f, &ra, &err), 0);
	assert_int_equal(read_all(ra, true, &o, &err), 0);
	assert_all_read(&o);
	assert_int_equal(f.failovers, 1);
	assert_int_equal(f.failover_src[0], 0);
	/* the failed block from source 1, and every later one: source 0 is
	 * not asked again */
	assert_int_equal(f.reads[0], 2);
	assert_int_equal(f.reads[1], nblocks - 1);
	/* the next range starts from source 1 */
	o.len = 0;
	assert_int_equal(read_all(ra, true, &o, &err), 0);
	assert_all_read(&o);
	assert_int_equal(f.reads[0], 2);
	assert_int_equal(f.reads[1], 2 * nblocks - 1);
	assert_int_equal(f.failovers, 1);
	readahead_free(ra);
	free(o.p);
}

static void test_failover_to_third_source(void **state)
{
	uint32_t starts[NFRAMES];
	unsigned nblocks = block_starts(starts);
	struct readahead *ra;
	struct fake f;
	struct out o = { 0 };
	struct err err = { 0 };

	(void)state;
	fake_init(&f, 3);
	f.fail_from[0] = 0;
	f.fail_from[1] = 0;
	assert_int_equal(readahead_new(table, 3, &fake_ops, &f, &ra, &err), 0);
	assert_int_equal(read_all(ra, true, &o, &err), 0);
	assert_all_read(&o);
	assert_int_equal(f.failovers, 2);
	assert_int_equal(f.failover_src[0], 0);
	assert_int_equal(f.failover_src[1], 1);
	assert_int_equal(f.reads[0], 1);
	assert_int_equal(f.reads[1], 1);
	assert_int_equal(f.reads[2], nblocks);
	readahead_free(ra);
	free(o.p);
}

static void test_corrupt_frame_from_next_source(void **state)
{
	const struct seek_entry *bad = &table->e[9];
	struct readahead *ra;
	struct fake f;
	struct out o = { 0 };
	struct err err = { 0 };

	(void)state;
	fake_init(&f, 2);
	f.corrupt_at[0] = bad->c_off + bad->c_size / 2;
	assert_int_equal(readahead_new(table, 2, &fake_ops, &f, &ra, &err), 0);
	assert_int_equal(read_all(ra, true, &o, &err), 0);
	assert_all_read(&o);
	/* just that frame, from source 1; no failover of the source */
	assert_int_equal(f.retries, 1);
	assert_int_equal(f.retry_bad, 0);
	assert_int_equal(f.retry_src, 1);
	assert_int_equal(f.retry_off, bad->c_off);
	assert_int_equal(f.reads[1], 1);
	assert_int_equal(f.failovers, 0);
	readahead_free(ra);
	free(o.p);
}

static void test_corrupt_frame_one_source(void **state)
{
	const struct seek_entry *bad = &table->e[9];
	struct readahead *ra;
	struct fake f;
	struct out o = { 0 };
	struct err err = { 0 };

	(void)state;
	fake_init(&f, 1);
	f.corrupt_at[0] = bad->c_off + bad->c_size / 2;
	assert_int_equal(readahead_new(table, 1, &fake_ops, &f, &ra, &err), 0);
	assert_int_equal(read_all(ra, true, &o, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "frame 9"));
	assert_int_equal(f.retries, 0);
	assert_true(o.len <= 9u * FRAME);
	assert_memory_equal(o.p, input, o.len);
	readahead_free(ra);
	free(o.p);
}

/* Fetch frame i as the unframer would (attempt 0). */
static int fetch(struct readahead *ra, uint32_t i, unsigned char *buf, struct err *err)
{
	return readahead_fetch(ra, table->e[i].c_off, table->e[i].c_size, 0, buf, err);
}

static void test_failed_block_error_for_later_frames(void **state)
{
	uint32_t starts[NFRAMES];
	unsigned nblocks = block_starts(starts);
	unsigned char *buf = malloc(FRAME + 4096);
	char msg[ERR_MSG_MAX];
	struct readahead *ra;
	struct fake f;
	struct err err = { 0 };

	(void)state;
	assert_non_null(buf);
	assert_true(nblocks >= 3);
	fake_init(&f, 2);
	f.fail_from[0] = f.fail_from[1] = table->e[starts[1]].c_off + 1;
	assert_int_equal(readahead_new(table, 2, &fake_ops, &f, &ra, &err), 0);
	assert_int_equal(readahead_start(ra, 0, table->nframes - 1, &err), 0);
	for (uint32_t i = 0; i < starts[1]; i++) {
		assert_int_equal(fetch(ra, i, buf, &err), 0);
		assert_memory_equal(buf, object + table->e[i].c_off, table->e[i].c_size);
	}
	/* the second block fails from both sources: the last one's error */
	assert_int_equal(fetch(ra, starts[1], buf, &err), -EIO);
	assert_non_null(strstr(err.msg, "fake source 1"));
	snprintf(msg, sizeof(msg), "%s", err.msg);
	/* every later frame, of that block and after it, gets that error */
	for (uint32_t i = starts[1] + 1; i < table->nframes; i++) {
		struct err e = { 0 };

		assert_int_equal(fetch(ra, i, buf, &e), -EIO);
		assert_string_equal(e.msg, msg);
	}
	/* and the reader stopped there: no block after it was read */
	assert_int_equal(f.reads[0], 2);
	assert_int_equal(f.reads[1], 1);
	assert_int_equal(f.failovers, 1);
	readahead_free(ra);
	free(buf);
}

static void test_failed_block_through_unframer(void **state)
{
	uint32_t starts[NFRAMES];
	struct readahead *ra;
	struct fake f;
	struct out o = { 0 };
	struct err err = { 0 };

	(void)state;
	block_starts(starts);
	fake_init(&f, 1);
	f.fail_from[0] = table->e[starts[1]].c_off + 1;
	assert_int_equal(readahead_new(table, 1, &fake_ops, &f, &ra, &err), 0);
	assert_int_equal(read_all(ra, true, &o, &err), -EIO);
	assert_non_null(strstr(err.msg, "fake source 0"));
	/* nothing past the failed block came out; what did is in order */
	assert_true(o.len <= (size_t)starts[1] * FRAME);
	assert_memory_equal(o.p, input, o.len);
	assert_int_equal(f.reads[0], 2);
	readahead_free(ra);
	free(o.p);
}

static void test_bad_arguments(void **state)
{
	struct readahead *ra = NULL;
	struct fake f;
	struct err err = { 0 };

	(void)state;
	fake_init(&f, 1);
	assert_int_equal(readahead_new(table, 0, &fake_ops, &f, &ra, &err), -EINVAL);
	assert_null(ra);
	/* a range without frames starts nothing: each frame is read alone */
	assert_int_equal(readahead_new(table, 1, &fake_ops, &f, &ra, &err), 0);
	assert_int_equal(readahead_start(ra, 3, 2, &err), 0);
	readahead_stop(ra);
	readahead_free(ra);
	readahead_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocks_in_order),
		cmocka_unit_test(test_no_range_reads_each_frame),
		cmocka_unit_test(test_failover_mid_range),
		cmocka_unit_test(test_failover_to_third_source),
		cmocka_unit_test(test_corrupt_frame_from_next_source),
		cmocka_unit_test(test_corrupt_frame_one_source),
		cmocka_unit_test(test_failed_block_error_for_later_frames),
		cmocka_unit_test(test_failed_block_through_unframer),
		cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
