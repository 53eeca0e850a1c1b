// SPDX-License-Identifier: MIT
/*
 * Restore of large files in blocks whose content is in runs
 * (doc/incremental.md "Large files in blocks"): blocks [b, b + n) of a
 * file are the data of a tar entry, in this backup's object or an older
 * one, from skip blocks into it.  The runs of every file are grouped by
 * the tar entry they read (restore_v2.c sorts the wants of each object by
 * offset): each entry is read once, from its header through the last byte
 * any of its runs needs, and every run's bytes go to b × bsize of its file
 * (pwrite; the file was made at its final size before any object was
 * read), each block checked against bxxh3.  The file's last run done, the
 * file is checked whole (its xxh3, when the index has one) and gets its
 * metadata from the index.  The tar entry's own header is only checked:
 * its pax record SNAPSHIP.part="START SIZE" (absent: a whole file, START
 * 0) must put the run's first block where the run says.
 *
 * Files are opened under the target one component at a time without
 * following any symlink, so nothing is written outside the target.
 */
#include "agent/restore_priv.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "agent/catalog.h"
#include "agent/extract.h"
#include "agent/index.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "stream/frame.h"
#include "stream/pack.h"

#define TAR_BLOCK 512u
#define PART_KEY "SNAPSHIP.part"
#define READ_BUF (256u << 10)     /* reading a file back */

/* ------------------------------------------------------ block checksums */

int blk_hash_init(struct blk_hash *c, const struct index_entry *e, uint64_t first)
{
	memset(c, 0, sizeof(*c));
	c->b = e->blk;
	c->size = e->size;
	c->k = first;
	c->h = XXH3_createState();
	if (!c->h)
		return -ENOMEM;
	XXH3_128bits_reset(c->h);
	return 0;
}

void blk_hash_free(struct blk_hash *c)
{
	XXH3_freeState(c->h);
	c->h = NULL;
}

/* Bytes of block k of the file. */
static uint64_t block_len(const struct blk_hash *c, uint64_t k)
{
	uint64_t at = k * c->b->bsize;

	return c->size - at < c->b->bsize ? c->size - at : c->b->bsize;
}

int blk_hash_feed(struct blk_hash *c, const void *buf, size_t len)
{
	static const unsigned char zeros[65536];

	while (len) {
		uint64_t want;
		size_t n;
		XXH128_canonical_t sum;

		if (c->k >= c->b->nblocks)
			return -1;        /* past the file: the caller bounds it */
		want = block_len(c, c->k) - c->in;
		n = len < want ? len : (size_t)want;
		if (!buf && n > sizeof(zeros))
			n = sizeof(zeros);
		XXH3_128bits_update(c->h, buf ? buf : zeros, n);
		c->in += n;
		len -= n;
		if (buf)
			buf = (const unsigned char *)buf + n;
		if (c->in < block_len(c, c->k))
			continue;
		XXH128_canonicalFromHash(&sum, XXH3_128bits_digest(c->h));
		if (memcmp(sum.digest, c->b->xxh3[c->k], 16))
			return -1;
		c->k++;
		c->in = 0;
		XXH3_128bits_reset(c->h);
	}
	return 0;
}

/* ------------------------------------------------------------ planning */

static int bfile_cmp(const void *a, const void *b)
{
	const struct v2_bfile *x = a, *y = b;

	return x->entry < y->entry ? -1 : x->entry > y->entry;
}

static struct v2_bfile *bfile_of(struct rctx *r, size_t entry)
{
	struct v2_bfile key = { .entry = entry };

	return bsearch(&key, r->bfiles, r->nbfiles, sizeof(key), bfile_cmp);
}

int blocks_plan(struct rctx *r, size_t i)
{
	const struct index_entry *e = &r->idx->e[i];
	const struct pack_blocks *blk = e->blk;
	struct v2_bfile *f;

	/* entries come in index order: bfiles stays sorted */
	if (!(r->nbfiles & (r->nbfiles + 1))) {   /* 0, 1, 3, 7, ...: full */
		f = realloc(r->bfiles, 2 * (r->nbfiles + 1) * sizeof(*f));
		if (!f)
			return err_set(r->err, -ENOMEM, "out of memory");
		r->bfiles = f;
	}
	/* the file is made before any metadata pass checks its path */
	if (!extract_path_safe(e->path))
		return err_set(r->err, -EPERM,
			       "backup %s: index entry %s is unsafe (an absolute path or with ..); refusing it — the stored backup was tampered with",
			       r->m->backup_id, UTIL_ESC(e->path));
	r->bfiles[r->nbfiles++] = (struct v2_bfile){ .entry = i, .left = blk->nrun };
	for (size_t k = 0; k < blk->nrun; k++) {
		const struct pack_run *run = &blk->run[k];
		struct v2_obj *b = restore_v2_obj(r, run->ref);
		int ret;

		if (!b)
			return err_set(r->err, -EBADMSG,
				       "backup %s: file %s's blocks %llu..%llu are in backup %s, which the manifest's references do not name; the stored backup is corrupt or forged",
				       r->m->backup_id, UTIL_ESC(e->path),
				       (unsigned long long)run->first,
				       (unsigned long long)(run->first + run->n - 1), run->ref);
		/* export reads each run itself, in block order (restore_export.c) */
		if (r->o->export) {
			b->direct = true;
			continue;
		}
		ret = restore_v2_want(r, b, run->offset, i, (uint32_t)k + 1);
		if (ret)
			return ret;
	}
	return 0;
}

/* Run w->run - 1 of its file: the run, its bytes [*lo, *hi) of the tar
 * entry's data. */
static const struct pack_run *run_of(const struct rctx *r, const struct v2_want *w,
				     uint64_t *lo, uint64_t *hi)
{
	const struct index_entry *e = &r->idx->e[w->entry];
	const struct pack_run *run = &e->blk->run[w->run - 1];
	uint64_t bs = e->blk->bsize, from = run->first * bs;
	uint64_t to = (run->first + run->n) * bs;

	if (to > e->size)
		to = e->size;
	*lo = run->skip * bs;
	*hi = *lo + (to - from);
	return run;
}

uint64_t blocks_need(const struct rctx *r, const struct v2_want *w)
{
	uint64_t lo, hi;

	run_of(r, w, &lo, &hi);
	return hi;
}

/* ------------------------------------------------- files under the target */

/* The directory written into, for messages. */
static const char *where(const struct rctx *r)
{
	return r->o->target ? r->o->target : "the target";
}

/*
 * Open path (relative, checked safe) under the target, one component at a
 * time, never following a symlink; with mkparents, missing directories are
 * made (0755, as libarchive makes them).  flags as openat's.
 */
static int open_under(struct rctx *r, const char *path, int flags, bool mkparents,
		      int *fd_ret)
{
	char *p = strdup(path), *s, *next;
	int dfd = dup(r->tfd), fd = -1, ret = 0;

	if (!p || dfd < 0) {
		ret = !p ? -ENOMEM : -errno;
		goto out;
	}
	for (s = p; (next = strchr(s, '/')); s = next + 1) {
		int nfd;

		*next = '\0';
		if (!*s)
			continue;
		if (!strcmp(s, "..")) {   /* never above the target, whatever called */
			ret = -EPERM;
			goto out;
		}
		nfd = openat(dfd, s, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && mkparents &&
		    (!mkdirat(dfd, s, 0755) || errno == EEXIST))
			nfd = openat(dfd, s, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0) {
			ret = -errno;
			goto out;
		}
		close(dfd);
		dfd = nfd;
	}
	fd = openat(dfd, s, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST && (flags & O_EXCL) && r->o->force &&
	    !unlinkat(dfd, s, 0))
		fd = openat(dfd, s, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		ret = -errno;
out:
	if (dfd >= 0)
		close(dfd);
	free(p);
	*fd_ret = fd;
	return ret;
}

static int file_error(struct rctx *r, int ret, const char *what, const char *path)
{
	if (ret == -ENOSPC || ret == -EDQUOT)
		return err_set(r->err, ret,
			       "restore into %s ran out of space while writing %s; the partial restore is kept in %s: free space (or choose another target) and restore again with --force",
			       where(r), UTIL_ESC(path), where(r));
	return err_set(r->err, ret, "restore into %s: cannot %s %s: %s (a symlink or a file in the way of its path?)",
		       where(r), what, UTIL_ESC(path), strerror(-ret));
}

int blocks_make(struct rctx *r)
{
	for (size_t k = 0; k < r->nbfiles; k++) {
		const struct index_entry *e = &r->idx->e[r->bfiles[k].entry];
		int fd, ret = open_under(r, e->path, O_WRONLY | O_CREAT | O_EXCL, true, &fd);

		if (!ret && ftruncate(fd, (off_t)e->size))
			ret = -errno;
		if (fd >= 0)
			close(fd);
		if (ret)
			return file_error(r, ret, "make", e->path);
	}
	return 0;
}

/* ------------------------------------------------------- header capture */

/* The current buffer into the ring: called before the unframer is asked
 * for the next one (which may reuse or free this one's memory). */
void blocks_capture_flush(struct rctx *r)
{
	if (!r->ring)
		r->ring = malloc(HDR_RING);   /* none: headers not kept, refused */
	if (r->cur_len && r->ring) {
		size_t n = r->cur_len > HDR_RING ? HDR_RING : r->cur_len;
		uint64_t at = r->cur_off + r->cur_len - n;

		for (size_t done = 0; done < n;) {
			size_t pos = (size_t)((at + done) % HDR_RING);
			size_t m = HDR_RING - pos < n - done ? HDR_RING - pos : n - done;

			memcpy(r->ring + pos, r->cur + (r->cur_len - n) + done, m);
			done += m;
		}
		r->ring_end = r->cur_off + r->cur_len;
	}
	r->cur_off += r->cur_len;
	r->cur_len = 0;
	r->cur = NULL;
}

void blocks_capture(struct rctx *r, const void *buf, uint64_t off, size_t len)
{
	blocks_capture_flush(r);
	r->cur = buf;
	r->cur_off = off;
	r->cur_len = len;
}

/* Stream bytes [off, end) into out, from the ring and the current buffer;
 * -1: not kept (larger than HDR_RING). */
static int captured(const struct rctx *r, uint64_t off, uint64_t end, unsigned char *out)
{
	uint64_t ring_start = r->ring_end > HDR_RING ? r->ring_end - HDR_RING : 0;

	if (end > r->cur_off + r->cur_len || off > end || end - off > HDR_RING ||
	    (off < r->cur_off && (off < ring_start || r->ring_end != r->cur_off)))
		return -1;
	for (uint64_t x = off; x < end; x++)
		out[x - off] = x >= r->cur_off ? r->cur[x - r->cur_off] :
			       r->ring[x % HDR_RING];
	return 0;
}

/* An octal tar header field (NUL or space ended); -1: not one. */
static int octal(const unsigned char *f, size_t n, uint64_t *v)
{
	size_t i = 0;

	*v = 0;
	while (i < n && f[i] == ' ')
		i++;
	if (i == n || f[i] < '0' || f[i] > '7')
		return -1;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
		if (*v >> 60)
			return -1;
		*v = *v << 3 | (uint64_t)(f[i] - '0');
	}
	return i == n || f[i] == ' ' || !f[i] ? 0 : -1;
}

/* "START SIZE" in decimal; -1: not that. */
static int part_value(const char *v, size_t n, uint64_t *start, uint64_t *size)
{
	char buf[64], *end;

	if (!n || n >= sizeof(buf) || v[0] < '0' || v[0] > '9')
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	errno = 0;
	*start = strtoull(buf, &end, 10);
	if (*end != ' ' || end[1] < '0' || end[1] > '9')
		return -1;
	*size = strtoull(end + 1, &end, 10);
	return *end || errno ? -1 : 0;
}

/* A decimal pax value of n bytes; -1: not one. */
static int pax_decimal(const char *v, size_t n, uint64_t *out)
{
	char buf[32], *end;

	if (!n || n >= sizeof(buf) || v[0] < '0' || v[0] > '9')
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	errno = 0;
	*out = strtoull(buf, &end, 10);
	return *end || errno ? -1 : 0;
}

/* The pax records of one extended header ("LEN KEY=VALUE\n" each) into th:
 * SNAPSHIP.part, size, GNU.sparse.*; -1: malformed. */
static int pax_records(const unsigned char *d, size_t n, struct blocks_tar_head *th)
{
	size_t kl = strlen(PART_KEY);

	while (n) {
		uint64_t len = 0;
		size_t i = 0, rl;
		const unsigned char *rec;

		while (i < n && d[i] >= '0' && d[i] <= '9' && len < n)
			len = len * 10 + (uint64_t)(d[i++] - '0');
		if (!i || i >= n || d[i] != ' ' || len > n || len < i + 3 || d[len - 1] != '\n')
			return -1;
		rec = d + i + 1;
		rl = (size_t)len - i - 2;          /* KEY=VALUE */
		if (rl > kl && !memcmp(rec, PART_KEY, kl) && rec[kl] == '=') {
			if (part_value((const char *)rec + kl + 1, rl - kl - 1,
				       &th->start, &th->size))
				return -1;
			th->has = true;
		} else if (rl > 5 && !memcmp(rec, "size=", 5)) {
			if (pax_decimal((const char *)rec + 5, rl - 5, &th->dsize))
				return -1;
			th->has_dsize = true;
		} else if (rl > 11 && !memcmp(rec, "GNU.sparse.", 11)) {
			th->sparse = true;
		}
		d += len;
		n -= (size_t)len;
	}
	return 0;
}

/* A tar header's checksum field against its bytes (the field as spaces). */
static bool header_sum_ok(const unsigned char *h)
{
	uint64_t want, sum = 0;

	if (octal(h + 148, 8, &want))
		return false;
	for (size_t i = 0; i < TAR_BLOCK; i++)
		sum += i >= 148 && i < 156 ? ' ' : h[i];
	return sum == want;
}

int blocks_tar_head(const unsigned char *h, size_t len, struct blocks_tar_head *th)
{
	size_t o = 0;

	memset(th, 0, sizeof(*th));
	while (len - o >= TAR_BLOCK) {
		char t = (char)h[o + 156];
		uint64_t n;

		if (!header_sum_ok(h + o))
			return -1;
		if (t != 'x' && t != 'g' && t != 'L' && t != 'K') {
			th->type = t;
			th->hlen = o + TAR_BLOCK;
			if (!th->has_dsize && octal(h + o + 124, 12, &th->dsize))
				return -1;
			return 0;
		}
		/* the record's data, padded to whole blocks, must be present:
		 * len need not be a multiple of 512 (an export's range ends
		 * where the stream does) */
		if (octal(h + o + 124, 12, &n) || n > len - o - TAR_BLOCK ||
		    (n + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK > len - o - TAR_BLOCK)
			return -1;
		if (t == 'x' && pax_records(h + o + TAR_BLOCK, (size_t)n, th))
			return -1;
		o += TAR_BLOCK + (size_t)((n + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK);
	}
	return -1;
}

/*
 * The headers of a tar entry (a run of 512-byte headers: pax 'x' and 'g',
 * GNU 'L' and 'K' with their data, then the file's) and nothing after:
 * its SNAPSHIP.part.  libarchive has read the same bytes already and
 * dropped the record (it keeps no unknown pax keyword), hence this walk.
 */
static int part_of(const unsigned char *h, size_t len, bool *has, uint64_t *start,
		   uint64_t *size)
{
	struct blocks_tar_head th;

	if (blocks_tar_head(h, len, &th) || th.hlen != len)
		return -1;
	*has = th.has;
	*start = th.start;
	*size = th.size;
	return 0;
}

/* ------------------------------------------------------- reading a run */

/* One run read from the entry: its file, bytes [lo, hi) of the entry's
 * data, where they go, their blocks' checksums. */
struct consumer {
	const struct v2_want *w;
	const struct index_entry *e;
	const struct pack_run *run;
	uint64_t lo, hi;
	int fd;
	struct blk_hash h;
};

/* The run's place against the entry's SNAPSHIP.part (absent: a whole
 * file, START 0): block b at START + skip × bsize, in a file whose size
 * then could be in blocks of bsize. */
int blocks_check_part(struct rctx *r, const struct index_entry *e,
		      const struct pack_run *run, uint64_t off, uint64_t hi,
		      struct v2_obj *b, bool has, uint64_t start, uint64_t size)
{
	uint64_t bs = e->blk->bsize;
	bool ok = !has || (size >= PACK_BLOCKED_MIN && (size - 1) / bs < PACK_BLOCKS_MAX &&
			   start < size && start % bs == 0 && hi <= size - start);

	if (!has)
		start = 0;
	if (ok && start / bs + run->skip == run->first)
		return 0;
	return err_set(r->err, -EBADMSG,
		       "backup %s: file %s: blocks %llu..%llu are to be read %llu blocks into the entry at offset %llu of backup %s's data, which holds %s; the stored backup is corrupt or forged",
		       r->m->backup_id, UTIL_ESC(e->path),
		       (unsigned long long)run->first,
		       (unsigned long long)(run->first + run->n - 1),
		       (unsigned long long)run->skip, (unsigned long long)off, b->id,
		       has ? "another part of a file (its SNAPSHIP.part does not match the run)" :
		       "a whole file, whose blocks do not start there");
}

static int check_part(struct rctx *r, const struct consumer *c, struct v2_obj *b,
		      bool has, uint64_t start, uint64_t size)
{
	return blocks_check_part(r, c->e, c->run, c->w->off, c->hi, b, has, start, size);
}

int blocks_block_error(struct rctx *r, const struct index_entry *e,
		       const struct blk_hash *h, uint64_t off, struct v2_obj *b)
{
	uint64_t k = h->k, bs = e->blk->bsize;

	__atomic_store_n(&r->res->checksum_mismatch, true, __ATOMIC_RELAXED);
	return err_set(r->err, -EBADMSG,
		       "backup %s: file %s: block %llu (bytes %llu..%llu) does not match its checksum; read from backup %s (data object %s, the entry at offset %llu): the stored backup is corrupt%s",
		       r->m->backup_id, UTIL_ESC(e->path), (unsigned long long)k,
		       (unsigned long long)(k * bs),
		       (unsigned long long)(k * bs + block_len(h, k) - 1),
		       b->id, b->key, (unsigned long long)off,
		       r->o->export ? "; the exported stream ends in that file" :
		       r->x ? "; the file was written but must not be trusted" : "");
}

static int block_error(struct rctx *r, const struct consumer *c, struct v2_obj *b)
{
	return blocks_block_error(r, c->e, &c->h, c->w->off, b);
}

/* The entry's data [at, at + len) into every consumer wanting part of it. */
static int feed(struct rctx *r, struct consumer *cs, size_t n, struct v2_obj *b,
		const unsigned char *buf, uint64_t at, size_t len)
{
	for (size_t k = 0; k < n; k++) {
		struct consumer *c = &cs[k];
		uint64_t from = at > c->lo ? at : c->lo;
		uint64_t to = at + len < c->hi ? at + len : c->hi;
		const unsigned char *p = buf + (from - at);
		uint64_t dst;

		if (from >= to)
			continue;
		dst = c->run->first * c->e->blk->bsize + (from - c->lo);
		if (blk_hash_feed(&c->h, p, (size_t)(to - from)))
			return block_error(r, c, b);
		for (size_t done = 0; c->fd >= 0 && done < to - from;) {
			ssize_t w = pwrite(c->fd, p + done, (size_t)(to - from) - done,
					   (off_t)(dst + done));

			if (w < 0)
				return file_error(r, -errno, "write", c->e->path);
			done += (size_t)w;
		}
		r->res->bytes += to - from;
	}
	return 0;
}

/* The entry's data through the last byte a consumer needs; no more. */
static int read_runs(struct rctx *r, struct archive *a, struct v2_obj *b,
		     struct consumer *cs, size_t n)
{
	uint64_t at = 0, need = 0;

	for (size_t k = 0; k < n; k++)
		need = cs[k].hi > need ? cs[k].hi : need;
	while (at < need) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int ret = restore_check_cancel(r, cs[0].e->path);

		if (ret)
			return ret;
		ret = archive_read_data_block(a, &buf, &len, &off);
		if (ret == ARCHIVE_EOF)
			return err_set(r->err, -EBADMSG,
				       "backup %s: file %s: the entry at offset %llu of backup %s's data holds %llu bytes, its runs need %llu; the stored backup is corrupt or forged",
				       r->m->backup_id, UTIL_ESC(cs[0].e->path),
				       (unsigned long long)cs[0].w->off, b->id,
				       (unsigned long long)at, (unsigned long long)need);
		if (ret < ARCHIVE_WARN)
			return r->read_error ? (*r->err = r->read_err, r->read_error) :
			       err_set(r->err, -EBADMSG, "backup %s: data object %s is corrupt at %s: %s",
				       b->id, b->key, UTIL_ESC(cs[0].e->path),
				       archive_error_string(a));
		if (off < 0 || (uint64_t)off != at)
			return err_set(r->err, -EBADMSG,
				       "backup %s: file %s: the entry at offset %llu of backup %s's data has a hole at byte %llu (a file in blocks is never sparse); the stored backup is corrupt or forged",
				       r->m->backup_id, UTIL_ESC(cs[0].e->path),
				       (unsigned long long)cs[0].w->off, b->id,
				       (unsigned long long)at);
		ret = feed(r, cs, n, b, buf, at, len);
		if (ret)
			return ret;
		at += len;
		restore_show_progress(r, false);
	}
	return 0;
}

/* ------------------------------------------------ a file's last run done */

/* The whole file's XXH3-128 (the index has one), read back from the target. */
static int check_whole(struct rctx *r, const struct index_entry *e, int fd)
{
	unsigned char *buf = malloc(READ_BUF);
	XXH3_state_t *h = XXH3_createState();
	XXH128_canonical_t sum;
	uint64_t at = 0;
	int ret = 0;

	if (!h || !buf) {
		ret = err_set(r->err, -ENOMEM, "out of memory");
		goto out;
	}
	XXH3_128bits_reset(h);
	while (at < e->size) {
		ssize_t n = pread(fd, buf, READ_BUF, (off_t)at);

		if (n <= 0) {
			ret = file_error(r, n ? -errno : -EIO, "read back", e->path);
			goto out;
		}
		XXH3_128bits_update(h, buf, (size_t)n);
		at += (uint64_t)n;
	}
	XXH128_canonicalFromHash(&sum, XXH3_128bits_digest(h));
	if (memcmp(sum.digest, e->xxh3, 16)) {
		__atomic_store_n(&r->res->checksum_mismatch, true, __ATOMIC_RELAXED);
		ret = err_set(r->err, -EBADMSG,
			      "backup %s: %s does not match its checksum, though each of its blocks does (the stored backup is corrupt or forged); the file was written but must not be trusted",
			      r->m->backup_id, UTIL_ESC(e->path));
	}
out:
	XXH3_freeState(h);
	free(buf);
	return ret;
}

/* Owner (as root), mode (privileges stripped unless kept), xattrs and ACLs
 * (xattr_map: ACLs as their raw values), times: as the extractor gives a
 * file.  A failed xattr is warned about, as libarchive does. */
static int apply_meta(struct rctx *r, const struct index_entry *e, int fd)
{
	struct archive_entry *ae;
	const char *name;
	const void *val;
	size_t len;
	struct timespec ts[2] = { { .tv_nsec = UTIME_NOW } };
	int ret = restore_v2_synth(r, e, &ae);

	if (ret)
		return ret;
	if (geteuid() == 0 && fchown(fd, (uid_t)e->uid, (gid_t)e->gid))
		ret = file_error(r, -errno, "set the owner of", e->path);
	if (!ret && fchmod(fd, archive_entry_perm(ae) & 07777))
		ret = file_error(r, -errno, "set the mode of", e->path);
	archive_entry_xattr_reset(ae);
	while (!ret && archive_entry_xattr_next(ae, &name, &val, &len) == ARCHIVE_OK)
		if (fsetxattr(fd, name, val, len, 0))
			log_warn("restore into %s: cannot set xattr %s of %s: %s",
				 where(r), name, UTIL_ESC(e->path), strerror(errno));
	for (size_t k = 0; !ret && k < e->nxattr; k++)
		if (!strcmp(e->xattr[k].name, "system.posix_acl_access") &&
		    fsetxattr(fd, e->xattr[k].name, e->xattr[k].value, e->xattr[k].len, 0))
			log_warn("restore into %s: cannot set the ACL of %s: %s",
				 where(r), UTIL_ESC(e->path), strerror(errno));
	ts[1].tv_sec = (time_t)(e->mtime_ns / 1000000000);
	ts[1].tv_nsec = (long)(e->mtime_ns % 1000000000);
	if (ts[1].tv_nsec < 0) {
		ts[1].tv_nsec += 1000000000;
		ts[1].tv_sec--;
	}
	if (!ret && futimens(fd, ts))
		ret = file_error(r, -errno, "set the times of", e->path);
	archive_entry_free(ae);
	return ret;
}

/* File entry's last run is written and checked: produced, checked whole,
 * its metadata set. */
static int file_done(struct rctx *r, size_t entry)
{
	const struct index_entry *e = &r->idx->e[entry];
	int fd = -1, ret = restore_v2_produced(r, entry);

	if (!ret && r->x) {
		ret = open_under(r, e->path, O_RDONLY, false, &fd);
		if (ret)
			ret = file_error(r, ret, "open", e->path);
	}
	if (!ret && r->x && e->has_sum)
		ret = check_whole(r, e, fd);
	if (!ret && r->x)
		ret = apply_meta(r, e, fd);
	if (fd >= 0)
		close(fd);
	if (!ret)
		r->res->files++;
	return ret;
}

/* Consumer c of want w set up: its run checked against the entry's part
 * record, its file opened for writing (into a target). */
static int consumer_init(struct rctx *r, struct consumer *c, const struct v2_want *w,
			 struct v2_obj *b, bool has, uint64_t start, uint64_t size)
{
	int ret;

	c->w = w;
	c->e = &r->idx->e[w->entry];
	c->run = run_of(r, w, &c->lo, &c->hi);
	ret = check_part(r, c, b, has, start, size);
	if (ret)
		return ret;
	if (blk_hash_init(&c->h, c->e, c->run->first))
		return err_set(r->err, -ENOMEM, "out of memory");
	if (!r->x)
		return 0;
	ret = open_under(r, c->e->path, O_WRONLY, false, &c->fd);
	return ret ? file_error(r, ret, "open", c->e->path) : 0;
}

int blocks_entry(struct rctx *r, struct archive *a, struct archive_entry *ae,
		 struct v2_obj *b, const struct v2_want *w, size_t n,
		 uint64_t hdr_off, uint64_t hdr_end)
{
	struct consumer *cs = calloc(n, sizeof(*cs));
	unsigned char *hdr = malloc(HDR_RING);
	uint64_t start = 0, size = 0;
	bool has = false;
	size_t k;
	int ret = 0;

	if (!cs || !hdr) {
		ret = err_set(r->err, -ENOMEM, "out of memory");
		goto out;
	}
	for (k = 0; k < n; k++)
		cs[k].fd = -1;
	if (archive_entry_filetype(ae) != AE_IFREG || archive_entry_hardlink(ae) ||
	    captured(r, hdr_off, hdr_end, hdr) ||
	    part_of(hdr, (size_t)(hdr_end - hdr_off), &has, &start, &size)) {
		ret = err_set(r->err, -EBADMSG,
			      "backup %s: file %s's blocks are in the entry at offset %llu of backup %s's data, which is not a file's content (or its headers are over %u KiB); the stored backup is corrupt or forged",
			      r->m->backup_id, UTIL_ESC(r->idx->e[w->entry].path),
			      (unsigned long long)w->off, b->id, HDR_RING >> 10);
		goto out;
	}
	for (k = 0; !ret && k < n; k++)
		ret = consumer_init(r, &cs[k], &w[k], b, has, start, size);
	if (!ret)
		ret = read_runs(r, a, b, cs, n);
	for (k = 0; k < n; k++) {
		if (cs[k].fd >= 0 && close(cs[k].fd) && !ret)
			ret = file_error(r, -errno, "write", cs[k].e->path);
		cs[k].fd = -1;
	}
	for (k = 0; !ret && k < n; k++) {
		struct v2_bfile *f = bfile_of(r, w[k].entry);

		if (f && f->left && !--f->left)
			ret = file_done(r, w[k].entry);
	}
out:
	for (k = 0; cs && k < n; k++) {
		if (cs[k].fd >= 0)
			close(cs[k].fd);
		blk_hash_free(&cs[k].h);
	}
	free(cs);
	free(hdr);
	return ret;
}

void restore_blocks_free(struct rctx *r)
{
	free(r->bfiles);
	r->bfiles = NULL;
	r->nbfiles = 0;
	free(r->ring);
	r->ring = NULL;
	r->capture = false;
}
