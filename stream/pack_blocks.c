// SPDX-License-Identifier: MIT
/*
 * Large files in blocks, the packer's side (doc/incremental.md "Large files
 * in blocks"): each block's XXH3-128 while the file is read, its extent
 * fingerprint (stream/extents.c), and the planner's 2 — only the blocks no
 * stored run covers are read, written as tar entries of their own (pax
 * record SNAPSHIP.part="START SIZE"), one per run of consecutive blocks.
 *
 * libarchive's pax writer has no way to add a record of our own, so a
 * part's headers (a pax extended header and a ustar header) are written
 * here, straight into the stream between two of libarchive's entries: with
 * bytes_per_block 0 libarchive holds nothing back once an entry is
 * finished, so p->pos stays the stream's length.
 */
#include "stream/pack_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "stream/extents.h"

#define TAR_BLOCK 512u
#define USTAR_SIZE_MAX UINT64_C(077777777777)   /* 8 GiB - 1 */
#define USTAR_ID_MAX 07777777u

void pk_blk_free(struct pblk *bk)
{
	if (!bk)
		return;
	free(bk->b.xxh3);
	free(bk->b.ext);
	free(bk->b.run);
	free(bk->old);
	XXH3_freeState(bk->h);
	free(bk);
}

/* A pblk of nblocks blocks of bsize (xxh3 allocated, the rest NULL). */
static struct pblk *blk_new(uint32_t bsize, uint32_t nblocks)
{
	struct pblk *bk = calloc(1, sizeof(*bk));

	if (!bk)
		return NULL;
	bk->b.bsize = bsize;
	bk->b.nblocks = nblocks;
	bk->b.xxh3 = calloc(nblocks ? nblocks : 1, 16);
	bk->h = XXH3_createState();
	if (!bk->b.xxh3 || !bk->h) {
		pk_blk_free(bk);
		return NULL;
	}
	return bk;
}

int pk_blk_planned(struct packer *p, struct pent *e, const struct pack_blocks *pb,
		   bool part)
{
	struct pblk *bk = blk_new(pb->bsize, pb->nblocks);

	if (!bk)
		return pk_fail(p, -ENOMEM, "out of memory");
	memcpy(bk->b.xxh3, pb->xxh3, (size_t)pb->nblocks * 16);
	if (pb->ext) {
		bk->b.ext = malloc((size_t)pb->nblocks * sizeof(*bk->b.ext));
		if (bk->b.ext)
			memcpy(bk->b.ext, pb->ext, (size_t)pb->nblocks * sizeof(*bk->b.ext));
	}
	bk->old = malloc((pb->nrun ? pb->nrun : 1) * sizeof(*bk->old));
	if ((pb->ext && !bk->b.ext) || !bk->old) {
		pk_blk_free(bk);
		return pk_fail(p, -ENOMEM, "out of memory");
	}
	memcpy(bk->old, pb->run, pb->nrun * sizeof(*bk->old));
	bk->nold = pb->nrun;
	bk->part = part;
	bk->planned = true;
	pk_blk_free(e->blk);
	e->blk = bk;
	p->nblk++;
	return 0;
}

void pk_blk_done(struct packer *p, struct pent *e)
{
	if (e->blk && e->blk->planned) {
		e->blk->planned = false;
		p->nblk--;
	}
}

/* A part read: e->reg becomes the runs of blocks no old run covers. */
static int part_regions(struct packer *p, struct pent *e)
{
	const struct pblk *bk = e->blk;
	uint64_t size = (uint64_t)e->st.st_size, next = 0;
	struct region *reg = calloc(bk->nold + 1, sizeof(*reg));
	unsigned n = 0;

	if (!reg)
		return pk_fail(p, -ENOMEM, "out of memory");
	for (size_t i = 0; i <= bk->nold; i++) {
		uint64_t first = i < bk->nold ? bk->old[i].first : bk->b.nblocks;

		if (first > next) {
			reg[n].off = next * bk->b.bsize;
			reg[n].len = (first * bk->b.bsize < size ? first * bk->b.bsize : size) -
				     reg[n].off;
			n++;
		}
		if (i < bk->nold)
			next = bk->old[i].first + bk->old[i].n;
	}
	free(e->reg);
	e->reg = reg;
	e->nreg = n;
	e->ri = 0;
	e->roff = 0;
	return 0;
}

/* The extent fingerprint of e's blocks, when there is one to be had. */
static int blk_extents(struct packer *p, struct pent *e)
{
	struct pblk *bk = e->blk;
	int ret;

	if (!p->o.extents || bk->b.ext)
		return 0;
	bk->b.ext = malloc((size_t)bk->b.nblocks * sizeof(*bk->b.ext));
	if (!bk->b.ext)
		return pk_fail(p, -ENOMEM, "out of memory");
	ret = extents_fingerprint(e->fd, (uint64_t)e->st.st_size, bk->b.bsize,
				  bk->b.nblocks, bk->b.ext, p->err);
	if (ret == -EOPNOTSUPP) {
		free(bk->b.ext);
		bk->b.ext = NULL;
		return 0;
	}
	if (ret)
		return p->error = err_wrap(p->err, "%s/%s", p->root, e->path);
	return 0;
}

int pk_blk_opened(struct packer *p, struct pent *e)
{
	uint64_t size = (uint64_t)e->st.st_size;
	uint32_t bsize = pack_block_size(size);
	bool blocked = p->o.blocks && bsize && !e->sparse;

	if (e->blk && (!blocked || e->blk->b.bsize != bsize || !e->blk->part)) {
		/* a plan that cannot hold (sparse now, say): read whole */
		pk_blk_done(p, e);
		pk_blk_free(e->blk);
		e->blk = NULL;
	}
	if (!blocked)
		return 0;
	if (!e->blk) {
		e->blk = blk_new(bsize, (uint32_t)((size + bsize - 1) / bsize));
		if (!e->blk)
			return pk_fail(p, -ENOMEM, "out of memory");
	}
	if (blk_extents(p, e))
		return p->error;
	return e->blk->part ? part_regions(p, e) : 0;
}

void pk_blk_hash(struct pblk *bk, uint64_t size, uint64_t off, const void *buf,
		 size_t len)
{
	const unsigned char *d = buf;

	while (len) {
		uint64_t b = off / bk->b.bsize, bend = (b + 1) * bk->b.bsize;
		size_t n;

		if (bend > size)
			bend = size;
		if (b >= bk->b.nblocks)
			return;
		n = bend - off < len ? (size_t)(bend - off) : len;
		if (off % bk->b.bsize == 0)
			XXH3_128bits_reset(bk->h);
		XXH3_128bits_update(bk->h, d, n);
		off += n;
		d += n;
		len -= n;
		if (off == bend)
			XXH128_canonicalFromHash((XXH128_canonical_t *)bk->b.xxh3[b],
						 XXH3_128bits_digest(bk->h));
	}
}

/* Bytes into the tar stream, past libarchive (see the top). */
static int out_raw(struct packer *p, const void *buf, size_t len)
{
	struct err e = { 0 };
	int ret;

	if (p->error)
		return p->error;
	ret = p->out(p->out_ctx, buf, len, &e);
	if (ret) {
		p->error = ret;
		if (p->err && !p->err->code)
			*p->err = e;
		return ret;
	}
	p->pos += len;
	return 0;
}

static int out_pad(struct packer *p, uint64_t len)
{
	static const unsigned char nul[TAR_BLOCK];
	uint64_t pad = (TAR_BLOCK - len % TAR_BLOCK) % TAR_BLOCK;

	return pad ? out_raw(p, nul, (size_t)pad) : 0;
}

/* One pax record "LEN key=value\n" appended to buf (cap bytes); -1: full. */
static int pax_rec(char *buf, size_t cap, size_t *used, const char *key,
		   const char *value)
{
	size_t body = strlen(key) + strlen(value) + 3, len = body + 1;
	int n;

	while ((size_t)snprintf(NULL, 0, "%zu", len) + body != len)
		len++;
	if (*used + len + 1 > cap)
		return -1;
	n = snprintf(buf + *used, cap - *used, "%zu %s=%s\n", len, key, value);
	if (n < 0 || (size_t)n != len)
		return -1;
	*used += len;
	return 0;
}

/* A ustar header block: name, mode, ids, size, mtime, typeflag. */
static void ustar(unsigned char h[TAR_BLOCK], const char *name, unsigned mode,
		  unsigned uid, unsigned gid, uint64_t size, uint64_t mtime, char type)
{
	unsigned sum = 0;

	memset(h, 0, TAR_BLOCK);
	snprintf((char *)h, 100, "%.99s", name);
	snprintf((char *)h + 100, 8, "%07o", mode & 07777);
	snprintf((char *)h + 108, 8, "%07o", uid <= USTAR_ID_MAX ? uid : 0);
	snprintf((char *)h + 116, 8, "%07o", gid <= USTAR_ID_MAX ? gid : 0);
	snprintf((char *)h + 124, 12, "%011llo",
		 (unsigned long long)(size <= USTAR_SIZE_MAX ? size : 0));
	snprintf((char *)h + 136, 12, "%011llo",
		 (unsigned long long)(mtime <= USTAR_SIZE_MAX ? mtime : 0));
	h[156] = (unsigned char)type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	for (unsigned i = 0; i < TAR_BLOCK; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
}

/* Is s valid UTF-8 (what a pax path record should be)? */
static bool is_utf8(const unsigned char *s)
{
	while (*s) {
		unsigned n = *s < 0x80 ? 0 : (*s & 0xe0) == 0xc0 ? 1 :
			     (*s & 0xf0) == 0xe0 ? 2 : (*s & 0xf8) == 0xf0 ? 3 : 4;

		if (n == 4 || (n == 1 && *s < 0xc2))
			return false;
		for (unsigned i = 1; i <= n; i++)
			if ((s[i] & 0xc0) != 0x80)
				return false;
		s += n + 1;
	}
	return true;
}

/* The headers of one part: bytes [start, start + len) of e. */
static int part_header(struct packer *p, const struct pent *e, uint64_t start,
		       uint64_t len)
{
	uint64_t mtime = e->st.st_mtim.tv_sec > 0 ? (uint64_t)e->st.st_mtim.tv_sec : 0;
	size_t cap = strlen(e->path) + 256, used = 0;
	char *pax = malloc(cap), v[64];
	unsigned char h[TAR_BLOCK];
	int ret = -1;

	if (!pax)
		return pk_fail(p, -ENOMEM, "out of memory");
	snprintf(v, sizeof(v), "%llu %llu", (unsigned long long)start,
		 (unsigned long long)e->st.st_size);
	if ((is_utf8((const unsigned char *)e->path) ||
	     !pax_rec(pax, cap, &used, "hdrcharset", "BINARY")) &&
	    !pax_rec(pax, cap, &used, "path", e->path) &&
	    !pax_rec(pax, cap, &used, "SNAPSHIP.part", v))
		ret = 0;
	if (!ret && len > USTAR_SIZE_MAX) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)len);
		ret = pax_rec(pax, cap, &used, "size", v);
	}
	if (ret) {
		free(pax);
		return pk_fail(p, -EOVERFLOW, "%s: cannot write the tar header of a part", e->path);
	}
	ustar(h, "././@PaxHeader", 0644, 0, 0, used, mtime, 'x');
	ret = out_raw(p, h, TAR_BLOCK);
	if (!ret)
		ret = out_raw(p, pax, used);
	if (!ret)
		ret = out_pad(p, used);
	free(pax);
	ustar(h, e->path, (unsigned)e->st.st_mode, (unsigned)e->st.st_uid,
	      (unsigned)e->st.st_gid, len, mtime, '0');
	return ret ? ret : out_raw(p, h, TAR_BLOCK);
}

/* One part: headers, then region r's chunks as read; its run into b.run. */
static int write_part(struct packer *p, struct pent *e, const struct region *r)
{
	struct pblk *bk = e->blk;
	uint64_t size = (uint64_t)e->st.st_size, at = r->off;
	struct pack_run *run = &bk->b.run[bk->b.nrun];
	struct chunk *c;
	int ret;

	memset(run, 0, sizeof(*run));
	run->first = r->off / bk->b.bsize;
	run->n = (r->len + bk->b.bsize - 1) / bk->b.bsize;
	run->offset = p->pos;
	ret = part_header(p, e, r->off, r->len);
	while (!ret && at < r->off + r->len && (ret = pk_next_chunk(p, e, &c)) > 0) {
		const unsigned char *data = p->arena + c->apos % p->o.window;

		if (c->off != at)
			return pk_fail(p, -EIO, "%s/%s: read out of order", p->root, e->path);
		ret = out_raw(p, data, c->len);
		if (ret)
			return ret;
		pk_blk_hash(bk, size, c->off, data, c->len);
		at += c->len;
		ret = pk_chunk_done(p, c);
		pk_progress(p, false);
	}
	if (ret < 0)
		return ret;
	if (at != r->off + r->len)
		return pk_fail(p, -EIO, "%s/%s: file ended early (at byte %llu)", p->root,
			       e->path, (unsigned long long)at);
	bk->b.nrun++;
	return out_pad(p, r->len);
}

/* The old runs and the new ones (in b.run, nnew of them) merged by block. */
static int merge_runs(struct packer *p, struct pblk *bk)
{
	size_t nnew = bk->b.nrun, i = 0, j = 0, k = 0;
	struct pack_run *m = malloc((bk->nold + nnew) * sizeof(*m));

	if (!m)
		return pk_fail(p, -ENOMEM, "out of memory");
	while (i < bk->nold || j < nnew)
		m[k++] = j == nnew || (i < bk->nold && bk->old[i].first < bk->b.run[j].first) ?
			 bk->old[i++] : bk->b.run[j++];
	free(bk->b.run);
	bk->b.run = m;
	bk->b.nrun = k;
	return 0;
}

int pk_blk_write_parts(struct packer *p, struct pent *e, struct pack_entry_info *info)
{
	struct pblk *bk = e->blk;
	uint64_t size = (uint64_t)e->st.st_size, covered = size;
	int ret;

	free(bk->b.run);
	bk->b.nrun = 0;
	bk->b.run = calloc(e->nreg + 1, sizeof(*bk->b.run));
	if (!bk->b.run)
		return pk_fail(p, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < e->nreg; i++) {
		ret = write_part(p, e, &e->reg[i]);
		if (ret)
			return ret;
		covered -= e->reg[i].len;
	}
	ret = merge_runs(p, bk);
	if (ret)
		return ret;
	p->stats.logical_bytes += covered;
	p->stats.referenced_bytes += covered;
	info->no_offset = true;
	info->has_sum = false;
	info->blocks = &bk->b;
	return 0;
}

int pk_blk_report(struct packer *p, struct pent *e, struct pack_entry_info *info)
{
	struct pblk *bk = e->blk;

	free(bk->b.run);
	bk->b.nrun = 0;
	bk->b.run = calloc(bk->nold ? bk->nold : 1, sizeof(*bk->b.run));
	if (!bk->b.run)
		return pk_fail(p, -ENOMEM, "out of memory");
	if (!e->is_ref) {
		/* read whole: one run, the entry just written */
		bk->b.run[0] = (struct pack_run){ .first = 0, .n = bk->b.nblocks,
						  .offset = info->offset };
		bk->b.nrun = 1;
	} else {
		memcpy(bk->b.run, bk->old, bk->nold * sizeof(*bk->old));
		bk->b.nrun = bk->nold;
		info->has_sum = e->ref.has_sum;
		if (bk->nold == 1 && !bk->old[0].skip) {
			info->offset = bk->old[0].offset;
			info->ref = bk->old[0].ref[0] ? bk->old[0].ref : NULL;
		} else {
			/* several locations: the runs say where */
			info->no_offset = true;
			info->ref = NULL;
		}
	}
	info->blocks = &bk->b;
	return 0;
}
