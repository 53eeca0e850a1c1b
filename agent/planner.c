// SPDX-License-Identifier: MIT
#include "agent/planner.h"
#include "agent/planner_priv.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "agent/geo.h"
#include "agent/index.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "uploader/store.h"

/*
 * Walk order compares paths by components: "." first, then byte by byte
 * with '/' below every other byte and the end of a path below '/'.
 */
static int path_cmp(const char *a, const char *b)
{
	bool ra = !strcmp(a, "."), rb = !strcmp(b, ".");

	if (ra || rb)
		return ra && rb ? 0 : ra ? -1 : 1;
	for (;; a++, b++) {
		int ca = *a ? (*a == '/' ? 0 : (unsigned char)*a) : -1;
		int cb = *b ? (*b == '/' ? 0 : (unsigned char)*b) : -1;

		if (ca != cb)
			return ca < cb ? -1 : 1;
		if (ca < 0)
			return 0;
	}
}

static void cand_free(struct planner *pl)
{
	for (size_t i = 0; i < pl->ncand; i++)
		free(pl->cand[i].r.key);
	free(pl->cand);
	pl->cand = NULL;
	pl->ncand = 0;
}

/* ------------------------------------- a version 2 parent's index, streamed */

static void pidx_close(struct pidx_src *s)
{
	EVP_MD_CTX_free(s->sha);
	memset(s, 0, sizeof(*s));
}

/* index_read_fn: the next range of the parent's index object, hashed. */
static int pidx_read(void *ctx, void *buf, size_t len, size_t *got_ret, struct err *err)
{
	struct pidx_src *s = ctx;
	int ret;

	*got_ret = 0;
	if (s->off > s->size)
		return err_set(err, -EBADMSG, "the index object %s is larger than its manifest records (%llu bytes)",
			       s->key, (unsigned long long)s->size);
	ret = store_get_range(s->store, s->key, s->off, len, buf, got_ret, err);
	if (ret)
		return ret;
	if (*got_ret && !EVP_DigestUpdate(s->sha, buf, *got_ret))
		return err_set(err, -EIO, "SHA-256 of the index object %s failed", s->key);
	s->off += *got_ret;
	return 0;
}

/* A reader of the parent's index object over s, hashed from its start. */
static int pidx_open(struct planner *pl, struct pidx_src *s, struct index_reader **rd_ret,
		     struct err *err)
{
	pidx_close(s);
	s->store = pl->store;
	s->key = pl->ikey;
	s->size = pl->isize;
	s->sha = EVP_MD_CTX_new();
	if (!s->sha || !EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL))
		return err_set(err, -ENOMEM, "out of memory");
	return index_reader_open_fn(pidx_read, s, rd_ret, err);
}

/* After its reader's end: were the bytes read the manifest's (size,
 * SHA-256)?  0, or -EBADMSG saying what differs. */
static int pidx_check(const struct planner *pl, const struct pidx_src *s, struct err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[65];

	if (!EVP_DigestFinal_ex(s->sha, md, &mdlen) || mdlen != 32)
		return err_set(err, -EIO, "SHA-256 of the index object %s failed", s->key);
	util_hex(md, 32, hex);
	if (s->off != s->size)
		return err_set(err, -EBADMSG, "the index object %s of the parent backup %s holds %llu bytes, its manifest records %llu",
			       s->key, pl->parent, (unsigned long long)s->off,
			       (unsigned long long)s->size);
	if (strcmp(hex, pl->isha))
		return err_set(err, -EBADMSG, "the index object %s of the parent backup %s does not have the SHA-256 its manifest records",
			       s->key, pl->parent);
	return 0;
}

void planner_free(struct planner *pl)
{
	if (!pl)
		return;
	cand_free(pl);
	index_reader_free(pl->rd);
	index_entry_clear(&pl->cur);
	index_free(pl->idx);
	free(pl->ikey);
	free(pl->last);
	free(pl->hbuf);
	for (size_t i = 0; i < pl->nren; i++)
		free(pl->ren[i].path);
	free(pl->ren);
	for (size_t i = 0; i < pl->ngone; i++)
		index_blocks_free(pl->gone[i].blk);
	free(pl->gone);
	planner_blocks_free(pl);
	index_reader_free(pl->rd1);
	index_entry_clear(&pl->cur1);
	free(pl->seen1);
	pidx_close(&pl->src1);
	pidx_close(&pl->src2);
	free(pl);
}

/* The candidates: p's references, then p's own data object. */
static int take_parent(struct planner *pl, const struct manifest *p, struct err *err)
{
	memcpy(pl->parent_source, p->source_uuid, sizeof(pl->parent_source));
	pl->cand = calloc(p->nrefs + 1, sizeof(*pl->cand));
	if (!pl->cand)
		return err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i <= p->nrefs; i++) {
		struct manifest_ref *r = &pl->cand[i].r;

		if (i < p->nrefs) {
			*r = p->refs[i];
			r->key = strdup(p->refs[i].key);
		} else {
			memcpy(r->id, p->backup_id, sizeof(r->id));
			r->key = strdup(p->data_key);
			r->size = p->data_size;
			memcpy(r->sha256, p->data_sha256, sizeof(r->sha256));
			memcpy(r->etag, p->data_etag, sizeof(r->etag));
		}
		pl->ncand++;
		if (!r->key)
			return err_set(err, -ENOMEM, "out of memory");
	}
	memcpy(pl->parent, p->backup_id, sizeof(pl->parent));
	pl->parent_format = p->format_version;
	pl->parent_chain = p->format_version >= 2 ? p->chain : 0;
	if (p->format_version >= 2 && p->full_id[0])
		memcpy(pl->full_id, p->full_id, sizeof(pl->full_id));
	else
		memcpy(pl->full_id, p->backup_id, sizeof(pl->full_id));
	return 0;
}

/* Should p's chain end here?  NULL: no; else why. */
static const char *chain_ends(const struct manifest *p, const struct manifest *m,
			      const struct planner_opts *o, char *buf, size_t len)
{
	const char *full = p->format_version >= 2 && p->parent[0] ? p->full_id : p->backup_id;
	uint64_t chain = p->format_version >= 2 ? p->chain : 0;
	int64_t age = catalog_id_time(m->backup_id) - catalog_id_time(full);

	if (o->force_full)
		return "--full";
	if (p->format_version < 1 || p->format_version > FORMAT_VERSION_MAX) {
		snprintf(buf, len, "the parent %s is of format version %d", p->backup_id,
			 p->format_version);
		return buf;
	}
	if (chain + 1 > o->max_chain) {
		snprintf(buf, len, "max_chain (%llu) reached", (unsigned long long)o->max_chain);
		return buf;
	}
	if (o->full_every && age >= o->full_every) {
		snprintf(buf, len, "full_every (%lld s) reached: the chain's full %s is %lld s old",
			 (long long)o->full_every, full, (long long)age);
		return buf;
	}
	return NULL;
}

/*
 * Every data object the new backup may point at is in region g as its
 * record says (size; ETag when both are known): 1 (why set) when one is
 * missing or another copy (repaired from another region with a different
 * ETag, say), 0 when all are.
 */
static int check_objects(struct planner *pl, struct region *g, char *why,
			 size_t why_len, struct err *err)
{
	for (size_t i = 0; i < pl->ncand; i++) {
		const struct manifest_ref *r = &pl->cand[i].r;
		struct store_obj_info info = { 0 };
		int ret = store_head(g->store, r->key, &info, err);

		if (ret == -ENOENT) {
			snprintf(why, why_len, "the data object of %s is missing", r->id);
			return 1;
		}
		if (ret)
			return err_wrap(err, "checking the data object of backup %s", r->id);
		if (info.size != r->size || (info.etag[0] && r->etag[0] && strcmp(info.etag, r->etag))) {
			snprintf(why, why_len, "the data object of %s is not the copy its manifest recorded (size or ETag)",
				 r->id);
			return 1;
		}
	}
	return 0;
}

/*
 * A version 2 parent: its index object is there with the manifest's size;
 * its SHA-256 is checked as each pass streams it.
 */
static int index_head(struct planner *pl, struct region *g, const struct manifest *p,
		      char *why, size_t why_len, struct err *err)
{
	struct store_obj_info info = { 0 };
	int ret = store_head(g->store, p->index_key, &info, err);

	if (ret == -ENOENT) {
		snprintf(why, why_len, "the parent %s's index %s is missing", p->backup_id,
			 p->index_key);
		return 1;
	}
	if (ret)
		return err_wrap(err, "checking the index of the parent backup %s", p->backup_id);
	if (info.size != p->index_size) {
		snprintf(why, why_len, "the parent %s's index does not match its manifest (size %llu, recorded %llu)",
			 p->backup_id, (unsigned long long)info.size,
			 (unsigned long long)p->index_size);
		return 1;
	}
	pl->store = g->store;
	pl->isize = p->index_size;
	memcpy(pl->isha, p->index_sha256, sizeof(pl->isha));
	pl->ikey = strdup(p->index_key);
	return pl->ikey ? 0 : err_set(err, -ENOMEM, "out of memory");
}

/*
 * The parent's index: a version 2 one is streamed by each pass
 * (index_head); a version 1 one (readdir order) is read whole, checked
 * against its manifest and loaded, keyed by path.
 */
static int load_index(struct planner *pl, struct region *g, const struct manifest *p,
		      char *why, size_t why_len, struct err *err)
{
	void *zbuf = NULL;
	size_t zlen = 0;
	char hex[65];
	int ret;

	if (p->format_version >= 2)
		return index_head(pl, g, p, why, why_len, err);
	ret = store_get_all(g->store, p->index_key, PLANNER_INDEX_MAX, &zbuf, &zlen, err);
	if (ret == -ENOENT || ret == -EBADMSG) {
		snprintf(why, why_len, "the parent %s's index cannot be read: %.600s",
			 p->backup_id, err->msg);
		return 1;
	}
	if (ret)
		return err_wrap(err, "reading the index of the parent backup %s", p->backup_id);
	util_sha256_hex(zbuf, zlen, hex);
	if (zlen != p->index_size || strcmp(hex, p->index_sha256)) {
		snprintf(why, why_len, "the parent %s's index does not match its manifest (size or SHA-256)",
			 p->backup_id);
		free(zbuf);
		return 1;
	}
	ret = index_load(zbuf, zlen, &pl->idx, err);
	free(zbuf);
	if (ret == -EBADMSG) {
		snprintf(why, why_len, "the parent %s's index is corrupt: %.600s", p->backup_id,
			 err->msg);
		return 1;
	}
	return ret;
}

int planner_open(struct region *g, const struct manifest *m,
		 const struct planner_opts *o, struct planner **pl_ret,
		 char *why_full, size_t why_len, struct err *err)
{
	struct catalog_list list = { 0 };
	struct planner *pl = NULL;
	const struct manifest *p;
	char why[1024] = "";
	const char *ends;
	int ret = 0;

	*pl_ret = NULL;
	if (o->force_full || !o->max_chain) {
		/* no need to look: not one request more than a full needs */
		snprintf(why, sizeof(why), "%s", o->force_full ? "--full" :
			 "max_chain = 0 (incrementals off)");
		goto out_full;
	}
	ret = catalog_list(g->store, g->prefix, m->host, m->partition, &list, err);
	if (ret)
		return err_wrap(err, "listing the backups of %s to choose a parent", m->partition);
	p = catalog_find(&list, m->partition, NULL);
	if (!p) {
		snprintf(why, sizeof(why), "no earlier backup of %s", m->partition);
		goto out_full;
	}
	ends = chain_ends(p, m, o, why, sizeof(why));
	if (ends) {
		if (ends != why)
			snprintf(why, sizeof(why), "%s", ends);
		goto out_full;
	}
	pl = calloc(1, sizeof(*pl));
	if (!pl) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	ret = take_parent(pl, p, err);
	if (!ret)
		ret = check_objects(pl, g, why, sizeof(why), err);
	if (!ret)
		ret = load_index(pl, g, p, why, sizeof(why), err);
	if (ret == 1) {
		log_warn("%s: making a full backup: %s", m->partition, why);
		planner_free(pl);
		pl = NULL;
		ret = 0;
		goto out_full;
	}
	if (ret)
		goto out;
	*pl_ret = pl;
	pl = NULL;
	goto out;

out_full:
	log_info("%s: full backup (%s)", m->partition, why);
	if (why_full)
		snprintf(why_full, why_len, "%s", why);
out:
	planner_free(pl);
	catalog_list_free(&list);
	return ret;
}

/* The candidate named id ("" = the parent), NULL if the parent's
 * references do not name it. */
struct cand *planner_find_cand(struct planner *pl, const char *id)
{
	if (!id[0])
		id = pl->parent;
	for (size_t i = 0; i < pl->ncand; i++)
		if (!strcmp(pl->cand[i].r.id, id))
			return &pl->cand[i];
	return NULL;
}

/* Pass 2 could not read the parent's index that pass 1 read whole and
 * checked: it changed in between (or the store failed); the backup fails. */
static int pass2_failed(struct planner *pl, struct err *err)
{
	if (err->code == -ECANCELED || err->code == -ENOMEM)
		return err_wrap(err, "reading the index of the parent backup %s", pl->parent);
	return err_wrap(err, "the index object %s of the parent backup %s changed during this backup (nothing committed: run the backup again)",
			pl->ikey, pl->parent);
}

/* Advance the v2 merge to path: the parent's entry of that path, or NULL. */
static const struct index_entry *merge_to(struct planner *pl, const char *path,
					  struct err *err, int *ret)
{
	*ret = 0;
	for (;;) {
		int c;

		if (!pl->have_cur) {
			if (pl->rd_end)
				return NULL;
			index_entry_clear(&pl->cur);
			*ret = index_reader_next(pl->rd, &pl->cur, err);
			if (*ret < 0) {
				*ret = pass2_failed(pl, err);
				return NULL;
			}
			if (*ret == 0) {
				pl->rd_end = true;
				return NULL;
			}
			*ret = 0;
			if (pl->last && path_cmp(pl->last, pl->cur.path) >= 0 &&
			    !pl->order_warned) {
				log_warn("the index of the parent backup %s is not in walk order: files after %s may be stored again",
					 pl->parent, pl->last);
				pl->order_warned = true;
			}
			free(pl->last);
			pl->last = strdup(pl->cur.path);
			pl->have_cur = true;
		}
		c = path_cmp(pl->cur.path, path);
		if (c > 0)
			return NULL;
		pl->have_cur = false;
		if (c == 0)
			return &pl->cur;   /* valid until the next call */
		pl->n_deleted++;
	}
}

static const struct index_entry *parent_entry(struct planner *pl, const char *path,
					      struct err *err, int *ret)
{
	size_t i;

	if (pl->rd)
		return merge_to(pl, path, err, ret);
	*ret = 0;
	i = index_find(pl->idx, path);
	if (i == (size_t)-1)
		return NULL;
	pl->matched++;
	return &pl->idx->e[i];
}

/* XXH3-128 of the file at path (holes read as zeros, as the packer does). */
static int hash_file(struct planner *pl, const struct pack_plan_entry *pe,
		     unsigned char sum[16], struct err *err)
{
	XXH3_state_t h;
	int fd, ret = 0;

	if (!pl->hbuf && !(pl->hbuf = malloc(1u << 20)))
		return err_set(err, -ENOMEM, "out of memory");
	fd = openat(pe->rootfd, pe->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, -errno, "cannot open %s to compare it with the parent backup: %s",
			       pe->path, strerror(errno));
	XXH3_128bits_reset(&h);
	for (;;) {
		ssize_t n = read(fd, pl->hbuf, 1u << 20);

		if (n < 0) {
			ret = err_set(err, -errno, "cannot read %s to compare it with the parent backup: %s",
				      pe->path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(&h, pl->hbuf, (size_t)n);
		if (pl->cancelled && pl->cancelled(pl->cancel_ctx)) {
			ret = err_set(err, -ECANCELED, "cancelled while comparing %s with the parent backup",
				      pe->path);
			break;
		}
	}
	close(fd);
	if (!ret)
		XXH128_canonicalFromHash((XXH128_canonical_t *)sum, XXH3_128bits_digest(&h));
	return ret;
}

static char entry_type(const struct stat *st)
{
	switch (st->st_mode & S_IFMT) {
	case S_IFDIR: return PACK_DIR;
	case S_IFLNK: return PACK_SYMLINK;
	case S_IFCHR: return PACK_CHAR;
	case S_IFBLK: return PACK_BLOCK;
	case S_IFIFO: return PACK_FIFO;
	default: return PACK_FILE;
	}
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

/* The parent's whole location of old (not blocked) into ref: 1, or 0
 * when the parent's references do not name its backup. */
static int ref_whole(struct planner *pl, const struct index_entry *old,
		     struct pack_ref *ref)
{
	struct cand *c = planner_find_cand(pl, old->ref);

	if (!c)
		return 0;   /* a reference the parent does not list: store again */
	c->used = true;
	memcpy(ref->id, c->r.id, sizeof(ref->id));
	ref->offset = old->offset;
	ref->sparse = old->sparse;
	ref->has_sum = true;
	ref->blocks = NULL;
	memcpy(ref->xxh3, old->xxh3, 16);
	return 1;
}

/*
 * A content file found in the parent by path: 1 = referenced into *ref,
 * 2 = in part (a blocked file), 0 = packed.
 */
static int plan_content(struct planner *pl, const struct pack_plan_entry *pe,
			const struct index_entry *old, struct pack_ref *ref,
			struct err *err)
{
	const struct stat *st = pe->st;
	unsigned char sum[16];
	bool quick;
	int ret;

	if (old->type != PACK_FILE || !(old->blk || (old->has_sum && old->has_offset)))
		return 0;
	quick = old->size == (uint64_t)st->st_size && old->mtime_ns == ts_ns(&st->st_mtim) &&
		(!old->ino || old->ino == (uint64_t)st->st_ino);
	if (quick && old->ctime_ns == ts_ns(&st->st_ctim)) {
		ret = old->blk ? planner_ref_blocks(pl, old->blk, old->has_sum, old->xxh3, ref, err) :
		      ref_whole(pl, old, ref);
		if (ret == 1) {
			pl->referenced_bytes += old->size;
			pl->n_unchanged++;
		}
		return ret;
	}
	if (planner_blocks_apply(old, pe))
		return planner_plan_blocks(pl, pe, old, ref, err);
	if (!quick || old->blk || !planner_find_cand(pl, old->ref))
		return 0;
	/* metadata only?  the content hashed */
	ret = hash_file(pl, pe, sum, err);
	if (ret)
		return ret;
	if (memcmp(sum, old->xxh3, 16) || ref_whole(pl, old, ref) != 1)
		return 0;
	pl->referenced_bytes += old->size;
	pl->n_meta_only++;
	return 1;
}

/* A new path that pass 1 joined with a parent's file: 1 = referenced. */
static int plan_renamed(struct planner *pl, const struct pack_plan_entry *pe,
			struct pack_ref *ref, struct err *err)
{
	const struct rename *rn;
	struct cand *c;

	while (pl->ren_next < pl->nren && path_cmp(pl->ren[pl->ren_next].path, pe->path) < 0)
		pl->ren_next++;
	if (pl->ren_next == pl->nren)
		return 0;
	rn = &pl->ren[pl->ren_next];
	if (strcmp(rn->path, pe->path) || rn->ino != (uint64_t)pe->st->st_ino ||
	    rn->size != (uint64_t)pe->st->st_size || rn->mtime_ns != ts_ns(&pe->st->st_mtim))
		return 0;
	if (rn->g->blk) {
		int ret = planner_ref_blocks(pl, rn->g->blk, rn->g->loc.has_sum, rn->g->loc.xxh3,
					     ref, err);

		if (ret == 1)
			pl->referenced_bytes += rn->size;
		return ret;
	}
	c = planner_find_cand(pl, rn->g->loc.id);
	if (!c)
		return 0;
	c->used = true;
	*ref = rn->g->loc;
	ref->has_sum = true;
	pl->referenced_bytes += rn->size;
	return 1;
}

int planner_plan(void *ctx, const struct pack_plan_entry *pe,
		 struct pack_ref *ref, struct err *err)
{
	struct planner *pl = ctx;
	const struct index_entry *old;
	int ret;

	old = parent_entry(pl, pe->path, err, &ret);
	if (ret)
		return ret;
	if (!old) {
		ret = pe->content ? plan_renamed(pl, pe, ref, err) : 0;
		if (ret)
			pl->n_renamed++;
		else
			pl->n_new++;
		return ret;
	}
	if (pe->content) {
		ret = plan_content(pl, pe, old, ref, err);
		if (ret == 0 || ret == 2)
			pl->n_changed++;
		return ret;
	}
	if (old->type != entry_type(pe->st) && old->type != PACK_HARDLINK)
		pl->n_changed++;
	else if (old->ctime_ns != ts_ns(&pe->st->st_ctim))
		pl->n_meta_only++;
	else
		pl->n_unchanged++;
	return 0;
}

/* m's references: the candidates an entry used, oldest first. */
static int ref_cmp(const void *a, const void *b)
{
	return strcmp(((const struct manifest_ref *)a)->id, ((const struct manifest_ref *)b)->id);
}

/* The references used, sorted by id (as the manifest must list them: two
 * backups of one second are ordered by their random tails, not by age). */
static int put_refs(struct planner *pl, struct manifest *m, struct err *err)
{
	size_t n = 0;

	for (size_t i = 0; i < pl->ncand; i++)
		n += pl->cand[i].used;
	m->refs = n ? calloc(n, sizeof(*m->refs)) : NULL;
	if (n && !m->refs)
		return err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < pl->ncand; i++) {
		if (!pl->cand[i].used)
			continue;
		m->refs[m->nrefs] = pl->cand[i].r;
		m->refs[m->nrefs].key = strdup(pl->cand[i].r.key);
		if (!m->refs[m->nrefs++].key)
			return err_set(err, -ENOMEM, "out of memory");
	}
	if (m->nrefs > 1)
		qsort(m->refs, m->nrefs, sizeof(*m->refs), ref_cmp);
	return 0;
}

int planner_finish(struct planner *pl, struct manifest *m, uint64_t new_bytes,
		   struct err *err)
{
	int ret = 0;

	if (pl->rd) {
		struct index_entry e = { 0 };

		pl->n_deleted += pl->have_cur;
		pl->have_cur = false;
		while (!pl->rd_end && (ret = index_reader_next(pl->rd, &e, err)) > 0) {
			pl->n_deleted++;
			index_entry_clear(&e);
		}
		index_entry_clear(&e);
		if (!pl->rd_end && ret < 0)
			return pass2_failed(pl, err);
		pl->rd_end = true;
		ret = pidx_check(pl, &pl->src2, err);
		if (ret)
			return err_wrap(err, "the parent backup's index changed during this backup (nothing committed: run the backup again)");
	} else {
		pl->n_deleted = pl->idx->n - pl->matched;
	}
	m->format_version = 2;
	memcpy(m->parent, pl->parent, sizeof(m->parent));
	memcpy(m->full_id, pl->full_id, sizeof(m->full_id));
	m->chain = pl->parent_chain + 1;
	m->new_bytes = new_bytes;
	m->referenced_bytes = pl->referenced_bytes;
	m->n_unchanged = pl->n_unchanged;
	m->n_changed = pl->n_changed;
	m->n_new = pl->n_new;
	/* a rename's old path was passed over as deleted */
	m->n_deleted = pl->n_deleted > pl->n_renamed ? pl->n_deleted - pl->n_renamed : 0;
	m->n_meta_only = pl->n_meta_only;
	m->n_renamed = pl->n_renamed;
	return put_refs(pl, m, err);
}

/* ------------------------------------------------------ pass 1: renames */

/* A parent's file whose path the new tree lacks, kept when it has content
 * and an identity. */
static int gone_add(struct planner *pl, const struct index_entry *e, struct err *err)
{
	const struct cand *c;
	struct gone *g;

	if (e->type != PACK_FILE || !(e->blk || (e->has_sum && e->has_offset)) || !e->size ||
	    !e->ino)
		return 0;
	c = planner_find_cand(pl, e->ref);
	if (!c && !e->blk)
		return 0;
	if (pl->ngone == pl->gone_cap) {
		size_t cap = pl->gone_cap ? pl->gone_cap * 2 : 64;
		struct gone *n = realloc(pl->gone, cap * sizeof(*n));

		if (!n)
			return err_set(err, -ENOMEM, "out of memory");
		pl->gone = n;
		pl->gone_cap = cap;
	}
	g = &pl->gone[pl->ngone++];
	memset(g, 0, sizeof(*g));
	g->ino = e->ino;
	g->igen = e->igen;
	g->size = e->size;
	g->mtime_ns = e->mtime_ns;
	if (c)
		memcpy(g->loc.id, c->r.id, sizeof(g->loc.id));
	g->loc.offset = e->offset;
	g->loc.sparse = e->sparse;
	g->loc.has_sum = e->has_sum;
	memcpy(g->loc.xxh3, e->xxh3, 16);
	if (e->blk && !(g->blk = index_blocks_dup(e->blk))) {
		pl->ngone--;
		return err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

/* Pass 1's merge up to path (NULL: the end): the parent's entries before
 * it go to gone.  1 = the parent has path, 0 = not, negative = error. */
static int p1_merge(struct planner *pl, const char *path, struct err *err)
{
	if (pl->idx) {   /* version 1: by path; the rest at the end */
		size_t i;

		if (path) {
			i = index_find(pl->idx, path);
			if (i == (size_t)-1)
				return 0;
			pl->seen1[i] = true;
			return 1;
		}
		for (i = 0; i < pl->idx->n; i++) {
			int ret = pl->seen1[i] ? 0 : gone_add(pl, &pl->idx->e[i], err);

			if (ret)
				return ret;
		}
		return 0;
	}
	for (;;) {
		int ret, c;

		if (!pl->have1) {
			if (pl->end1)
				return 0;
			index_entry_clear(&pl->cur1);
			ret = index_reader_next(pl->rd1, &pl->cur1, err);
			if (ret < 0) {
				pl->rd1_failed = true;
				return ret;
			}
			if (ret == 0) {
				pl->end1 = true;
				return 0;
			}
			pl->have1 = true;
		}
		c = path ? path_cmp(pl->cur1.path, path) : -1;
		if (c > 0)
			return 0;
		pl->have1 = false;
		if (c == 0)
			return 1;
		ret = gone_add(pl, &pl->cur1, err);
		if (ret)
			return ret;
	}
}

/* A new path with content and one link: a rename candidate. */
static int ren_add(struct planner *pl, int dirfd, const char *name, const char *path,
		   const struct stat *st, struct err *err)
{
	struct rename *rn;
	unsigned int gen = 0;
	int fd;

	if (pl->nren == pl->ren_cap) {
		size_t cap = pl->ren_cap ? pl->ren_cap * 2 : 64;
		struct rename *n = realloc(pl->ren, cap * sizeof(*n));

		if (!n)
			return err_set(err, -ENOMEM, "out of memory");
		pl->ren = n;
		pl->ren_cap = cap;
	}
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		if (ioctl(fd, FS_IOC_GETVERSION, &gen))
			gen = 0;
		close(fd);
	}
	rn = &pl->ren[pl->nren];
	memset(rn, 0, sizeof(*rn));
	rn->path = strdup(path);
	if (!rn->path)
		return err_set(err, -ENOMEM, "out of memory");
	pl->nren++;
	rn->ino = (uint64_t)st->st_ino;
	rn->igen = gen;
	rn->size = (uint64_t)st->st_size;
	rn->mtime_ns = ts_ns(&st->st_mtim);
	return 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int p1_dir(struct planner *pl, int fd, const char *dpath, struct err *err);

/* One entry of pass 1 (st: its lstat); directories are walked into. */
static int p1_entry(struct planner *pl, int dirfd, const char *name,
		    const char *path, const struct stat *st, struct err *err)
{
	int ret = p1_merge(pl, path, err), sub;

	if (ret < 0)
		return ret;
	if (!ret && S_ISREG(st->st_mode) && st->st_nlink == 1 && st->st_size > 0) {
		ret = ren_add(pl, dirfd, name, path, st, err);
		if (ret)
			return ret;
	}
	if (!S_ISDIR(st->st_mode))
		return 0;
	sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return err_set(err, -errno, "cannot open directory %s: %s", path, strerror(errno));
	ret = p1_dir(pl, sub, path, err);
	close(sub);
	return ret;
}

/* The entries of a directory in walk order (strcmp of names). */
static int p1_dir(struct planner *pl, int fd, const char *dpath, struct err *err)
{
	struct dirent **names = NULL;
	int n = scandirat(fd, ".", &names, NULL, name_cmp), ret = 0;

	if (n < 0)
		return err_set(err, -errno, "cannot read directory %s: %s", dpath, strerror(errno));
	for (int i = 0; i < n && !ret; i++) {
		const char *nm = names[i]->d_name;
		struct stat st;
		char *path;

		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		if (pl->cancelled && pl->cancelled(pl->cancel_ctx)) {
			ret = err_set(err, -ECANCELED, "cancelled while comparing with the parent backup");
			break;
		}
		if (strcmp(dpath, ".") ? asprintf(&path, "%s/%s", dpath, nm) < 0 :
					 !(path = strdup(nm))) {
			ret = err_set(err, -ENOMEM, "out of memory");
			break;
		}
		if (fstatat(fd, nm, &st, AT_SYMLINK_NOFOLLOW))
			ret = err_set(err, -errno, "cannot stat %s: %s", path, strerror(errno));
		else if (!S_ISSOCK(st.st_mode))
			ret = p1_entry(pl, fd, nm, path, &st, err);
		free(path);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

static int gone_cmp(const void *a, const void *b)
{
	const struct gone *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	return 0;
}

/* Join the new paths with the parent's lost files by identity; keep the
 * joined ones (walk order). */
static void join_renames(struct planner *pl)
{
	size_t k = 0;

	qsort(pl->gone, pl->ngone, sizeof(*pl->gone), gone_cmp);
	for (size_t i = 0; i < pl->nren; i++) {
		struct rename *rn = &pl->ren[i];
		struct gone key = { .ino = rn->ino, .size = rn->size, .mtime_ns = rn->mtime_ns };
		const struct gone *g = pl->ngone ?
			bsearch(&key, pl->gone, pl->ngone, sizeof(*pl->gone), gone_cmp) : NULL;

		if (g && (!g->igen || !rn->igen || g->igen == rn->igen)) {
			rn->g = g;
			pl->ren[k++] = *rn;
		} else {
			free(rn->path);
		}
	}
	pl->nren = k;
}

/* Pass 1's walk of root merged with the parent's index (to its end). */
static int p1_walk(struct planner *pl, const char *root, struct err *err)
{
	struct stat st;
	int fd, ret;

	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, -errno, "cannot open %s: %s", root, strerror(errno));
	if (fstat(fd, &st))
		ret = err_set(err, -errno, "cannot stat %s: %s", root, strerror(errno));
	else
		ret = p1_merge(pl, ".", err);
	if (ret >= 0)
		ret = p1_dir(pl, fd, ".", err);
	if (!ret)
		ret = p1_merge(pl, NULL, err);
	close(fd);
	if (!ret && pl->rd1) {
		ret = pidx_check(pl, &pl->src1, err);
		pl->rd1_failed = ret != 0;
	}
	return ret;
}

int planner_prepare(struct planner *pl, const char *root,
		    bool (*cancelled)(void *ctx), void *cancel_ctx,
		    char *why_full, size_t why_len, struct err *err)
{
	int ret;

	pl->cancelled = cancelled;
	pl->cancel_ctx = cancel_ctx;
	if (pl->idx) {
		/* a version 1 parent: by path, in memory already; entries
		 * without ino (older releases) are never rename sources */
		pl->seen1 = calloc(pl->idx->n ? pl->idx->n : 1, sizeof(*pl->seen1));
		if (!pl->seen1)
			return err_set(err, -ENOMEM, "out of memory");
	} else {
		ret = pidx_open(pl, &pl->src1, &pl->rd1, err);
		if (ret)
			return err_wrap(err, "reading the index of the parent backup %s",
					pl->parent);
	}
	ret = p1_walk(pl, root, err);
	index_reader_free(pl->rd1);
	pl->rd1 = NULL;
	index_entry_clear(&pl->cur1);
	pidx_close(&pl->src1);
	free(pl->seen1);
	pl->seen1 = NULL;
	if (ret && pl->rd1_failed && ret != -ECANCELED && ret != -ENOMEM) {
		char why[1024];

		snprintf(why, sizeof(why), "the parent %s's index cannot be read or does not match its manifest: %.900s",
			 pl->parent, err->msg);
		log_warn("making a full backup: %s", why);
		snprintf(why_full, why_len, "%s", why);
		err_clear(err);
		return 1;
	}
	if (ret)
		return ret;
	join_renames(pl);
	log_debug("%s: %zu renamed files found", pl->parent, pl->nren);
	if (pl->idx)
		return 0;
	/* pass 2, during the pack walk: the index object streamed again */
	ret = pidx_open(pl, &pl->src2, &pl->rd, err);
	return ret ? err_wrap(err, "reading the index of the parent backup %s", pl->parent) : 0;
}
