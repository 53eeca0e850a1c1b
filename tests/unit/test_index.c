// SPDX-License-Identifier: MIT
/*
 * The file index: loading (fields, hex names, malformed lines), duplicate
 * paths refused at load, colliding paths found, the match bookkeeping of
 * restores, and the writer's round trip of names that are not UTF-8;
 * version 2 fields (ino, igen, ctime_ns, ref, xattr_map) read, written and
 * refused when hostile; the streaming reader: the same entries as
 * index_load from a buffer, a byte-at-a-time read function and a store,
 * truncated streams, an overlong line; large files in blocks (bsize,
 * bxxh3, bext, runs) read, written and refused when malformed.
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

static unsigned char *compress_text(const char *text, size_t len, size_t *zlen)
{
	size_t cap = ZSTD_compressBound(len);
	unsigned char *z = malloc(cap);

	assert_non_null(z);
	*zlen = ZSTD_compress(z, cap, text, len, 1);
	assert_false(ZSTD_isError(*zlen));
	return z;
}

#define ID1 "20261201T101010Z-0a0b0c"

static void test_v2_fields(void **state)
{
	const char *text =
		"{\"type\":\"d\",\"mode\":493,\"uid\":0,\"gid\":0,\"size\":0,\"mtime_ns\":1,\"path\":\".\","
		"\"ino\":256,\"igen\":7,\"ctime_ns\":99}\n"
		LINE "\"path\":\"a\",\"size\":5,\"xxh3\":\"000102030405060708090a0b0c0d0e0f\","
		"\"ref\":\"" ID1 "\",\"ino\":-2,\"igen\":4294967295,\"ctime_ns\":-3,"
		"\"xattrs\":true,\"xattr_map\":{\"user.a\":\"aGk=\",\"user.empty\":\"\",\"trusted.b\":\"AP8=\"}}\n"
		"{\"type\":\"f\",\"mode\":420,\"uid\":0,\"gid\":0,\"size\":0,\"mtime_ns\":0,\"path\":\"empty\"}\n";
	struct index *idx = NULL;
	struct err err = { 0 };
	const struct index_entry *e;

	(void)state;
	assert_int_equal(load(text, &idx, &err), 0);
	assert_int_equal(idx->n, 3);
	e = &idx->e[0];
	assert_false(e->has_offset);
	assert_int_equal(e->ino, 256);
	assert_int_equal(e->igen, 7);
	assert_int_equal(e->ctime_ns, 99);
	assert_string_equal(e->ref, "");
	assert_int_equal(e->nxattr, 0);
	e = &idx->e[1];
	assert_true(e->has_offset);
	assert_string_equal(e->ref, ID1);
	assert_true(e->ino == (uint64_t)-2);   /* st_ino written as a signed cast */
	assert_int_equal(e->igen, 4294967295u);
	assert_int_equal(e->ctime_ns, -3);
	assert_int_equal(e->nxattr, 3);
	assert_string_equal(e->xattr[0].name, "user.a");
	assert_int_equal(e->xattr[0].len, 2);
	assert_memory_equal(e->xattr[0].value, "hi", 2);
	assert_string_equal(e->xattr[1].name, "user.empty");
	assert_int_equal(e->xattr[1].len, 0);
	assert_int_equal(e->xattr[2].len, 2);
	assert_memory_equal(e->xattr[2].value, "\x00\xff", 2);
	assert_false(idx->e[2].has_offset);   /* an empty file: no location */
	index_free(idx);
}

/* A store is untrusted: every bad version 2 value makes the index corrupt. */
static void test_v2_hostile(void **state)
{
	static const char *const bad[] = {
		LINE "\"path\":\"a\",\"size\":5,\"xxh3\":\"000102030405060708090a0b0c0d0e0f\",\"ref\":\"20261201T101010Z-0a0b0\"}\n",
		LINE "\"path\":\"a\",\"size\":5,\"xxh3\":\"000102030405060708090a0b0c0d0e0f\",\"ref\":\"20261301T101010Z-0a0b0c\"}\n",
		LINE "\"path\":\"a\",\"size\":5,\"xxh3\":\"000102030405060708090a0b0c0d0e0f\",\"ref\":\"../../etc/passwd/0a0b0c\"}\n",
		LINE "\"path\":\"a\",\"size\":5,\"xxh3\":\"000102030405060708090a0b0c0d0e0f\",\"ref\":5}\n",
		/* ref on a directory, on an empty file, without a checksum, without an offset */
		"{\"type\":\"d\",\"mode\":0,\"uid\":0,\"gid\":0,\"size\":0,\"mtime_ns\":0,\"offset\":0,\"path\":\"d\",\"ref\":\"" ID1 "\"}\n",
		LINE "\"path\":\"a\",\"ref\":\"" ID1 "\",\"xxh3\":\"000102030405060708090a0b0c0d0e0f\"}\n",
		LINE "\"path\":\"a\",\"size\":5,\"ref\":\"" ID1 "\"}\n",
		"{\"type\":\"f\",\"mode\":0,\"uid\":0,\"gid\":0,\"size\":5,\"mtime_ns\":0,\"path\":\"a\",\"xxh3\":\"000102030405060708090a0b0c0d0e0f\",\"ref\":\"" ID1 "\"}\n",
		/* content without a location; a negative offset */
		"{\"type\":\"f\",\"mode\":0,\"uid\":0,\"gid\":0,\"size\":5,\"mtime_ns\":0,\"path\":\"a\"}\n",
		"{\"type\":\"d\",\"mode\":0,\"uid\":0,\"gid\":0,\"size\":0,\"mtime_ns\":0,\"offset\":-1,\"path\":\"d\"}\n",
		/* igen out of range */
		LINE "\"path\":\"a\",\"igen\":-1}\n",
		LINE "\"path\":\"a\",\"igen\":4294967296}\n",
		LINE "\"path\":\"a\",\"ino\":\"1\"}\n",
		/* xattr_map: not an object, a value not a string, not base64,
		 * not canonical, an empty name, a NUL in a name, a name of 256 bytes */
		LINE "\"path\":\"a\",\"xattr_map\":[]}\n",
		LINE "\"path\":\"a\",\"xattr_map\":{\"user.a\":1}}\n",
		LINE "\"path\":\"a\",\"xattr_map\":{\"user.a\":\"a*==\"}}\n",
		LINE "\"path\":\"a\",\"xattr_map\":{\"user.a\":\"aGk\"}}\n",
		LINE "\"path\":\"a\",\"xattr_map\":{\"user.a\":\"aGl=\"}}\n",
		LINE "\"path\":\"a\",\"xattr_map\":{\"user.a\":\" aGk=\"}}\n",
		LINE "\"path\":\"a\",\"xattr_map\":{\"\":\"aGk=\"}}\n",
		LINE "\"path\":\"a\",\"xattr_map\":{\"user\\u0000a\":\"aGk=\"}}\n",
		LINE "\"path\":\"a\",\"xattr_map\":{\"user.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\":\"\"}}\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct index *idx = NULL;
		struct err err = { 0 };

		if (load(bad[i], &idx, &err) != -EBADMSG)
			fail_msg("line %zu was accepted: %s", i, bad[i]);
		assert_null(idx);
		assert_non_null(strstr(err.msg, "index"));
	}
}

/* Too many, too large: a value of 64 KiB + 1 and 1025 names. */
static void test_v2_bounds(void **state)
{
	size_t vlen = 65537, b64 = 4 * ((vlen + 2) / 3), cap = b64 + 2048 + 1025 * 32;
	char *text = malloc(cap), *p;
	struct index *idx = NULL;
	struct err err = { 0 };

	(void)state;
	assert_non_null(text);
	p = text + sprintf(text, LINE "\"path\":\"a\",\"xattr_map\":{\"user.big\":\"");
	memset(p, 'A', b64);
	p += b64;
	strcpy(p, "\"}}\n");
	assert_int_equal(load(text, &idx, &err), -EBADMSG);
	/* exactly 64 KiB is fine */
	vlen = 65536;
	b64 = 4 * ((vlen + 2) / 3);
	p = text + sprintf(text, LINE "\"path\":\"a\",\"xattr_map\":{\"user.big\":\"");
	memset(p, 'A', b64 - 4);
	p += b64 - 4;
	strcpy(p, "AA==\"}}\n");
	assert_int_equal(load(text, &idx, &err), 0);
	assert_int_equal(idx->e[0].xattr[0].len, 65536);
	index_free(idx);
	idx = NULL;
	p = text + sprintf(text, LINE "\"path\":\"a\",\"xattr_map\":{");
	for (int i = 0; i < 1025; i++)
		p += sprintf(p, "%s\"user.%d\":\"\"", i ? "," : "", i);
	strcpy(p, "}}\n");
	assert_int_equal(load(text, &idx, &err), -EBADMSG);
	free(text);
}

/* What the tests compare: every field of two entries. */
static void assert_entries_equal(const struct index_entry *a, const struct index_entry *b)
{
	assert_string_equal(a->path, b->path);
	assert_true((a->link == NULL) == (b->link == NULL));
	if (a->link)
		assert_string_equal(a->link, b->link);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->offset, b->offset);
	assert_int_equal(a->has_offset, b->has_offset);
	assert_int_equal(a->has_sum, b->has_sum);
	assert_memory_equal(a->xxh3, b->xxh3, 16);
	assert_int_equal(a->ino, b->ino);
	assert_int_equal(a->igen, b->igen);
	assert_int_equal(a->ctime_ns, b->ctime_ns);
	assert_string_equal(a->ref, b->ref);
	assert_int_equal(a->nxattr, b->nxattr);
	for (size_t i = 0; i < a->nxattr; i++) {
		assert_string_equal(a->xattr[i].name, b->xattr[i].name);
		assert_int_equal(a->xattr[i].len, b->xattr[i].len);
		assert_memory_equal(a->xattr[i].value, b->xattr[i].value, a->xattr[i].len);
	}
}

/* Many lines of every kind (one per ~90 bytes: lines cross the reader's
 * buffers), as text. */
static char *many_lines(size_t n, size_t *len_ret)
{
	char *text = malloc(n * 300), *p = text;

	assert_non_null(text);
	for (size_t i = 0; i < n; i++) {
		if (i % 3 == 0)
			p += sprintf(p, "{\"type\":\"d\",\"mode\":493,\"uid\":0,\"gid\":0,\"size\":0,\"mtime_ns\":1,"
				     "\"path\":\"d%zu\",\"ino\":%zu,\"igen\":3,\"ctime_ns\":%zu}\n", i, i + 256, i * 7);
		else if (i % 3 == 1)
			p += sprintf(p, LINE "\"path\":\"f%zu\",\"size\":%zu,\"xxh3\":\"000102030405060708090a0b0c0d0e%02zx\","
				     "\"ino\":%zu,\"xattr_map\":{\"user.n\":\"MTIz\"}}\n", i, i + 1, i % 256, i + 256);
		else
			p += sprintf(p, LINE "\"path\":\"r%zu\",\"size\":1,\"xxh3\":\"000102030405060708090a0b0c0d0e0f\","
				     "\"ref\":\"" ID1 "\"}\n", i);
	}
	*len_ret = (size_t)(p - text);
	return text;
}

struct drip {
	const unsigned char *z;
	size_t len, pos;
};

/* A read function giving one byte at a time. */
static int drip_read(void *ctx, void *buf, size_t len, size_t *got_ret, struct err *err)
{
	struct drip *d = ctx;

	(void)err;
	*got_ret = 0;
	if (len && d->pos < d->len) {
		*(unsigned char *)buf = d->z[d->pos++];
		*got_ret = 1;
	}
	return 0;
}

static void reader_matches(struct index_reader *r, const struct index *idx)
{
	struct index_entry e;
	struct err err = { 0 };
	size_t i = 0;
	int ret;

	while ((ret = index_reader_next(r, &e, &err)) == 1) {
		assert_true(i < idx->n);
		assert_entries_equal(&e, &idx->e[i]);
		index_entry_clear(&e);
		i++;
	}
	if (ret)
		fail_msg("after %zu entries: %s", i, err.msg);
	assert_int_equal(i, idx->n);
	assert_int_equal(index_reader_lines(r), idx->n);
	index_reader_free(r);
}

/* The streaming reader gives what index_load gives, from a buffer, a read
 * function (one byte at a time) and a store object. */
static void test_reader_equal(void **state)
{
	char dir[] = "/tmp/test_index.XXXXXX", cmd[64];
	size_t len, zlen;
	char *text = many_lines(5000, &len);
	unsigned char *z = compress_text(text, len, &zlen);
	struct drip drip = { z, zlen, 0 };
	struct index_reader *r = NULL;
	struct store *store = NULL;
	struct index *idx = NULL;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(index_load(z, zlen, &idx, &err), 0);
	assert_int_equal(idx->n, 5000);
	assert_int_equal(index_reader_open_buf(z, zlen, &r, &err), 0);
	reader_matches(r, idx);
	assert_int_equal(index_reader_open_fn(drip_read, &drip, &r, &err), 0);
	reader_matches(r, idx);
	assert_non_null(mkdtemp(dir));
	assert_int_equal(store_open(dir, &store, &err), 0);
	assert_int_equal(store_put_buf(store, "i/index.jsonl.zst", z, zlen, &err), 0);
	assert_int_equal(index_reader_open_store(store, "i/index.jsonl.zst", &r, &err), 0);
	reader_matches(r, idx);
	/* a missing object: the store's error, no entry */
	{
		struct index_entry e;

		assert_int_equal(index_reader_open_store(store, "i/missing", &r, &err), 0);
		assert_true(index_reader_next(r, &e, &err) < 0);
		index_reader_free(r);
	}
	index_free(idx);
	store_free(store);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	free(z);
	free(text);
}

/* Every cut of a compressed index fails (never a shorter index), both
 * readers; an empty stream too. */
static void test_reader_truncated(void **state)
{
	size_t len, zlen;
	char *text = many_lines(300, &len);
	unsigned char *z = compress_text(text, len, &zlen);
	struct err err = { 0 };

	(void)state;
	for (size_t cut = 0; cut < zlen; cut += cut < 64 ? 1 : 97) {
		struct index_reader *r = NULL;
		struct index *idx = NULL;
		struct index_entry e;
		int ret;

		assert_true(index_load(z, cut, &idx, &err) < 0);
		assert_null(idx);
		assert_int_equal(index_reader_open_buf(z, cut, &r, &err), 0);
		while ((ret = index_reader_next(r, &e, &err)) == 1)
			index_entry_clear(&e);
		assert_int_equal(ret, -EBADMSG);
		index_reader_free(r);
	}
	free(z);
	free(text);
}

/* A line over INDEX_LINE_MAX is refused, saying so; one just under reads. */
static void test_reader_long_line(void **state)
{
	size_t n = INDEX_LINE_MAX + 16, zlen;
	char *text = malloc(n + 1);
	unsigned char *z;
	struct index *idx = NULL;
	struct err err = { 0 };
	int len;

	(void)state;
	assert_non_null(text);
	len = sprintf(text, LINE "\"path\":\"");
	memset(text + len, 'a', n - (size_t)len);
	text[n - 3] = '"';
	text[n - 2] = '}';
	text[n - 1] = '\n';
	text[n] = 0;
	z = compress_text(text, n, &zlen);
	assert_int_equal(index_load(z, zlen, &idx, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "longer than"));
	free(z);
	/* just under: a path of ~4 MiB is read */
	memmove(text + n - 3 - 32, text + n - 3, 4);
	n -= 32;
	z = compress_text(text, n, &zlen);
	assert_int_equal(index_load(z, zlen, &idx, &err), 0);
	assert_int_equal(idx->n, 1);
	index_free(idx);
	free(z);
	free(text);
}

/* The writer's version 2 fields read back; too many xattrs refused. */
static void test_writer_v2(void **state)
{
	char dir[] = "/tmp/test_index.XXXXXX", hex[65], cmd[64];
	struct pack_xattr xa[2] = { { "user.k", "v\0w", 3 }, { "system.posix_acl_access", "\x02\0\0\0", 4 } };
	struct pack_entry_info e = { .path = "f", .type = PACK_FILE, .mode = 0644, .size = 3,
				     .has_sum = true, .offset = 1024, .ino = 257, .igen = 9,
				     .ctime_ns = 123456789012345678, .xattrs = true,
				     .xattr = xa, .nxattr = 2 };
	struct pack_xattr *many = calloc(INDEX_XATTR_MAX + 1, sizeof(*many));
	struct store *store = NULL;
	struct index_writer *w = NULL;
	struct index *idx = NULL;
	struct sink sink = { 0 };
	struct err err = { 0 };
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_non_null(many);
	assert_non_null(mkdtemp(dir));
	assert_int_equal(store_open(dir, &store, &err), 0);
	assert_int_equal(sink_open(&sink, store, "idx", &err), 0);
	assert_int_equal(index_writer_new(&sink, 3, &w, &err), 0);
	assert_int_equal(index_writer_add(w, &e, &err), 0);
	for (size_t i = 0; i <= INDEX_XATTR_MAX; i++)
		many[i] = xa[0];
	e.path = "g";
	e.xattr = many;
	e.nxattr = INDEX_XATTR_MAX + 1;
	assert_int_equal(index_writer_add(w, &e, &err), -E2BIG);
	assert_non_null(strstr(err.msg, "g has 1025 extended attributes"));
	assert_int_equal(index_writer_finish(w, &err), 0);
	assert_int_equal(sink_commit(&sink, hex, &err), 0);
	index_writer_free(w);
	assert_int_equal(store_get_all(store, "idx", 1 << 20, &buf, &len, &err), 0);
	assert_int_equal(index_load(buf, len, &idx, &err), 0);
	assert_int_equal(idx->n, 1);
	assert_int_equal(idx->e[0].ino, 257);
	assert_int_equal(idx->e[0].igen, 9);
	assert_int_equal(idx->e[0].ctime_ns, 123456789012345678);
	assert_true(idx->e[0].has_offset);
	assert_int_equal(idx->e[0].nxattr, 2);
	assert_string_equal(idx->e[0].xattr[1].name, "system.posix_acl_access");
	assert_int_equal(idx->e[0].xattr[0].len, 3);
	assert_memory_equal(idx->e[0].xattr[0].value, "v\0w", 3);
	index_free(idx);
	free(buf);
	free(many);
	store_free(store);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* One index line of a 5 MiB file in blocks (1 MiB: 5 blocks); extra is
 * spliced in before the closing brace. */
static char *blocked_line(const char *extra, bool with_offset, size_t nsum, size_t next)
{
	size_t cap = 1024 + 32 * nsum + 16 * next + strlen(extra);
	char *t = malloc(cap), *p = t;

	assert_non_null(t);
	p += sprintf(p, "{\"type\":\"f\",\"mode\":420,\"uid\":0,\"gid\":0,\"size\":5242880,"
		     "\"mtime_ns\":0,\"path\":\"big\",%s\"bsize\":1048576,\"bxxh3\":\"",
		     with_offset ? "\"offset\":512," : "");
	for (size_t i = 0; i < nsum; i++)
		p += sprintf(p, "%032zx", i + 1);
	p += sprintf(p, "\"");
	if (next) {
		p += sprintf(p, ",\"bext\":\"");
		for (size_t i = 0; i < next; i++)
			p += sprintf(p, "%016zx", i + 0xa0);
		p += sprintf(p, "\"");
	}
	sprintf(p, "%s}\n", extra);
	return t;
}

/* Blocks: the one-location form becomes one run; runs read in order;
 * every shape error refused (a store is untrusted). */
static void test_blocks(void **state)
{
	static const char runs[] = ",\"runs\":[{\"b\":0,\"n\":2,\"offset\":0,\"skip\":0,\"ref\":\"" ID1 "\"},"
		"{\"b\":2,\"n\":1,\"offset\":1536,\"skip\":0},"
		"{\"b\":3,\"n\":2,\"offset\":0,\"skip\":3,\"ref\":\"" ID1 "\"}]";
	static const char *const bad_runs[] = {
		",\"runs\":[]",
		",\"runs\":[{\"b\":0,\"n\":4,\"offset\":0,\"skip\":0}]",                 /* short */
		",\"runs\":[{\"b\":0,\"n\":6,\"offset\":0,\"skip\":0}]",                 /* past the end */
		",\"runs\":[{\"b\":0,\"n\":2,\"offset\":0,\"skip\":0},{\"b\":3,\"n\":2,\"offset\":9,\"skip\":0}]", /* gap */
		",\"runs\":[{\"b\":0,\"n\":3,\"offset\":0,\"skip\":0},{\"b\":2,\"n\":3,\"offset\":9,\"skip\":0}]", /* overlap */
		",\"runs\":[{\"b\":0,\"n\":0,\"offset\":0,\"skip\":0},{\"b\":0,\"n\":5,\"offset\":9,\"skip\":0}]",
		",\"runs\":[{\"b\":0,\"n\":5,\"offset\":-1,\"skip\":0}]",
		",\"runs\":[{\"b\":0,\"n\":5,\"offset\":0,\"skip\":-1}]",
		",\"runs\":[{\"b\":0,\"n\":5,\"offset\":0,\"skip\":0,\"ref\":\"../x\"}]",
		",\"runs\":[{\"b\":0,\"n\":5,\"offset\":0}]",
		",\"runs\":{}",
	};
	struct index *idx = NULL;
	struct err err = { 0 };
	const struct pack_blocks *b;
	char *t;

	(void)state;
	t = blocked_line("", true, 5, 5);
	assert_int_equal(load(t, &idx, &err), 0);
	b = idx->e[0].blk;
	assert_non_null(b);
	assert_int_equal(b->bsize, 1 << 20);
	assert_int_equal(b->nblocks, 5);
	assert_int_equal(b->nrun, 1);
	assert_int_equal(b->run[0].n, 5);
	assert_int_equal(b->run[0].offset, 512);
	assert_int_equal(b->xxh3[4][15], 5);
	assert_non_null(b->ext);
	assert_true(b->ext[4] == 0xa4);
	index_free(idx);
	free(t);

	t = blocked_line(runs, false, 5, 0);
	assert_int_equal(load(t, &idx, &err), 0);
	b = idx->e[0].blk;
	assert_null(b->ext);
	assert_int_equal(b->nrun, 3);
	assert_string_equal(b->run[0].ref, ID1);
	assert_string_equal(b->run[1].ref, "");
	assert_int_equal(b->run[1].offset, 1536);
	assert_int_equal(b->run[2].skip, 3);
	index_free(idx);
	free(t);

	for (size_t i = 0; i < sizeof(bad_runs) / sizeof(bad_runs[0]); i++) {
		t = blocked_line(bad_runs[i], false, 5, 0);
		if (load(t, &idx, &err) != -EBADMSG)
			fail_msg("runs %zu were accepted: %s", i, t);
		free(t);
	}
	/* both forms, neither, a short bxxh3, a short bext, sparse, a wrong bsize */
	static const struct { const char *extra; bool off; size_t nsum, next; } bad[] = {
		{ runs, true, 5, 0 }, { "", false, 5, 0 }, { "", true, 4, 0 }, { "", true, 5, 4 },
		{ ",\"sparse\":true", true, 5, 0 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = blocked_line(bad[i].extra, bad[i].off, bad[i].nsum, bad[i].next);
		if (load(t, &idx, &err) != -EBADMSG)
			fail_msg("line %zu was accepted: %s", i, t);
		free(t);
	}
	t = blocked_line("", true, 5, 0);
	memcpy(strstr(t, "1048576"), "2097152", 7);
	assert_int_equal(load(t, &idx, &err), -EBADMSG);
	free(t);
	t = blocked_line("", true, 5, 0);   /* not a power of two */
	memcpy(strstr(t, "1048576"), "1048575", 7);
	assert_int_equal(load(t, &idx, &err), -EBADMSG);
	free(t);
	/* blocks on a file too small for them */
	t = blocked_line("", true, 5, 0);
	memcpy(strstr(t, "5242880"), "3145728", 7);
	assert_int_equal(load(t, &idx, &err), -EBADMSG);
	free(t);
}

/* The writer: blocks with one location (no runs), and with runs. */
static void test_writer_blocks(void **state)
{
	char dir[] = "/tmp/test_index.XXXXXX", hex[65], cmd[64];
	unsigned char sums[5][16] = { { 1 }, { 2 }, { 3 }, { 4 }, { 5 } };
	uint64_t ext[5] = { 7, 8, 0xffffffffffffffffull, 0, 1 };
	struct pack_run run[2] = { { .first = 0, .n = 2, .offset = 0, .skip = 1, .ref = ID1 },
				   { .first = 2, .n = 3, .offset = 4096 } };
	struct pack_blocks blk = { .bsize = 1 << 20, .nblocks = 5, .xxh3 = sums, .ext = ext,
				   .run = run, .nrun = 2 };
	struct pack_entry_info e = { .path = "f", .type = PACK_FILE, .mode = 0644,
				     .size = (5u << 20) - 5, .no_offset = true, .blocks = &blk };
	struct store *store = NULL;
	struct index_writer *w = NULL;
	struct index *idx = NULL;
	struct sink sink = { 0 };
	struct err err = { 0 };
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(store_open(dir, &store, &err), 0);
	assert_int_equal(sink_open(&sink, store, "idx", &err), 0);
	assert_int_equal(index_writer_new(&sink, 3, &w, &err), 0);
	assert_int_equal(index_writer_add(w, &e, &err), 0);
	/* whole: one location, no runs written */
	e.path = "g";
	e.no_offset = false;
	e.offset = 8192;
	e.has_sum = true;
	blk.ext = NULL;
	blk.nrun = 1;
	run[0] = (struct pack_run){ .first = 0, .n = 5, .offset = 8192 };
	assert_int_equal(index_writer_add(w, &e, &err), 0);
	assert_int_equal(index_writer_finish(w, &err), 0);
	assert_int_equal(sink_commit(&sink, hex, &err), 0);
	index_writer_free(w);
	assert_int_equal(store_get_all(store, "idx", 1 << 20, &buf, &len, &err), 0);
	assert_int_equal(index_load(buf, len, &idx, &err), 0);
	assert_int_equal(idx->n, 2);
	assert_false(idx->e[0].has_offset);
	assert_false(idx->e[0].has_sum);
	assert_int_equal(idx->e[0].blk->nrun, 2);
	assert_string_equal(idx->e[0].blk->run[0].ref, ID1);
	assert_int_equal(idx->e[0].blk->run[0].skip, 1);
	assert_int_equal(idx->e[0].blk->run[1].offset, 4096);
	assert_true(idx->e[0].blk->ext[2] == 0xffffffffffffffffull);
	assert_memory_equal(idx->e[0].blk->xxh3[1], sums[1], 16);
	assert_true(idx->e[1].has_offset);
	assert_null(idx->e[1].blk->ext);
	assert_int_equal(idx->e[1].blk->nrun, 1);
	assert_int_equal(idx->e[1].blk->run[0].offset, 8192);
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
		cmocka_unit_test(test_v2_fields),
		cmocka_unit_test(test_v2_hostile),
		cmocka_unit_test(test_v2_bounds),
		cmocka_unit_test(test_reader_equal),
		cmocka_unit_test(test_reader_truncated),
		cmocka_unit_test(test_reader_long_line),
		cmocka_unit_test(test_writer_v2),
		cmocka_unit_test(test_blocks),
		cmocka_unit_test(test_writer_blocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
