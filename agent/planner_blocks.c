// SPDX-License-Identifier: MIT
/*
 * The planner's large files in blocks (doc/incremental.md "Large files in
 * blocks", "Planner"): a blocked file whose quick check fails (or only its
 * ctime moved) against a blocked parent entry of the same bsize is compared
 * block by block — by extent fingerprint when both have one (nothing read),
 * else by reading and hashing each block — and its unchanged blocks keep
 * the parent's locations (the parent's runs, split where a changed block
 * falls inside).  What planner_plan hands the packer lives in pl->out.
 */
#include "agent/planner_priv.h"
#include "agent/planner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/err.h"
#include "common/log.h"
#include "stream/extents.h"

#define HASH_BUF (1u << 20)

void planner_blocks_free(struct planner *pl)
{
	free(pl->out.xxh3);
	free(pl->ext_buf);
	free(pl->out.run);
	free(pl->same);
	memset(&pl->out, 0, sizeof(pl->out));
	pl->same = NULL;
	pl->ext_buf = NULL;
	pl->out_cap = 0;
}

/* pl->out (and same) sized for nb blocks. */
static int out_reserve(struct planner *pl, uint32_t nb, struct err *err)
{
	size_t n = nb ? nb : 1;

	if (n > pl->out_cap) {
		planner_blocks_free(pl);
		pl->out.xxh3 = malloc(n * 16);
		pl->ext_buf = malloc(n * sizeof(*pl->ext_buf));
		pl->out.run = malloc(n * sizeof(*pl->out.run));
		pl->same = malloc(n);
		if (!pl->out.xxh3 || !pl->ext_buf || !pl->out.run || !pl->same) {
			planner_blocks_free(pl);
			return err_set(err, -ENOMEM, "out of memory");
		}
		pl->out_cap = n;
	}
	pl->out.nblocks = nb;
	pl->out.nrun = 0;
	pl->out.ext = pl->ext_buf;
	return 0;
}

/* The run of ob holding block i, from *k on (blocks asked in order). */
static const struct pack_run *run_of(const struct pack_blocks *ob, uint64_t i, size_t *k)
{
	while (*k < ob->nrun && ob->run[*k].first + ob->run[*k].n <= i)
		(*k)++;
	return *k < ob->nrun && ob->run[*k].first <= i ? &ob->run[*k] : NULL;
}

/*
 * pl->out.run: the blocks i < nb with same[i] (all when same is NULL) at
 * their places in ob's runs, their backups marked used.  -1 when a run's
 * backup is not a candidate (only asked with same NULL: plan_blocks checks
 * before).
 */
static int map_runs(struct planner *pl, const struct pack_blocks *ob, uint32_t nb,
		    const unsigned char *same)
{
	struct pack_run *cur = NULL;
	size_t k = 0;

	pl->out.nrun = 0;
	for (uint64_t i = 0; i < nb; i++) {
		const struct pack_run *r;
		struct cand *c;

		if (same && !same[i]) {
			cur = NULL;
			continue;
		}
		r = run_of(ob, i, &k);
		if (!r || !(c = planner_find_cand(pl, r->ref)))
			return -1;
		if (cur && !strcmp(cur->ref, c->r.id) && cur->offset == r->offset &&
		    cur->skip + cur->n == r->skip + (i - r->first)) {
			cur->n++;
			continue;
		}
		c->used = true;
		cur = &pl->out.run[pl->out.nrun++];
		memset(cur, 0, sizeof(*cur));
		cur->first = i;
		cur->n = 1;
		cur->offset = r->offset;
		cur->skip = r->skip + (i - r->first);
		memcpy(cur->ref, c->r.id, sizeof(cur->ref));
	}
	return 0;
}

/* ref's whole location from pl->out's runs (one run from block 0: it). */
static void ref_fill(struct planner *pl, bool has_sum, const unsigned char sum[16],
		     struct pack_ref *ref)
{
	memset(ref, 0, sizeof(*ref));
	if (pl->out.nrun == 1 && !pl->out.run[0].skip) {
		memcpy(ref->id, pl->out.run[0].ref, sizeof(ref->id));
		ref->offset = pl->out.run[0].offset;
	}
	ref->has_sum = has_sum;
	if (has_sum)
		memcpy(ref->xxh3, sum, 16);
	ref->blocks = &pl->out;
}

int planner_ref_blocks(struct planner *pl, const struct pack_blocks *ob, bool has_sum,
		       const unsigned char sum[16], struct pack_ref *ref, struct err *err)
{
	int ret = out_reserve(pl, ob->nblocks, err);

	if (ret)
		return ret;
	if (map_runs(pl, ob, ob->nblocks, NULL))
		return 0;
	pl->out.bsize = ob->bsize;
	memcpy(pl->out.xxh3, ob->xxh3, (size_t)ob->nblocks * 16);
	if (ob->ext)
		memcpy(pl->out.ext, ob->ext, (size_t)ob->nblocks * sizeof(*ob->ext));
	else
		pl->out.ext = NULL;
	ref_fill(pl, has_sum, sum, ref);
	return 1;
}

void planner_set_source(struct planner *pl, const char *source_uuid)
{
	pl->same_source = source_uuid[0] && !strcmp(source_uuid, pl->parent_source);
	if (!pl->same_source)
		log_info("the snapshot's source subvolume (%s) is not the parent backup's (%s): changed blocks are found by reading",
			 source_uuid[0] ? source_uuid : "unknown",
			 pl->parent_source[0] ? pl->parent_source : "unknown");
}

bool planner_blocks_apply(const struct index_entry *old, const struct pack_plan_entry *pe)
{
	uint64_t size = (uint64_t)pe->st->st_size;

	return old->blk && pack_block_size(size) == old->blk->bsize &&
	       (uint64_t)pe->st->st_blocks * 512 >= size;
}

/* The XXH3-128 of bytes [off, off + len) of fd, read as the packer reads
 * (its rate limit and I/O priority: pack_pread). */
static int hash_block(struct planner *pl, struct packer *pk, int fd, const char *path,
		      uint64_t off, uint64_t len, unsigned char sum[16], struct err *err)
{
	XXH3_state_t h;

	if (!pl->hbuf && !(pl->hbuf = malloc(HASH_BUF)))
		return err_set(err, -ENOMEM, "out of memory");
	XXH3_128bits_reset(&h);
	while (len) {
		ssize_t n = pack_pread(pk, fd, pl->hbuf, len < HASH_BUF ? (size_t)len : HASH_BUF, off);

		if (n <= 0)
			return err_set(err, n ? -errno : -EIO,
				       "cannot read %s to compare it with the parent backup: %s",
				       path, n ? strerror(errno) : "it ended early");
		XXH3_128bits_update(&h, pl->hbuf, (size_t)n);
		off += (uint64_t)n;
		len -= (uint64_t)n;
		if (pl->cancelled && pl->cancelled(pl->cancel_ctx))
			return err_set(err, -ECANCELED, "cancelled while comparing %s with the parent backup",
				       path);
	}
	XXH128_canonicalFromHash((XXH128_canonical_t *)sum, XXH3_128bits_digest(&h));
	return 0;
}

static uint64_t blen(uint64_t size, uint32_t bsize, uint64_t i)
{
	uint64_t start = i * bsize;

	return start >= size ? 0 : size - start < bsize ? size - start : bsize;
}

/* same[i] for every block of the new file (nb of them, fd open): *nsame_ret. */
static int compare_blocks(struct planner *pl, struct packer *pk, int fd, const char *path,
			  uint64_t size, const struct index_entry *old, bool by_ext,
			  uint32_t nb, uint32_t *nsame_ret, struct err *err)
{
	const struct pack_blocks *ob = old->blk;
	size_t k = 0;

	*nsame_ret = 0;
	for (uint32_t i = 0; i < nb; i++) {
		const struct pack_run *r;
		unsigned char sum[16];
		int ret;

		pl->same[i] = 0;
		if (i >= ob->nblocks || blen(size, ob->bsize, i) != blen(old->size, ob->bsize, i))
			continue;
		r = run_of(ob, i, &k);
		if (!r || !planner_find_cand(pl, r->ref))
			continue;
		if (by_ext) {
			pl->same[i] = pl->out.ext[i] == ob->ext[i];
		} else {
			ret = hash_block(pl, pk, fd, path, (uint64_t)i * ob->bsize,
					 blen(size, ob->bsize, i), sum, err);
			if (ret)
				return ret;
			pl->same[i] = !memcmp(sum, ob->xxh3[i], 16);
		}
		if (pl->same[i]) {
			memcpy(pl->out.xxh3[i], ob->xxh3[i], 16);
			(*nsame_ret)++;
		}
	}
	return 0;
}

int planner_plan_blocks(struct planner *pl, const struct pack_plan_entry *pe,
			const struct index_entry *old, struct pack_ref *ref, struct err *err)
{
	const struct pack_blocks *ob = old->blk;
	uint64_t size = (uint64_t)pe->st->st_size, same_bytes = 0;
	uint32_t nb = (uint32_t)((size + ob->bsize - 1) / ob->bsize), nsame = 0;
	bool have_ext = false;
	int fd, ret;

	ret = out_reserve(pl, nb, err);
	if (ret)
		return ret;
	pl->out.bsize = ob->bsize;
	memset(pl->out.xxh3, 0, (size_t)nb * 16);
	fd = openat(pe->rootfd, pe->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, -errno, "cannot open %s to compare it with the parent backup: %s",
			       pe->path, strerror(errno));
	if (ob->ext && pl->same_source) {
		ret = extents_fingerprint(fd, size, ob->bsize, nb, pl->out.ext, err);
		if (ret && ret != -EOPNOTSUPP) {
			close(fd);
			return err_wrap(err, "%s", pe->path);
		}
		have_ext = !ret;
	}
	ret = compare_blocks(pl, pe->packer, fd, pe->path, size, old, have_ext, nb, &nsame, err);
	if (!have_ext)
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);   /* as the packer does */
	close(fd);
	if (ret)
		return ret;
	if (!nsame)
		return 0;
	if (map_runs(pl, ob, nb, pl->same))
		return 0;   /* cannot happen: compare_blocks checked each run */
	for (uint32_t i = 0; i < nb; i++)
		same_bytes += pl->same[i] ? blen(size, ob->bsize, i) : 0;
	pl->referenced_bytes += same_bytes;
	ref_fill(pl, false, NULL, ref);
	if (!have_ext)
		pl->out.ext = NULL;
	if (nsame == nb && nb == ob->nblocks && size == old->size) {
		/* every block as it was: the whole description, metadata only */
		ref_fill(pl, old->has_sum, old->xxh3, ref);
		pl->n_meta_only++;
		return 1;
	}
	return 2;
}
