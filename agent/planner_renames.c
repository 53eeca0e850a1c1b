// SPDX-License-Identifier: MIT
/*
 * The planner's pass 1 (planner_prepare, doc/incremental.md "Change
 * detection"): a metadata walk of the frozen tree merged with the parent's
 * index keeps the new paths and the parent's files that did not match by
 * path, and joins them by identity into the renames planner_plan then
 * references.
 */
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

#include "agent/index.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

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
		c = path ? planner_path_cmp(pl->cur1.path, path) : -1;
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
	rn->mtime_ns = planner_ts_ns(&st->st_mtim);
	return 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int p1_dir(struct planner *pl, int fd, const char *dpath, struct err *err);

/*
 * One entry of pass 1, dtype its directory entry's type: a path the parent
 * has needs no stat (nothing of it is kept), only a walk into it when it is
 * a directory; a new path is stat'ed (a rename candidate, or a directory).
 * DT_UNKNOWN (a file system without d_type) is stat'ed always.
 */
static int p1_entry(struct planner *pl, int dirfd, const char *name,
		    const char *path, unsigned char dtype, struct err *err)
{
	struct stat st;
	int ret, sub;
	bool dir = dtype == DT_DIR;

	ret = p1_merge(pl, path, err);
	if (ret < 0)
		return ret;
	if (!ret || dtype == DT_UNKNOWN) {
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW))
			return err_set(err, -errno, "cannot stat %s: %s", path, strerror(errno));
		dir = S_ISDIR(st.st_mode);
	}
	if (!ret && S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_size > 0) {
		ret = ren_add(pl, dirfd, name, path, &st, err);
		if (ret)
			return ret;
	}
	if (!dir)
		return 0;
	sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return err_set(err, -errno, "cannot open directory %s: %s", path, strerror(errno));
	ret = p1_dir(pl, sub, path, err);
	close(sub);
	return ret;
}

/* The entries of a directory in walk order (strcmp of names); sockets are
 * skipped as the pack walk skips them. */
static int p1_dir(struct planner *pl, int fd, const char *dpath, struct err *err)
{
	struct dirent **names = NULL;
	int n = scandirat(fd, ".", &names, NULL, name_cmp), ret = 0;

	if (n < 0)
		return err_set(err, -errno, "cannot read directory %s: %s", dpath, strerror(errno));
	for (int i = 0; i < n && !ret; i++) {
		const char *nm = names[i]->d_name;
		unsigned char dtype = names[i]->d_type;
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
		if (dtype == DT_UNKNOWN) {
			if (fstatat(fd, nm, &st, AT_SYMLINK_NOFOLLOW))
				ret = err_set(err, -errno, "cannot stat %s: %s", path, strerror(errno));
			else if (S_ISSOCK(st.st_mode))
				dtype = DT_SOCK;
		}
		if (!ret && dtype != DT_SOCK)
			ret = p1_entry(pl, fd, nm, path, dtype, err);
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
		ret = planner_pidx_check(pl, &pl->src1, err);
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
		ret = planner_pidx_open(pl, &pl->src1, &pl->rd1, err);
		if (ret)
			return err_wrap(err, "reading the index of the parent backup %s",
					pl->parent);
	}
	ret = p1_walk(pl, root, err);
	index_reader_free(pl->rd1);
	pl->rd1 = NULL;
	index_entry_clear(&pl->cur1);
	planner_pidx_close(&pl->src1);
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
	ret = planner_pidx_open(pl, &pl->src2, &pl->rd, err);
	return ret ? err_wrap(err, "reading the index of the parent backup %s", pl->parent) : 0;
}
