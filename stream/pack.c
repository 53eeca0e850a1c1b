// SPDX-License-Identifier: MIT
/*
 * Walker + io_uring reader + pax packer.  Everything runs on the caller's
 * thread: the kernel does the reading in the background while we pack.
 *
 * Entries flow through a ring with three cursors, pack <= read <= walk:
 * the walker stats entries ahead, the reader opens them and assigns read
 * chunks in a ring-shaped arena (registered with io_uring once), and the
 * packer writes headers and consumes chunks strictly in order.
 */
#include "stream/pack.h"
#include "stream/pack_priv.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/err.h"
#include "common/fault.h"
#include "common/log.h"

static const unsigned char zeros[65536];

double pk_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int pk_fail(struct packer *p, int code, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!p->error)
		p->error = err_set(p->err, code, "%s", msg);
	return p->error;
}

int pk_find_regions(struct packer *p, struct pent *e, int fd)
{
	uint64_t size = (uint64_t)e->st.st_size;
	off_t data, hole = 0;
	unsigned cap = 0;

	/* a file without fewer allocated blocks than its size has no holes */
	if ((uint64_t)e->st.st_blocks * 512 >= size) {
		e->reg = malloc(sizeof(*e->reg));
		if (!e->reg)
			return -ENOMEM;
		e->reg[0].off = 0;
		e->reg[0].len = size;
		e->nreg = size ? 1 : 0;
		return 0;
	}
	for (;;) {
		data = lseek(fd, hole, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break;
			return pk_fail(p, -errno, "%s/%s: cannot map holes: %s",
				       p->root, e->path, strerror(errno));
		}
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return pk_fail(p, -errno, "%s/%s: cannot map holes: %s",
				       p->root, e->path, strerror(errno));
		if ((uint64_t)hole > size)
			hole = (off_t)size;
		if (hole <= data)
			break;
		if (e->nreg == cap) {
			struct region *n;

			cap = cap ? cap * 2 : 8;
			n = realloc(e->reg, cap * sizeof(*n));
			if (!n)
				return -ENOMEM;
			e->reg = n;
		}
		e->reg[e->nreg].off = (uint64_t)data;
		e->reg[e->nreg].len = (uint64_t)(hole - data);
		e->nreg++;
		if ((uint64_t)hole >= size)
			break;
	}
	/* e.g. inline extents report few blocks but have no holes */
	e->sparse = !(e->nreg == 1 && e->reg[0].off == 0 && e->reg[0].len == size);
	return 0;
}

static la_ssize_t tar_write_cb(struct archive *a, void *ctx, const void *buf,
			       size_t len)
{
	struct packer *p = ctx;
	struct err e = { 0 };
	int ret;

	(void)a;
	/*
	 * After a failure the stream is dropped, not refused: a write error
	 * makes libarchive's archive fatal, and a fatal archive is freed
	 * without closing its output (a leak).  The packer sees p->error at
	 * its next step and stops.
	 */
	if (p->error)
		return (la_ssize_t)len;
	ret = p->out(p->out_ctx, buf, len, &e);
	if (ret) {
		p->error = ret;
		if (p->err && !p->err->code)
			*p->err = e;
		return (la_ssize_t)len;
	}
	p->pos += len;
	return (la_ssize_t)len;
}

static int feed(struct packer *p, XXH3_state_t *h, const void *buf, size_t len,
		const struct pent *e)
{
	while (len) {
		la_ssize_t n = archive_write_data(p->a, buf, len);

		if (p->error)
			return p->error;
		if (n <= 0) {
			if (p->error)
				return p->error;
			return pk_fail(p, -EIO, "archiving %s: %s", e->path,
				       archive_error_string(p->a));
		}
		XXH3_128bits_update(h, buf, (size_t)n);
		buf = (const unsigned char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

static int feed_zeros(struct packer *p, XXH3_state_t *h, uint64_t n,
		      const struct pent *e)
{
	while (n) {
		size_t k = n > sizeof(zeros) ? sizeof(zeros) : (size_t)n;
		int ret = feed(p, h, zeros, k, e);

		if (ret)
			return ret;
		n -= k;
	}
	return 0;
}

void pk_progress(struct packer *p, bool force)
{
	double now;

	if (!p->o.progress)
		return;
	now = pk_now();
	if (!force && now - p->t_progress < 0.2)
		return;
	p->t_progress = now;
	p->o.progress(p->o.progress_ctx, p->stats.logical_bytes, p->stats.entries);
}

static int pack_data(struct packer *p, struct pent *e, XXH3_state_t *h)
{
	uint64_t size = (uint64_t)e->st.st_size, at = 0;
	struct chunk *c;
	int ret;

	/* an empty file has no chunks: the reader skips it and never marks it
	 * assigned, so waiting for that would spin when nothing follows it */
	if (!pk_needs_data(e))
		return 0;
	while ((ret = pk_next_chunk(p, e, &c)) > 0) {
		const unsigned char *data = p->arena + c->apos % p->o.window;

		if (c->off > at) {
			ret = feed_zeros(p, h, c->off - at, e);
			if (ret)
				return ret;
			at = c->off;
		}
		ret = feed(p, h, data, c->len, e);
		if (ret)
			return ret;
		if (e->blk)
			pk_blk_hash(e->blk, size, c->off, data, c->len);
		at += c->len;
		ret = pk_chunk_done(p, c);
		if (ret)
			return ret;
		pk_progress(p, false);
	}
	if (ret)
		return ret;
	if (at < size) {
		ret = feed_zeros(p, h, size - at, e);
		if (ret)
			return ret;
	}
	return 0;
}

static enum pack_type entry_type(const struct pent *e)
{
	switch (e->st.st_mode & S_IFMT) {
	case S_IFDIR: return PACK_DIR;
	case S_IFLNK: return PACK_SYMLINK;
	case S_IFCHR: return PACK_CHAR;
	case S_IFBLK: return PACK_BLOCK;
	case S_IFIFO: return PACK_FIFO;
	default: return e->hardlink ? PACK_HARDLINK : PACK_FILE;
	}
}

static int xa_add(struct packer *p, const char *name, const void *value,
		  size_t len)
{
	if (p->nxa == p->xa_cap) {
		size_t cap = p->xa_cap ? p->xa_cap * 2 : 16;
		struct pack_xattr *n = realloc(p->xa, cap * sizeof(*n));

		if (!n)
			return pk_fail(p, -ENOMEM, "out of memory");
		p->xa = n;
		p->xa_cap = cap;
	}
	p->xa[p->nxa].name = name;
	p->xa[p->nxa].value = value;
	p->xa[p->nxa].len = len;
	p->nxa++;
	return 0;
}

/*
 * The entry's extended attributes into p->xa: what libarchive read (the
 * pax header's SCHILY.xattr) and, since libarchive turns POSIX ACLs into
 * its own ACL records, their raw system.posix_acl_* values read again.
 * Valid until the next entry.
 */
static int collect_xattrs(struct packer *p, struct archive_entry *ae,
			  const char *src)
{
	static const char *const acl_names[2] = {
		"system.posix_acl_access", "system.posix_acl_default",
	};
	static const int acl_types[2] = {
		ARCHIVE_ENTRY_ACL_TYPE_ACCESS, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT,
	};
	const char *name;
	const void *value;
	size_t len;
	int ret;

	p->nxa = 0;
	archive_entry_xattr_reset(ae);
	while (archive_entry_xattr_next(ae, &name, &value, &len) == ARCHIVE_OK) {
		ret = xa_add(p, name, value, len);
		if (ret)
			return ret;
	}
	for (int i = 0; i < 2; i++) {
		char *buf;
		ssize_t n;

		if (archive_entry_acl_count(ae, acl_types[i]) <= 0)
			continue;
		if (!p->acl_buf && !(p->acl_buf = malloc(2 * (size_t)XATTR_SIZE_MAX)))
			return pk_fail(p, -ENOMEM, "out of memory");
		buf = p->acl_buf + (size_t)i * XATTR_SIZE_MAX;
		n = lgetxattr(src, acl_names[i], buf, XATTR_SIZE_MAX);
		if (n < 0) {
			if (errno == ENODATA || errno == ENOTSUP)
				continue;   /* a mode-only ACL: the mode says it */
			return pk_fail(p, -errno, "cannot read %s of %s: %s",
				       acl_names[i], src, strerror(errno));
		}
		ret = xa_add(p, acl_names[i], buf, (size_t)n);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * A descriptor of e for its metadata when the reader has none (a regular
 * file not read — referenced, empty, a later hard link — or a directory):
 * libarchive reads the flags, ACLs and xattrs through it and the file's
 * generation comes from it, one open instead of libarchive's (by the whole
 * path) plus one more for the generation.  -1 when it cannot be opened:
 * libarchive then opens by path as before, and the generation is 0.
 */
static int meta_fd(struct packer *p, const struct pent *e)
{
	if (e->fd >= 0 || !(S_ISREG(e->st.st_mode) || S_ISDIR(e->st.st_mode)))
		return -1;
	return openat(p->rootfd, e->path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
}

/* Is e written to the tar?  Always, but in content_only mode only the
 * regular files whose content is packed (not referenced, not empty). */
static bool in_tar(const struct packer *p, const struct pent *e)
{
	return !p->o.content_only || pk_needs_data(e);
}

/* Are e's link, xattrs and generation the planner's (pack_meta)?  Only
 * for an entry not in the tar: the tar's headers are read from the file. */
static bool from_plan(const struct packer *p, const struct pent *e)
{
	return e->meta_known && !in_tar(p, e);
}

/* What on_entry is told of e, packed (offset and checksum already in). */
static void fill_info(const struct packer *p, const struct pent *e,
		      struct archive_entry *ae, struct pack_entry_info *info)
{
	info->path = e->path;
	info->type = entry_type(e);
	info->mode = e->st.st_mode & 07777;
	info->uid = e->st.st_uid;
	info->gid = e->st.st_gid;
	info->size = S_ISREG(e->st.st_mode) ? (uint64_t)e->st.st_size : 0;
	info->mtime_ns = (int64_t)e->st.st_mtim.tv_sec * 1000000000LL + e->st.st_mtim.tv_nsec;
	info->rdev = e->st.st_rdev;
	if (from_plan(p, e)) {
		info->link = e->meta_link;
		info->xattrs = e->meta_xattrs;
		info->xattr = e->meta_xa;
		info->nxattr = e->meta_nxa;
	} else {
		info->link = e->hardlink ? e->hardlink : archive_entry_symlink(ae);
		info->xattrs = archive_entry_xattr_count(ae) > 0 ||
			       archive_entry_acl_count(ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS |
							   ARCHIVE_ENTRY_ACL_TYPE_DEFAULT) > 0;
		info->xattr = p->xa;
		info->nxattr = p->nxa;
	}
	info->sparse = e->sparse;
	info->ino = (uint64_t)e->st.st_ino;
	info->igen = e->igen;
	info->ctime_ns = (int64_t)e->st.st_ctim.tv_sec * 1000000000LL + e->st.st_ctim.tv_nsec;
}

/* The tar entry of e (header, content, checksum into info). */
static int write_entry(struct packer *p, struct pent *e, struct archive_entry *ae,
		       const char *src, struct pack_entry_info *info)
{
	XXH3_state_t h;
	int ret;

	if (e->hardlink) {
		archive_entry_copy_hardlink(ae, e->hardlink);
		archive_entry_set_size(ae, 0);
	} else if (e->sparse) {
		for (unsigned i = 0; i < e->nreg; i++)
			archive_entry_sparse_add_entry(ae, (la_int64_t)e->reg[i].off,
						       (la_int64_t)e->reg[i].len);
		if (!e->nreg || e->reg[e->nreg - 1].off + e->reg[e->nreg - 1].len <
				(uint64_t)e->st.st_size)
			archive_entry_sparse_add_entry(ae, e->st.st_size, 0);
	}

	info->offset = p->pos;
	if (archive_write_header(p->a, ae) < ARCHIVE_WARN || p->error) {
		if (p->error)
			return p->error;
		return pk_fail(p, -EIO, "archiving %s: %s", src, archive_error_string(p->a));
	}
	XXH3_128bits_reset(&h);
	if (S_ISREG(e->st.st_mode) && !e->hardlink) {
		ret = pack_data(p, e, &h);
		if (ret)
			return ret;
		info->has_sum = true;
		XXH128_canonicalFromHash((XXH128_canonical_t *)info->xxh3,
					 XXH3_128bits_digest(&h));
	}
	if (archive_write_finish_entry(p->a) < ARCHIVE_WARN || p->error) {
		if (p->error)
			return p->error;
		return pk_fail(p, -EIO, "archiving %s: %s", src, archive_error_string(p->a));
	}
	return 0;
}

/* e's location and checksum when it is not in the tar. */
static void entry_no_tar(const struct pent *e, struct pack_entry_info *info)
{
	info->no_offset = true;
	if (e->is_ref) {
		info->no_offset = false;
		info->ref = e->ref.id;
		info->offset = e->ref.offset;
		info->has_sum = true;
		memcpy(info->xxh3, e->ref.xxh3, 16);
	} else if (S_ISREG(e->st.st_mode) && !e->hardlink) {
		/* empty */
		info->has_sum = true;
		XXH128_canonicalFromHash((XXH128_canonical_t *)info->xxh3,
					 XXH3_128bits(NULL, 0));
	}
}

/* e's metadata beyond its lstat, read from the file: link, flags, ACLs and
 * xattrs into ae and p->xa, its generation into e. */
static int read_meta(struct packer *p, struct pent *e, struct archive_entry *ae,
		     const char *src)
{
	int ret, mfd = meta_fd(p, e);

	/* the file flags only go into the tar (no index field): not read
	 * for an entry that is not in it */
	archive_read_disk_set_behavior(p->disk, ARCHIVE_READDISK_NO_SPARSE |
				       (in_tar(p, e) ? 0 : ARCHIVE_READDISK_NO_FFLAGS));
	ret = archive_read_disk_entry_from_file(p->disk, ae, e->fd >= 0 ? e->fd : mfd, &e->st);
	if (S_ISREG(e->st.st_mode) && e->fd < 0 && !e->igen && mfd >= 0)
		e->igen = pk_igen(mfd);
	if (mfd >= 0)
		close(mfd);
	if (ret < ARCHIVE_WARN)
		return pk_fail(p, -EIO, "reading metadata of %s: %s", src,
			       archive_error_string(p->disk));
	if (ret == ARCHIVE_WARN)
		log_warn("%s: %s", src, archive_error_string(p->disk));
	return collect_xattrs(p, ae, src);
}

static int pack_one(struct packer *p, struct pent *e, struct archive_entry *ae,
		    pack_entry_fn on_entry, void *ectx)
{
	struct pack_entry_info info = { 0 };
	char src[PATH_MAX];
	int ret;

	archive_entry_clear(ae);
	if (snprintf(src, sizeof(src), "%s/%s", p->root, e->path) >= (int)sizeof(src))
		return pk_fail(p, -ENAMETOOLONG, "path too long: %s/%s", p->root, e->path);
	archive_entry_copy_pathname(ae, e->path);
	archive_entry_copy_sourcepath(ae, src);
	if (S_ISREG(e->st.st_mode) && pk_needs_data(e) && e->fd < 0) {
		ret = pk_reader_open(p, e);
		if (ret)
			return ret;
	}
	if (from_plan(p, e)) {
		if (S_ISREG(e->st.st_mode) && !e->igen)
			e->igen = e->meta_igen;
	} else {
		ret = read_meta(p, e, ae, src);
		if (ret)
			return ret;
	}
	archive_entry_copy_sourcepath(ae, NULL);
	archive_entry_set_uname(ae, NULL);
	archive_entry_set_gname(ae, NULL);
	if (in_tar(p, e)) {
		ret = e->blk && e->blk->part ? pk_blk_write_parts(p, e, &info) :
		      write_entry(p, e, ae, src, &info);
		if (ret)
			return ret;
	} else {
		entry_no_tar(e, &info);
	}
	if (e->blk && !e->blk->part) {
		ret = pk_blk_report(p, e, &info);
		if (ret)
			return ret;
	}
	if (e->is_ref) {
		p->stats.referenced++;
		p->stats.referenced_bytes += (uint64_t)e->st.st_size;
		p->stats.logical_bytes += (uint64_t)e->st.st_size;
	}
	if (S_ISREG(e->st.st_mode) && !e->hardlink)
		p->stats.files++;
	else if (S_ISDIR(e->st.st_mode))
		p->stats.dirs++;
	else
		p->stats.others++;
	if (e->fd >= 0) {
		if (!p->o.keep_cache)
			posix_fadvise(e->fd, 0, 0, POSIX_FADV_DONTNEED);
		close(e->fd);
		e->fd = -1;
		p->open_files--;
	}

	fill_info(p, e, ae, &info);
	p->stats.entries++;
	if (on_entry) {
		ret = on_entry(ectx, &info, p->err);
		if (ret)
			return p->error = ret;
	}
	pk_blk_done(p, e);
	return 0;
}

static int packer_init(struct packer *p, const char *root,
		       const struct pack_opts *opts)
{
	struct rlimit rl;
	struct iovec iov;
	int ret;

	p->root = root;
	if (opts)
		p->o = *opts;
	if (!p->o.queue_depth)
		p->o.queue_depth = 64;
	if (!p->o.window)
		p->o.window = 4u << 20;
	if (!p->o.chunk)
		p->o.chunk = 1u << 20;
	if (p->o.chunk > p->o.window / 2)
		p->o.chunk = p->o.window / 2;
	if (p->o.ioprio_class)
		syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0,
			p->o.ioprio_class << 13);
	/* the reader keeps up to MAX_OPEN files plus the walk stack open */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	p->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->rootfd < 0)
		return pk_fail(p, -errno, "cannot open %s: %s", root, strerror(errno));
	p->arena = aligned_alloc(4096, p->o.window);
	if (!p->arena)
		return pk_fail(p, -ENOMEM, "out of memory for the read window");
	ret = io_uring_queue_init(p->o.queue_depth * 2, &p->ring, 0);
	if (ret)
		return pk_fail(p, ret, "cannot set up io_uring: %s (kernel too old, or io_uring disabled by sysctl kernel.io_uring_disabled)",
			       strerror(-ret));
	p->ring_ok = true;
	iov.iov_base = p->arena;
	iov.iov_len = p->o.window;
	ret = io_uring_register_buffers(&p->ring, &iov, 1);
	if (ret)
		return pk_fail(p, ret, "cannot register the io_uring read buffer: %s (raise RLIMIT_MEMLOCK)",
			       strerror(-ret));

	p->disk = archive_read_disk_new();
	p->a = archive_write_new();
	if (!p->disk || !p->a)
		return pk_fail(p, -ENOMEM, "out of memory");
	archive_read_disk_set_behavior(p->disk, ARCHIVE_READDISK_NO_SPARSE);
	archive_write_set_format_pax(p->a);
	/* SCHILY.xattr.* only: what GNU tar and star read, without warnings */
	archive_write_set_format_option(p->a, "pax", "xattrheader", "SCHILY");
	archive_write_set_bytes_per_block(p->a, 0);
	archive_write_set_bytes_in_last_block(p->a, 1);
	if (archive_write_open2(p->a, p, NULL, tar_write_cb, NULL, NULL) != ARCHIVE_OK)
		return p->error ? p->error :
		       pk_fail(p, -EIO, "cannot start tar stream: %s",
			       archive_error_string(p->a));
	p->t_start = pk_now();
	p->rate_due = p->t_start;
	return 0;
}

static void packer_destroy(struct packer *p)
{
	while (p->qpack < p->qwalk)
		pk_pent_free(p->q[p->qpack++ % QCAP]);
	while (p->depth)
		pk_walk_pop(p);
	free(p->stack);
	for (size_t i = 0; i < p->nlinks; i++)
		free(p->links[i].path);
	free(p->links);
	free(p->xa);
	free(p->acl_buf);
	if (p->a)
		archive_write_free(p->a);   /* after an error: no trailer needed */
	if (p->disk)
		archive_read_free(p->disk);
	if (p->ring_ok) {
		/* wait for reads still in flight before freeing their buffer */
		while (p->inflight) {
			struct io_uring_cqe *cqe;

			if (io_uring_wait_cqe(&p->ring, &cqe))
				break;
			io_uring_cqe_seen(&p->ring, cqe);
			p->inflight--;
		}
		io_uring_queue_exit(&p->ring);
	}
	free(p->arena);
	if (p->rootfd > 0)
		close(p->rootfd);
}

int pack_tree(const char *root, const struct pack_opts *opts,
	      pack_out_fn out, void *out_ctx, pack_entry_fn on_entry,
	      void *entry_ctx, struct pack_stats *stats_ret, struct err *err)
{
	struct packer *p;
	struct archive_entry *ae = NULL;
	int ret;

	if (!root || !out)
		return err_set(err, -EINVAL, "pack_tree: bad arguments");
	p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(err, -ENOMEM, "out of memory");
	p->out = out;
	p->out_ctx = out_ctx;
	p->err = err;
	p->rootfd = -1;
	ret = packer_init(p, root, opts);
	if (ret)
		goto out_destroy;
	ae = archive_entry_new2(p->a);
	if (!ae) {
		ret = pk_fail(p, -ENOMEM, "out of memory");
		goto out_destroy;
	}
	for (;;) {
		struct pent *e;

		if (p->qpack == p->qwalk) {
			ret = pk_walk_one(p);
			if (ret < 0)
				goto out_destroy;
			if (ret == 0)
				break;
		}
		ret = pk_reader_pump(p);
		if (ret)
			goto out_destroy;
		e = p->q[p->qpack % QCAP];
		ret = pack_one(p, e, ae, on_entry, entry_ctx);
		if (ret)
			goto out_destroy;
		/* the reader may still point at it only if it had no data */
		if (p->qread == p->qpack)
			p->qread++;
		p->qpack++;
		pk_pent_free(e);
	}
	if (archive_write_close(p->a) != ARCHIVE_OK || p->error) {
		ret = p->error ? p->error :
		      pk_fail(p, -EIO, "finishing tar stream: %s", archive_error_string(p->a));
		goto out_destroy;
	}
	pk_progress(p, true);
	p->stats.tar_bytes = p->pos;
	if (stats_ret)
		*stats_ret = p->stats;
	ret = 0;

out_destroy:
	archive_entry_free(ae);
	packer_destroy(p);
	free(p);
	return ret;
}
