// SPDX-License-Identifier: MIT
#include "agent/index.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/err.h"
#include "common/util.h"
#include "uploader/sink.h"

#define INDEX_BUF (128u << 10)
#define INDEX_LINE_MAX (64u << 10)

struct index_writer {
	struct sink *sink;
	ZSTD_CCtx *cctx;
	unsigned char *out;
};

int index_writer_new(struct sink *sink, int level, struct index_writer **w_ret,
		     struct err *err)
{
	struct index_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return err_set(err, -ENOMEM, "out of memory");
	w->sink = sink;
	w->cctx = ZSTD_createCCtx();
	w->out = malloc(INDEX_BUF);
	if (!w->cctx || !w->out) {
		index_writer_free(w);
		return err_set(err, -ENOMEM, "out of memory");
	}
	ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
	/* a 1 MiB window: the index is lines of similar JSON, and the
	 * compressor stays small next to the data stream's */
	ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_windowLog, 20);
	ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
	*w_ret = w;
	return 0;
}

static int index_push(struct index_writer *w, const void *buf, size_t len,
		      ZSTD_EndDirective mode, struct err *err)
{
	ZSTD_inBuffer in = { buf, len, 0 };

	for (;;) {
		ZSTD_outBuffer out = { w->out, INDEX_BUF, 0 };
		size_t r = ZSTD_compressStream2(w->cctx, &out, &in, mode);
		int ret;

		if (ZSTD_isError(r))
			return err_set(err, -EIO, "compressing the index: %s",
				       ZSTD_getErrorName(r));
		if (out.pos) {
			ret = sink_write(w->sink, w->out, out.pos, err);
			if (ret)
				return ret;
		}
		if (mode == ZSTD_e_continue ? in.pos == in.size : r == 0)
			return 0;
	}
}

int index_writer_add(void *ctx, const struct pack_entry_info *e, struct err *err)
{
	struct index_writer *w = ctx;
	char type[2] = { (char)e->type, 0 }, sum[33];
	json_t *o, *path = json_string(e->path);
	char *line;
	int ret;

	o = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:I}",
		      "type", type, "mode", (int)e->mode, "uid", (json_int_t)e->uid,
		      "gid", (json_int_t)e->gid, "size", (json_int_t)e->size,
		      "mtime_ns", (json_int_t)e->mtime_ns,
		      "offset", (json_int_t)e->offset);
	if (!o) {
		json_decref(path);
		return err_set(err, -ENOMEM, "out of memory");
	}
	if (path) {
		json_object_set_new(o, "path", path);
	} else {
		/* not UTF-8: keep the exact bytes, hex-encoded */
		size_t n = strlen(e->path);
		char *hex = malloc(2 * n + 1);

		if (!hex) {
			json_decref(o);
			return err_set(err, -ENOMEM, "out of memory");
		}
		util_hex((const unsigned char *)e->path, n, hex);
		json_object_set_new(o, "path_hex", json_string(hex));
		free(hex);
	}
	if (e->link) {
		json_t *l = json_string(e->link);

		if (l) {
			json_object_set_new(o, "link", l);
		} else {
			/* not UTF-8: the exact bytes, hex-encoded, as for paths */
			size_t n = strlen(e->link);
			char *hex = malloc(2 * n + 1);

			if (!hex) {
				json_decref(o);
				return err_set(err, -ENOMEM, "out of memory");
			}
			util_hex((const unsigned char *)e->link, n, hex);
			json_object_set_new(o, "link_hex", json_string(hex));
			free(hex);
		}
	}
	if (e->type == PACK_CHAR || e->type == PACK_BLOCK)
		json_object_set_new(o, "rdev", json_integer((json_int_t)e->rdev));
	if (e->xattrs)
		json_object_set_new(o, "xattrs", json_true());
	if (e->sparse)
		json_object_set_new(o, "sparse", json_true());
	if (e->has_sum) {
		util_hex(e->xxh3, 16, sum);
		json_object_set_new(o, "xxh3", json_string(sum));
	}
	line = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!line)
		return err_set(err, -ENOMEM, "out of memory");
	ret = index_push(w, line, strlen(line), ZSTD_e_continue, err);
	if (!ret)
		ret = index_push(w, "\n", 1, ZSTD_e_continue, err);
	free(line);
	return ret;
}

int index_writer_finish(struct index_writer *w, struct err *err)
{
	return index_push(w, NULL, 0, ZSTD_e_end, err);
}

void index_writer_free(struct index_writer *w)
{
	if (!w)
		return;
	ZSTD_freeCCtx(w->cctx);
	free(w->out);
	free(w);
}

/* ---------------------------------------------------------------- reader */

static size_t hash_str(const struct index *idx, const char *s)
{
	return (size_t)XXH3_64bits_withSeed(s, strlen(s), idx->seed);
}

static uint64_t random_seed(void)
{
	uint64_t seed = 0;
	struct timespec ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
		return seed;
	/* no entropy yet (early boot): still differs per run */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
	       (uint64_t)(uintptr_t)&seed ^ ((uint64_t)getpid() << 48);
}

/* Exactly 2 * n hex digits into n bytes. */
static int unhex(const char *s, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = util_hexval(s[2 * i]), lo = hi < 0 ? -1 : util_hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* A name stored as hex (not UTF-8): non-empty, without NUL bytes. */
static char *name_from_hex(const char *hex)
{
	size_t len = strlen(hex), n = len / 2;
	char *p;

	if (!n || len % 2)
		return NULL;
	p = malloc(n + 1);
	if (!p || unhex(hex, (unsigned char *)p, n) || memchr(p, '\0', n)) {
		free(p);
		return NULL;
	}
	p[n] = '\0';
	return p;
}

static bool type_known(const char *t)
{
	return t[0] && !t[1] && strchr("fdlhcbp", t[0]);
}

static int index_add_line(struct index *idx, size_t *cap, const char *line,
			  size_t len, size_t lineno, struct err *err)
{
	json_error_t je;
	json_t *o = json_loadb(line, len, 0, &je);
	const char *path = NULL, *phex = NULL, *type = NULL, *sum = NULL;
	const char *link = NULL, *lhex = NULL;
	json_int_t mode = 0, uid = 0, gid = 0, size = 0, mtime = 0, off = 0, rdev = -1;
	int sparse = 0;
	struct index_entry *e;

	if (!o || json_unpack_ex(o, &je, 0,
				 "{s?s, s?s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s?s, s?s, s?I, s?s, s?b}",
				 "path", &path, "path_hex", &phex, "type", &type,
				 "mode", &mode, "uid", &uid, "gid", &gid, "size", &size,
				 "mtime_ns", &mtime, "offset", &off, "link", &link,
				 "link_hex", &lhex, "rdev", &rdev, "xxh3", &sum,
				 "sparse", &sparse) ||
	    (!path && !phex) || !type_known(type) || mode < 0 || mode > 07777 ||
	    uid < 0 || gid < 0 || size < 0 || off < 0 ||
	    (sum && strlen(sum) != 32)) {
		json_decref(o);
		return err_set(err, -EBADMSG, "index line %zu is malformed", lineno);
	}
	if (idx->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 1024;
		struct index_entry *n = realloc(idx->e, ncap * sizeof(*n));

		if (!n) {
			json_decref(o);
			return err_set(err, -ENOMEM, "out of memory");
		}
		idx->e = n;
		*cap = ncap;
	}
	e = &idx->e[idx->n];
	memset(e, 0, sizeof(*e));
	e->type = type[0];
	e->mode = (uint32_t)mode;
	e->uid = uid;
	e->gid = gid;
	e->size = (uint64_t)size;
	e->mtime_ns = mtime;
	e->offset = (uint64_t)off;
	e->sparse = sparse;
	if (rdev >= 0) {
		e->rdev = (uint64_t)rdev;
		e->has_rdev = true;
	}
	if (sum) {
		if (unhex(sum, e->xxh3, 16)) {
			json_decref(o);
			return err_set(err, -EBADMSG, "index line %zu: bad checksum", lineno);
		}
		e->has_sum = true;
	}
	e->path = path ? (*path ? strdup(path) : NULL) : name_from_hex(phex);
	if (link && !strcmp(link, "(not UTF-8)"))
		e->link_legacy = true;   /* written before link_hex */
	else if (link || lhex)
		e->link = link ? strdup(link) : name_from_hex(lhex);
	json_decref(o);
	if (!e->path || ((link || lhex) && !e->link && !e->link_legacy)) {
		free(e->path);
		free(e->link);
		return err_set(err, -EBADMSG, "index line %zu: bad path or link", lineno);
	}
	idx->n++;
	return 0;
}

/* Put entry i in the table (which has room); refuse a path listed before. */
static int hash_insert(struct index *idx, size_t i, struct err *err)
{
	size_t h = hash_str(idx, idx->e[i].path) & (idx->hcap - 1);

	while (idx->hash[h]) {
		size_t j = idx->hash[h] - 1;

		if (!strcmp(idx->e[j].path, idx->e[i].path))
			return err_set(err, -EBADMSG,
				       "index lists %s twice (lines %zu and %zu); the stored backup is corrupt or was tampered with",
				       idx->e[i].path, j + 1, i + 1);
		h = (h + 1) & (idx->hcap - 1);
	}
	idx->hash[h] = i + 1;
	return 0;
}

/*
 * Hash the entry just added, refusing a path listed twice at once.  The
 * table stays at most half full (doubled and rehashed when needed) and the
 * hash is seeded per load, so loading is O(n) expected whatever the paths.
 */
static int index_hash_add(struct index *idx, struct err *err)
{
	size_t last = idx->n - 1;

	if (idx->n * 2 > idx->hcap) {
		size_t cap = idx->hcap ? idx->hcap * 2 : 1024;
		size_t *n = calloc(cap, sizeof(*n));

		if (!n)
			return err_set(err, -ENOMEM, "out of memory");
		free(idx->hash);
		idx->hash = n;
		idx->hcap = cap;
		for (size_t i = 0; i < last; i++)   /* known distinct */
			hash_insert(idx, i, err);
	}
	return hash_insert(idx, last, err);
}

int index_load(const void *zbuf, size_t zlen, struct index **idx_ret,
	       struct err *err)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	ZSTD_inBuffer in = { zbuf, zlen, 0 };
	struct index *idx = calloc(1, sizeof(*idx));
	char *line = malloc(INDEX_LINE_MAX);
	size_t used = 0, cap = 0, lineno = 0, r = 1;
	int ret = 0;

	if (!d || !idx || !line) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	idx->seed = random_seed();
	while (in.pos < in.size || r != 0) {
		ZSTD_outBuffer out = { line + used, INDEX_LINE_MAX - used, 0 };
		char *nl, *start;

		if (out.size == 0) {
			ret = err_set(err, -EBADMSG, "index line %zu is too long", lineno + 1);
			goto out;
		}
		r = ZSTD_decompressStream(d, &out, &in);
		if (ZSTD_isError(r)) {
			ret = err_set(err, -EBADMSG, "index is corrupt: %s",
				      ZSTD_getErrorName(r));
			goto out;
		}
		used += out.pos;
		start = line;
		while ((nl = memchr(start, '\n', used - (size_t)(start - line)))) {
			ret = index_add_line(idx, &cap, start, (size_t)(nl - start),
					     ++lineno, err);
			if (!ret)
				ret = index_hash_add(idx, err);
			if (ret)
				goto out;
			start = nl + 1;
		}
		used -= (size_t)(start - line);
		memmove(line, start, used);
		if (in.pos == in.size && out.pos == 0 && r != 0) {
			ret = err_set(err, -EBADMSG, "index is truncated");
			goto out;
		}
	}
	if (used) {
		ret = err_set(err, -EBADMSG, "index ends in the middle of a line");
		goto out;
	}
	idx->seen = calloc(idx->n ? idx->n : 1, sizeof(*idx->seen));
	if (!idx->seen)
		ret = err_set(err, -ENOMEM, "out of memory");
out:
	ZSTD_freeDCtx(d);
	free(line);
	if (ret) {
		index_free(idx);
		return ret;
	}
	*idx_ret = idx;
	return 0;
}

void index_free(struct index *idx)
{
	if (!idx)
		return;
	for (size_t i = 0; i < idx->n; i++) {
		free(idx->e[i].path);
		free(idx->e[i].link);
	}
	free(idx->e);
	free(idx->hash);
	free(idx->seen);
	free(idx);
}

size_t index_find(const struct index *idx, const char *path)
{
	size_t h;

	if (!idx->hcap)
		return (size_t)-1;
	h = hash_str(idx, path) & (idx->hcap - 1);
	while (idx->hash[h]) {
		size_t i = idx->hash[h] - 1;

		if (!strcmp(idx->e[i].path, path))
			return i;
		h = (h + 1) & (idx->hcap - 1);
	}
	return (size_t)-1;
}

void index_pass_begin(struct index *idx)
{
	idx->pass++;
}

int index_mark(struct index *idx, size_t i)
{
	uint32_t was = idx->seen[i];

	if (was == idx->pass)
		return -1;
	idx->seen[i] = idx->pass;
	return was == 0;
}

bool index_seen(const struct index *idx, size_t i)
{
	return idx->seen[i] != 0;
}
