// SPDX-License-Identifier: MIT
#include "agent/index.h"
#include "agent/index_priv.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <zstd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/err.h"
#include "common/util.h"
#include "uploader/sink.h"
#include "uploader/store.h"

#define INDEX_BUF (128u << 10)
#define INDEX_READ_BUF (256u << 10)

struct index_writer {
	index_out_fn out_fn;
	void *out_ctx;
	ZSTD_CCtx *cctx;
	unsigned char *out;
};

int index_writer_new(struct sink *sink, int level, struct index_writer **w_ret,
		     struct err *err)
{
	return index_writer_new_fn(sink_write, sink, level, w_ret, err);
}

int index_writer_new_fn(index_out_fn out, void *ctx, int level,
			struct index_writer **w_ret, struct err *err)
{
	struct index_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return err_set(err, -ENOMEM, "out of memory");
	w->out_fn = out;
	w->out_ctx = ctx;
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
			ret = w->out_fn(w->out_ctx, w->out, out.pos, err);
			if (ret)
				return ret;
		}
		if (mode == ZSTD_e_continue ? in.pos == in.size : r == 0)
			return 0;
	}
}

/* xattr_map: name -> base64 value, within the bounds readers accept. */
static int put_xattr_map(json_t *o, const struct pack_entry_info *e,
			 struct err *err)
{
	json_t *map = json_object();
	char *b64 = NULL;
	int ret = 0;

	if (!map)
		return err_set(err, -ENOMEM, "out of memory");
	if (e->nxattr > INDEX_XATTR_MAX) {
		ret = err_set(err, -E2BIG, "%s has %zu extended attributes; snapship keeps at most %d",
			      e->path, e->nxattr, INDEX_XATTR_MAX);
		goto out;
	}
	for (size_t i = 0; i < e->nxattr; i++) {
		const struct pack_xattr *x = &e->xattr[i];
		size_t nlen = strlen(x->name);

		if (!nlen || nlen > INDEX_XATTR_NAME_MAX || x->len > INDEX_XATTR_VALUE_MAX) {
			ret = err_set(err, -E2BIG, "%s: extended attribute %s is too large to record",
				      e->path, x->name);
			goto out;
		}
		free(b64);
		b64 = malloc(4 * ((x->len + 2) / 3) + 1);
		if (!b64) {
			ret = err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		EVP_EncodeBlock((unsigned char *)b64, x->value, (int)x->len);
		if (json_object_set_new(map, x->name, json_string(b64))) {
			ret = err_set(err, -EINVAL,
				      "%s: an extended attribute's name is not UTF-8; snapship cannot record it",
				      e->path);
			goto out;
		}
	}
	json_object_set_new(o, "xattr_map", map);
	map = NULL;
out:
	free(b64);
	json_decref(map);
	return ret;
}

int index_writer_add(void *ctx, const struct pack_entry_info *e, struct err *err)
{
	struct index_writer *w = ctx;
	char type[2] = { (char)e->type, 0 }, sum[33];
	json_t *o, *path = json_string(e->path);
	char *line;
	int ret;

	o = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I}",
		      "type", type, "mode", (int)e->mode, "uid", (json_int_t)e->uid,
		      "gid", (json_int_t)e->gid, "size", (json_int_t)e->size,
		      "mtime_ns", (json_int_t)e->mtime_ns);
	if (o && !e->no_offset)
		json_object_set_new(o, "offset", json_integer((json_int_t)e->offset));
	if (o && e->ref)
		json_object_set_new(o, "ref", json_string(e->ref));
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
	json_object_set_new(o, "ino", json_integer((json_int_t)e->ino));
	json_object_set_new(o, "igen", json_integer((json_int_t)e->igen));
	json_object_set_new(o, "ctime_ns", json_integer((json_int_t)e->ctime_ns));
	if (e->nxattr) {
		ret = put_xattr_map(o, e, err);
		if (ret) {
			json_decref(o);
			return ret;
		}
	}
	if (e->blocks) {
		ret = index_put_blocks(o, e, err);
		if (ret) {
			json_decref(o);
			return ret;
		}
	}
	line = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!line)
		return err_set(err, -ENOMEM, "out of memory");
	if (strlen(line) + 1 > INDEX_LINE_MAX) {
		free(line);
		return err_set(err, -E2BIG,
			       "%s: its index entry would be longer than %u bytes (extended attributes too large); snapship cannot back it up",
			       e->path, INDEX_LINE_MAX);
	}
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
int index_unhex(const char *s, unsigned char *out, size_t n)
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
	if (!p || index_unhex(hex, (unsigned char *)p, n) || memchr(p, '\0', n)) {
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

void index_entry_clear(struct index_entry *e)
{
	free(e->path);
	free(e->link);
	for (size_t i = 0; i < e->nxattr; i++) {
		free(e->xattr[i].name);
		free(e->xattr[i].value);
	}
	free(e->xattr);
	index_blocks_free(e->blk);
	memset(e, 0, sizeof(*e));
}

/* Canonical base64 (padded, no whitespace) into a malloc'd buffer. */
static int unbase64(const char *s, unsigned char **out_ret, size_t *len_ret)
{
	size_t n = strlen(s), pad = 0, len;
	unsigned char *out;
	char *again;

	if (n % 4 || n / 4 * 3 > INDEX_XATTR_VALUE_MAX + 2)
		return -1;
	if (n && s[n - 1] == '=')
		pad = n >= 2 && s[n - 2] == '=' ? 2 : 1;
	out = malloc(n / 4 * 3 + 1);
	again = malloc(n + 1);
	if (!out || !again ||
	    EVP_DecodeBlock(out, (const unsigned char *)s, (int)n) != (int)(n / 4 * 3))
		goto bad;
	len = n / 4 * 3 - pad;
	/* EVP_DecodeBlock skips blanks and ignores bits: re-encode and compare */
	EVP_EncodeBlock((unsigned char *)again, out, (int)len);
	if (strcmp(again, s) || len > INDEX_XATTR_VALUE_MAX)
		goto bad;
	free(again);
	*out_ret = out;
	*len_ret = len;
	return 0;
bad:
	free(out);
	free(again);
	return -1;
}

/* xattr_map into e: an object of at most INDEX_XATTR_MAX names (1..255
 * bytes, no NUL) to canonical base64 values of at most 64 KiB. */
static int parse_xattr_map(json_t *map, struct index_entry *e)
{
	size_t n = json_object_size(map), i = 0;
	const char *name;
	json_t *v;

	if (!json_is_object(map) || n > INDEX_XATTR_MAX)
		return -1;
	if (!n)
		return 0;
	e->xattr = calloc(n, sizeof(*e->xattr));
	if (!e->xattr)
		return -ENOMEM;
	json_object_foreach(map, name, v) {
		size_t klen = json_object_iter_key_len(json_object_key_to_iter(name));
		struct index_xattr *x = &e->xattr[i];

		if (!klen || klen > INDEX_XATTR_NAME_MAX || strlen(name) != klen ||
		    !json_is_string(v))
			return -1;
		x->name = strdup(name);
		if (!x->name)
			return -ENOMEM;
		e->nxattr = ++i;
		if (unbase64(json_string_value(v), &x->value, &x->len))
			return -1;
	}
	return 0;
}

/*
 * The version 2 fields: ref (a backup id, only on a regular file with a
 * checksum and a location), xattr_map.  0, -EBADMSG (what is wrong in
 * *why) or -ENOMEM.
 */
static int parse_v2(struct index_entry *e, const char *ref, json_t *map,
		    const char **why)
{
	int ret;

	if (ref) {
		if (catalog_id_time(ref) < 0) {
			*why = "ref is not a backup id";
			return -EBADMSG;
		}
		memcpy(e->ref, ref, BACKUP_ID_LEN + 1);
	}
	if (map) {
		ret = parse_xattr_map(map, e);
		if (ret) {
			*why = "bad xattr_map";
			return ret == -ENOMEM ? ret : -EBADMSG;
		}
	}
	return 0;
}

/* ref only on a regular file with content, a location and a checksum (of
 * the whole, or of its blocks); a file with content has a location (an
 * offset, or runs). */
static int check_location(const struct index_entry *e, const char **why)
{
	if (e->ref[0] && (e->type != PACK_FILE || !e->has_offset ||
			  (!e->has_sum && !e->blk) || !e->size)) {
		*why = "ref on an entry without content";
		return -EBADMSG;
	}
	if (e->type == PACK_FILE && e->size && !e->has_offset && !e->blk) {
		*why = "a file with content but no offset";
		return -EBADMSG;
	}
	return 0;
}

/* The names: path or path_hex, link or link_hex (or the legacy stand-in). */
static int parse_names(struct index_entry *e, const char *path, const char *phex,
		       const char *link, const char *lhex)
{
	e->path = path ? (*path ? strdup(path) : NULL) : name_from_hex(phex);
	if (link && !strcmp(link, "(not UTF-8)"))
		e->link_legacy = true;   /* written before link_hex */
	else if (link || lhex)
		e->link = link ? strdup(link) : name_from_hex(lhex);
	if (!e->path || ((link || lhex) && !e->link && !e->link_legacy))
		return -1;
	return 0;
}

/* One line into *e (zeroed first; index_entry_clear it even on error). */
static int parse_line(const char *line, size_t len, size_t lineno,
		      struct index_entry *e, struct err *err)
{
	json_error_t je;
	json_t *o = json_loadb(line, len, 0, &je), *map = NULL;
	const char *path = NULL, *phex = NULL, *type = NULL, *sum = NULL;
	const char *link = NULL, *lhex = NULL, *ref = NULL, *why = "malformed";
	json_int_t mode = 0, uid = 0, gid = 0, size = 0, mtime = 0, off = -1, rdev = -1;
	json_int_t ino = 0, igen = 0, ctime = 0;
	json_t *xattrs = NULL;   /* not checked: readers never needed it */
	int sparse = 0, ret = -EBADMSG;

	memset(e, 0, sizeof(*e));
	if (!o || json_unpack_ex(o, &je, 0,
				 "{s?s, s?s, s:s, s:I, s:I, s:I, s:I, s:I, s?I, s?s, s?s, s?I, s?s, s?b,"
				 " s?I, s?I, s?I, s?s, s?o, s?o}",
				 "path", &path, "path_hex", &phex, "type", &type,
				 "mode", &mode, "uid", &uid, "gid", &gid, "size", &size,
				 "mtime_ns", &mtime, "offset", &off, "link", &link,
				 "link_hex", &lhex, "rdev", &rdev, "xxh3", &sum,
				 "sparse", &sparse, "ino", &ino, "igen", &igen,
				 "ctime_ns", &ctime, "ref", &ref, "xattr_map", &map,
				 "xattrs", &xattrs) ||
	    (!path && !phex) || !type_known(type) || mode < 0 || mode > 07777 ||
	    uid < 0 || gid < 0 || size < 0 ||
	    (json_object_get(o, "offset") && off < 0) ||
	    igen < 0 || igen > UINT32_MAX || (sum && strlen(sum) != 32))
		goto out;
	e->type = type[0];
	e->mode = (uint32_t)mode;
	e->uid = uid;
	e->gid = gid;
	e->size = (uint64_t)size;
	e->mtime_ns = mtime;
	e->has_offset = off >= 0;
	e->offset = off >= 0 ? (uint64_t)off : 0;
	e->sparse = sparse;
	e->xattrs = json_is_true(xattrs);
	e->ino = (uint64_t)ino;   /* written as the signed cast of st_ino */
	e->igen = (uint64_t)igen;
	e->ctime_ns = ctime;
	if (rdev >= 0) {
		e->rdev = (uint64_t)rdev;
		e->has_rdev = true;
	}
	if (sum) {
		why = "bad checksum";
		if (index_unhex(sum, e->xxh3, 16))
			goto out;
		e->has_sum = true;
	}
	why = "bad path or link";
	if (parse_names(e, path, phex, link, lhex))
		goto out;
	ret = parse_v2(e, ref, map, &why);
	if (!ret)
		ret = index_parse_blocks(o, e, &why);
	if (!ret)
		ret = check_location(e, &why);
out:
	json_decref(o);
	if (ret == -ENOMEM)
		return err_set(err, ret, "out of memory");
	if (ret)
		return err_set(err, ret, "index line %zu: %s; the stored backup is corrupt or was tampered with",
			       lineno, why);
	return 0;
}

/* ------------------------------------------------------ streaming reader */

struct index_reader {
	ZSTD_DCtx *d;
	index_read_fn read;
	void *ctx;
	unsigned char *in;        /* INDEX_READ_BUF, when read supplies it */
	ZSTD_inBuffer zin;
	size_t zr;                /* the decoder's last hint: 0 = at a frame end */
	bool eof, drained;
	char *line;               /* decompressed, not yet parsed: [start, used) */
	size_t cap, start, used, lineno;
	/* open_buf: the whole buffer is the input; open_store: */
	struct store *store;
	char *key;
	uint64_t off;
};

static int reader_new(index_read_fn read, void *ctx, struct index_reader **r_ret,
		      struct err *err)
{
	struct index_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return err_set(err, -ENOMEM, "out of memory");
	r->read = read;
	r->ctx = ctx;
	r->zr = 1;
	r->cap = 64u << 10;
	r->d = ZSTD_createDCtx();
	r->line = malloc(r->cap);
	if (!r->d || !r->line || (read && !(r->in = malloc(INDEX_READ_BUF)))) {
		index_reader_free(r);
		return err_set(err, -ENOMEM, "out of memory");
	}
	*r_ret = r;
	return 0;
}

int index_reader_open_fn(index_read_fn read, void *ctx,
			 struct index_reader **r_ret, struct err *err)
{
	if (!read)
		return err_set(err, -EINVAL, "index_reader_open_fn: no read function");
	return reader_new(read, ctx, r_ret, err);
}

int index_reader_open_buf(const void *zbuf, size_t zlen,
			  struct index_reader **r_ret, struct err *err)
{
	int ret = reader_new(NULL, NULL, r_ret, err);

	if (ret)
		return ret;
	(*r_ret)->zin.src = zbuf;
	(*r_ret)->zin.size = zlen;
	(*r_ret)->eof = true;
	return 0;
}

static int store_read(void *ctx, void *buf, size_t len, size_t *got_ret,
		      struct err *err)
{
	struct index_reader *r = ctx;
	int ret = store_get_range(r->store, r->key, r->off, len, buf, got_ret, err);

	if (!ret)
		r->off += *got_ret;
	return ret;
}

int index_reader_open_store(struct store *store, const char *key,
			    struct index_reader **r_ret, struct err *err)
{
	int ret;

	if (!store || !key)
		return err_set(err, -EINVAL, "index_reader_open_store: bad arguments");
	ret = reader_new(store_read, NULL, r_ret, err);
	if (ret)
		return ret;
	(*r_ret)->ctx = *r_ret;
	(*r_ret)->store = store;
	(*r_ret)->key = strdup(key);
	if (!(*r_ret)->key) {
		index_reader_free(*r_ret);
		*r_ret = NULL;
		return err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

/* Make room after the pending bytes: move them to the front, or grow the
 * line buffer up to INDEX_LINE_MAX. */
static int reader_room(struct index_reader *r, struct err *err)
{
	char *n;
	size_t ncap;

	if (r->start) {
		memmove(r->line, r->line + r->start, r->used - r->start);
		r->used -= r->start;
		r->start = 0;
	}
	if (r->used < r->cap)
		return 0;
	if (r->cap >= INDEX_LINE_MAX)
		return err_set(err, -EBADMSG,
			       "index line %zu is longer than %u bytes; the stored backup is corrupt or was tampered with",
			       r->lineno + 1, INDEX_LINE_MAX);
	ncap = r->cap * 2 > INDEX_LINE_MAX ? INDEX_LINE_MAX : r->cap * 2;
	n = realloc(r->line, ncap);
	if (!n)
		return err_set(err, -ENOMEM, "out of memory");
	r->line = n;
	r->cap = ncap;
	return 0;
}

/* Decompress more into the line buffer; sets drained at the input's end. */
static int reader_fill(struct index_reader *r, struct err *err)
{
	ZSTD_outBuffer out;
	size_t in_before, zr;
	int ret = reader_room(r, err);

	if (ret)
		return ret;
	if (r->zin.pos == r->zin.size && !r->eof) {
		size_t got = 0;

		ret = r->read(r->ctx, r->in, INDEX_READ_BUF, &got, err);
		if (ret)
			return ret;
		r->zin.src = r->in;
		r->zin.size = got;
		r->zin.pos = 0;
		r->eof = got == 0;
	}
	out.dst = r->line + r->used;
	out.size = r->cap - r->used;
	out.pos = 0;
	in_before = r->zin.pos;
	zr = ZSTD_decompressStream(r->d, &out, &r->zin);
	if (ZSTD_isError(zr))
		return err_set(err, -EBADMSG, "index is corrupt: %s",
			       ZSTD_getErrorName(zr));
	/* a call that did nothing (no input left) says nothing of the frame:
	 * after a frame's end it would ask for the next one's header */
	if (r->zin.pos != in_before || out.pos)
		r->zr = zr;
	r->used += out.pos;
	if (r->eof && r->zin.pos == r->zin.size && out.pos < out.size)
		r->drained = true;   /* nothing in, nothing more out */
	return 0;
}

int index_reader_next(struct index_reader *r, struct index_entry *e,
		      struct err *err)
{
	memset(e, 0, sizeof(*e));
	for (;;) {
		char *nl = memchr(r->line + r->start, '\n', r->used - r->start);
		int ret;

		if (nl) {
			size_t len = (size_t)(nl - (r->line + r->start));

			ret = parse_line(r->line + r->start, len, ++r->lineno, e, err);
			r->start += len + 1;
			if (ret) {
				index_entry_clear(e);
				return ret;
			}
			return 1;
		}
		if (r->drained) {
			if (r->zr != 0)
				return err_set(err, -EBADMSG, "index is truncated");
			if (r->used > r->start)
				return err_set(err, -EBADMSG, "index ends in the middle of a line");
			return 0;
		}
		ret = reader_fill(r, err);
		if (ret)
			return ret;
	}
}

size_t index_reader_lines(const struct index_reader *r)
{
	return r->lineno;
}

void index_reader_free(struct index_reader *r)
{
	if (!r)
		return;
	ZSTD_freeDCtx(r->d);
	free(r->in);
	free(r->line);
	free(r->key);
	free(r);
}

/* -------------------------------------------------------- whole index */

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

static int index_append(struct index *idx, size_t *cap, struct index_entry *e,
			struct err *err)
{
	if (idx->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 1024;
		struct index_entry *n = realloc(idx->e, ncap * sizeof(*n));

		if (!n)
			return err_set(err, -ENOMEM, "out of memory");
		idx->e = n;
		*cap = ncap;
	}
	idx->e[idx->n++] = *e;
	memset(e, 0, sizeof(*e));
	return index_hash_add(idx, err);
}

int index_load(const void *zbuf, size_t zlen, struct index **idx_ret,
	       struct err *err)
{
	struct index *idx = calloc(1, sizeof(*idx));
	struct index_reader *r = NULL;
	struct index_entry e;
	size_t cap = 0;
	int ret;

	if (!idx)
		return err_set(err, -ENOMEM, "out of memory");
	idx->seed = random_seed();
	ret = index_reader_open_buf(zbuf, zlen, &r, err);
	if (ret)
		goto out;
	while ((ret = index_reader_next(r, &e, err)) == 1) {
		ret = index_append(idx, &cap, &e, err);
		if (ret) {
			index_entry_clear(&e);
			goto out;
		}
	}
	if (ret)
		goto out;
	idx->seen = calloc(idx->n ? idx->n : 1, sizeof(*idx->seen));
	if (!idx->seen)
		ret = err_set(err, -ENOMEM, "out of memory");
out:
	index_reader_free(r);
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
		index_entry_clear(&idx->e[i]);
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
