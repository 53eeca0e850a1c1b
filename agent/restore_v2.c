// SPDX-License-Identifier: MIT
/*
 * Restore of a version 2 (incremental) backup (doc/incremental.md): the
 * index is the authority.  Entries without content are made from it alone
 * (synthesised archive entries through the extractor, with every rule of a
 * version 1 restore); a regular file's content is read at the offset its
 * entry gives, in its own data object or a referenced backup's, one object
 * after another, each through the read-ahead with failover to the same
 * object in the other regions.  Each tar entry read at a wanted offset is
 * written to the index's path with the index's metadata; its header's path
 * and metadata are ignored, its content is checked against the index.
 */
#include "agent/restore_priv.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/catalog.h"
#include "agent/claims.h"
#include "agent/extract.h"
#include "agent/index.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "stream/frame.h"
#include "stream/readahead.h"
#include "uploader/store.h"

#define TAR_BLOCK 512u
#define TAIL_GUESS (64u << 10)
/* a run of wanted offsets goes on in the same range while the next one is
 * within this many bytes past the frame the last one's entry ends in */
#define ENTRY_SLACK (1u << 20)
#define LOAD_THREADS 8          /* seek tables fetched at once */

/* The key of backup id's data object next to key (the same prefix, host and
 * partition: "<...>/<own id>/data.tar.zst"), malloc'd; NULL if key is not
 * the own data object's key or out of memory. */
static char *sibling_key(const char *key, const char *own, const char *id)
{
	size_t n = strlen(key), tail = strlen(own) + strlen("/data.tar.zst");
	char *out;

	if (n < tail || strncmp(key + n - tail, own, strlen(own)) ||
	    strcmp(key + n - tail + strlen(own), "/data.tar.zst"))
		return NULL;
	if (asprintf(&out, "%.*s%s/data.tar.zst", (int)(n - tail), key, id) < 0)
		return NULL;
	return out;
}

/* objs[0]: the own data object; objs[1 + k]: m->refs[k]. */
static int objs_init(struct rctx *r)
{
	const struct manifest *m = r->m;
	const struct restore_opts *o = r->o;

	r->nobjs = 1 + m->nrefs;
	r->objs = calloc(r->nobjs, sizeof(*r->objs));
	if (!r->objs)
		return err_set(r->err, -ENOMEM, "out of memory");
	for (size_t k = 0; k < r->nobjs; k++) {
		struct v2_obj *b = &r->objs[k];
		const struct manifest_ref *ref = k ? &m->refs[k - 1] : NULL;

		b->r = r;
		b->id = ref ? ref->id : m->backup_id;
		/* next to the data key given (a region's copy has its prefix;
		 * the manifest's references name the primary's keys) */
		b->key = m->data_key;
		if (ref) {
			b->key_owned = sibling_key(m->data_key, m->backup_id, b->id);
			if (!b->key_owned)
				return err_set(r->err, -EINVAL,
					       "backup %s: its data key %s does not end in its id; cannot find the referenced backup %s",
					       m->backup_id, m->data_key, b->id);
			b->key = b->key_owned;
		}
		b->size = ref ? ref->size : m->data_size;
		b->sha256 = ref ? ref->sha256 : m->data_sha256;
		b->frame_size = ref ? FRAME_SIZE_MAX : m->frame_size;
		b->fkeys = calloc(o->nfallback + 1, sizeof(*b->fkeys));
		if (!b->fkeys)
			return err_set(r->err, -ENOMEM, "out of memory");
		for (size_t i = 0; i < o->nfallback; i++) {
			b->fkeys[i] = sibling_key(o->fallback[i].data_key, m->backup_id, b->id);
			if (!b->fkeys[i])
				return err_set(r->err, -EINVAL,
					       "region %s: %s is not backup %s's data object key; cannot find the referenced backup %s there",
					       o->fallback[i].region, o->fallback[i].data_key,
					       m->backup_id, b->id);
		}
	}
	return 0;
}

void restore_v2_free(struct rctx *r)
{
	for (size_t k = 0; k < r->nobjs; k++) {
		struct v2_obj *b = &r->objs[k];

		for (size_t i = 0; b->fkeys && i < r->o->nfallback; i++)
			free(b->fkeys[i]);
		free(b->fkeys);
		free(b->key_owned);
		readahead_free(b->ra);
		seek_table_free(b->st);
		seal_key_free(b->seal);
		free(b->tail);
		free(b->want);
		blocks_export_free(b);
	}
	free(r->objs);
	restore_blocks_free(r);
	r->objs = NULL;
	r->nobjs = 0;
	r->obj = NULL;
}

/* The object of ref id ("" the own one), or NULL: not in references. */
struct v2_obj *restore_v2_obj(struct rctx *r, const char *id)
{
	size_t lo = 0, hi = r->m->nrefs;

	if (!id[0])
		return &r->objs[0];
	while (lo < hi) {           /* references are sorted by id */
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(id, r->m->refs[mid].id);

		if (!c)
			return &r->objs[1 + mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int restore_v2_want(struct rctx *r, struct v2_obj *b, uint64_t off, size_t entry,
		    uint32_t run)
{
	if (b->nwant == b->capwant) {
		size_t cap = b->capwant ? 2 * b->capwant : 64;
		struct v2_want *w = realloc(b->want, cap * sizeof(*w));

		if (!w)
			return err_set(r->err, -ENOMEM, "out of memory");
		b->want = w;
		b->capwant = cap;
	}
	b->want[b->nwant++] = (struct v2_want){ .off = off, .entry = entry, .run = run };
	b->runs |= run != 0;
	return 0;
}

static int want_cmp(const void *a, const void *b)
{
	const struct v2_want *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	if (x->entry != y->entry)
		return x->entry < y->entry ? -1 : 1;
	return x->run < y->run ? -1 : x->run > y->run;
}

static uint32_t le(const unsigned char *p, size_t n)
{
	uint32_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

/*
 * A POSIX ACL as xattr_map holds it (the kernel's system.posix_acl_*
 * value: a little-endian u32 version 2, then entries of u16 tag, u16 perm,
 * u32 id) into ae's ACL of type (access or default), which the extractor
 * applies (ARCHIVE_EXTRACT_ACL) as for a version 1 entry.  ae NULL: only
 * checked.
 */
static int add_posix_acl(struct rctx *r, struct archive_entry *ae, const char *path,
			 int type, const unsigned char *v, size_t len)
{
	static const struct { unsigned tag; int ae; } tags[] = {
		{ 0x01, ARCHIVE_ENTRY_ACL_USER_OBJ }, { 0x02, ARCHIVE_ENTRY_ACL_USER },
		{ 0x04, ARCHIVE_ENTRY_ACL_GROUP_OBJ }, { 0x08, ARCHIVE_ENTRY_ACL_GROUP },
		{ 0x10, ARCHIVE_ENTRY_ACL_MASK }, { 0x20, ARCHIVE_ENTRY_ACL_OTHER },
	};

	if (len < 4 || (len - 4) % 8 || le(v, 4) != 2)
		goto bad;
	for (size_t o = 4; o < len; o += 8) {
		unsigned tag = le(v + o, 2), perm = le(v + o + 2, 2);
		uint32_t id = le(v + o + 4, 4);
		size_t k;

		for (k = 0; k < sizeof(tags) / sizeof(tags[0]) && tags[k].tag != tag; k++)
			;
		bool qual = tag == 0x02 || tag == 0x08;   /* a user's or a group's */

		if (k == sizeof(tags) / sizeof(tags[0]) || perm > 7 || (qual && id > INT32_MAX))
			goto bad;
		if (ae && archive_entry_acl_add_entry(ae, type, (int)perm, tags[k].ae,
						qual ? (int)id : -1,
						NULL) != ARCHIVE_OK)
			goto bad;
	}
	return 0;
bad:
	return err_set(r->err, -EBADMSG,
		       "backup %s: index entry %s holds a POSIX ACL that is not one; the stored backup is corrupt or forged",
		       r->m->backup_id, UTIL_ESC(path));
}

/* e's xattr_map into ae: POSIX ACLs as ACL entries, the rest as xattrs
 * (ae NULL: the ACLs only checked). */
static int add_xattrs(struct rctx *r, struct archive_entry *ae,
		      const struct index_entry *e)
{
	for (size_t k = 0; k < e->nxattr; k++) {
		const struct index_xattr *x = &e->xattr[k];
		int ret = 0;

		if (!strcmp(x->name, "system.posix_acl_access"))
			ret = add_posix_acl(r, ae, e->path, ARCHIVE_ENTRY_ACL_TYPE_ACCESS,
					    x->value, x->len);
		else if (!strcmp(x->name, "system.posix_acl_default"))
			ret = add_posix_acl(r, ae, e->path, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT,
					    x->value, x->len);
		else if (ae)
			archive_entry_xattr_add_entry(ae, x->name, x->value, x->len);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Step 1: every wanted entry's location.  A file with content must have
 * one (an offset, and a ref among the manifest's references, or none:
 * this backup); an entry with no content is made from the index.  The
 * ACLs in every wanted entry's xattr_map are checked too.
 */
static int plan(struct rctx *r)
{
	for (size_t i = 0; i < r->idx->n; i++) {
		const struct index_entry *e = &r->idx->e[i];
		struct v2_obj *b;
		int ret;

		if (!restore_wanted(r, e->path))
			continue;
		ret = add_xattrs(r, NULL, e);     /* ACLs checked before any write */
		if (ret)
			return ret;
		if (e->type != PACK_FILE)
			continue;
		if (e->blk && !e->has_offset) {
			ret = blocks_plan(r, i);
			if (ret)
				return ret;
			continue;
		}
		if (!e->has_offset) {
			if (e->size)
				return err_set(r->err, -EBADMSG,
					       "backup %s: index entry %s has %llu bytes of content but no location (offset); the stored backup is corrupt or forged",
					       r->m->backup_id, UTIL_ESC(e->path),
					       (unsigned long long)e->size);
			continue;
		}
		b = restore_v2_obj(r, e->ref);
		if (!b)
			return err_set(r->err, -EBADMSG,
				       "backup %s: file %s's content is in backup %s, which the manifest's references do not name; the stored backup is corrupt or forged",
				       r->m->backup_id, UTIL_ESC(e->path), e->ref);
		ret = restore_v2_want(r, b, e->offset, i, 0);
		if (ret)
			return ret;
	}
	return 0;
}

/* Read the tail of b's copy src holding its seek table into b->tail. */
static int load_tail(struct rctx *r, struct v2_obj *b, size_t src, size_t *want_ret,
		     struct err *err)
{
	struct store *store = src ? r->o->fallback[src - 1].store : r->store;
	const char *key = src ? b->fkeys[src - 1] : b->key;
	size_t want = b->size < TAIL_GUESS ? (size_t)b->size : TAIL_GUESS, got, need;
	uint32_t nframes;
	int ret;

	for (;;) {
		free(b->tail);
		b->tail = malloc(want);
		if (!b->tail)
			return err_set(err, -ENOMEM, "out of memory");
		got = 0;
		ret = store_get_range(store, key, b->size - want, want, b->tail, &got, err);
		/* tables of several objects load at once (load_tables) */
		__atomic_fetch_add(&r->res->bytes_read, (uint64_t)got, __ATOMIC_RELAXED);
		if (ret)
			return ret;
		if (got != want)
			return err_set(err, -EBADMSG, "%s: short read", key);
		ret = seek_table_size(b->tail, want, b->size, &need, &nframes, err);
		if (ret)
			return err_wrap(err, "%s", key);
		if (need <= want)
			break;
		want = need;
	}
	*want_ret = want;
	return 0;
}

/* b's seek table from copy src: its size as recorded, the table whole. */
static int load_copy(struct rctx *r, struct v2_obj *b, size_t src, struct err *err)
{
	struct store *store = src ? r->o->fallback[src - 1].store : r->store;
	const char *key = src ? b->fkeys[src - 1] : b->key;
	struct store_obj_info info;
	size_t want = 0;
	int ret;

	ret = store_head(store, key, &info, err);
	if (ret)
		return ret;
	if (info.size != b->size || !info.size)
		return err_set(err, -EBADMSG,
			       "%s has %llu bytes, the manifest says %llu (truncated or replaced)",
			       key, (unsigned long long)info.size,
			       (unsigned long long)b->size);
	ret = load_tail(r, b, src, &want, err);
	if (!ret)
		ret = seek_table_parse(b->tail, want, b->size, b->frame_size, &b->st, err);
	if (ret)
		return err_wrap(err, "%s", key);
	/* encrypted: the frames of the backup that wrote them, each under
	 * its id's key from the one master key of the chain (the planner
	 * chains only backups under one master) */
	if (!strcmp(b->id, r->m->backup_id))
		b->st->seal = r->keys.data;
	else if (r->keys.master && !b->seal)
		ret = keyring_ref_key(&r->keys, b->id, &b->seal, err);
	if (ret)
		return ret;
	if (b->seal)
		b->st->seal = b->seal;
	b->tail_len = (size_t)(b->size - b->st->c_total);
	memmove(b->tail, b->tail + want - b->tail_len, b->tail_len);
	return 0;
}

static const char *region_name(const struct rctx *r, size_t src)
{
	const char *n = src ? r->o->fallback[src - 1].region : r->o->region;

	return n ? n : "?";
}

/* One object's seek table being fetched (by a thread of load_tables):
 * from the first copy src that has it whole; e0 the first copy's error. */
struct tload {
	struct rctx *r;
	struct v2_obj *b;
	size_t src;
	int ret;
	struct err e0, e;
};

static void *tload_main(void *arg)
{
	struct tload *t = arg;

	t->ret = -ENOENT;
	for (t->src = 0; t->src <= t->r->o->nfallback; t->src++) {
		err_clear(&t->e);
		t->ret = load_copy(t->r, t->b, t->src, t->src ? &t->e : &t->e0);
		if (!t->ret || t->ret == -ENOMEM || t->ret == -ECANCELED)
			break;
	}
	return NULL;
}

/*
 * b's seek table as t fetched it (or its error); then every wanted
 * offset checked against it: inside its stream, one entry per offset.
 */
static int load_obj(struct rctx *r, struct v2_obj *b, struct tload *t)
{
	const char *first = b->nwant ? r->idx->e[b->want[0].entry].path : NULL;
	int ret = t->ret;

	if (!ret && t->src)
		log_warn("region %s: backup %s's data object %s: %s; reading it from region %s",
			 region_name(r, 0), b->id, b->key,
			 err_strip_region(region_name(r, 0), t->e0.msg), region_name(r, t->src));
	if (ret == -ENOMEM || ret == -ECANCELED)
		return *r->err = t->src ? t->e : t->e0, ret;
	if (ret)
		return err_set(r->err, ret == -ENOENT ? -ENOENT : -EBADMSG,
			       "%s%s%scontent is in backup %s (data object %s), which region %s cannot read%s: %s",
			       first ? "file " : "", first ? UTIL_ESC(first) : "",
			       first ? "'s " : "", b->id, b->key, region_name(r, 0),
			       r->o->nfallback ? ", nor any other region" : "",
			       err_strip_region(region_name(r, 0), t->e0.msg));
	if (!b->st->nframes)      /* even an empty tar is one frame */
		return err_set(r->err, -EBADMSG,
			       "backup %s: data object %s holds no frame: the stored backup is corrupt",
			       b->id, b->key);
	if (b == &r->objs[0] && (b->st->d_total != r->m->tar_bytes ||
				 b->st->nframes != r->m->frames))
		return err_set(r->err, -EBADMSG,
			       "backup %s: %s holds %llu bytes of tar stream in %u frames, its manifest says %llu in %u: the stored backup is corrupt",
			       b->id, b->key, (unsigned long long)b->st->d_total,
			       b->st->nframes, (unsigned long long)r->m->tar_bytes,
			       r->m->frames);
	r->res->frames_total += b->st->nframes;
	qsort(b->want, b->nwant, sizeof(*b->want), want_cmp);
	for (size_t k = 0; k < b->nwant; k++) {
		const struct v2_want *w = &b->want[k];
		const char *p = r->idx->e[w->entry].path;

		if (w->off >= b->st->d_total || b->st->d_total - w->off < TAR_BLOCK ||
		    (w->run && blocks_need(r, w) > b->st->d_total - w->off - TAR_BLOCK))
			return err_set(r->err, -EBADMSG,
				       "backup %s: file %s's content is at offset %llu of backup %s's data, which holds %llu bytes of tar stream; the stored backup is corrupt or forged",
				       r->m->backup_id, UTIL_ESC(p), (unsigned long long)w->off,
				       b->id, (unsigned long long)b->st->d_total);
		/* runs may share a tar entry (a file's blocks split around a
		 * change, a renamed or hard-linked file's); a whole file not */
		if (k && w->off == w[-1].off && (!w->run || !w[-1].run))
			return err_set(r->err, -EBADMSG,
				       "backup %s: files %s and %s both claim the content at offset %llu of backup %s's data (a hard link is type h, naming the first path); the stored backup is corrupt or forged",
				       r->m->backup_id, UTIL_ESC(r->idx->e[w[-1].entry].path),
				       UTIL_ESC(p), (unsigned long long)w->off, b->id);
	}
	return readahead_new(b->st, 1 + r->o->nfallback, &restore_obj_ops, b,
			     &b->ra, r->err);
}

/* type letter -> libarchive's file type */
static mode_t ae_type(char t)
{
	switch (t) {
	case PACK_DIR: return AE_IFDIR;
	case PACK_SYMLINK: return AE_IFLNK;
	case PACK_CHAR: return AE_IFCHR;
	case PACK_BLOCK: return AE_IFBLK;
	case PACK_FIFO: return AE_IFIFO;
	default: return AE_IFREG;
	}
}

/*
 * The archive entry the index describes (path, type, mode, owner, mtime,
 * size, link, device, xattr_map), privileges stripped unless asked to keep
 * them.  *ae_ret: archive_entry_free().
 */
int restore_v2_synth(struct rctx *r, const struct index_entry *e,
		     struct archive_entry **ae_ret)
{
	struct archive_entry *ae;
	int64_t sec = e->mtime_ns / 1000000000, nsec = e->mtime_ns % 1000000000;
	int ret = 0;

	*ae_ret = NULL;
	if (!extract_path_safe(e->path) ||
	    (e->type == PACK_HARDLINK && (!e->link || !extract_path_safe(e->link))))
		return err_set(r->err, -EPERM,
			       "backup %s: index entry %s is unsafe (an absolute path or with ..); refusing it — the stored backup was tampered with",
			       r->m->backup_id, UTIL_ESC(e->path));
	if ((e->type == PACK_SYMLINK || e->type == PACK_HARDLINK) && !e->link)
		return err_set(r->err, -EBADMSG,
			       "backup %s: index entry %s is a link without a target; the stored backup is corrupt or forged",
			       r->m->backup_id, UTIL_ESC(e->path));
	ae = archive_entry_new();
	if (!ae)
		return err_set(r->err, -ENOMEM, "out of memory");
	if (nsec < 0) {
		nsec += 1000000000;
		sec--;
	}
	archive_entry_set_pathname(ae, e->path);
	archive_entry_set_filetype(ae, ae_type(e->type));
	archive_entry_set_perm(ae, e->mode & 07777);
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->gid);
	archive_entry_set_mtime(ae, sec, (long)nsec);
	archive_entry_set_size(ae, e->type == PACK_FILE ? (la_int64_t)e->size : 0);
	if (e->type == PACK_SYMLINK)
		archive_entry_set_symlink(ae, e->link);
	else if (e->type == PACK_HARDLINK)
		archive_entry_set_hardlink(ae, e->link);
	if (e->type == PACK_CHAR || e->type == PACK_BLOCK)
		archive_entry_set_rdev(ae, (dev_t)e->rdev);
	ret = add_xattrs(r, ae, e);
	if (!ret && r->o->target && !r->o->keep_privileges) {
		unsigned dropped = 0;

		ret = extract_strip_privileges(ae, &dropped, r->err);
		r->res->stripped_privileges += dropped;
	}
	if (ret)
		archive_entry_free(ae);
	else
		*ae_ret = ae;
	return ret;
}

/* Entry i produced: once only. */
int restore_v2_produced(struct rctx *r, size_t i)
{
	if (index_mark(r->idx, i) <= 0)
		return err_set(r->err, -EBADMSG,
			       "backup %s: %s would be restored twice; the stored backup is corrupt or forged",
			       r->m->backup_id, UTIL_ESC(r->idx->e[i].path));
	r->res->entries++;
	return 0;
}

/* Step 2: the wanted entries without content, from the index alone. */
static int make_from_index(struct rctx *r)
{
	for (size_t i = 0; i < r->idx->n; i++) {
		const struct index_entry *e = &r->idx->e[i];
		struct archive_entry *ae;
		int ret;

		if ((e->type == PACK_FILE && (e->has_offset || e->blk)) ||
		    !restore_wanted(r, e->path))
			continue;
		ret = restore_check_cancel(r, e->path);
		if (!ret)
			ret = restore_v2_produced(r, i);
		if (ret)
			return ret;
		if ((e->type == PACK_CHAR || e->type == PACK_BLOCK) && !r->o->devices) {
			r->res->skipped_devices++;
			continue;
		}
		if (e->type == PACK_FILE)
			r->res->files++;
		if (!r->x)
			continue;
		ret = restore_v2_synth(r, e, &ae);
		if (ret)
			return ret;
		ret = extractor_begin(r->x, ae, e->path, r->err);
		if (!ret)
			ret = extractor_end(r->x, r->err);
		archive_entry_free(ae);
		if (ret)
			return ret;
	}
	return 0;
}

/* Export: the sparse map of the entry read (claims_file checked it
 * against the index's size) on the entry written, so holes stay holes. */
static void copy_sparse(struct archive_entry *out, struct archive_entry *ae)
{
	la_int64_t off, len;

	if (archive_entry_sparse_reset(ae) <= 0)
		return;
	while (archive_entry_sparse_next(ae, &off, &len) == ARCHIVE_OK)
		archive_entry_sparse_add_entry(out, off, len);
}

/*
 * The tar entry ae (read at the offset of index entry i) is file i's
 * content: written under the index's path and metadata, hashed.
 */
static int produce_file(struct rctx *r, struct archive *a, struct archive_entry *ae,
			struct v2_obj *b, size_t i)
{
	const struct index_entry *e = &r->idx->e[i];
	struct archive_entry *out = NULL;
	int ret;

	if (archive_entry_filetype(ae) != AE_IFREG || archive_entry_hardlink(ae))
		return err_set(r->err, -EBADMSG,
			       "backup %s: file %s's content is at offset %llu of backup %s's data, which holds no file's content there; the stored backup is corrupt or forged",
			       r->m->backup_id, UTIL_ESC(e->path),
			       (unsigned long long)e->offset, b->id);
	ret = restore_v2_produced(r, i);
	if (!ret)
		ret = claims_file(ae, e->path, e, b->st->d_total, r->res->hole_bytes,
				  b->id, r->err);
	if (!ret && r->x)
		ret = restore_v2_synth(r, e, &out);
	if (!ret && r->o->export)
		copy_sparse(out, ae);
	if (!ret && r->x)
		ret = extractor_begin(r->x, out, e->path, r->err);
	archive_entry_free(out);
	if (!ret)
		ret = restore_file_data(r, a, r->x, e->path, e);
	if (!ret && r->x)
		ret = extractor_end(r->x, r->err);
	if (!ret)
		r->res->files++;
	return ret;
}

/* The frame the entry read for want w ends in, about (see ENTRY_SLACK). */
static uint32_t want_end_frame(const struct rctx *r, const struct v2_obj *b,
			       const struct v2_want *w)
{
	const struct index_entry *e = &r->idx->e[w->entry];
	uint64_t end = w->off + ENTRY_SLACK + strlen(e->path) * 2;
	uint64_t size = w->run ? blocks_need(r, w) : e->size;

	for (size_t k = 0; k < e->nxattr; k++)
		end += 2 * (e->xattr[k].len + strlen(e->xattr[k].name)) + 64;
	end = end + size < end ? UINT64_MAX : end + size;
	if (end >= b->st->d_total)
		end = b->st->d_total - 1;
	return seek_table_find(b->st, end);
}

/* The SHA-256 of b over the frames read whole and its seek table. */
static int check_obj_hash(struct rctx *r, struct v2_obj *b)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	char hex[65];

	EVP_DigestUpdate(r->sha, b->tail, b->tail_len);
	EVP_DigestFinal_ex(r->sha, md, &mdlen);
	util_hex(md, 32, hex);
	if (strcmp(hex, b->sha256))
		return err_set(r->err, -EBADMSG,
			       "backup %s: data object %s differs from the SHA-256 %s (altered after the backup)",
			       b->id, b->key, b == &r->objs[0] ?
			       "in its manifest" : "recorded in the references");
	return 0;
}

/* The frames after libarchive's end, into the hash. */
static int drain(struct rctx *r)
{
	for (;;) {
		const void *d, *c;
		size_t dlen, clen;
		int ret = unframer_next(r->u, &d, &dlen, &c, &clen, &r->read_err);

		if (ret) {
			*r->err = r->read_err;
			return err_wrap(r->err, "backup %s (data object %s)",
					r->obj->id, r->obj->key);
		}
		if (!dlen)
			return 0;
		r->res->frames_read++;
		EVP_DigestUpdate(r->sha, c, clen);
	}
}

/* The entries of the open range from wants [*k, to): offsets matched. */
static int run_entries(struct rctx *r, struct archive *a, struct v2_obj *b,
		       uint64_t start, size_t *k, size_t to, bool hash)
{
	for (;;) {
		struct archive_entry *ae;
		uint64_t pos;
		int ret = restore_check_cancel(r, NULL);

		if (ret)
			return ret;
		if (*k == to && !hash)
			return 0;
		ret = archive_read_next_header(a, &ae);
		if (ret == ARCHIVE_EOF)
			break;
		if (ret < ARCHIVE_WARN)
			return r->read_error ? (*r->err = r->read_err, r->read_error) :
			       err_set(r->err, -EBADMSG, "backup %s: data object %s is corrupt: %s",
				       b->id, b->key, archive_error_string(a));
		pos = start + (uint64_t)archive_read_header_position(a);
		if (*k < to && b->want[*k].off < pos)
			break;     /* went past a wanted offset: not an entry's start */
		if (*k < to && b->want[*k].off == pos && b->want[*k].run) {
			size_t g = *k;

			while (g < to && b->want[g].off == pos)
				g++;
			ret = blocks_entry(r, a, ae, b, &b->want[*k], g - *k, pos,
					   start + (uint64_t)archive_filter_bytes(a, 0));
			if (ret && r->read_error && ret == r->read_error)
				err_wrap(r->err, "file %s's blocks are in backup %s",
					 UTIL_ESC(r->idx->e[b->want[*k].entry].path), b->id);
			if (ret)
				return ret;
			*k = g;
		} else if (*k < to && b->want[*k].off == pos) {
			ret = produce_file(r, a, ae, b, b->want[*k].entry);
			if (ret) {
				if (r->read_error && ret == r->read_error)
					err_wrap(r->err, "file %s's content is in backup %s",
						 UTIL_ESC(r->idx->e[b->want[*k].entry].path), b->id);
				return ret;
			}
			(*k)++;
		}
	}
	if (*k < to)
		return err_set(r->err, -EBADMSG,
			       "backup %s: file %s's content is at offset %llu of backup %s's data, where no entry starts; the stored backup is corrupt or forged",
			       r->m->backup_id, UTIL_ESC(r->idx->e[b->want[*k].entry].path),
			       (unsigned long long)b->want[*k].off, b->id);
	return 0;
}

/* One range of b: frames [first, last] from stream offset start. */
static int read_run(struct rctx *r, struct v2_obj *b, uint32_t first, uint32_t last,
		    uint64_t start, size_t *k, size_t to, bool hash)
{
	struct archive *a = archive_read_new();
	int ret = 0;

	if (!a)
		return err_set(r->err, -ENOMEM, "out of memory");
	r->obj = b;
	r->pos = start;
	r->capture = b->runs;
	r->ring_end = r->cur_off = start;
	r->cur_len = 0;
	r->skip = (size_t)(start - b->st->e[first].d_off);
	r->left = b->st->d_total - start;
	r->hashing = hash;
	r->read_error = 0;
	if (hash && (!EVP_MD_CTX_reset(r->sha) ||
		     !EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL))) {
		ret = err_set(r->err, -ENOMEM, "cannot set up SHA-256");
		goto out;
	}
	if (b->started && (b->sfirst != first || b->slast != last))
		readahead_stop(b->ra);     /* never: prefetch() starts this run */
	if (!b->started || b->sfirst != first || b->slast != last)
		ret = readahead_start(b->ra, first, last, r->err);
	b->started = false;
	if (!ret)
		ret = unframer_new(b->st, first, last, 0, 0, readahead_fetch, b->ra,
				   &r->u, r->err);
	if (ret)
		goto out;
	archive_read_support_format_tar(a);
	if (archive_read_open(a, r, NULL, restore_read_cb, NULL) != ARCHIVE_OK) {
		ret = r->read_error ? (*r->err = r->read_err, r->read_error) :
		      err_set(r->err, -EBADMSG, "backup %s: data object %s is not a tar stream: %s",
			      b->id, b->key, archive_error_string(a));
		goto out;
	}
	ret = run_entries(r, a, b, start, k, to, hash);
	if (!ret && hash)
		ret = drain(r);
	if (!ret && hash)
		ret = check_obj_hash(r, b);
out:
	r->hashing = false;
	archive_read_free(a);
	readahead_cancel(b->ra);
	unframer_free(r->u);
	r->u = NULL;
	readahead_stop(b->ra);
	return ret;
}

/*
 * The run of b's wanted offsets from want k: its frames [*first, *last] (to
 * the frame its last entry ends in) and the wants [k, *to) in it.  With
 * whole (a whole restore's own object), one run over every frame.
 */
static void next_run(const struct rctx *r, const struct v2_obj *b, size_t k,
		     size_t *to, uint32_t *first, uint32_t *last)
{
	if (b->whole) {
		*first = 0;
		*last = b->st->nframes - 1;
		*to = b->nwant;
		return;
	}
	*to = k + 1;
	*first = seek_table_find(b->st, b->want[k].off);
	*last = want_end_frame(r, b, &b->want[k]);
	while (*to < b->nwant && seek_table_find(b->st, b->want[*to].off) <= *last + 1) {
		uint32_t l = want_end_frame(r, b, &b->want[*to]);

		*last = l > *last ? l : *last;
		(*to)++;
	}
}

/*
 * Start reading nb's first run ahead (its read-ahead thread), so that its
 * first blocks are fetched while the current object's last run is read.
 * A failure here is not one: the run starts when it is read.
 */
static void prefetch(struct rctx *r, struct v2_obj *nb)
{
	struct err e = { 0 };
	size_t to;

	if (!nb || nb->started || (!nb->nwant && !nb->whole))
		return;
	next_run(r, nb, 0, &to, &nb->sfirst, &nb->slast);
	nb->started = !readahead_start(nb->ra, nb->sfirst, nb->slast, &e);
}

/*
 * Step 3: object b's wanted offsets, in runs of nearby frames; a run that
 * reads every frame of the object (always, with whole) checks its SHA-256.
 * Before b's last run, nb's first is started ahead.
 */
static int read_obj(struct rctx *r, struct v2_obj *b, struct v2_obj *nb)
{
	size_t k = 0;

	while (k < b->nwant || (b->whole && !k)) {
		size_t to;
		uint32_t first, last;
		bool hash;
		int ret;

		next_run(r, b, k, &to, &first, &last);
		/* every frame passes through the range (from frame 0, whatever
		 * its first offset): the object's SHA-256 can be checked */
		hash = first == 0 && last + 1 == b->st->nframes;
		if (to == b->nwant)
			prefetch(r, nb);
		ret = read_run(r, b, first, last, b->whole ? 0 : b->want[k].off, &k, to, hash);
		if (ret)
			return ret;
		if (b->whole)
			break;
	}
	return 0;
}

/* Every entry the index names (under the --paths) was produced. */
static int check_all_produced(struct rctx *r)
{
	for (size_t i = 0; i < r->idx->n; i++)
		if (!index_seen(r->idx, i) && restore_wanted(r, r->idx->e[i].path))
			return err_set(r->err, -EBADMSG,
				       "backup %s: %s is in the index but was not restored; the stored backup is corrupt or forged",
				       r->m->backup_id, UTIL_ESC(r->idx->e[i].path));
	return 0;
}

/*
 * Step 2a: the seek tables of every object read, fetched at once (up to
 * LOAD_THREADS at a time: each is a HEAD and a ranged GET, a round trip
 * each, which one after another added up along a chain), then checked in
 * object order.
 */
static int load_tables(struct rctx *r)
{
	struct tload *t = calloc(r->nobjs, sizeof(*t));
	pthread_t *th = calloc(r->nobjs, sizeof(*th));
	bool *started = calloc(r->nobjs, sizeof(*started));
	int ret = 0;

	if (!t || !th || !started) {
		ret = err_set(r->err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t lo = 0; lo < r->nobjs; lo += LOAD_THREADS) {
		size_t hi = lo + LOAD_THREADS < r->nobjs ? lo + LOAD_THREADS : r->nobjs;

		for (size_t k = lo; k < hi; k++) {
			struct v2_obj *b = &r->objs[k];

			if (!b->nwant && !b->whole && !b->direct)
				continue;
			t[k] = (struct tload){ .r = r, .b = b };
			/* no thread: fetched here, in turn */
			started[k] = !pthread_create(&th[k], NULL, tload_main, &t[k]);
			if (!started[k])
				tload_main(&t[k]);
		}
		for (size_t k = lo; k < hi; k++)
			if (started[k])
				pthread_join(th[k], NULL);
	}
	for (size_t k = 0; !ret && k < r->nobjs; k++)
		if (t[k].b)
			ret = load_obj(r, t[k].b, &t[k]);
out:
	free(t);
	free(th);
	free(started);
	return ret;
}

int restore_v2(struct rctx *r)
{
	int ret = restore_index_counted(r->store, r->m, r->o, r->keys.index, &r->idx,
					&r->res->bytes_read, r->err);

	if (!ret)
		ret = restore_check_paths(r);
	if (!ret)
		ret = objs_init(r);
	if (!ret)
		ret = plan(r);
	/* a whole restore reads its own object whole: its hash is checked */
	if (!ret && !r->o->npaths)
		r->objs[0].whole = true;
	if (!ret)
		ret = load_tables(r);
	if (ret)
		return ret;
	r->sha = EVP_MD_CTX_new();
	if (!r->sha)
		return err_set(r->err, -ENOMEM, "cannot set up SHA-256");
	if (r->o->target || r->o->export)
		ret = restore_open_target(r);
	index_pass_begin(r->idx);
	if (!ret)
		ret = make_from_index(r);
	if (!ret && r->x && !r->o->export)
		ret = blocks_make(r);
	for (size_t k = 0; !ret && k < r->nobjs; k++) {
		struct v2_obj *nb = NULL;

		for (size_t j = k + 1; !nb && j < r->nobjs; j++)
			nb = r->objs[j].nwant || r->objs[j].whole ? &r->objs[j] : NULL;
		if (r->objs[k].st)
			ret = read_obj(r, &r->objs[k], nb);
	}
	if (!ret && r->o->export)
		ret = blocks_export(r);
	if (!ret)
		ret = check_all_produced(r);
	return ret;
}
