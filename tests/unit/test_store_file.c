// SPDX-License-Identifier: MIT
/*
 * The file store behind the store interface: round trips, atomic puts,
 * list order and prefixes, key checks, errors, concurrency, ENOSPC and
 * fault injection, and links planted in the store (never followed, by any
 * operation; also without openat2).  Needs no root; the ENOSPC and mount
 * point tests mount a tiny tmpfs when they can and skip otherwise.
 */
#include "common/err.h"
#include "uploader/store.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>
#include "tests/unit/unit.h"

#define MIB (1024 * 1024)

struct fixture {
	char dir[64];
	struct store *store;
	bool mounted;
	char submount[128];     /* a mount inside dir, "" if none */
	char outside[64];       /* plant()'s directory outside, "" if none */
};

/* ---- helpers ---- */

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static unsigned count_tmp;
static unsigned count_all;

static int count_one(const char *path, const struct stat *st, int type,
		     struct FTW *ftw)
{
	(void)st;
	(void)type;
	if (ftw->level == 0)
		return 0;
	count_all++;
	if (strstr(path + ftw->base, ".tmp-"))
		count_tmp++;
	return 0;
}

/* Entries below dir (not counting dir itself); *tmp_ret: temp files. */
static unsigned count_entries(const char *dir, unsigned *tmp_ret)
{
	count_tmp = 0;
	count_all = 0;
	nftw(dir, count_one, 16, FTW_PHYS);
	if (tmp_ret)
		*tmp_ret = count_tmp;
	return count_all;
}

static unsigned char pat(uint64_t i, unsigned seed)
{
	uint64_t x = (i + seed) * 0x9E3779B97F4A7C15ull;

	return (unsigned char)(x >> 56);
}

static void fill(unsigned char *buf, size_t len, uint64_t off, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pat(off + i, seed);
}

static bool check(const unsigned char *buf, size_t len, uint64_t off,
		  unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pat(off + i, seed))
			return false;
	return true;
}

static void put_str(struct store *store, const char *key, const char *s)
{
	struct err err = { 0 };

	assert_int_equal(store_put_buf(store, key, s, strlen(s), &err), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct err err = { 0 };

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/snapship-store-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	if (store_open(f->dir, &f->store, &err)) {
		fprintf(stderr, "store_open: %s\n", err.msg);
		rm_rf(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_free(f->store);
	if (f->submount[0] && umount(f->submount))
		fprintf(stderr, "umount %s: %s\n", f->submount, strerror(errno));
	if (f->outside[0])
		rm_rf(f->outside);
	if (f->mounted && umount(f->dir))
		fprintf(stderr, "umount %s: %s\n", f->dir, strerror(errno));
	rm_rf(f->dir);
	free(f);
	return 0;
}

struct collect {
	char keys[32][128];
	uint64_t sizes[32];
	int64_t mtimes[32];
	size_t n;
	size_t stop_after;      /* 0: never */
	int stop_ret;
};

static int collect_fn(void *ctx, const char *key,
		      const struct store_obj_info *info)
{
	struct collect *c = ctx;

	if (c->n < 32) {
		snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", key);
		c->sizes[c->n] = info->size;
		c->mtimes[c->n] = info->mtime_ns;
	}
	c->n++;
	if (c->stop_after && c->n == c->stop_after)
		return c->stop_ret;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- tests ---- */

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	static const char data[] = "hello, object store";
	struct store_obj_info info;
	struct collect c = { 0 };
	struct err err = { 0 };
	char buf[64];
	size_t got, len;
	void *all;
	const char *keys[] = { "h/p/id/manifest.json" };
	char path[PATH_MAX];
	struct stat st;

	assert_int_equal(store_features(f->store) & STORE_FEAT_ATOMIC_PUT,
			 STORE_FEAT_ATOMIC_PUT);
	assert_int_equal(store_put_buf(f->store, keys[0], data,
				       sizeof(data) - 1, &err), 0);

	snprintf(path, sizeof(path), "%s/%s", f->dir, keys[0]);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);

	assert_int_equal(store_get_range(f->store, keys[0], 7, 6, buf, &got,
					 &err), 0);
	assert_int_equal(got, 6);
	assert_memory_equal(buf, "object", 6);

	/* Past the end: short, then empty. */
	assert_int_equal(store_get_range(f->store, keys[0], 13, 64, buf, &got,
					 &err), 0);
	assert_int_equal(got, 6);
	assert_memory_equal(buf, " store", 6);
	assert_int_equal(store_get_range(f->store, keys[0], 1000, 8, buf, &got,
					 &err), 0);
	assert_int_equal(got, 0);

	assert_int_equal(store_get_all(f->store, keys[0], 1024, &all, &len,
				       &err), 0);
	assert_int_equal(len, sizeof(data) - 1);
	assert_string_equal(all, data);
	free(all);

	assert_int_equal(store_head(f->store, keys[0], &info, &err), 0);
	assert_int_equal(info.size, sizeof(data) - 1);
	assert_int_equal(info.mtime_ns,
			 (int64_t)st.st_mtim.tv_sec * 1000000000LL +
				 st.st_mtim.tv_nsec);

	assert_int_equal(store_list(f->store, "", collect_fn, &c, &err), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.keys[0], keys[0]);
	assert_int_equal(c.sizes[0], sizeof(data) - 1);

	assert_int_equal(store_delete(f->store, keys, 1, &err), 0);
	assert_int_equal(store_head(f->store, keys[0], &info, &err), -ENOENT);
	/* Empty parents went too, the root stayed. */
	assert_int_equal(count_entries(f->dir, NULL), 0);
	assert_int_equal(access(f->dir, F_OK), 0);
	assert_int_equal(err.code, -ENOENT);
}

static void test_overwrite(void **state)
{
	struct fixture *f = *state;
	struct err err = { 0 };
	unsigned tmp;
	void *all;
	size_t len;

	put_str(f->store, "k", "first version");
	put_str(f->store, "k", "second");
	assert_int_equal(store_get_all(f->store, "k", 100, &all, &len, &err), 0);
	assert_int_equal(len, 6);
	assert_string_equal(all, "second");
	free(all);
	assert_int_equal(count_entries(f->dir, &tmp), 1);
	assert_int_equal(tmp, 0);

	/* Empty objects exist too. */
	assert_int_equal(store_put_buf(f->store, "empty", NULL, 0, &err), 0);
	assert_int_equal(store_get_all(f->store, "empty", 100, &all, &len, &err),
			 0);
	assert_int_equal(len, 0);
	assert_non_null(all);
	free(all);
}

static void test_abort_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct store_writer *w;
	struct err err = { 0 };
	unsigned char buf[1000];
	char path[PATH_MAX];
	unsigned tmp;

	fill(buf, sizeof(buf), 0, 1);
	assert_int_equal(store_put_begin(f->store, "x/y/z", &w, &err), 0);
	assert_int_equal(store_write(w, buf, sizeof(buf), &err), 0);
	/* The temp file exists while writing... */
	assert_int_equal(count_entries(f->dir, &tmp), 3);
	assert_int_equal(tmp, 1);
	store_put_abort(w);
	/* ...and nothing at all afterwards, not even the directories. */
	assert_int_equal(count_entries(f->dir, &tmp), 0);
	assert_int_equal(tmp, 0);

	/* A directory another object needs survives an abort. */
	put_str(f->store, "x/keep", "keep");
	assert_int_equal(store_put_begin(f->store, "x/y/z", &w, &err), 0);
	store_put_abort(w);
	snprintf(path, sizeof(path), "%s/x/keep", f->dir);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(count_entries(f->dir, &tmp), 2);
	assert_int_equal(tmp, 0);

	store_put_abort(NULL);
}

static void test_uncommitted_is_invisible(void **state)
{
	struct fixture *f = *state;
	struct store_obj_info info;
	struct store_writer *w;
	struct collect c = { 0 };
	struct err err = { 0 };
	char buf[16];
	size_t got;

	assert_int_equal(store_put_begin(f->store, "p/q", &w, &err), 0);
	assert_int_equal(store_write(w, "0123456789", 10, &err), 0);

	assert_int_equal(store_head(f->store, "p/q", &info, &err), -ENOENT);
	err.code = 0;
	assert_int_equal(store_get_range(f->store, "p/q", 0, sizeof(buf), buf,
					 &got, &err), -ENOENT);
	err.code = 0;
	assert_int_equal(store_list(f->store, "", collect_fn, &c, &err), 0);
	assert_int_equal(c.n, 0);

	assert_int_equal(store_put_commit(w, &err), 0);
	assert_int_equal(store_head(f->store, "p/q", &info, &err), 0);
	assert_int_equal(info.size, 10);
	assert_int_equal(store_list(f->store, "", collect_fn, &c, &err), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.keys[0], "p/q");
}

static void test_list_order_and_prefix(void **state)
{
	struct fixture *f = *state;
	const char *keys[] = { "a/b/c", "a/bc", "a/b-x", "a/ba/z", "a-b",
			       "a/c", "b", "a0", "a/b/d/e", "a/.hidden" };
	const size_t nkeys = sizeof(keys) / sizeof(keys[0]);
	static const struct {
		const char *prefix;
		const char *want[10];
	} cases[] = {
		{ "a/b", { "a/b-x", "a/b/c", "a/b/d/e", "a/ba/z", "a/bc" } },
		{ "a/b/", { "a/b/c", "a/b/d/e" } },
		{ "a/", { "a/.hidden", "a/b-x", "a/b/c", "a/b/d/e", "a/ba/z",
			  "a/bc", "a/c" } },
		{ "a-", { "a-b" } },
		{ "a/c", { "a/c" } },
		{ "nope", { NULL } },
		{ "a/c/d", { NULL } },          /* under an object */
		{ "zz/top/", { NULL } },
	};
	const char *sorted[10];
	struct collect c;
	struct err err = { 0 };
	char path[PATH_MAX];
	int fd;

	for (size_t i = 0; i < nkeys; i++) {
		put_str(f->store, keys[i], keys[i]);
		sorted[i] = keys[i];
	}
	/* A leftover temp file of a crashed put is never listed. */
	snprintf(path, sizeof(path), "%s/a/.bc.tmp-0123456789abcdef", f->dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);

	qsort(sorted, nkeys, sizeof(sorted[0]), cmp_str);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_list(f->store, "", collect_fn, &c, &err), 0);
	assert_int_equal(c.n, nkeys);
	for (size_t i = 0; i < nkeys; i++) {
		assert_string_equal(c.keys[i], sorted[i]);
		assert_int_equal(c.sizes[i], strlen(sorted[i]));
		assert_true(c.mtimes[i] > 0);
	}
	/* NULL prefix means everything too. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_list(f->store, NULL, collect_fn, &c, &err), 0);
	assert_int_equal(c.n, nkeys);

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		size_t want = 0;

		while (want < 10 && cases[k].want[want])
			want++;
		memset(&c, 0, sizeof(c));
		assert_int_equal(store_list(f->store, cases[k].prefix,
					    collect_fn, &c, &err), 0);
		if (c.n != want)
			fail_msg("prefix \"%s\": %zu keys, want %zu",
				 cases[k].prefix, c.n, want);
		for (size_t i = 0; i < want; i++)
			assert_string_equal(c.keys[i], cases[k].want[i]);
	}

	/* fn > 0 stops quietly, fn < 0 fails. */
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	c.stop_ret = 1;
	assert_int_equal(store_list(f->store, "", collect_fn, &c, &err), 0);
	assert_int_equal(c.n, 2);
	memset(&c, 0, sizeof(c));
	c.stop_after = 3;
	c.stop_ret = -ECANCELED;
	assert_int_equal(store_list(f->store, "a/", collect_fn, &c, &err),
			 -ECANCELED);
	assert_int_equal(c.n, 3);
	assert_int_equal(err.code, -ECANCELED);

	/* Bad prefixes. */
	err_clear(&err);
	assert_int_equal(store_list(f->store, "/a", collect_fn, &c, &err),
			 -EINVAL);
	err_clear(&err);
	assert_int_equal(store_list(f->store, "a//b", collect_fn, &c, &err),
			 -EINVAL);
	err_clear(&err);
	assert_int_equal(store_list(f->store, "../", collect_fn, &c, &err),
			 -EINVAL);
}

static void test_bad_keys(void **state)
{
	struct fixture *f = *state;
	static char long_key[1100], max_key[1025];
	const char *bad[] = { "../x", "/x", "a//b", "a/./b", "", "a/", ".",
			      "..", "a/..", "x/../y", "./a", long_key };
	struct store_obj_info info;
	struct store_writer *w;
	struct err err;
	char buf[8];
	size_t got, len;
	void *all;
	unsigned tmp;

	memset(long_key, 'k', 1025);
	long_key[1025] = '\0';
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *one[1] = { bad[i] };

		err_clear(&err);
		w = (struct store_writer *)&err;        /* must be reset */
		assert_int_equal(store_put_begin(f->store, bad[i], &w, &err),
				 -EINVAL);
		assert_null(w);
		if (!strstr(err.msg, "invalid key"))
			fail_msg("key \"%s\": message \"%s\"", bad[i], err.msg);
		err_clear(&err);
		assert_int_equal(store_head(f->store, bad[i], &info, &err),
				 -EINVAL);
		err_clear(&err);
		assert_int_equal(store_get_range(f->store, bad[i], 0, 8, buf,
						 &got, &err), -EINVAL);
		err_clear(&err);
		assert_int_equal(store_get_all(f->store, bad[i], 8, &all, &len,
					       &err), -EINVAL);
		err_clear(&err);
		assert_int_equal(store_delete(f->store, one, 1, &err), -EINVAL);
	}
	err_clear(&err);
	assert_int_equal(store_put_begin(f->store, NULL, &w, &err), -EINVAL);

	/* A temp-file name is reserved. */
	err_clear(&err);
	assert_int_equal(store_put_begin(f->store, "d/.obj.tmp-1", &w, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "reserved"));

	/* Exactly 1024 bytes is fine (components of 200 bytes). */
	memset(max_key, 'm', 1024);
	for (size_t i = 200; i < 1024; i += 201)
		max_key[i] = '/';
	max_key[1024] = '\0';
	err_clear(&err);
	assert_int_equal(store_put_buf(f->store, max_key, "x", 1, &err), 0);
	assert_int_equal(store_head(f->store, max_key, &info, &err), 0);
	assert_int_equal(info.size, 1);

	/* Nothing but that one object (and its directories) was created. */
	assert_int_equal(count_entries(f->dir, &tmp), 6);
	assert_int_equal(tmp, 0);
}

static void test_missing_object(void **state)
{
	struct fixture *f = *state;
	const char *gone[] = { "no/such", "never" };
	struct store_obj_info info;
	struct err err = { 0 };
	char buf[8];
	size_t got, len;
	void *all = (void *)buf;

	assert_int_equal(store_get_range(f->store, "no/such", 0, 8, buf, &got,
					 &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no/such"));
	assert_non_null(strstr(err.msg, f->dir));
	err_clear(&err);
	assert_int_equal(store_head(f->store, "no/such", &info, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no such object"));
	err_clear(&err);
	assert_int_equal(store_get_all(f->store, "no/such", 8, &all, &len,
				       &err), -ENOENT);
	assert_null(all);
	/* Deleting what is not there is fine. */
	err_clear(&err);
	assert_int_equal(store_delete(f->store, gone, 2, &err), 0);
	assert_int_equal(err.code, 0);

	/* A "directory" is not an object. */
	put_str(f->store, "dir/obj", "x");
	err_clear(&err);
	assert_int_equal(store_head(f->store, "dir", &info, &err), -ENOENT);
	err_clear(&err);
	assert_int_equal(store_get_range(f->store, "dir", 0, 8, buf, &got,
					 &err), -ENOENT);
	/* Below an object: not there either. */
	err_clear(&err);
	assert_int_equal(store_head(f->store, "dir/obj/x", &info, &err),
			 -ENOENT);
}

static void test_delete_prunes(void **state)
{
	struct fixture *f = *state;
	const char *first[] = { "a/b/c", "missing/key", "a" };
	const char *second[] = { "a/d" };
	struct err err = { 0 };
	char path[PATH_MAX];

	put_str(f->store, "a/b/c", "1");
	put_str(f->store, "a/d", "2");
	assert_int_equal(store_delete(f->store, first, 3, &err), 0);
	snprintf(path, sizeof(path), "%s/a/b", f->dir);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/a/d", f->dir);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(store_delete(f->store, second, 1, &err), 0);
	assert_int_equal(count_entries(f->dir, NULL), 0);
	assert_int_equal(store_delete(f->store, NULL, 0, &err), 0);
}

static void test_conflicts(void **state)
{
	struct fixture *f = *state;
	struct store_writer *w;
	struct err err = { 0 };
	unsigned tmp;

	/* An object where a directory is needed. */
	put_str(f->store, "obj", "x");
	assert_int_equal(store_put_buf(f->store, "obj/sub", "y", 1, &err),
			 -ENOTDIR);
	assert_non_null(strstr(err.msg, "obj/sub"));

	/* A directory where the object should go: fails at commit. */
	put_str(f->store, "d/x", "x");
	err_clear(&err);
	assert_int_equal(store_put_begin(f->store, "d", &w, &err), 0);
	assert_int_equal(store_write(w, "z", 1, &err), 0);
	assert_int_equal(store_put_commit(w, &err), -EISDIR);
	assert_non_null(strstr(err.msg, "directory"));
	assert_int_equal(count_entries(f->dir, &tmp), 3);
	assert_int_equal(tmp, 0);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	struct store *store = NULL;
	struct err err = { 0 };
	char path[PATH_MAX], cwd[PATH_MAX], here[PATH_MAX], url[PATH_MAX + 8];
	int fd;

	snprintf(path, sizeof(path), "%s/not-there", f->dir);
	assert_int_equal(store_open(path, &store, &err), -ENOENT);
	assert_null(store);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "mkdir -p"));

	snprintf(path, sizeof(path), "%s/file", f->dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	err_clear(&err);
	assert_int_equal(store_open(path, &store, &err), -ENOTDIR);
	assert_non_null(strstr(err.msg, "not a directory"));

	err_clear(&err);
	assert_true(store_open("ftp://host/x", &store, &err) < 0);
	assert_non_null(strstr(err.msg, "unknown store"));
	err_clear(&err);
	assert_true(store_open("file://relative/x", &store, &err) < 0);
	assert_null(store);

	/* file:// and a trailing slash. */
	snprintf(url, sizeof(url), "file://%s/", f->dir);
	err_clear(&err);
	assert_int_equal(store_open(url, &store, &err), 0);
	snprintf(path, sizeof(path), "file:%s", f->dir);
	assert_string_equal(store_describe(store), path);
	store_free(store);
	store = NULL;

	/* A relative path keeps meaning the same directory after chdir. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(f->dir), 0);
	assert_non_null(getcwd(here, sizeof(here)));
	err_clear(&err);
	assert_int_equal(store_open(".", &store, &err), 0);
	assert_int_equal(chdir(cwd), 0);
	snprintf(url, sizeof(url), "file:%s", here);
	assert_string_equal(store_describe(store), url);
	put_str(store, "rel/obj", "r");
	store_free(store);
	snprintf(path, sizeof(path), "%s/rel/obj", f->dir);
	assert_int_equal(access(path, F_OK), 0);

	store_free(NULL);
	assert_string_equal(store_describe(NULL), "(no store)");
}

static void test_get_all_max(void **state)
{
	struct fixture *f = *state;
	unsigned char data[100];
	struct err err = { 0 };
	void *all;
	size_t len;

	fill(data, sizeof(data), 0, 7);
	assert_int_equal(store_put_buf(f->store, "m/hundred", data,
				       sizeof(data), &err), 0);
	assert_int_equal(store_get_all(f->store, "m/hundred", 99, &all, &len,
				       &err), -EFBIG);
	assert_null(all);
	assert_int_equal(len, 0);
	assert_non_null(strstr(err.msg, "m/hundred"));
	err_clear(&err);
	assert_int_equal(store_get_all(f->store, "m/hundred", 100, &all, &len,
				       &err), 0);
	assert_int_equal(len, 100);
	assert_memory_equal(all, data, 100);
	free(all);
}

struct reader {
	struct store *store;
	uint64_t size;
	unsigned seed;
	unsigned reads;
	unsigned bad;
	char msg[256];
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint64_t x = 0x12345678u + r->seed * 7919u;
	unsigned char *buf = malloc(256 * 1024);

	if (!buf) {
		r->bad++;
		return NULL;
	}
	for (int i = 0; i < 300; i++) {
		struct err err = { 0 };
		uint64_t off, want;
		size_t len, got;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		off = x % (r->size + 1000);     /* sometimes past the end */
		len = (size_t)((x >> 32) % (256 * 1024));
		want = off >= r->size ? 0 :
		       (r->size - off < len ? r->size - off : len);
		if (store_get_range(r->store, "big/obj", off, len, buf, &got,
				    &err) || got != want ||
		    !check(buf, got, off, 3)) {
			if (!r->bad)
				snprintf(r->msg, sizeof(r->msg),
					 "off %llu len %zu got %zu: %.180s",
					 (unsigned long long)off, len, got,
					 err.msg);
			r->bad++;
		}
		r->reads++;
	}
	free(buf);
	return NULL;
}

static void test_concurrent_get_range(void **state)
{
	struct fixture *f = *state;
	const size_t size = 4 * MIB + 123;
	unsigned char *data = malloc(size);
	struct reader r[8];
	pthread_t th[8];
	struct err err = { 0 };

	assert_non_null(data);
	fill(data, size, 0, 3);
	assert_int_equal(store_put_buf(f->store, "big/obj", data, size, &err),
			 0);
	free(data);
	for (unsigned i = 0; i < 8; i++) {
		r[i] = (struct reader){ .store = f->store, .size = size,
					.seed = i + 1 };
		assert_int_equal(pthread_create(&th[i], NULL, reader_main,
						&r[i]), 0);
	}
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (unsigned i = 0; i < 8; i++) {
		if (r[i].bad)
			fail_msg("reader %u: %u bad reads, first: %s", i,
				 r[i].bad, r[i].msg);
		assert_int_equal(r[i].reads, 300);
	}
}

static void test_large_streamed_put(void **state)
{
	struct fixture *f = *state;
	static const size_t chunks[] = { 1, 4093, 65537, 1048573,
					 3 * MIB + 7, 13, 511 };
	const uint64_t total = 20 * MIB;
	unsigned char *buf = malloc(4 * MIB);
	struct store_obj_info info;
	struct store_writer *w;
	struct err err = { 0 };
	uint64_t off = 0;
	unsigned tmp;
	void *all;
	size_t len;

	assert_non_null(buf);
	assert_int_equal(store_put_begin(f->store, "h/p/id/data.tar.zst", &w,
					 &err), 0);
	for (size_t i = 0; off < total; i++) {
		size_t n = chunks[i % (sizeof(chunks) / sizeof(chunks[0]))];

		if (n > total - off)
			n = (size_t)(total - off);
		fill(buf, n, off, 11);
		assert_int_equal(store_write(w, buf, n, &err), 0);
		off += n;
	}
	assert_int_equal(store_put_commit(w, &err), 0);
	assert_int_equal(store_head(f->store, "h/p/id/data.tar.zst", &info,
				    &err), 0);
	assert_int_equal(info.size, total);

	/* Read back in uneven ranges. */
	for (off = 0; off < total;) {
		size_t got;

		assert_int_equal(store_get_range(f->store, "h/p/id/data.tar.zst",
						 off, MIB + 3, buf, &got, &err),
				 0);
		assert_int_equal(got, total - off < MIB + 3 ? total - off
							    : MIB + 3);
		if (!check(buf, got, off, 11))
			fail_msg("mismatch in range at %llu",
				 (unsigned long long)off);
		off += got;
	}
	free(buf);

	assert_int_equal(store_get_all(f->store, "h/p/id/data.tar.zst", total,
				       &all, &len, &err), 0);
	assert_int_equal(len, total);
	assert_true(check(all, len, 0, 11));
	free(all);
	assert_int_equal(count_entries(f->dir, &tmp), 4);
	assert_int_equal(tmp, 0);
}

static void test_enospc(void **state)
{
	struct fixture *f = *state;
	struct store_writer *w;
	struct err err = { 0 };
	unsigned char *buf;
	unsigned tmp;
	int ret = 0;

	if (geteuid() != 0) {
		unit_skip("the ENOSPC test needs root to mount a tmpfs");
	}
	if (mount("tmpfs", f->dir, "tmpfs", 0, "size=1m,mode=0700")) {
		unit_skip("cannot mount a tmpfs: %s", strerror(errno));
	}
	f->mounted = true;
	/* The old store points at the covered directory: open the tmpfs. */
	store_free(f->store);
	f->store = NULL;
	assert_int_equal(store_open(f->dir, &f->store, &err), 0);

	buf = malloc(MIB);
	assert_non_null(buf);
	fill(buf, MIB, 0, 5);
	assert_int_equal(store_put_begin(f->store, "full/obj", &w, &err), 0);
	for (int i = 0; i < 4 && !ret; i++)
		ret = store_write(w, buf, MIB, &err);
	free(buf);
	assert_int_equal(ret, -ENOSPC);
	if (!strstr(err.msg, "No space left") || !strstr(err.msg, "full/obj") ||
	    !strstr(err.msg, f->dir))
		fail_msg("unclear message: %s", err.msg);
	/* The failed writer refuses to commit a truncated object. */
	assert_int_equal(store_put_commit(w, &err), -ENOSPC);
	assert_int_equal(count_entries(f->dir, &tmp), 0);
	assert_int_equal(tmp, 0);

	/* The space is back: a small object fits. */
	err_clear(&err);
	put_str(f->store, "after", "ok");
}

/* ---- links planted in the store ---- */

static void write_file(const char *path, const char *s)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(s, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void pathf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void pathf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < size);
}

/*
 * The store holds h/p/a/obj and h/p/z, and the links h/p/lnkdir -> OUT,
 * h/p/lnkfile -> OUT/x, h/p/loop -> ., lnkroot -> OUT and a FIFO h/p/fifo.
 * OUT holds x, data.tar.zst and a temp-named file.
 */
static void plant(struct fixture *f)
{
	char path[PATH_MAX];

	strcpy(f->outside, "/tmp/snapship-outside-XXXXXX");
	assert_non_null(mkdtemp(f->outside));
	pathf(path, sizeof(path), "%s/x", f->outside);
	write_file(path, "outside secret\n");
	pathf(path, sizeof(path), "%s/data.tar.zst", f->outside);
	write_file(path, "outside data\n");
	pathf(path, sizeof(path), "%s/.a.tmp-0123456789abcdef", f->outside);
	write_file(path, "outside temp\n");

	put_str(f->store, "h/p/a/obj", "real");
	put_str(f->store, "h/p/z", "last");
	pathf(path, sizeof(path), "%s/h/p/lnkdir", f->dir);
	assert_int_equal(symlink(f->outside, path), 0);
	pathf(path, sizeof(path), "%s/h/p/lnkfile", f->dir);
	{
		char target[PATH_MAX];

		pathf(target, sizeof(target), "%s/x", f->outside);
		assert_int_equal(symlink(target, path), 0);
	}
	pathf(path, sizeof(path), "%s/h/p/loop", f->dir);
	assert_int_equal(symlink(".", path), 0);
	pathf(path, sizeof(path), "%s/lnkroot", f->dir);
	assert_int_equal(symlink(f->outside, path), 0);
	pathf(path, sizeof(path), "%s/h/p/fifo", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
}

/* OUT is exactly as plant() left it. */
static void check_outside(const struct fixture *f)
{
	static const char *const names[] = { "x", "data.tar.zst",
					     ".a.tmp-0123456789abcdef" };
	char path[PATH_MAX], buf[64] = "";
	FILE *fp;

	assert_int_equal(count_entries(f->outside, NULL), 3);
	for (size_t i = 0; i < 3; i++) {
		pathf(path, sizeof(path), "%s/%s", f->outside, names[i]);
		fp = fopen(path, "r");
		assert_non_null(fp);
		assert_non_null(fgets(buf, sizeof(buf), fp));
		fclose(fp);
		assert_non_null(strstr(buf, "outside"));
	}
}

static void test_links_list(void **state)
{
	struct fixture *f = *state;
	struct collect c = { 0 };
	struct err err = { 0 };

	plant(f);
	/* Links are skipped (and reported), the rest is listed. */
	assert_int_equal(store_list(f->store, "", collect_fn, &c, &err), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.keys[0], "h/p/a/obj");
	assert_string_equal(c.keys[1], "h/p/z");
	/* A prefix through a link lists nothing. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_list(f->store, "h/p/lnkdir/", collect_fn, &c,
				    &err), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(store_list(f->store, "lnkroot/", collect_fn, &c, &err),
			 0);
	assert_int_equal(store_list(f->store, "h/p/loop/loop/", collect_fn, &c,
				    &err), 0);
	assert_int_equal(store_list(f->store, "h/p/l", collect_fn, &c, &err), 0);
	assert_int_equal(c.n, 0);
	check_outside(f);
}

static void test_links_get_head(void **state)
{
	struct fixture *f = *state;
	static const char *const keys[] = { "h/p/lnkfile", "h/p/lnkdir/x",
					    "lnkroot/x", "h/p/loop/z" };
	struct store_obj_info info;
	struct err err = { 0 };
	char buf[64];
	size_t got, len;
	void *all;

	plant(f);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		err_clear(&err);
		assert_int_equal(store_get_range(f->store, keys[i], 0,
						 sizeof(buf), buf, &got, &err),
				 -ELOOP);
		assert_int_equal(got, 0);
		assert_non_null(strstr(err.msg, "symbolic link"));
		err_clear(&err);
		assert_int_equal(store_head(f->store, keys[i], &info, &err),
				 -ELOOP);
		err_clear(&err);
		assert_int_equal(store_get_all(f->store, keys[i], 1024, &all,
					       &len, &err), -ELOOP);
		assert_null(strstr(err.msg, "secret"));
	}
	/* A FIFO is no object, and opening it does not block. */
	err_clear(&err);
	assert_int_equal(store_get_range(f->store, "h/p/fifo", 0, sizeof(buf),
					 buf, &got, &err), -ENOENT);
	err_clear(&err);
	assert_int_equal(store_head(f->store, "h/p/fifo", &info, &err), -ENOENT);
	/* Real objects still read. */
	err_clear(&err);
	assert_int_equal(store_get_range(f->store, "h/p/a/obj", 0, sizeof(buf),
					 buf, &got, &err), 0);
	assert_int_equal(got, 4);
	check_outside(f);
}

static void test_links_put(void **state)
{
	struct fixture *f = *state;
	struct err err = { 0 };
	char path[PATH_MAX];
	struct stat st;

	plant(f);
	assert_int_equal(store_put_buf(f->store, "h/p/lnkdir/new", "x", 1,
				       &err), -ELOOP);
	assert_non_null(strstr(err.msg, "symbolic link"));
	err_clear(&err);
	assert_int_equal(store_put_buf(f->store, "lnkroot/sub/new", "x", 1,
				       &err), -ELOOP);
	err_clear(&err);
	assert_int_equal(store_put_buf(f->store, "h/p/loop/new", "x", 1, &err),
			 -ELOOP);
	/* A put onto a link replaces the link, not what it points at. */
	put_str(f->store, "h/p/lnkfile", "replaced");
	pathf(path, sizeof(path), "%s/h/p/lnkfile", f->dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	check_outside(f);
}

static void test_links_delete(void **state)
{
	struct fixture *f = *state;
	static const char *const through[] = { "h/p/lnkdir/x",
					       "lnkroot/data.tar.zst",
					       "h/p/loop/z" };
	const char *keys[1];
	struct store_obj_info info;
	struct err err = { 0 };
	char path[PATH_MAX];
	struct stat st;

	plant(f);
	for (size_t i = 0; i < sizeof(through) / sizeof(through[0]); i++) {
		err_clear(&err);
		keys[0] = through[i];
		assert_int_equal(store_delete(f->store, keys, 1, &err), -ELOOP);
	}
	/* A link is no object: deleting its key leaves it and its target. */
	err_clear(&err);
	keys[0] = "h/p/lnkfile";
	assert_int_equal(store_delete(f->store, keys, 1, &err), 0);
	pathf(path, sizeof(path), "%s/h/p/lnkfile", f->dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	keys[0] = "h/p/z";
	assert_int_equal(store_delete(f->store, keys, 1, &err), 0);
	assert_int_equal(store_head(f->store, "h/p/z", &info, &err), -ENOENT);
	check_outside(f);
}

static void test_abort_incomplete_exact(void **state)
{
	struct fixture *f = *state;
	static const char *const keep[] = {
		".data.tar.zst.tmp-0123456789ABCDEF",   /* uppercase */
		".x.tmp-0123",                          /* short */
		"data.tmp-0123456789abcdef",            /* no dot */
		"..tmp-0123456789abcdef",               /* no base */
		".x.tmp-0123456789abcdefa",             /* long */
		".x.tmp-0123456789abcdeg",              /* not hex */
	};
	struct collect c = { 0 };
	struct err err = { 0 };
	char path[PATH_MAX], target[PATH_MAX];
	unsigned n = 99;

	plant(f);
	pathf(path, sizeof(path), "%s/h/p/.data.tar.zst.tmp-0123456789abcdef",
	      f->dir);
	write_file(path, "ours");
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		pathf(path, sizeof(path), "%s/h/p/%s", f->dir, keep[i]);
		write_file(path, "not ours");
	}
	/* A temp-named link and a temp-named directory stay too. */
	pathf(path, sizeof(path), "%s/h/p/.l.tmp-0123456789abcdef", f->dir);
	pathf(target, sizeof(target), "%s/x", f->outside);
	assert_int_equal(symlink(target, path), 0);
	pathf(path, sizeof(path), "%s/h/p/.d.tmp-0123456789abcdef", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);

	assert_int_equal(store_abort_incomplete(f->store, "h/", &n, &err), 0);
	assert_int_equal(n, 1);
	pathf(path, sizeof(path), "%s/h/p/.data.tar.zst.tmp-0123456789abcdef",
	      f->dir);
	assert_int_equal(access(path, F_OK), -1);
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		pathf(path, sizeof(path), "%s/h/p/%s", f->dir, keep[i]);
		assert_int_equal(access(path, F_OK), 0);
	}
	pathf(path, sizeof(path), "%s/h/p/.l.tmp-0123456789abcdef", f->dir);
	assert_int_equal(faccessat(AT_FDCWD, path, F_OK, AT_SYMLINK_NOFOLLOW),
			 0);
	/* Names that are not exactly temp names are objects for list. */
	assert_int_equal(store_list(f->store, "h/p/.", collect_fn, &c, &err), 0);
	assert_int_equal(c.n, 5);
	check_outside(f);
}

/* A tmpfs mounted inside the store: never cleaned or deleted across. */
static void test_mount_point(void **state)
{
	struct fixture *f = *state;
	struct collect c = { 0 };
	struct err err = { 0 };
	char *mnt = f->submount, path[PATH_MAX];
	const char *keys[] = { "h/m/obj" };
	unsigned n = 99;

	if (geteuid() != 0) {
		unit_skip("the mount point test needs root to mount a tmpfs");
	}
	put_str(f->store, "h/p/obj", "x");
	pathf(mnt, sizeof(f->submount), "%s/h/m", f->dir);
	assert_int_equal(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700")) {
		mnt[0] = '\0';
		unit_skip("cannot mount a tmpfs: %s", strerror(errno));
	}
	pathf(path, sizeof(path), "%s/.obj.tmp-0123456789abcdef", mnt);
	write_file(path, "temp");
	pathf(path, sizeof(path), "%s/obj", mnt);
	write_file(path, "obj");

	assert_int_equal(store_abort_incomplete(f->store, "h/", &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_delete(f->store, keys, 1, &err), -EXDEV);
	/* Reading across it is fine. */
	assert_int_equal(store_list(f->store, "h/", collect_fn, &c, &err), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(count_entries(mnt, NULL), 2);
}

static void test_depth(void **state)
{
	struct fixture *f = *state;
	struct collect c = { 0 };
	struct err err = { 0 };
	char key[256] = "", path[PATH_MAX];

	for (int i = 0; i < 64; i++)
		strcat(key, "d/");
	strcat(key, "x");
	put_str(f->store, key, "64 levels");
	memmove(key + 2, key, strlen(key) + 1);
	memcpy(key, "d/", 2);
	assert_int_equal(store_put_buf(f->store, key, "x", 1, &err), -EINVAL);
	/* Made behind the store's back: not listed. */
	pathf(path, sizeof(path), "%s/%.*s", f->dir, (int)strlen(key) - 2, key);
	assert_int_equal(mkdir(path, 0700), 0);
	pathf(path, sizeof(path), "%s/%s", f->dir, key);
	write_file(path, "too deep");
	assert_int_equal(store_list(f->store, "", collect_fn, &c, &err), 0);
	assert_int_equal(c.n, 1);
}

/* Accepts directories whose last component starts with 'E' or 'L'. */
static bool empty_ok(void *ctx, const char *key)
{
	const char *slash = strrchr(key, '/');
	const char *base = slash ? slash + 1 : key;

	++*(unsigned *)ctx;
	return base[0] == 'E' || base[0] == 'L';
}

/* Only empty directories the caller accepts go; links are not followed. */
static void test_remove_empty_dirs(void **state)
{
	struct fixture *f = *state;
	static const char *const dirs[] = { "h/p/E1", "h/p/E2", "h/p/K",
					    "h/p/E3", "h/p/E3/sub", "h/p/E4",
					    "h/p/E4/E5" };
	struct err err = { 0 };
	char path[PATH_MAX], target[PATH_MAX];
	unsigned n = 99, asked = 0;

	strcpy(f->outside, "/tmp/snapship-outside-XXXXXX");
	assert_non_null(mkdtemp(f->outside));
	put_str(f->store, "h/p/E2/obj", "x");
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		pathf(path, sizeof(path), "%s/%s", f->dir, dirs[i]);
		assert_int_equal(mkdir(path, 0700) && errno != EEXIST, 0);
	}
	pathf(path, sizeof(path), "%s/h/p/L", f->dir);
	pathf(target, sizeof(target), "%s", f->outside);
	assert_int_equal(symlink(target, path), 0);

	assert_int_equal(store_remove_empty_dirs(f->store, "h/", empty_ok, &asked,
						 &n, &err), 0);
	/* E1 and E4/E5 then E4 go; E2 holds an object, K is not accepted,
	 * E3 holds sub (not accepted), L is a link */
	assert_int_equal(n, 3);
	assert_true(asked >= 5);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		bool gone = !strcmp(dirs[i], "h/p/E1") || !strncmp(dirs[i], "h/p/E4", 6);

		pathf(path, sizeof(path), "%s/%s", f->dir, dirs[i]);
		assert_int_equal(access(path, F_OK) == 0, !gone);
	}
	pathf(path, sizeof(path), "%s/h/p/L", f->dir);
	assert_int_equal(faccessat(AT_FDCWD, path, F_OK, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(access(f->outside, F_OK), 0);
}

/* Open errors' hints name what the location was typed as. */
static void test_open_hints(void **state)
{
	struct fixture *f = *state;
	struct store_opts from = { .given_as = "--from" }, region = { .name = "east" };
	struct store *store = NULL;
	struct err err = { 0 };
	char path[PATH_MAX];

	pathf(path, sizeof(path), "%s/not-there", f->dir);
	assert_int_equal(store_open_opts(path, &from, &store, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "or fix --from"));
	err_clear(&err);
	assert_int_equal(store_open_opts(path, &region, &store, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "or fix [region east] path"));
	err_clear(&err);
	assert_int_equal(store_open(path, &store, &err), -ENOENT);
	assert_null(strstr(err.msg, "--to"));
	pathf(path, sizeof(path), "%s/file", f->dir);
	write_file(path, "x");
	err_clear(&err);
	assert_int_equal(store_open_opts(path, &from, &store, &err), -ENOTDIR);
	assert_non_null(strstr(err.msg, "point --from at a directory"));
	assert_null(store);
}

static const struct CMUnitTest link_tests[] = {
	cmocka_unit_test_setup_teardown(test_links_list, setup, teardown),
	cmocka_unit_test_setup_teardown(test_links_get_head, setup, teardown),
	cmocka_unit_test_setup_teardown(test_links_put, setup, teardown),
	cmocka_unit_test_setup_teardown(test_links_delete, setup, teardown),
	cmocka_unit_test_setup_teardown(test_abort_incomplete_exact, setup,
					teardown),
	cmocka_unit_test_setup_teardown(test_mount_point, setup, teardown),
	cmocka_unit_test_setup_teardown(test_remove_empty_dirs, setup, teardown),
};

/* The same tests where openat2 is missing (the component-by-component walk). */
static void test_links_without_openat2(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("SNAPSHIP_FAULT", "file.openat2:38", 1);
		execl("/proc/self/exe", "test_store_file", "--links-child",
		      (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * Fault injection runs in a fresh process (SNAPSHIP_FAULT is read once):
 * the test re-executes this program with "--fault-child DIR".
 */
static bool child_check(bool cond, const char *what, const struct err *err)
{
	if (!cond)
		fprintf(stderr, "fault child: %s failed (err: %s)\n", what,
			err->msg);
	return cond;
}

static int fault_child(const char *dir)
{
	struct store_obj_info info;
	struct store_writer *w;
	struct store *store;
	struct err err = { 0 };
	unsigned tmp = 1;
	bool ok = true;

#define CHECK(cond) (ok = child_check((cond), #cond, &err) && ok)
	if (store_open(dir, &store, &err)) {
		fprintf(stderr, "fault child: %s\n", err.msg);
		return 1;
	}
	/* store.write@2:28: the second write fails with ENOSPC. */
	CHECK(store_put_begin(store, "f/obj", &w, &err) == 0);
	CHECK(store_write(w, "abc", 3, &err) == 0);
	CHECK(store_write(w, "def", 3, &err) == -ENOSPC);
	CHECK(strstr(err.msg, "injected") && strstr(err.msg, "f/obj"));
	err_clear(&err);
	CHECK(store_write(w, "ghi", 3, &err) == -ENOSPC);
	err_clear(&err);
	CHECK(store_put_commit(w, &err) == -ENOSPC);
	err_clear(&err);
	CHECK(store_head(store, "f/obj", &info, &err) == -ENOENT);

	/* store.commit@1: the first commit fails with EIO. */
	err_clear(&err);
	CHECK(store_put_begin(store, "g/obj", &w, &err) == 0);
	CHECK(store_write(w, "abc", 3, &err) == 0);
	CHECK(store_put_commit(w, &err) == -EIO);
	CHECK(strstr(err.msg, "store.commit") != NULL);
	err_clear(&err);
	CHECK(store_head(store, "g/obj", &info, &err) == -ENOENT);
	CHECK(count_entries(dir, &tmp) == 0 && tmp == 0);

	/* Faults spent: the same put now works. */
	err_clear(&err);
	CHECK(store_put_buf(store, "g/obj", "abc", 3, &err) == 0);
	CHECK(store_head(store, "g/obj", &info, &err) == 0 && info.size == 3);

	/* store.head@4: this is the fourth head. */
	CHECK(store_head(store, "g/obj", &info, &err) == -EIO);
	CHECK(strstr(err.msg, "store.head") != NULL);
#undef CHECK
	store_free(store);
	return ok ? 0 : 1;
}

static void test_fault_injection(void **state)
{
	struct fixture *f = *state;
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("SNAPSHIP_FAULT",
		       "store.write@2:28,store.commit@1,store.head@4", 1);
		execl("/proc/self/exe", "test_store_file", "--fault-child",
		      f->dir, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_round_trip),
		T(test_overwrite),
		T(test_abort_leaves_nothing),
		T(test_uncommitted_is_invisible),
		T(test_list_order_and_prefix),
		T(test_bad_keys),
		T(test_missing_object),
		T(test_delete_prunes),
		T(test_conflicts),
		T(test_open_errors),
		T(test_get_all_max),
		T(test_concurrent_get_range),
		T(test_large_streamed_put),
		T(test_enospc),
		T(test_fault_injection),
		T(test_links_list),
		T(test_links_get_head),
		T(test_links_put),
		T(test_links_delete),
		T(test_abort_incomplete_exact),
		T(test_mount_point),
		T(test_depth),
		T(test_remove_empty_dirs),
		T(test_open_hints),
		cmocka_unit_test(test_links_without_openat2),
#undef T
	};

	if (argc == 3 && !strcmp(argv[1], "--fault-child"))
		return fault_child(argv[2]);
	if (argc == 2 && !strcmp(argv[1], "--links-child"))
		return cmocka_run_group_tests_name("links without openat2",
						   link_tests, NULL, NULL);
	return unit_main(tests, NULL, NULL);
}
