// SPDX-License-Identifier: MIT
/*
 * The packer's walker (stream/pack_priv.h): directories read in name
 * order, each entry lstat'ed (or its metadata taken from the planner),
 * asked of the planner, hard links joined, and queued for the reader and
 * the packer (pack.c, pack_read.c).
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
#include <xxhash.h>
#include "common/err.h"
#include "common/fault.h"
#include "common/log.h"

static char *join_path(const char *dir, const char *name)
{
	char *s;

	if (strcmp(dir, ".") == 0)
		return strdup(name);
	if (asprintf(&s, "%s/%s", dir, name) < 0)
		return NULL;
	return s;
}

void pk_pent_free(struct pent *e)
{
	if (!e)
		return;
	if (e->fd >= 0)
		close(e->fd);
	free(e->path);
	free(e->reg);
	free(e->meta_link);
	free(e->meta_xa);
	pk_blk_free(e->blk);
	free(e);
}

/* ------------------------------------------------------------ hard links */

static const char *links_lookup_or_add(struct packer *p, const struct pent *e,
				       int *ret)
{
	*ret = 0;
	for (size_t i = 0; i < p->nlinks; i++) /* only multiply-linked files */
		if (p->links[i].ino == e->st.st_ino && p->links[i].dev == e->st.st_dev)
			return p->links[i].path;
	if (p->nlinks == p->links_cap) {
		size_t cap = p->links_cap ? p->links_cap * 2 : 64;
		struct linkent *n = realloc(p->links, cap * sizeof(*n));

		if (!n) {
			*ret = -ENOMEM;
			return NULL;
		}
		p->links = n;
		p->links_cap = cap;
	}
	p->links[p->nlinks].dev = e->st.st_dev;
	p->links[p->nlinks].ino = e->st.st_ino;
	p->links[p->nlinks].path = strdup(e->path);
	if (!p->links[p->nlinks].path) {
		*ret = -ENOMEM;
		return NULL;
	}
	p->nlinks++;
	return NULL;
}

/* ---------------------------------------------------------------- walker */

uint64_t pk_igen(int fd)
{
	unsigned int gen = 0;   /* the kernel writes an int, whatever the macro says */

	if (ioctl(fd, FS_IOC_GETVERSION, &gen))
		return 0;
	return gen;
}

/* Find the data regions of a file that may have holes. */

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Read every name of d (but "." and "..") into df, sorted in byte order:
 * the walk order does not depend on the order of creation (btrfs readdir),
 * so two walks merge by path.  0 or -errno (errno-style, the caller says
 * what failed).
 */
static int read_names(DIR *d, struct dirframe *df)
{
	size_t used = 0, cap = 0, *offs = NULL, n = 0, ocap = 0;
	struct dirent *de;
	int ret = 0;

	for (;;) {
		size_t len;

		errno = 0;
		de = readdir(d);
		if (!de) {
			ret = -errno;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		len = strlen(de->d_name) + 1;
		if (used + len > cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *nb;

			while (ncap < used + len)
				ncap *= 2;
			nb = realloc(df->buf, ncap);
			if (!nb) {
				ret = -ENOMEM;
				break;
			}
			df->buf = nb;
			cap = ncap;
		}
		if (n == ocap) {
			size_t ncap = ocap ? ocap * 2 : 64;
			size_t *no = realloc(offs, ncap * sizeof(*no));

			if (!no) {
				ret = -ENOMEM;
				break;
			}
			offs = no;
			ocap = ncap;
		}
		memcpy(df->buf + used, de->d_name, len);
		offs[n++] = used;
		used += len;
	}
	if (!ret && n) {
		/* offsets until the buffer stops moving, then pointers */
		df->names = malloc(n * sizeof(*df->names));
		if (!df->names) {
			ret = -ENOMEM;
		} else {
			for (size_t i = 0; i < n; i++)
				df->names[i] = df->buf + offs[i];
			qsort(df->names, n, sizeof(*df->names), cmp_name);
			df->n = n;
		}
	}
	free(offs);
	return ret;
}

static void dirframe_clear(struct dirframe *df)
{
	if (df->dir)
		closedir(df->dir);
	free(df->path);
	free(df->buf);
	free(df->names);
	memset(df, 0, sizeof(*df));
}

static int walk_push(struct packer *p, int dirfd, const char *name,
		     const char *relpath)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirframe *df;
	DIR *d;
	int ret;

	if (fd < 0)
		return pk_fail(p, -errno, "cannot open directory %s/%s: %s",
			       p->root, relpath, strerror(errno));
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return pk_fail(p, -errno, "cannot read directory %s/%s: %s",
			       p->root, relpath, strerror(errno));
	}
	if (p->depth == p->stack_cap) {
		unsigned cap = p->stack_cap ? p->stack_cap * 2 : 16;
		struct dirframe *n = realloc(p->stack, cap * sizeof(*n));

		if (!n) {
			closedir(d);
			return pk_fail(p, -ENOMEM, "out of memory");
		}
		p->stack = n;
		p->stack_cap = cap;
	}
	df = &p->stack[p->depth];
	memset(df, 0, sizeof(*df));
	df->dir = d;
	df->path = strdup(relpath);
	if (!df->path) {
		dirframe_clear(df);
		return pk_fail(p, -ENOMEM, "out of memory");
	}
	ret = read_names(d, df);
	if (ret) {
		dirframe_clear(df);
		return ret == -ENOMEM ? pk_fail(p, ret, "out of memory") :
		       pk_fail(p, ret, "cannot read directory %s/%s: %s",
			       p->root, relpath, strerror(-ret));
	}
	p->depth++;
	return 0;
}

void pk_walk_pop(struct packer *p)
{
	p->depth--;
	dirframe_clear(&p->stack[p->depth]);
}

/* The planner's metadata of e kept in e (its memory lasts one call). */
static int meta_copy(struct packer *p, struct pent *e, const struct pack_meta *m)
{
	size_t sz = m->nxattr * sizeof(*e->meta_xa);
	char *q;

	if (m->link && !(e->meta_link = strdup(m->link)))
		return pk_fail(p, -ENOMEM, "out of memory");
	for (size_t i = 0; i < m->nxattr; i++)
		sz += strlen(m->xattr[i].name) + 1 + m->xattr[i].len;
	if (m->nxattr) {
		e->meta_xa = malloc(sz);
		if (!e->meta_xa)
			return pk_fail(p, -ENOMEM, "out of memory");
		q = (char *)(e->meta_xa + m->nxattr);
		for (size_t i = 0; i < m->nxattr; i++) {
			size_t nl = strlen(m->xattr[i].name) + 1;

			e->meta_xa[i].name = memcpy(q, m->xattr[i].name, nl);
			q += nl;
			e->meta_xa[i].value = m->xattr[i].len ? memcpy(q, m->xattr[i].value,
								       m->xattr[i].len) : q;
			e->meta_xa[i].len = m->xattr[i].len;
			q += m->xattr[i].len;
		}
	}
	e->meta_nxa = m->nxattr;
	e->meta_xattrs = m->xattrs;
	e->meta_igen = m->igen;
	e->meta_known = true;
	return 0;
}

/* Produce the next entry into the ring.  1 = produced, 0 = done, <0 error. */
/* Ask the planner about e (walk order); it may point e at older content. */
static int walk_plan(struct packer *p, struct pent *e)
{
	struct pack_meta meta = { 0 };
	struct pack_plan_entry pe = {
		.path = e->path, .st = &e->st, .rootfd = p->rootfd, .packer = p,
		.content = S_ISREG(e->st.st_mode) && !e->hardlink && e->st.st_size > 0,
		.meta = &meta,
	};
	int ret;

	if (!p->o.plan)
		return 0;
	ret = p->o.plan(p->o.plan_ctx, &pe, &e->ref, p->err);
	if (ret < 0)
		return p->error = ret;
	if (meta.known && !e->hardlink) {
		int r = meta_copy(p, e, &meta);

		if (r)
			return r;
	}
	if (!pe.content)
		return 0;
	if (ret > 0 && e->ref.blocks && !p->o.blocks)
		ret = 0;   /* blocks not asked for: read whole */
	/* the planner's blocks live until its next call: copied now */
	if (ret > 0 && e->ref.blocks && p->o.blocks) {
		int r = pk_blk_planned(p, e, e->ref.blocks, ret == 2);

		if (r)
			return r;
	}
	e->ref.blocks = NULL;
	e->is_ref = ret == 1;
	if (e->is_ref)
		e->sparse = e->ref.sparse;
	return 0;
}

int pk_walk_one(struct packer *p)
{
	struct pent *e;
	int ret;

	if (!p->root_done) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return pk_fail(p, -ENOMEM, "out of memory");
		e->fd = -1;
		e->path = strdup(".");
		if (!e->path || fstat(p->rootfd, &e->st)) {
			pk_pent_free(e);
			return pk_fail(p, -errno, "cannot stat %s: %s", p->root,
				       strerror(errno));
		}
		ret = walk_push(p, p->rootfd, ".", ".");
		if (ret) {
			pk_pent_free(e);
			return ret;
		}
		e->igen = pk_igen(p->rootfd);
		p->root_done = true;
		ret = walk_plan(p, e);
		if (ret) {
			pk_pent_free(e);
			return ret;
		}
		p->q[p->qwalk++ % QCAP] = e;
		return 1;
	}
	while (p->depth) {
		struct dirframe *df = &p->stack[p->depth - 1];
		const char *name;

		if (df->next == df->n) {
			pk_walk_pop(p);
			continue;
		}
		name = df->names[df->next++];
		e = calloc(1, sizeof(*e));
		if (!e)
			return pk_fail(p, -ENOMEM, "out of memory");
		e->fd = -1;
		e->path = join_path(df->path, name);
		if (!e->path) {
			free(e);
			return pk_fail(p, -ENOMEM, "out of memory");
		}
		if (fstatat(dirfd(df->dir), name, &e->st, AT_SYMLINK_NOFOLLOW)) {
			ret = pk_fail(p, -errno, "cannot stat %s/%s: %s", p->root,
				      e->path, strerror(errno));
			pk_pent_free(e);
			return ret;
		}
		if (S_ISSOCK(e->st.st_mode)) {
			log_warn("skipping socket %s/%s (sockets cannot be archived)",
				 p->root, e->path);
			p->stats.skipped++;
			pk_pent_free(e);
			continue;
		}
		if (S_ISREG(e->st.st_mode) && e->st.st_nlink > 1) {
			const char *first = links_lookup_or_add(p, e, &ret);

			if (ret) {
				pk_pent_free(e);
				return pk_fail(p, ret, "out of memory");
			}
			e->hardlink = (char *)first;   /* owned by p->links */
		}
		if (S_ISDIR(e->st.st_mode)) {
			ret = walk_push(p, dirfd(df->dir), name, e->path);
			if (ret) {
				pk_pent_free(e);
				return ret;
			}
			e->igen = pk_igen(dirfd(p->stack[p->depth - 1].dir));
		}
		ret = walk_plan(p, e);
		if (ret) {
			pk_pent_free(e);
			return ret;
		}
		p->q[p->qwalk++ % QCAP] = e;
		return 1;
	}
	p->walk_done = true;
	return 0;
}

/* --------------------------------------------------------------- packer */
