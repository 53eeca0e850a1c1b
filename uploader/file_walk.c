// SPDX-License-Identifier: MIT
/*
 * The file store's walks: listing a prefix, deleting objects, removing the
 * temp files of unfinished puts and empty directories (see uploader/file.c
 * for the layout and why nothing inside the store is ever followed).
 */
#include "uploader/store.h"
#include "uploader/store_driver.h"
#include "uploader/file_priv.h"
#include "common/err.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- list ---- */

struct file_ent {
	char *name;
	bool is_dir;
	struct store_obj_info info;
};

struct file_walk {
	struct file_store *fs;
	store_list_fn fn;
	void *ctx;
	char key[PATH_MAX];     /* the directory being walked, "" or "a/b/" */
	struct err *err;
	bool tmp_only;          /* list unfinished puts' temp files instead */
	enum file_resolve how;
	int dir_fd;             /* the directory of the key fn is called for */
	store_dir_fn dir_ok;    /* non-NULL: remove the empty directories it
				 * accepts, once walked */
	void *dir_ctx;
	unsigned dirs_removed;
};

/*
 * Key order inside one directory: a directory "d" sorts as "d/" since all
 * its keys start that way ("a-b" < "a/x" although "a" < "a-b").
 */
static int file_ent_cmp(const void *a, const void *b)
{
	const struct file_ent *x = a, *y = b;
	const unsigned char *p = (const unsigned char *)x->name;
	const unsigned char *q = (const unsigned char *)y->name;
	int c1, c2;

	while (*p && *p == *q) {
		p++;
		q++;
	}
	c1 = *p ? *p : (x->is_dir ? '/' : 0);
	c2 = *q ? *q : (y->is_dir ? '/' : 0);
	return c1 - c2;
}

static void file_ents_free(struct file_ent *ents, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ents[i].name);
	free(ents);
}

/* Report w->key[0..key_len) + name as an anomaly. */
static void file_walk_anomaly(struct file_walk *w, size_t key_len,
			      const char *name, const char *what)
{
	size_t len = strlen(name);

	if (key_len + len + 1 > sizeof(w->key))
		return;
	memcpy(w->key + key_len, name, len + 1);
	file_anomaly(w->fs, w->key, what);
	w->key[key_len] = '\0';
}

/*
 * Read the entries of dir_fd (the directory w->key[0..key_len)) whose names
 * start with match: regular files (with their info) and directories,
 * sorted.  Nothing is followed: a symlink or any other kind of entry is
 * reported (file_anomaly) and left out.
 */
static int file_read_dir(struct file_walk *w, int dir_fd, size_t key_len,
			 const char *match, struct file_ent **ents_ret,
			 size_t *n_ret)
{
	struct file_ent *ents = NULL, *nents;
	size_t n = 0, cap = 0, match_len = strlen(match);
	struct dirent *de;
	DIR *dir;
	int fd, ret = 0;

	*ents_ret = NULL;
	*n_ret = 0;
	fd = dup(dir_fd);       /* closedir closes it; dir_fd is ours alone */
	if (fd < 0)
		return file_io_err(w->fs, -errno, "listing", w->key, w->err);
	dir = fdopendir(fd);
	if (!dir) {
		ret = file_io_err(w->fs, -errno, "listing", w->key, w->err);
		close(fd);
		return ret;
	}
	for (;;) {
		struct stat st;
		bool is_dir;

		errno = 0;
		de = readdir(dir);
		if (!de) {
			if (errno)
				ret = file_io_err(w->fs, -errno, "listing",
						  w->key, w->err);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    strncmp(de->d_name, match, match_len))
			continue;
		/* Keys longer than the buffer cannot be reached anyway. */
		if (key_len + strlen(de->d_name) + 2 > sizeof(w->key))
			continue;
		if (de->d_type == DT_LNK) {
			file_walk_anomaly(w, key_len, de->d_name,
					  FILE_IS_LINK);
			continue;
		}
		is_dir = de->d_type == DT_DIR;
		if (!is_dir && de->d_type != DT_REG && de->d_type != DT_UNKNOWN) {
			file_walk_anomaly(w, key_len, de->d_name,
					  FILE_NOT_OBJECT);
			continue;
		}
		if (!is_dir) {
			if (fstatat(dir_fd, de->d_name, &st,
				    AT_SYMLINK_NOFOLLOW)) {
				if (errno == ENOENT)    /* deleted meanwhile */
					continue;
				ret = file_io_err(w->fs, -errno, "listing",
						  de->d_name, w->err);
				break;
			}
			is_dir = S_ISDIR(st.st_mode);
			if (S_ISLNK(st.st_mode) ||
			    (!is_dir && !S_ISREG(st.st_mode))) {
				file_walk_anomaly(w, key_len, de->d_name,
						  S_ISLNK(st.st_mode) ?
						  FILE_IS_LINK : FILE_NOT_OBJECT);
				continue;
			}
		}
		/* objects, or with tmp_only the temp files of unfinished puts */
		if (!is_dir && file_is_tmp_name(de->d_name) != w->tmp_only)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			nents = realloc(ents, cap * sizeof(*ents));
			if (!nents) {
				ret = err_set(w->err, -ENOMEM,
					      "store %s: listing %s: out of memory",
					      w->fs->root, w->key);
				break;
			}
			ents = nents;
		}
		ents[n].name = strdup(de->d_name);
		if (!ents[n].name) {
			ret = err_set(w->err, -ENOMEM,
				      "store %s: listing %s: out of memory",
				      w->fs->root, w->key);
			break;
		}
		ents[n].is_dir = is_dir;
		if (!is_dir)
			file_info(&st, &ents[n].info);
		n++;
	}
	closedir(dir);
	if (ret) {
		file_ents_free(ents, n);
		return ret;
	}
	if (n)
		qsort(ents, n, sizeof(*ents), file_ent_cmp);
	*ents_ret = ents;
	*n_ret = n;
	return 0;
}

/*
 * The walked directory name in dir_fd (its key in w->key) goes if it is
 * empty and w->dir_ok accepts it: rmdir never follows a link (a link
 * swapped in meanwhile fails with ENOTDIR) and fails on a non-empty one.
 */
static void file_remove_empty(struct file_walk *w, int dir_fd,
			      const char *name)
{
	if (w->dir_ok(w->dir_ctx, w->key) &&
	    unlinkat(dir_fd, name, AT_REMOVEDIR) == 0)
		w->dirs_removed++;
}

/*
 * Walk dir_fd, the directory w->key[0..key_len) ("" or ending in '/'), in
 * key order.  Each subdirectory is opened relative to its parent's
 * descriptor (one name, not followed): the walk costs one open per
 * directory whatever the depth, and holds depth + 1 descriptors.
 */
static int file_walk_dir(struct file_walk *w, int dir_fd, size_t key_len,
			 const char *match, unsigned depth)
{
	struct file_ent *ents;
	size_t n;
	int ret;

	ret = file_read_dir(w, dir_fd, key_len, match, &ents, &n);
	if (ret)
		return ret;
	for (size_t i = 0; i < n && !ret; i++) {
		size_t len = strlen(ents[i].name);
		int sub_fd;

		memcpy(w->key + key_len, ents[i].name, len + 1);
		if (!ents[i].is_dir) {
			w->dir_fd = dir_fd;
			ret = w->fn(w->ctx, w->key, &ents[i].info);
		} else if (depth >= FILE_DEPTH_MAX) {
			file_anomaly(w->fs, w->key,
				     "is more than " FILE_STR(FILE_DEPTH_MAX) " directories deep; not listed (a file store holds keys of at most " FILE_STR(FILE_DEPTH_MAX) " levels)");
		} else {
			ret = file_open_dir(w->fs, dir_fd, ents[i].name, w->how,
					    &sub_fd);
			if (ret == -ELOOP || ret == -ENOTDIR) {
				/* replaced by a link or a file meanwhile */
				file_anomaly(w->fs, w->key,
					     "turned into a link or a file while being listed; not followed");
				ret = 0;
			} else if (ret == -EXDEV) {
				file_anomaly(w->fs, w->key,
					     "is a mount point; not cleaned (snapship never deletes across a mount point)");
				ret = 0;
			} else if (ret == -ENOENT) {
				ret = 0;
			} else if (ret) {
				ret = file_io_err(w->fs, ret, "listing",
						  w->key, w->err);
			} else {
				w->key[key_len + len] = '/';
				w->key[key_len + len + 1] = '\0';
				ret = file_walk_dir(w, sub_fd, key_len + len + 1,
						    "", depth + 1);
				close(sub_fd);
				w->key[key_len + len] = '\0';
				if (!ret && w->dir_ok)
					file_remove_empty(w, dir_fd, ents[i].name);
			}
		}
		w->key[key_len] = '\0';
	}
	file_ents_free(ents, n);
	return ret;
}

/*
 * Walk the keys starting with prefix: from the directory prefix names (its
 * part before the last '/'), entries whose names start with the rest.
 */
static int file_walk_prefix(struct file_walk *w, const char *prefix)
{
	const char *slash = strrchr(prefix, '/');
	size_t dir_len = slash ? (size_t)(slash - prefix) + 1 : 0;
	unsigned depth = 0;
	int dir_fd, ret;

	assert(dir_len < sizeof(w->key));
	memcpy(w->key, prefix, dir_len);
	w->key[dir_len ? dir_len - 1 : 0] = '\0';
	for (size_t i = 0; i < dir_len; i++)
		depth += prefix[i] == '/';
	ret = file_open_dir(w->fs, w->fs->root_fd, w->key, w->how, &dir_fd);
	if (dir_len)
		w->key[dir_len - 1] = '/';
	w->key[dir_len] = '\0';
	if (ret == -ENOENT || ret == -ENOTDIR)  /* nothing under it */
		return 0;
	if (ret == -ELOOP || ret == -EXDEV) {
		file_anomaly(w->fs, w->key, ret == -ELOOP ? FILE_UNDER_LINK :
			     "lies on another filesystem mounted inside the store; not cleaned (snapship never deletes across a mount point)");
		return 0;
	}
	if (ret)
		return file_io_err(w->fs, ret, "listing", w->key, w->err);
	ret = file_walk_dir(w, dir_fd, dir_len, prefix + dir_len, depth);
	close(dir_fd);
	return ret;
}

/*
 * Calls fn for every object whose key starts with prefix, in strcmp order
 * of keys.  Returns fn's value when it is nonzero (which stops the walk).
 */
int file_list(void *priv, const char *prefix, store_list_fn fn,
		     void *ctx, struct err *err)
{
	struct file_walk *w;
	int ret;

	w = malloc(sizeof(*w));
	if (!w)
		return err_set(err, -ENOMEM, "store %s: listing: out of memory",
			       ((struct file_store *)priv)->root);
	w->fs = priv;
	w->fn = fn;
	w->ctx = ctx;
	w->err = err;
	w->tmp_only = false;
	w->how = FILE_READ;
	w->dir_ok = NULL;
	ret = file_walk_prefix(w, prefix);
	free(w);
	return ret;
}

/* Delete regular files only, never through a link or across a mount. */
int file_delete(void *priv, const char *const *keys, size_t n,
		       struct err *err)
{
	struct file_store *fs = priv;
	int ret = 0;

	for (size_t i = 0; i < n; i++) {
		const char *base;
		struct stat st;
		int dir_fd, code;

		code = file_open_parent(fs, keys[i], FILE_NO_XDEV, &dir_fd,
					&base);
		if (!code) {
			if (fstatat(dir_fd, base, &st, AT_SYMLINK_NOFOLLOW))
				code = -errno;
			else if (!S_ISREG(st.st_mode))
				code = -ENOENT; /* not an object */
			else if (unlinkat(dir_fd, base, 0))
				code = -errno;
			close(dir_fd);
		}
		/* Not there (or a directory): no such object. */
		if (code == -ENOENT || code == -ENOTDIR || code == -EISDIR)
			continue;
		if (code && !ret) {
			if (code == -ELOOP || code == -EXDEV)
				ret = file_refused(fs, code, "deleting",
						   keys[i], err);
			else
				ret = file_io_err(fs, code, "deleting",
						  keys[i], err);
		}
		if (!code)
			file_prune_dirs(fs, keys[i]);
	}
	return ret;
}

struct file_tmp_ctx {
	struct file_walk *w;
	unsigned count;
};

/* An exact temp name of a regular file in w->dir_fd: never a link. */
static int file_unlink_tmp(void *ctx, const char *key,
			   const struct store_obj_info *info)
{
	struct file_tmp_ctx *tc = ctx;
	const char *slash = strrchr(key, '/');
	const char *base = slash ? slash + 1 : key;
	struct stat st;

	(void)info;
	if (!file_is_tmp_name(base) ||
	    fstatat(tc->w->dir_fd, base, &st, AT_SYMLINK_NOFOLLOW) ||
	    !S_ISREG(st.st_mode))
		return 0;
	if (unlinkat(tc->w->dir_fd, base, 0) == 0)
		tc->count++;
	return 0;
}

/*
 * Remove the temp files of puts that never committed (a writer killed
 * mid-object) in the directories under prefix: regular files named exactly
 * as put_begin names them, found without following links or crossing
 * mount points.
 */
int file_abort_incomplete(void *priv, const char *prefix,
				 unsigned *count_ret, struct err *err)
{
	struct file_walk *w = malloc(sizeof(*w));
	struct file_tmp_ctx tc = { .w = w };
	int ret;

	if (!w)
		return err_set(err, -ENOMEM, "store %s: cleaning: out of memory",
			       ((struct file_store *)priv)->root);
	w->fs = priv;
	w->fn = file_unlink_tmp;
	w->ctx = &tc;
	w->err = err;
	w->tmp_only = true;
	w->how = FILE_NO_XDEV;
	w->dir_ok = NULL;
	ret = file_walk_prefix(w, prefix);
	free(w);
	if (count_ret)
		*count_ret = tc.count;
	return ret;
}

static int file_skip_obj(void *ctx, const char *key,
			 const struct store_obj_info *info)
{
	(void)ctx, (void)key, (void)info;
	return 0;
}

/*
 * Remove the empty directories under prefix that dir_ok accepts: the walk
 * of abort_incomplete (no link followed, no mount point crossed), each
 * directory tried once its own entries are walked.
 */
int file_remove_empty_dirs(void *priv, const char *prefix,
				  store_dir_fn dir_ok, void *ctx,
				  unsigned *count_ret, struct err *err)
{
	struct file_walk *w = malloc(sizeof(*w));
	int ret;

	if (!w)
		return err_set(err, -ENOMEM, "store %s: cleaning: out of memory",
			       ((struct file_store *)priv)->root);
	w->fs = priv;
	w->fn = file_skip_obj;
	w->ctx = NULL;
	w->err = err;
	w->tmp_only = true;
	w->how = FILE_NO_XDEV;
	w->dir_ok = dir_ok;
	w->dir_ctx = ctx;
	w->dirs_removed = 0;
	ret = file_walk_prefix(w, prefix);
	if (count_ret)
		*count_ret = w->dirs_removed;
	free(w);
	return ret;
}
