// SPDX-License-Identifier: MIT
/*
 * The file index: loading (fields, hex names, malformed lines), duplicate
 * paths refused at load, colliding paths found, the match bookkeeping of
 * restores, and the writer's round trip of names that are not UTF-8.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <zstd.h>

#include "agent/index.h"
#include "uploader/sink.h"
#include "common/err.h"
#include "uploader/store.h"

#define LINE "{\"type\":\"f\",\"mode\":420,\"uid\":0,\"gid\":0,\"size\":0,\"mtime_ns\":0,\"offset\":0,"

static int load(const char *text, struct index **idx, struct err *err)
{
	size_t cap = ZSTD_compressBound(strlen(text));
	void *z = malloc(cap);
	size_t zlen;
	int ret;

	assert_non_null(z);
	zlen = ZSTD_compress(z, cap, text, strlen(text), 1);
	assert_false(ZSTD_isError(zlen));
	ret = index_load(z, zlen, idx, err);
	free(z);
	return ret;
}

static void test_fields(void **state)
{
	const char *text =
		"{\"type\":\"d\",\"mode\":493,\"uid\":0,\"gid\":0,\"size\":0,\"mtime_ns\":-5,\"offset\":0,\"path\":\".\"}\n"
		"{\"type\":\"l\",\"mode\":511,\"uid\":7,\"gid\":8,\"size\":0,\"mtime_ns\":1,\"offset\":512,\"path\":\"l\",\"link\":\"a/b\"}\n"
		"{\"type\":\"c\",\"mode\":438,\"uid\":0,\"gid\":0,\"size\":0,\"mtime_ns\":1,\"offset\":1024,\"path\":\"null\",\"rdev\":259}\n"
		"{\"type\":\"h\",\"mode\":420,\"uid\":0,\"gid\":0,\"size\":9,\"mtime_ns\":1,\"offset\":1536,\"path_hex\":\"ff41\",\"link_hex\":\"fe\"}\n"
		"{\"type\":\"l\",\"mode\":511,\"uid\":0,\"gid\":0,\"size\":0,\"mtime_ns\":1,\"offset\":2048,\"path\":\"old\",\"link\":\"(not UTF-8)\"}\n";
	struct index *idx = NULL;
	struct err err = { 0 };
	size_t i;

	(void)state;
	assert_int_equal(load(text, &idx, &err), 0);
	assert_int_equal(idx->n, 5);
	assert_int_equal(idx->e[0].mode, 0755);
	assert_int_equal(idx->e[0].mtime_ns, -5);
	i = index_find(idx, "l");
	assert_int_equal(i, 1);
	assert_string_equal(idx->e[i].link, "a/b");
	assert_int_equal(idx->e[i].uid, 7);
	assert_int_equal(idx->e[i].gid, 8);
	assert_true(idx->e[2].has_rdev);
	assert_int_equal(idx->e[2].rdev, 259);
	assert_false(idx->e[1].has_rdev);
	assert_int_equal(index_find(idx, "\xff" "A"), 3);
	assert_string_equal(idx->e[3].link, "\xfe");
	assert_true(idx->e[4].link_legacy);
	assert_null(idx->e[4].link);
	assert_int_equal(index_find(idx, "missing"), (size_t)-1);
	index_free(idx);
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
		/* mode missing */
		"{\"type\":\"f\",\"uid\":0,\"gid\":0,\"size\":0,\"mtime_ns\":0,\"offset\":0,\"path\":\"a\"}\n",
		LINE "\"path\":\"a\",\"mode\":4096}\n",       /* mode 010000 (the later key wins) */
		LINE "\"path\":\"\"}\n",                     /* empty path */
		LINE "\"path_hex\":\"4\"}\n",                /* odd hex */
		LINE "\"path_hex\":\"4100\"}\n",             /* a NUL byte */
		LINE "\"path_hex\":\"0x41\"}\n",             /* not hex */
		LINE "\"path\":\"a\",\"xxh3\":\" 0000000000000000000000000000000\"}\n",
		"{\"type\":\"x\",\"mode\":0,\"uid\":0,\"gid\":0,\"size\":0,\"mtime_ns\":0,\"offset\":0,\"path\":\"a\"}\n",
		"{\"type\":\"f\",\"mode\":0,\"uid\":-1,\"gid\":0,\"size\":0,\"mtime_ns\":0,\"offset\":0,\"path\":\"a\"}\n",
		LINE "\"path\":\"a\",\"link_hex\":\"zz\"}\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct index *idx = NULL;
		struct err err = { 0 };

		assert_int_equal(load(bad[i], &idx, &err), -EBADMSG);
		assert_null(idx);
	}
}

static void test_duplicates_refused(void **state)
{
	const char *text = LINE "\"path\":\"a\"}\n" LINE "\"path\":\"b\"}\n" LINE "\"path\":\"a\"}\n";
	struct index *idx = NULL;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(load(text, &idx, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "lists a twice (lines 1 and 3)"));
}

/* 1M lines of one path: refused (linear; the old index took minutes) */
static void test_many_duplicates(void **state)
{
	static const char line[] = LINE "\"path\":\"same\"}\n";
	size_t n = 1000000, len = sizeof(line) - 1;
	char *text = malloc(n * len + 1);
	struct index *idx = NULL;
	struct err err = { 0 };

	(void)state;
	assert_non_null(text);
	for (size_t i = 0; i < n; i++)
		memcpy(text + i * len, line, len);
	text[n * len] = '\0';
	assert_int_equal(load(text, &idx, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "twice"));
	free(text);
}

static void test_many_paths(void **state)
{
	size_t n = 100000, used = 0, cap = n * 128;
	char *text = malloc(cap), name[32];
	struct index *idx = NULL;
	struct err err = { 0 };

	(void)state;
	assert_non_null(text);
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(text + used, cap - used, LINE "\"path\":\"d/%zu\"}\n", i);
	assert_int_equal(load(text, &idx, &err), 0);
	for (size_t i = 0; i < n; i += 997) {
		snprintf(name, sizeof(name), "d/%zu", i);
		assert_int_equal(index_find(idx, name), i);
	}
	index_free(idx);
	free(text);
}

static void test_marks(void **state)
{
	const char *text = LINE "\"path\":\"a\"}\n" LINE "\"path\":\"b\"}\n";
	struct index *idx = NULL;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(load(text, &idx, &err), 0);
	index_pass_begin(idx);
	assert_false(index_seen(idx, 0));
	assert_int_equal(index_mark(idx, 0), 1);
	assert_int_equal(index_mark(idx, 0), -1);     /* twice in one pass */
	assert_true(index_seen(idx, 0));
	assert_false(index_seen(idx, 1));
	index_pass_begin(idx);
	assert_int_equal(index_mark(idx, 0), 0);      /* again, in a later pass */
	assert_int_equal(index_mark(idx, 1), 1);
	assert_int_equal(index_mark(idx, 1), -1);
	index_free(idx);
}

/* A link that is not UTF-8 is written as link_hex and read back exactly. */
static void test_writer_round_trip(void **state)
{
	char dir[] = "/tmp/test_index.XXXXXX", hex[65];
	struct pack_entry_info e = { .path = "s\xff", .type = PACK_SYMLINK, .mode = 0777,
				     .uid = 1, .gid = 2, .mtime_ns = 3,
				     .link = "t\xfe", .offset = 512 };
	struct store *store = NULL;
	struct index_writer *w = NULL;
	struct index *idx = NULL;
	struct sink sink = { 0 };
	struct err err = { 0 };
	void *buf = NULL;
	size_t len = 0;
	char cmd[64];

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(store_open(dir, &store, &err), 0);
	assert_int_equal(sink_open(&sink, store, "idx", &err), 0);
	assert_int_equal(index_writer_new(&sink, 3, &w, &err), 0);
	assert_int_equal(index_writer_add(w, &e, &err), 0);
	assert_int_equal(index_writer_finish(w, &err), 0);
	assert_int_equal(sink_commit(&sink, hex, &err), 0);
	index_writer_free(w);
	assert_int_equal(store_get_all(store, "idx", 1 << 20, &buf, &len, &err), 0);
	assert_int_equal(index_load(buf, len, &idx, &err), 0);
	assert_int_equal(idx->n, 1);
	assert_string_equal(idx->e[0].path, "s\xff");
	assert_string_equal(idx->e[0].link, "t\xfe");
	assert_false(idx->e[0].link_legacy);
	assert_int_equal(idx->e[0].mode, 0777);
	index_free(idx);
	free(buf);
	store_free(store);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_duplicates_refused),
		cmocka_unit_test(test_many_duplicates),
		cmocka_unit_test(test_many_paths),
		cmocka_unit_test(test_marks),
		cmocka_unit_test(test_writer_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
