// SPDX-License-Identifier: MIT
#include "agent/planner.h"
#include "agent/planner_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "agent/geo.h"
#include "agent/index.h"
#include "agent/keyring.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "uploader/store.h"

/*
 * Walk order compares paths by components: "." first, then byte by byte
 * with '/' below every other byte and the end of a path below '/'.
 */
int planner_path_cmp(const char *a, const char *b)
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

/* Sealed bytes fetched at once: four segments (as the 256 KiB of a plain
 * parent's ranges). */
#define PIDX_SEALED (SEAL_SEGMENT + SEAL_TAG_LEN)
#define PIDX_SBUF (4 * PIDX_SEALED)

void planner_pidx_close(struct pidx_src *s)
{
	EVP_MD_CTX_free(s->sha);
	free(s->sbuf);
	if (s->pbuf)
		OPENSSL_cleanse(s->pbuf, SEAL_SEGMENT);
	free(s->pbuf);
	memset(s, 0, sizeof(*s));
}

/* The next range of the parent's index object as stored, hashed. */
static int pidx_read_raw(struct pidx_src *s, void *buf, size_t len, size_t *got_ret,
			 struct err *err)
{
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

/* The next sealed segment of an encrypted parent's index opened into
 * s->pbuf (s->plen 0 at the object's end). */
static int pidx_open_seg(struct pidx_src *s, struct err *err)
{
	uint64_t left = s->size - s->opened;
	size_t seg = left > PIDX_SEALED ? PIDX_SEALED : (size_t)left;
	int ret;

	s->ppos = s->plen = 0;
	if (!left)
		return 0;
	if (s->slen - s->spos < seg) {
		memmove(s->sbuf, s->sbuf + s->spos, s->slen - s->spos);
		s->slen -= s->spos;
		s->spos = 0;
		while (s->slen < seg) {
			size_t got = 0, want = PIDX_SBUF - s->slen;

			if (want > s->size - s->off)
				want = (size_t)(s->size - s->off);
			ret = want ? pidx_read_raw(s, s->sbuf + s->slen, want, &got, err) : 0;
			if (ret)
				return ret;
			if (!got)
				return err_set(err, -EBADMSG, "the index object %s of the parent backup %s ends at %llu bytes, its manifest records %llu",
					       s->key, s->parent, (unsigned long long)s->off,
					       (unsigned long long)s->size);
			s->slen += got;
		}
	}
	if (seg < SEAL_TAG_LEN)
		return err_set(err, -EBADMSG, "the index object %s of the parent backup %s: its last segment is shorter than a tag (truncated)",
			       s->key, s->parent);
	ret = seal_unpiece(s->seal, s->seg, seg == left, s->sbuf + s->spos, seg, s->pbuf, err);
	if (ret == -EBADMSG)
		return err_set(err, -EBADMSG, "the index object %s of the parent backup %s: segment %llu does not open with its key (altered, truncated, or from another backup)",
			       s->key, s->parent, (unsigned long long)s->seg);
	if (ret)
		return ret;
	s->spos += seg;
	s->opened += seg;
	s->seg++;
	s->plen = seg - SEAL_TAG_LEN;
	return 0;
}

/* index_read_fn: the next range of the parent's index object, hashed;
 * an encrypted one's opened. */
static int pidx_read(void *ctx, void *buf, size_t len, size_t *got_ret, struct err *err)
{
	struct pidx_src *s = ctx;
	size_t n;
	int ret;

	if (!s->seal)
		return pidx_read_raw(s, buf, len, got_ret, err);
	*got_ret = 0;
	while (s->ppos == s->plen && s->opened < s->size) {
		ret = pidx_open_seg(s, err);   /* the last may be empty */
		if (ret)
			return ret;
	}
	n = s->plen - s->ppos < len ? s->plen - s->ppos : len;
	memcpy(buf, s->pbuf + s->ppos, n);
	s->ppos += n;
	*got_ret = n;
	return 0;
}

/* A reader of the parent's index object over s, hashed from its start. */
int planner_pidx_open(struct planner *pl, struct pidx_src *s, struct index_reader **rd_ret,
		     struct err *err)
{
	planner_pidx_close(s);
	s->store = pl->store;
	s->key = pl->ikey;
	s->parent = pl->parent;
	s->size = pl->isize;
	s->seal = pl->iseal;
	s->sha = EVP_MD_CTX_new();
	if (!s->sha || !EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL))
		return err_set(err, -ENOMEM, "out of memory");
	if (s->seal && (!(s->sbuf = malloc(PIDX_SBUF)) || !(s->pbuf = malloc(SEAL_SEGMENT))))
		return err_set(err, -ENOMEM, "out of memory");
	return index_reader_open_fn(pidx_read, s, rd_ret, err);
}

/* After its reader's end: were the bytes read the manifest's (size,
 * SHA-256)?  0, or -EBADMSG saying what differs. */
int planner_pidx_check(const struct planner *pl, const struct pidx_src *s, struct err *err)
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
	free(pl->mxa);
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
	planner_pidx_close(&pl->src1);
	planner_pidx_close(&pl->src2);
	seal_key_free(pl->iseal);
	free(pl);
}

const struct seal_master *planner_master(const struct planner *pl)
{
	return pl ? pl->master : NULL;
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
 * Encryption across a chain: an encrypted backup chains only onto an
 * encrypted parent under key_file's master key (its index key into pl),
 * a plain one only onto a plain parent; else 1 and why (a full).
 */
static int parent_keys(struct planner *pl, const struct manifest *p,
		       const struct planner_opts *o, char *why, size_t why_len,
		       struct err *err)
{
	bool enc = o->kr && o->kr->encrypt;
	int ret;

	if (!enc && p->enc_fp[0]) {
		snprintf(why, why_len, "the parent %s is encrypted and encryption is off",
			 p->backup_id);
		return 1;
	}
	if (!enc)
		return 0;
	if (!p->enc_fp[0]) {
		snprintf(why, why_len, "the parent %s is not encrypted: an incremental would reference its data, stored in clear",
			 p->backup_id);
		return 1;
	}
	ret = keyring_chain(o->kr, p, &pl->master, why, why_len, err);
	if (ret)
		return ret;
	return seal_key_new(pl->master, p->backup_id, SEAL_KIND_INDEX, &pl->iseal, err);
}

/*
 * The parent's index: a version 2 one is streamed by each pass
 * (index_head); a version 1 one (readdir order) is read whole, checked
 * against its manifest and loaded, keyed by path.
 */
static int load_index(struct planner *pl, struct region *g, const struct manifest *p,
		      const struct planner_opts *o, char *why, size_t why_len,
		      struct err *err)
{
	void *zbuf = NULL;
	size_t zlen = 0;
	char hex[65];
	int ret;

	ret = parent_keys(pl, p, o, why, why_len, err);
	if (ret)
		return ret;
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
	if (pl->iseal) {
		/* sealed (its SHA-256 is the sealed bytes'): opened whole, as
		 * a plain version 1 index is loaded whole */
		void *plain = NULL;
		char what[160];

		snprintf(what, sizeof(what), "the index object %s of the parent backup %s",
			 p->index_key, p->backup_id);
		ret = seal_unstream_buf(pl->iseal, what, zbuf, zlen, &plain, &zlen, err);
		free(zbuf);
		zbuf = plain;
	}
	if (!ret)
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
		ret = load_index(pl, g, p, o, why, sizeof(why), err);
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
			if (pl->last && planner_path_cmp(pl->last, pl->cur.path) >= 0 &&
			    !pl->order_warned) {
				log_warn("the index of the parent backup %s is not in walk order: files after %s may be stored again",
					 pl->parent, pl->last);
				pl->order_warned = true;
			}
			free(pl->last);
			pl->last = strdup(pl->cur.path);
			pl->have_cur = true;
		}
		c = planner_path_cmp(pl->cur.path, path);
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

/* XXH3-128 of the file at path (holes read as zeros, as the packer does),
 * read as the packer reads (its rate limit and I/O priority: pack_pread). */
static int hash_file(struct planner *pl, const struct pack_plan_entry *pe,
		     unsigned char sum[16], struct err *err)
{
	XXH3_state_t h;
	uint64_t off = 0;
	int fd, ret = 0;

	if (!pl->hbuf && !(pl->hbuf = malloc(1u << 20)))
		return err_set(err, -ENOMEM, "out of memory");
	fd = openat(pe->rootfd, pe->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, -errno, "cannot open %s to compare it with the parent backup: %s",
			       pe->path, strerror(errno));
	XXH3_128bits_reset(&h);
	for (;;) {
		ssize_t n = pack_pread(pe->packer, fd, pl->hbuf, 1u << 20, off);

		if (n < 0) {
			ret = err_set(err, -errno, "cannot read %s to compare it with the parent backup: %s",
				      pe->path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(&h, pl->hbuf, (size_t)n);
		off += (uint64_t)n;
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

int64_t planner_ts_ns(const struct timespec *t)
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
	quick = old->size == (uint64_t)st->st_size && old->mtime_ns == planner_ts_ns(&st->st_mtim) &&
		(!old->ino || old->ino == (uint64_t)st->st_ino);
	if (quick && old->ctime_ns == planner_ts_ns(&st->st_ctim)) {
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

	while (pl->ren_next < pl->nren && planner_path_cmp(pl->ren[pl->ren_next].path, pe->path) < 0)
		pl->ren_next++;
	if (pl->ren_next == pl->nren)
		return 0;
	rn = &pl->ren[pl->ren_next];
	if (strcmp(rn->path, pe->path) || rn->ino != (uint64_t)pe->st->st_ino ||
	    rn->size != (uint64_t)pe->st->st_size || rn->mtime_ns != planner_ts_ns(&pe->st->st_mtim))
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

/*
 * pe->meta from old when nothing of the entry's metadata can have changed:
 * the same inode with the same ctime (a chmod, chown, xattr or ACL change,
 * a new link or a new symlink target moves it), the same type, mode, owner
 * and mtime.  Files with one link, directories and symlinks; an index
 * written before ino and ctime_ns were recorded gives none.
 */
static int plan_meta(struct planner *pl, const struct pack_plan_entry *pe,
		     const struct index_entry *old, struct err *err)
{
	const struct stat *st = pe->st;
	struct pack_meta *m = pe->meta;
	char t = entry_type(st);

	if (!m)
		return 0;
	memset(m, 0, sizeof(*m));
	if (!old->ino || !old->ctime_ns || old->ino != (uint64_t)st->st_ino ||
	    old->ctime_ns != planner_ts_ns(&st->st_ctim) || old->type != t ||
	    (t != PACK_FILE && t != PACK_DIR && t != PACK_SYMLINK) ||
	    (t == PACK_FILE && (st->st_nlink != 1 || old->size != (uint64_t)st->st_size)) ||
	    (t == PACK_SYMLINK) != (old->link != NULL) || old->link_legacy ||
	    old->mode != (st->st_mode & 07777) || old->uid != (int64_t)st->st_uid ||
	    old->gid != (int64_t)st->st_gid || old->mtime_ns != planner_ts_ns(&st->st_mtim))
		return 0;
	if (old->nxattr > pl->mxa_cap) {
		struct pack_xattr *n = realloc(pl->mxa, old->nxattr * sizeof(*n));

		if (!n)
			return err_set(err, -ENOMEM, "out of memory");
		pl->mxa = n;
		pl->mxa_cap = old->nxattr;
	}
	for (size_t i = 0; i < old->nxattr; i++) {
		pl->mxa[i].name = old->xattr[i].name;
		pl->mxa[i].value = old->xattr[i].value;
		pl->mxa[i].len = old->xattr[i].len;
	}
	m->known = true;
	m->xattrs = old->xattrs;
	m->link = old->link;
	m->igen = old->igen;
	m->xattr = pl->mxa;
	m->nxattr = old->nxattr;
	return 0;
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
	ret = plan_meta(pl, pe, old, err);
	if (ret)
		return ret;
	if (pe->content) {
		ret = plan_content(pl, pe, old, ref, err);
		if (ret == 0 || ret == 2)
			pl->n_changed++;
		return ret;
	}
	if (old->type != entry_type(pe->st) && old->type != PACK_HARDLINK)
		pl->n_changed++;
	else if (old->ctime_ns != planner_ts_ns(&pe->st->st_ctim))
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
		ret = planner_pidx_check(pl, &pl->src2, err);
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
