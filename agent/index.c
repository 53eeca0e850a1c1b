// SPDX-License-Identifier: MIT
#include "agent/index.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

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

		json_object_set_new(o, "link", l ? l : json_string("(not UTF-8)"));
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

static size_t hash_str(const char *s)
{
	size_t h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

static char *path_from_hex(const char *hex)
{
	size_t n = strlen(hex) / 2;
	char *p = malloc(n + 1);

	if (!p || unhex(hex, (unsigned char *)p, n)) {
		free(p);
		return NULL;
	}
	p[n] = '\0';
	return p;
}

static int index_add_line(struct index *idx, size_t *cap, const char *line,
			  size_t len, size_t lineno, struct err *err)
{
	json_error_t je;
	json_t *o = json_loadb(line, len, 0, &je);
	const char *path = NULL, *phex = NULL, *type = NULL, *sum = NULL;
	json_int_t size = 0, off = 0;
	int sparse = 0;
	struct index_entry *e;

	if (!o || json_unpack_ex(o, &je, 0, "{s?s, s?s, s:s, s?I, s:I, s?s, s?b}",
				 "path", &path, "path_hex", &phex, "type", &type,
				 "size", &size, "offset", &off, "xxh3", &sum,
				 "sparse", &sparse) ||
	    (!path && !phex) || size < 0 || off < 0 ||
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
	e->path = path ? strdup(path) : path_from_hex(phex);
	e->type = type[0];
	e->size = (uint64_t)size;
	e->offset = (uint64_t)off;
	e->sparse = sparse;
	if (sum) {
		if (unhex(sum, e->xxh3, 16)) {
			free(e->path);
			json_decref(o);
			return err_set(err, -EBADMSG, "index line %zu: bad checksum", lineno);
		}
		e->has_sum = true;
	}
	json_decref(o);
	if (!e->path)
		return err_set(err, -EBADMSG, "index line %zu: bad path", lineno);
	idx->n++;
	return 0;
}

static int index_build_hash(struct index *idx, struct err *err)
{
	idx->hcap = 16;
	while (idx->hcap < idx->n * 2)
		idx->hcap *= 2;
	idx->hash = calloc(idx->hcap, sizeof(*idx->hash));
	if (!idx->hash)
		return err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < idx->n; i++) {
		size_t h = hash_str(idx->e[i].path) & (idx->hcap - 1);

		while (idx->hash[h])
			h = (h + 1) & (idx->hcap - 1);
		idx->hash[h] = i + 1;
	}
	return 0;
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
	ret = index_build_hash(idx, err);
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
	for (size_t i = 0; i < idx->n; i++)
		free(idx->e[i].path);
	free(idx->e);
	free(idx->hash);
	free(idx);
}

size_t index_find(const struct index *idx, const char *path)
{
	size_t h;

	if (!idx->hcap)
		return (size_t)-1;
	h = hash_str(path) & (idx->hcap - 1);
	while (idx->hash[h]) {
		size_t i = idx->hash[h] - 1;

		if (!strcmp(idx->e[i].path, path))
			return i;
		h = (h + 1) & (idx->hcap - 1);
	}
	return (size_t)-1;
}
