// SPDX-License-Identifier: MIT
/*
 * stream/pack_blocks.c: large files in blocks, the packer's side, on any
 * filesystem (no extent fingerprints asked): a whole read reports each
 * block's XXH3-128 and one run; the planner's 2 reads and stores only the
 * blocks no run covers, as a tar entry of its own that libarchive reads
 * back, and reports the merged runs; its 1 with several runs reports them
 * without a single location.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include "tests/unit/unit.h"

#include "common/err.h"
#include "stream/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#define BS (16u << 10)      /* pack_block_size of a 4 MiB file */
#define FSIZE (256 * BS + 100)  /* 257 blocks, the last one of 100 bytes */
#define NB 257u
#define OLD_ID "20261203T000000Z-aaaaaa"

struct fx {
	char dir[64];
	unsigned char *data;      /* the content of dir/f */
	unsigned char *tar;       /* the stream */
	size_t len, cap;
	/* what on_entry saw of f */
	bool seen, no_offset, has_sum, has_ref;
	uint64_t offset;
	struct pack_blocks b;     /* deep copy (xxh3, run) */
	/* the plan */
	int plan_ret;
	struct pack_blocks plan;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[128];
	unsigned seed = 3;
	int fd;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/snapship-packblk-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->data = malloc(FSIZE);
	assert_non_null(f->data);
	for (size_t i = 0; i < FSIZE; i++)
		f->data[i] = (unsigned char)rand_r(&seed);
	snprintf(path, sizeof(path), "%s/f", f->dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, f->data, FSIZE), FSIZE);
	close(fd);
	snprintf(path, sizeof(path), "%s/small", f->dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello\n", 6), 6);
	close(fd);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char path[128];

	snprintf(path, sizeof(path), "%s/f", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/small", f->dir);
	unlink(path);
	rmdir(f->dir);
	free(f->data);
	free(f->tar);
	free(f->b.xxh3);
	free(f->b.run);
	free(f->plan.xxh3);
	free(f->plan.run);
	free(f);
	return 0;
}

static int out(void *ctx, const void *buf, size_t len, struct err *err)
{
	struct fx *f = ctx;

	(void)err;
	if (f->len + len > f->cap) {
		f->cap = (f->len + len) * 2;
		f->tar = realloc(f->tar, f->cap);
		assert_non_null(f->tar);
	}
	memcpy(f->tar + f->len, buf, len);
	f->len += len;
	return 0;
}

static int on_entry(void *ctx, const struct pack_entry_info *e, struct err *err)
{
	struct fx *f = ctx;

	(void)err;
	if (strcmp(e->path, "f")) {
		assert_null(e->blocks);
		return 0;
	}
	assert_non_null(e->blocks);
	f->seen = true;
	f->no_offset = e->no_offset;
	f->has_sum = e->has_sum;
	f->has_ref = e->ref != NULL;
	f->offset = e->offset;
	free(f->b.xxh3);
	free(f->b.run);
	f->b = *e->blocks;
	f->b.ext = NULL;
	f->b.xxh3 = malloc((size_t)e->blocks->nblocks * 16);
	f->b.run = malloc(e->blocks->nrun * sizeof(*f->b.run));
	assert_non_null(f->b.xxh3);
	assert_non_null(f->b.run);
	memcpy(f->b.xxh3, e->blocks->xxh3, (size_t)e->blocks->nblocks * 16);
	memcpy(f->b.run, e->blocks->run, e->blocks->nrun * sizeof(*f->b.run));
	return 0;
}

static int plan(void *ctx, const struct pack_plan_entry *pe, struct pack_ref *ref,
		struct err *err)
{
	struct fx *f = ctx;

	(void)err;
	if (!pe->content || strcmp(pe->path, "f"))
		return 0;
	memset(ref, 0, sizeof(*ref));
	ref->blocks = &f->plan;
	return f->plan_ret;
}

static void block_sum(const struct fx *f, uint32_t i, unsigned char sum[16])
{
	size_t off = (size_t)i * BS, len = FSIZE - off < BS ? FSIZE - off : BS;

	XXH128_canonicalFromHash((XXH128_canonical_t *)sum, XXH3_128bits(f->data + off, len));
}

static void run_pack(struct fx *f, bool planned)
{
	struct pack_opts o = { .blocks = true, .content_only = planned,
			       .plan = planned ? plan : NULL, .plan_ctx = f };
	struct pack_stats st;
	struct err err = { 0 };

	f->len = 0;
	f->seen = false;
	assert_int_equal(pack_tree(f->dir, &o, out, f, on_entry, f, &st, &err), 0);
	assert_true(f->seen);
}

/* The plan: blocks 0-1 and 3 to the last stored in OLD_ID (second run 3 blocks into
 * its entry); when all, one run of every block at skip 1 instead. */
static void make_plan(struct fx *f, int ret, bool all)
{
	free(f->plan.xxh3);
	free(f->plan.run);
	f->plan = (struct pack_blocks){ .bsize = BS, .nblocks = NB };
	f->plan.xxh3 = calloc(NB, 16);
	f->plan.run = calloc(2, sizeof(*f->plan.run));
	assert_non_null(f->plan.xxh3);
	assert_non_null(f->plan.run);
	for (uint32_t i = 0; i < NB; i++)
		block_sum(f, i, f->plan.xxh3[i]);
	if (all) {
		f->plan.run[0] = (struct pack_run){ .first = 0, .n = NB, .offset = 512, .skip = 1,
						    .ref = OLD_ID };
		f->plan.nrun = 1;
	} else {
		f->plan.run[0] = (struct pack_run){ .first = 0, .n = 2, .offset = 1024,
						    .ref = OLD_ID };
		f->plan.run[1] = (struct pack_run){ .first = 3, .n = NB - 3, .offset = 4096, .skip = 3,
						    .ref = OLD_ID };
		f->plan.nrun = 2;
	}
	f->plan_ret = ret;
}

static void test_whole(void **state)
{
	struct fx *f = *state;
	unsigned char sum[16];

	run_pack(f, false);
	assert_int_equal(f->b.bsize, BS);
	assert_int_equal(f->b.nblocks, NB);
	assert_false(f->no_offset);
	assert_true(f->has_sum);
	assert_int_equal(f->b.nrun, 1);
	assert_int_equal(f->b.run[0].first, 0);
	assert_int_equal(f->b.run[0].n, NB);
	assert_int_equal(f->b.run[0].offset, f->offset);
	assert_string_equal(f->b.run[0].ref, "");
	for (uint32_t i = 0; i < NB; i++) {
		block_sum(f, i, sum);
		assert_memory_equal(f->b.xxh3[i], sum, 16);
	}
}

static void test_part(void **state)
{
	struct fx *f = *state;
	struct archive_entry *ae;
	unsigned char sum[16], *buf;
	struct archive *a;
	char part[64];

	make_plan(f, 2, false);
	run_pack(f, true);
	assert_true(f->no_offset);
	assert_false(f->has_sum);
	assert_int_equal(f->b.nrun, 3);
	assert_int_equal(f->b.run[1].first, 2);
	assert_int_equal(f->b.run[1].n, 1);
	assert_int_equal(f->b.run[1].skip, 0);
	assert_string_equal(f->b.run[1].ref, "");
	assert_string_equal(f->b.run[2].ref, OLD_ID);
	assert_int_equal(f->b.run[2].skip, 3);
	for (uint32_t i = 0; i < NB; i++) {
		block_sum(f, i, sum);
		assert_memory_equal(f->b.xxh3[i], sum, 16);
	}
	/* the part's pax record, at the run's offset */
	snprintf(part, sizeof(part), "SNAPSHIP.part=%u %u\n", 2 * BS, FSIZE);
	assert_true(f->b.run[1].offset < f->len);
	assert_non_null(memmem(f->tar + f->b.run[1].offset, 1024, part, strlen(part)));
	/* libarchive reads it as an entry of f holding block 2 (then small) */
	a = archive_read_new();
	assert_non_null(a);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, f->tar, f->len), ARCHIVE_OK);
	assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
	assert_string_equal(archive_entry_pathname(ae), "f");
	assert_int_equal(archive_entry_size(ae), BS);
	buf = malloc(BS);
	assert_non_null(buf);
	assert_int_equal(archive_read_data(a, buf, BS), BS);
	assert_memory_equal(buf, f->data + 2 * BS, BS);
	free(buf);
	assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
	assert_string_equal(archive_entry_pathname(ae), "small");
	assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_EOF);
	archive_read_free(a);
}

static void test_referenced_runs(void **state)
{
	struct fx *f = *state;

	make_plan(f, 1, true);
	run_pack(f, true);
	/* one run, but not from the entry's start: no single location */
	assert_true(f->no_offset);
	assert_false(f->has_ref);
	assert_false(f->has_sum);
	assert_int_equal(f->b.nrun, 1);
	assert_int_equal(f->b.run[0].skip, 1);
	assert_string_equal(f->b.run[0].ref, OLD_ID);
	/* nothing of f in the stream: small, then the trailer */
	assert_null(memmem(f->tar, f->len, "SNAPSHIP.part", 13));
	assert_true(f->len < 8192);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole),
		cmocka_unit_test(test_part),
		cmocka_unit_test(test_referenced_runs),
	};

	return unit_main(tests, setup, teardown);
}
