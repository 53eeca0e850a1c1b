// SPDX-License-Identifier: MIT
/*
 * snapship export of large files in blocks whose content is in runs
 * (doc/incremental.md "Large files in blocks"), with nothing staged on
 * local disk.  A tar header needs the file's size first: the index gives
 * it, so the header goes out before any block is read, and the blocks
 * follow in order of b.  Each run [b, b + n) is the data of a tar entry
 * from skip blocks into it: its headers are read (the frame or two holding
 * the first HDR_RING bytes at the entry's offset) and checked (a regular
 * file, not sparse, its SNAPSHIP.part putting block b where the run says,
 * holding the bytes the run needs), then only the frames holding
 * [skip × bsize, (skip + n) × bsize) of its data are read, through the
 * object's read-ahead with failover to the other regions, each block
 * checked against bxxh3 before its bytes go out.  A mismatch ends the
 * export with an error naming the file and the block: the stream is cut
 * short inside that file, so tar fails on it too.
 *
 * Memory: the unframer's frames in flight and the read-ahead's two blocks,
 * as any restore, HDR_RING bytes of headers and, per object read, a copy
 * of the last frame of its last range (the next run often starts in it);
 * never a file's size.
 */
#include "agent/restore_priv.h"

#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "agent/extract.h"
#include "agent/index.h"
#include "common/err.h"
#include "common/util.h"
#include "stream/frame.h"
#include "stream/pack.h"
#include "stream/readahead.h"

/* Per object: the last frame read of a range (the next run often starts
 * in it: a file's blocks split around a change) and the headers of the
 * last entry walked (a file's runs often share an entry). */
struct xcache {
	unsigned char *frame;
	size_t cap, len;
	uint32_t no;
	bool has_frame;
	uint64_t hdr_off;
	bool has_hdr;
	struct blocks_tar_head th;
};

void blocks_export_free(struct v2_obj *b)
{
	if (b->xc)
		free(b->xc->frame);
	free(b->xc);
	b->xc = NULL;
}

/* What a range's bytes are given to, in order: [at, at + len) of the
 * stream.  Nonzero stops the read (err set). */
typedef int (*range_fn)(struct rctx *r, void *ctx, const unsigned char *buf,
			uint64_t at, size_t len);

/* Frame no's content [from, to) to fn (the part of it in the range). */
static int give(struct rctx *r, struct v2_obj *b, uint32_t no, const unsigned char *d,
		size_t len, uint64_t from, uint64_t to, range_fn fn, void *ctx)
{
	uint64_t d_off = b->st->e[no].d_off;
	uint64_t lo = from > d_off ? from : d_off, hi = to < d_off + len ? to : d_off + len;

	return lo < hi ? fn(r, ctx, d + (lo - d_off), lo, (size_t)(hi - lo)) : 0;
}

/* Keep frame no (the range's last) for the next range of b. */
static void keep(struct xcache *xc, uint32_t no, const void *d, size_t len)
{
	xc->has_frame = false;
	if (len > xc->cap) {
		unsigned char *p = realloc(xc->frame, len);

		if (!p)
			return;           /* no cache: read again */
		xc->frame = p;
		xc->cap = len;
	}
	memcpy(xc->frame, d, len);
	xc->len = len;
	xc->no = no;
	xc->has_frame = true;
}

/* Frames [first, last] of b through the read-ahead, in order, to fn; the
 * last one kept. */
static int read_frames(struct rctx *r, struct v2_obj *b, uint32_t first, uint32_t last,
		       uint64_t from, uint64_t to, const char *path, range_fn fn, void *ctx)
{
	struct unframer *u = NULL;
	uint32_t f = first;
	int ret = readahead_start(b->ra, first, last, r->err);

	if (!ret)
		ret = unframer_new(b->st, first, last, 0, 0, readahead_fetch, b->ra, &u,
				   r->err);
	while (!ret) {
		const void *d;
		size_t len;

		ret = restore_check_cancel(r, path);
		if (ret)
			break;
		ret = unframer_next(u, &d, &len, NULL, NULL, r->err);
		if (ret) {
			err_wrap(r->err, "file %s's blocks are in backup %s (data object %s)",
				 UTIL_ESC(path), b->id, b->key);
			break;
		}
		if (!len)
			break;
		r->res->frames_read++;
		if (f == last)
			keep(b->xc, f, d, len);
		ret = give(r, b, f++, d, len, from, to, fn, ctx);
		restore_show_progress(r, false);
	}
	readahead_cancel(b->ra);
	unframer_free(u);
	readahead_stop(b->ra);
	return ret;
}

/* Stream bytes [from, to) of b (to <= its d_total, from < to) to fn, from
 * the frames holding them only (the first from the cache when it is the
 * frame kept). */
static int read_range(struct rctx *r, struct v2_obj *b, uint64_t from, uint64_t to,
		      const char *path, range_fn fn, void *ctx)
{
	uint32_t first = seek_table_find(b->st, from), last = seek_table_find(b->st, to - 1);
	int ret;

	if (!b->xc) {
		b->xc = calloc(1, sizeof(*b->xc));
		if (!b->xc)
			return err_set(r->err, -ENOMEM, "out of memory");
	}
	if (b->xc->has_frame && b->xc->no == first) {
		ret = give(r, b, first, b->xc->frame, b->xc->len, from, to, fn, ctx);
		if (ret || first == last)
			return ret;
		first++;
	}
	return read_frames(r, b, first, last, from, to, path, fn, ctx);
}

/* ------------------------------------------------------------ headers */

struct hdr_buf {
	unsigned char *p;
	uint64_t from;
};

static int copy_hdr(struct rctx *r, void *ctx, const unsigned char *buf, uint64_t at,
		    size_t len)
{
	struct hdr_buf *h = ctx;

	(void)r;
	memcpy(h->p + (at - h->from), buf, len);
	return 0;
}

/* One file being exported: its entry, the run read, the checksums. */
struct xfile {
	const struct index_entry *e;
	const struct pack_run *run;
	struct v2_obj *b;
	uint64_t data;            /* stream offset of the run's first byte */
	struct blk_hash bh;       /* the run's blocks */
	XXH3_state_t *whole;      /* the file's xxh3, when the index has one */
};

/*
 * The headers of run's tar entry: where its data starts in the stream
 * (*data, of the run's first byte), checked as a restore checks them.
 */
static int run_headers(struct rctx *r, struct xfile *xf, unsigned char *hdr)
{
	const struct pack_run *run = xf->run;
	const struct index_entry *e = xf->e;
	uint64_t total = xf->b->st->d_total, bs = e->blk->bsize;
	uint64_t lo = run->skip * bs, end = (run->first + run->n) * bs;
	uint64_t hi = lo + ((end > e->size ? e->size : end) - run->first * bs);
	struct hdr_buf h = { .p = hdr, .from = run->offset };
	struct blocks_tar_head th;
	size_t n;
	int ret;

	if (run->offset >= total || total - run->offset < 512)
		return err_set(r->err, -EBADMSG,
			       "backup %s: file %s's content is at offset %llu of backup %s's data, which holds %llu bytes of tar stream; the stored backup is corrupt or forged",
			       r->m->backup_id, UTIL_ESC(e->path),
			       (unsigned long long)run->offset, xf->b->id,
			       (unsigned long long)total);
	n = total - run->offset < HDR_RING ? (size_t)(total - run->offset) : HDR_RING;
	if (xf->b->xc && xf->b->xc->has_hdr && xf->b->xc->hdr_off == run->offset) {
		th = xf->b->xc->th;           /* checked when walked */
	} else {
		ret = read_range(r, xf->b, run->offset, run->offset + n, e->path, copy_hdr, &h);
		if (ret)
			return ret;
		if (blocks_tar_head(hdr, n, &th))
			th.type = 'x';        /* refused below */
		xf->b->xc->hdr_off = run->offset;
		xf->b->xc->th = th;
		xf->b->xc->has_hdr = true;
	}
	if ((th.type != '0' && th.type != '\0') || th.sparse)
		return err_set(r->err, -EBADMSG,
			       "backup %s: file %s's blocks are in the entry at offset %llu of backup %s's data, which is not a file's content (or its headers are over %u KiB); the stored backup is corrupt or forged",
			       r->m->backup_id, UTIL_ESC(e->path),
			       (unsigned long long)run->offset, xf->b->id, HDR_RING >> 10);
	ret = blocks_check_part(r, e, run, run->offset, hi, xf->b, th.has, th.start, th.size);
	if (ret)
		return ret;
	if (th.dsize < hi || total - run->offset - th.hlen < hi)
		return err_set(r->err, -EBADMSG,
			       "backup %s: file %s: the entry at offset %llu of backup %s's data holds %llu bytes, its runs need %llu; the stored backup is corrupt or forged",
			       r->m->backup_id, UTIL_ESC(e->path),
			       (unsigned long long)run->offset, xf->b->id,
			       (unsigned long long)th.dsize, (unsigned long long)hi);
	xf->data = run->offset + th.hlen + lo;
	return 0;
}

/* ------------------------------------------------------------- content */

/* The run's bytes: each block checked, then into the stream. */
static int put_data(struct rctx *r, void *ctx, const unsigned char *buf, uint64_t at,
		    size_t len)
{
	struct xfile *xf = ctx;
	uint64_t dst = xf->run->first * xf->e->blk->bsize + (at - xf->data);

	if (blk_hash_feed(&xf->bh, buf, len))
		return blocks_block_error(r, xf->e, &xf->bh, xf->run->offset, xf->b);
	if (xf->whole)
		XXH3_128bits_update(xf->whole, buf, len);
	r->res->bytes += len;
	return extractor_data(r->x, buf, len, (int64_t)dst, r->err);
}

/* Run k of the file: its headers, then its data. */
static int export_run(struct rctx *r, struct xfile *xf, size_t k, unsigned char *hdr)
{
	const struct index_entry *e = xf->e;
	uint64_t bs = e->blk->bsize, end;
	int ret;

	xf->run = &e->blk->run[k];
	xf->b = restore_v2_obj(r, xf->run->ref);   /* blocks_plan checked it */
	end = (xf->run->first + xf->run->n) * bs;
	end = end > e->size ? e->size : end;
	ret = run_headers(r, xf, hdr);
	if (!ret && blk_hash_init(&xf->bh, e, xf->run->first))
		ret = err_set(r->err, -ENOMEM, "out of memory");
	if (!ret && end > xf->run->first * bs)
		ret = read_range(r, xf->b, xf->data, xf->data + (end - xf->run->first * bs),
				 e->path, put_data, xf);
	/* every block of the run went out, checked: never a short file */
	if (!ret && xf->bh.k != xf->run->first + xf->run->n)
		ret = err_set(r->err, -EBADMSG,
			      "backup %s: file %s: blocks %llu..%llu of backup %s's data ended at block %llu; the stored backup is corrupt or forged",
			      r->m->backup_id, UTIL_ESC(e->path), (unsigned long long)xf->run->first,
			      (unsigned long long)(xf->run->first + xf->run->n - 1), xf->b->id,
			      (unsigned long long)xf->bh.k);
	blk_hash_free(&xf->bh);
	return ret;
}

/* The whole file against its xxh3 (each block matched already). */
static int check_whole(struct rctx *r, const struct xfile *xf)
{
	XXH128_canonical_t sum;

	XXH128_canonicalFromHash(&sum, XXH3_128bits_digest(xf->whole));
	if (!memcmp(sum.digest, xf->e->xxh3, 16))
		return 0;
	__atomic_store_n(&r->res->checksum_mismatch, true, __ATOMIC_RELAXED);
	return err_set(r->err, -EBADMSG,
		       "backup %s: %s does not match its checksum, though each of its blocks does (the stored backup is corrupt or forged); the exported stream ends in that file",
		       r->m->backup_id, UTIL_ESC(xf->e->path));
}

/* File entry i into the stream: header (its size from the index), every
 * run in order of b, the end of the entry. */
static int export_file(struct rctx *r, size_t i, unsigned char *hdr)
{
	struct xfile xf = { .e = &r->idx->e[i] };
	struct archive_entry *ae = NULL;
	int ret = restore_v2_produced(r, i);

	if (!ret && xf.e->has_sum) {
		xf.whole = XXH3_createState();
		if (!xf.whole)
			ret = err_set(r->err, -ENOMEM, "out of memory");
		else
			XXH3_128bits_reset(xf.whole);
	}
	if (!ret)
		ret = restore_v2_synth(r, xf.e, &ae);
	if (!ret)
		ret = extractor_begin(r->x, ae, xf.e->path, r->err);
	archive_entry_free(ae);
	for (size_t k = 0; !ret && k < xf.e->blk->nrun; k++)
		ret = export_run(r, &xf, k, hdr);
	if (!ret && xf.whole)
		ret = check_whole(r, &xf);
	if (!ret)
		ret = extractor_end(r->x, r->err);
	if (!ret)
		r->res->files++;
	XXH3_freeState(xf.whole);
	return ret;
}

int blocks_export(struct rctx *r)
{
	unsigned char *hdr;
	int ret = 0;

	if (!r->nbfiles)
		return 0;
	hdr = malloc(HDR_RING);
	if (!hdr)
		return err_set(r->err, -ENOMEM, "out of memory");
	for (size_t k = 0; !ret && k < r->nbfiles; k++)
		ret = export_file(r, r->bfiles[k].entry, hdr);
	free(hdr);
	return ret;
}
