// SPDX-License-Identifier: MIT
/*
 * What a stored backup's index and data claim, checked before a restore
 * trusts them (see claims.h).  Every message names the backup.
 */
#include "agent/claims.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/index.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "stream/pack.h"

#define TAR_BLOCK 512u           /* the smallest tar header */

/*
 * The index's claims against what the data can hold, before any work
 * proportional to them starts (a version 1 backup's: every entry has an
 * offset in this backup's data, none a ref): every entry's header lies inside the
 * stream, after the entry before it, only files (and hard links, which
 * give their target's) have a size, and a regular file's data (unless
 * sparse: holes are not stored) fits in the stream after it, as do all of
 * them together.
 */
int claims_index(const struct index *idx, uint64_t total, const char *backup_id,
		 struct err *err)
{
	uint64_t data = 0;

	for (size_t i = 0; i < idx->n; i++) {
		const struct index_entry *e = &idx->e[i];
		const char *why = NULL;

		if (!e->has_offset)
			why = "it has no offset (every entry of a version 1 backup has one)";
		else if (e->ref[0])
			why = "it names another backup (ref), which a version 1 backup cannot";
		else if (e->offset >= total || total - e->offset < TAR_BLOCK)
			why = "its offset lies past the end of the data";
		else if (i && e->offset <= idx->e[i - 1].offset)
			why = "its offset is not after the entry before it";
		else if (e->type != 'f' && e->type != 'h' && e->size)
			why = "only a file has a size";
		else if (e->type == 'f' && !e->sparse &&
			 e->size > total - e->offset - TAR_BLOCK)
			why = "its size is more than the data after it";
		else if (e->type == 'f' && !e->sparse && (data += e->size) > total)
			why = "it and the files before it hold more than the data";
		if (why)
			return err_set(err, -EBADMSG,
				       "backup %s: index entry %s (offset %llu, size %llu) is corrupt: %s (the data holds %llu bytes); the stored backup is corrupt or forged",
				       backup_id, UTIL_ESC(e->path),
				       (unsigned long long)e->offset,
				       (unsigned long long)e->size, why,
				       (unsigned long long)total);
	}
	return 0;
}

/*
 * Holes of sparse files are hashed as zeros: at about 10 GB/s, a map
 * claiming a petabyte would take a day.  One restore hashes at most this
 * much (SNAPSHIP_RESTORE_MAX_HOLES=BYTES overrides it, for a trusted store
 * holding larger sparse files).
 */
#define HOLES_MAX (256ull << 30)

uint64_t claims_holes_max(void)
{
	const char *env = getenv("SNAPSHIP_RESTORE_MAX_HOLES");
	char *end;

	if (env && *env) {
		unsigned long long v;

		errno = 0;
		v = strtoull(env, &end, 10);
		if (!*end && !errno)
			return v;
		log_warn("SNAPSHIP_RESTORE_MAX_HOLES=%s: not a number of bytes; using %llu",
			 env, HOLES_MAX);
	}
	return HOLES_MAX;
}

static char type_letter(struct archive_entry *ae)
{
	if (archive_entry_hardlink(ae))
		return PACK_HARDLINK;
	switch (archive_entry_filetype(ae)) {
	case AE_IFREG: return PACK_FILE;
	case AE_IFDIR: return PACK_DIR;
	case AE_IFLNK: return PACK_SYMLINK;
	case AE_IFCHR: return PACK_CHAR;
	case AE_IFBLK: return PACK_BLOCK;
	case AE_IFIFO: return PACK_FIFO;
	default: return '?';
	}
}

static int mismatch(struct err *err, const char *backup_id, const char *path,
		    const char *field, const char *data, const char *index)
{
	return err_set(err, -EBADMSG,
		       "backup %s: %s: its %s in the data (%s) differs from the index (%s); refusing it — the stored backup is corrupt or was tampered with",
		       backup_id, path, field, data, index);
}

/*
 * The permission bits the entry gets on disk (and had when backed up): with
 * an access ACL, libarchive keeps the group entry's bits in the entry's mode,
 * while the file's group bits are the ACL's mask.
 */
static unsigned disk_perm(struct archive_entry *ae)
{
	unsigned perm = (unsigned)archive_entry_perm(ae) & 07777;
	int type, permset, tag, id;
	const char *name;

	if (archive_entry_acl_reset(ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS) <= 0)
		return perm;
	while (archive_entry_acl_next(ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, &type,
				      &permset, &tag, &id, &name) == ARCHIVE_OK)
		if (tag == ARCHIVE_ENTRY_ACL_MASK)
			perm = (perm & ~070u) | ((unsigned)permset & 7) << 3;
	return perm;
}

static bool utf8_valid(const char *s)
{
	json_t *j = json_string(s);

	json_decref(j);
	return j != NULL;
}

/* A link's target and a device's number, as the index has them. */
static int claims_link_dev(struct archive_entry *ae, char t, const char *path,
			   const struct index_entry *ie, const char *backup_id,
			   struct err *err)
{
	const char *link = NULL;
	char a[64], b[64];

	if (t == PACK_SYMLINK)
		link = archive_entry_symlink(ae);
	else if (t == PACK_HARDLINK)
		link = archive_entry_hardlink(ae);
	if ((t == PACK_SYMLINK || t == PACK_HARDLINK) &&
	    !(link && ie->link && !strcmp(link, ie->link)) &&
	    !(link && ie->link_legacy && !utf8_valid(link)))
		return mismatch(err, backup_id, path, "link target", link ? link : "none",
				ie->link ? ie->link : ie->link_legacy ? "(not UTF-8)" : "none");
	if ((t == PACK_CHAR || t == PACK_BLOCK) &&
	    (!ie->has_rdev || (uint64_t)archive_entry_rdev(ae) != ie->rdev)) {
		snprintf(a, sizeof(a), "%llu", (unsigned long long)archive_entry_rdev(ae));
		snprintf(b, sizeof(b), ie->has_rdev ? "%llu" : "none",
			 (unsigned long long)ie->rdev);
		return mismatch(err, backup_id, path, "device number", a, b);
	}
	return 0;
}

/*
 * The data's entry must be what the index says was backed up: type, mode,
 * owner, size, mtime, link target and device number.  Checked before
 * anything of the entry is written.
 */
int claims_entry(struct archive_entry *ae, const char *path,
		 const struct index_entry *ie, const char *backup_id, struct err *err)
{
	char t = type_letter(ae), a[64], b[64];
	int64_t mtime;
	uint64_t size = (uint64_t)archive_entry_size(ae);

	if (t != ie->type) {
		snprintf(a, sizeof(a), "%c", t);
		snprintf(b, sizeof(b), "%c", ie->type);
		return mismatch(err, backup_id, path, "type", a, b);
	}
	if (t == PACK_HARDLINK && archive_entry_size(ae) != 0)
		return err_set(err, -EBADMSG,
			       "backup %s: hard link %s carries %lld bytes of data, which would overwrite %s; refusing it — the stored backup was tampered with",
			       backup_id, path, (long long)archive_entry_size(ae),
			       archive_entry_hardlink(ae));
	if (disk_perm(ae) != ie->mode) {
		snprintf(a, sizeof(a), "%04o", disk_perm(ae));
		snprintf(b, sizeof(b), "%04o", (unsigned)ie->mode);
		return mismatch(err, backup_id, path, "mode", a, b);
	}
	if (archive_entry_uid(ae) != ie->uid || archive_entry_gid(ae) != ie->gid) {
		snprintf(a, sizeof(a), "%lld:%lld", (long long)archive_entry_uid(ae),
			 (long long)archive_entry_gid(ae));
		snprintf(b, sizeof(b), "%lld:%lld", (long long)ie->uid, (long long)ie->gid);
		return mismatch(err, backup_id, path, "owner", a, b);
	}
	if (t != PACK_HARDLINK && (archive_entry_size(ae) < 0 || size != ie->size)) {
		snprintf(a, sizeof(a), "%lld bytes", (long long)archive_entry_size(ae));
		snprintf(b, sizeof(b), "%llu bytes", (unsigned long long)ie->size);
		return mismatch(err, backup_id, path, "size", a, b);
	}
	if (!archive_entry_mtime_is_set(ae) ||
	    __builtin_mul_overflow((int64_t)archive_entry_mtime(ae), (int64_t)1000000000, &mtime) ||
	    __builtin_add_overflow(mtime, (int64_t)archive_entry_mtime_nsec(ae), &mtime) ||
	    mtime != ie->mtime_ns) {
		snprintf(a, sizeof(a), "%lld.%09ld s", (long long)archive_entry_mtime(ae),
			 archive_entry_mtime_nsec(ae));
		snprintf(b, sizeof(b), "%lld ns", (long long)ie->mtime_ns);
		return mismatch(err, backup_id, path, "mtime", a, b);
	}
	return claims_link_dev(ae, t, path, ie, backup_id, err);
}

/*
 * A regular file's size must fit what the data can hold before any work
 * proportional to it starts (and before the writer makes a file that
 * large): its data (the sparse map's regions, or the whole size) within
 * the stream, and its holes within what one restore hashes.
 */
int claims_file(struct archive_entry *ae, const char *path,
		const struct index_entry *ie, uint64_t d_total, uint64_t holes_done,
		const char *backup_id, struct err *err)
{
	uint64_t size = ie->size, data = 0, holes, max;
	la_int64_t off, len;

	if (archive_entry_sparse_reset(ae) > 0) {
		while (archive_entry_sparse_next(ae, &off, &len) == ARCHIVE_OK) {
			if (off < 0 || len < 0 || (uint64_t)off > size ||
			    (uint64_t)len > size - (uint64_t)off ||
			    (uint64_t)len > size - data)
				return err_set(err, -EBADMSG,
					       "backup %s: %s: its sparse map has data at byte %lld (%lld bytes), past its size of %llu bytes; refusing it — the stored backup is corrupt or was tampered with",
					       backup_id, path, (long long)off,
					       (long long)len, (unsigned long long)size);
			data += (uint64_t)len;
		}
	} else {
		data = size;
	}
	if (data > d_total)
		return err_set(err, -EBADMSG,
			       "backup %s: %s claims %llu bytes of data, more than the whole backup holds (%llu); refusing it — the stored backup is corrupt or was tampered with",
			       backup_id, path, (unsigned long long)data,
			       (unsigned long long)d_total);
	holes = size - data;
	max = claims_holes_max();
	if (holes > max || holes_done > max - holes)
		return err_set(err, -EFBIG,
			       "backup %s: %s is a sparse file of %llu bytes with %llu bytes of holes; one restore reads at most %llu bytes of holes — a store you trust with larger sparse files: set SNAPSHIP_RESTORE_MAX_HOLES=BYTES",
			       backup_id, path, (unsigned long long)size,
			       (unsigned long long)holes, (unsigned long long)max);
	return 0;
}

