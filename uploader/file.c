// SPDX-License-Identifier: MIT
/*
 * The file store: objects are files under a local or NFS directory, a key
 * "a/b/c" being the file "<root>/a/b/c".
 *
 * A put writes "<dir>/.<base>.tmp-<16 hex>" and renames it onto the final
 * name after fsync, then fsyncs the directory, so a crash leaves either the
 * old object, the new one, or a temp file that list/head never show.
 * Everything is done relative to a descriptor of the root opened once, so a
 * later chdir or a rename of the path above the root does not matter.
 *
 * Keys reach this file already checked by store.c (relative, no empty, "."
 * or ".." component, at most 1024 bytes).
 */
#include "uploader/store.h"
#include "uploader/store_driver.h"

#include "common/err.h"
#include "common/util.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_TMP_TAG ".tmp-"
#define FILE_TMP_HEX 16                         /* 8 random bytes */
/* ".<base>.tmp-<hex>" must fit in NAME_MAX. */
#define FILE_BASE_MAX (NAME_MAX - 1 - (sizeof(FILE_TMP_TAG) - 1) - FILE_TMP_HEX)
#define FILE_RETRIES 8
#define FILE_DIR_MODE 0750
#define FILE_OBJ_MODE 0640

struct file_store {
	int root_fd;
	char *root;             /* absolute path, for messages */
};

struct file_writer {
	struct file_store *fs;
	int dir_fd;             /* directory the object goes into */
	int fd;                 /* the temp file; -1 once closed */
	const char *base;       /* last component of key */
	char tmp[NAME_MAX + 1]; /* temp name inside dir_fd */
	char key[];
};

/* A hint for errors of writing: what the operator can do about them. */
static const char *file_hint(int code)
{
	switch (-code) {
	case ENOSPC:
		return "; free space on that filesystem";
	case EDQUOT:
		return "; free space or raise the quota on that filesystem";
	case EIO:
		return "; check the disk or the NFS server (dmesg)";
	case EROFS:
		return "; the filesystem is read-only: remount it read-write or choose another store";
	case EACCES:
	case EPERM:
		return "; check that this user may write to the store directory";
	default:
		return "";
	}
}

static int file_io_err(const struct file_store *fs, int code, const char *what,
		       const char *key, struct err *err)
{
	return err_set(err, code, "store %s: %s %s: %s%s", fs->root, what, key,
		       err_str(code), file_hint(code));
}

static int file_no_object(const struct file_store *fs, const char *key,
			  struct err *err)
{
	return err_set(err, -ENOENT, "store %s: %s: no such object", fs->root,
		       key);
}

static bool file_is_tmp_name(const char *name)
{
	return name[0] == '.' && strstr(name, FILE_TMP_TAG);
}

static int file_open(const char *location, void **priv_ret, struct err *err)
{
	struct file_store *fs;
	int fd, ret;

	fd = open(location, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			return err_set(err, ret,
				       "store \"%s\": no such directory; create it (mkdir -p %s) or fix --to",
				       location, location);
		if (ret == -ENOTDIR)
			return err_set(err, ret,
				       "store \"%s\": not a directory; point --to at a directory",
				       location);
		return err_set(err, ret, "store \"%s\": cannot open: %s%s",
			       location, err_str(ret), file_hint(ret));
	}
	/*
	 * A store that is not writable is still fine for list and restore
	 * (a read-only NFS export); puts fail with a clear message instead.
	 */
	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		ret = err_set(err, -ENOMEM, "store \"%s\": out of memory",
			      location);
		goto out_close;
	}
	fs->root = strdup(location);
	if (!fs->root) {
		ret = err_set(err, -ENOMEM, "store \"%s\": out of memory",
			      location);
		goto out_free_fs;
	}
	fs->root_fd = fd;
	*priv_ret = fs;
	return 0;

out_free_fs:
	free(fs);
out_close:
	close(fd);
	return ret;
}

static void file_free(void *priv)
{
	struct file_store *fs = priv;

	if (!fs)
		return;
	close(fs->root_fd);
	free(fs->root);
	free(fs);
}

/* fsync a directory so a new entry in it survives a crash. */
static int file_sync_dir(int dir_fd)
{
	/* Some filesystems (FUSE, old NFS clients) cannot sync directories. */
	if (fsync(dir_fd) && errno != EINVAL && errno != EROFS)
		return -errno;
	return 0;
}

/* Remove the now-empty directories of key, deepest first, up to the root. */
static void file_prune_dirs(const struct file_store *fs, const char *key)
{
	char dir[PATH_MAX];
	char *slash;

	if (strlen(key) >= sizeof(dir))
		return;
	strcpy(dir, key);
	while ((slash = strrchr(dir, '/'))) {
		*slash = '\0';
		if (unlinkat(fs->root_fd, dir, AT_REMOVEDIR))
			break;
	}
}

/*
 * Create the directories of key (key[0..dir_len) is "a/b") and open the last
 * one into *dir_fd_ret.  New directories are synced into their parents.
 */
static int file_make_dirs(const struct file_store *fs, const char *key,
			  size_t dir_len, int *dir_fd_ret, struct err *err)
{
	char dir[PATH_MAX];
	int fd, ret;

	if (dir_len == 0) {
		fd = openat(fs->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return file_io_err(fs, -errno, "opening the directory of",
					   key, err);
		*dir_fd_ret = fd;
		return 0;
	}
	assert(dir_len < sizeof(dir));
	memcpy(dir, key, dir_len);
	dir[dir_len] = '\0';
	for (size_t i = 0; i <= dir_len; i++) {
		int parent_fd;

		if (dir[i] != '/' && dir[i] != '\0')
			continue;
		dir[i] = '\0';
		if (mkdirat(fs->root_fd, dir, FILE_DIR_MODE)) {
			ret = -errno;
			if (ret != -EEXIST)
				goto out_mkdir_failed;
		} else {
			/* Make the new entry durable in its parent. */
			char *slash = strrchr(dir, '/');

			if (slash)
				*slash = '\0';
			parent_fd = slash ? openat(fs->root_fd, dir,
						   O_RDONLY | O_DIRECTORY | O_CLOEXEC)
					  : dup(fs->root_fd);
			if (slash)
				*slash = '/';
			if (parent_fd >= 0) {
				ret = file_sync_dir(parent_fd);
				close(parent_fd);
				if (ret)
					return file_io_err(fs, ret,
							   "syncing the directory of",
							   key, err);
			}
		}
		if (i < dir_len)
			dir[i] = '/';
	}
	fd = openat(fs->root_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out_mkdir_failed;
	}
	*dir_fd_ret = fd;
	return 0;

out_mkdir_failed:
	if (ret == -ENOENT)     /* a concurrent delete pruned it: retry */
		return ret;
	if (ret == -ENOTDIR || ret == -EEXIST)
		return err_set(err, -ENOTDIR,
			       "store %s: cannot create %s: a directory it needs (in \"%s\") is an object",
			       fs->root, key, dir);
	return file_io_err(fs, ret, "creating the directory of", key, err);
}

static int file_put_begin(void *priv, const char *key, void **wpriv_ret,
			  struct err *err)
{
	struct file_store *fs = priv;
	struct file_writer *w;
	const char *slash = strrchr(key, '/');
	const char *base = slash ? slash + 1 : key;
	size_t dir_len = slash ? (size_t)(slash - key) : 0;
	unsigned char rnd[FILE_TMP_HEX / 2];
	char hex[FILE_TMP_HEX + 1];
	int ret = -ENOENT;

	if (strlen(base) > FILE_BASE_MAX)
		return err_set(err, -ENAMETOOLONG,
			       "store %s: %s: name \"%s\" is too long for a file store (at most %zu bytes)",
			       fs->root, key, base, (size_t)FILE_BASE_MAX);
	if (file_is_tmp_name(base))
		return err_set(err, -EINVAL,
			       "store %s: %s: names starting with '.' and containing \"" FILE_TMP_TAG "\" are reserved for temporary files",
			       fs->root, key);
	w = calloc(1, sizeof(*w) + strlen(key) + 1);
	if (!w)
		return err_set(err, -ENOMEM, "store %s: %s: out of memory",
			       fs->root, key);
	w->fs = fs;
	w->fd = -1;
	w->dir_fd = -1;
	strcpy(w->key, key);
	w->base = w->key + (base - key);

	/* ENOENT means a concurrent delete removed an empty directory. */
	for (int try = 0; try < FILE_RETRIES && ret == -ENOENT; try++) {
		if (w->dir_fd < 0) {
			ret = file_make_dirs(fs, key, dir_len, &w->dir_fd, err);
			if (ret)
				continue;
		}
		ret = util_random(rnd, sizeof(rnd));
		if (ret) {
			ret = err_set(err, ret,
				      "store %s: %s: no random bytes for a temp name: %s",
				      fs->root, key, err_str(ret));
			goto out_close_dir;
		}
		util_hex(rnd, sizeof(rnd), hex);
		snprintf(w->tmp, sizeof(w->tmp), ".%s" FILE_TMP_TAG "%s", base,
			 hex);
		w->fd = openat(w->dir_fd, w->tmp,
			       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (w->fd >= 0) {
			ret = 0;
			break;
		}
		ret = -errno;
		if (ret == -EEXIST) {           /* name clash: new random */
			ret = -ENOENT;
		} else if (ret == -ENOENT) {    /* directory pruned */
			close(w->dir_fd);
			w->dir_fd = -1;
		}
	}
	if (ret) {
		ret = file_io_err(fs, ret, "creating", key, err);
		goto out_close_dir;
	}
	*wpriv_ret = w;
	return 0;

out_close_dir:
	if (w->dir_fd >= 0)
		close(w->dir_fd);
	free(w);
	return ret;
}

static int file_write(void *wpriv, const void *buf, size_t len,
		      struct err *err)
{
	struct file_writer *w = wpriv;
	int ret;

	ret = util_write_all(w->fd, buf, len);
	if (ret)
		return file_io_err(w->fs, ret, "writing", w->key, err);
	return 0;
}

/* Drop the temp file and whatever directories only it needed; free w. */
static void file_put_abort(void *wpriv)
{
	struct file_writer *w = wpriv;

	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	unlinkat(w->dir_fd, w->tmp, 0);
	close(w->dir_fd);
	file_prune_dirs(w->fs, w->key);
	free(w);
}

static void file_info(const struct stat *st, struct store_obj_info *info);

static int file_put_commit(void *wpriv, struct store_obj_info *info_ret,
			   struct err *err)
{
	struct file_writer *w = wpriv;
	int fd = w->fd, ret;

	w->fd = -1;
	if (fchmod(fd, FILE_OBJ_MODE)) {
		ret = file_io_err(w->fs, -errno, "finishing", w->key, err);
		goto out_close_fd;
	}
	if (fsync(fd)) {
		ret = file_io_err(w->fs, -errno, "writing", w->key, err);
		goto out_close_fd;
	}
	if (info_ret) {
		struct stat st;

		if (fstat(fd, &st)) {
			ret = file_io_err(w->fs, -errno, "finishing", w->key, err);
			goto out_close_fd;
		}
		file_info(&st, info_ret);
	}
	/* NFS reports deferred write errors at close. */
	if (close(fd)) {
		ret = file_io_err(w->fs, -errno, "writing", w->key, err);
		goto out_abort;
	}
	if (renameat(w->dir_fd, w->tmp, w->dir_fd, w->base)) {
		ret = -errno;
		if (ret == -EISDIR || ret == -ENOTEMPTY || ret == -EEXIST)
			ret = err_set(err, -EISDIR,
				      "store %s: cannot create %s: it is a directory holding other objects",
				      w->fs->root, w->key);
		else
			ret = file_io_err(w->fs, ret, "publishing", w->key, err);
		goto out_abort;
	}
	/*
	 * The object is visible now; a failed directory sync means it might
	 * not survive a crash, so report the put as failed all the same.
	 */
	ret = file_sync_dir(w->dir_fd);
	if (ret)
		ret = file_io_err(w->fs, ret, "syncing the directory of",
				  w->key, err);
	close(w->dir_fd);
	free(w);
	return ret;

out_close_fd:
	close(fd);
out_abort:
	file_put_abort(w);
	return ret;
}

/* Open key for reading: -ENOENT (with err) unless it is a regular file. */
static int file_open_obj(const struct file_store *fs, const char *key,
			 int *fd_ret, struct stat *st, struct err *err)
{
	int fd, ret;

	fd = openat(fs->root_fd, key, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT || ret == -ENOTDIR)
			return file_no_object(fs, key, err);
		return file_io_err(fs, ret, "opening", key, err);
	}
	if (fstat(fd, st)) {
		ret = file_io_err(fs, -errno, "reading", key, err);
		close(fd);
		return ret;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return file_no_object(fs, key, err);
	}
	*fd_ret = fd;
	return 0;
}

static int file_get_range(void *priv, const char *key, uint64_t off,
			  size_t len, void *buf, size_t *got_ret,
			  struct err *err)
{
	struct file_store *fs = priv;
	char *p = buf;
	size_t done = 0;
	struct stat st;
	int fd, ret;

	*got_ret = 0;
	if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
		return err_set(err, -EINVAL,
			       "store %s: reading %s: range at %llu+%zu is out of bounds",
			       fs->root, key, (unsigned long long)off, len);
	ret = file_open_obj(fs, key, &fd, &st, err);
	if (ret)
		return ret;
	while (done < len) {
		ssize_t n = pread(fd, p + done, len - done,
				  (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = file_io_err(fs, -errno, "reading", key, err);
			goto out_close;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*got_ret = done;
out_close:
	close(fd);
	return ret;
}

static void file_info(const struct stat *st, struct store_obj_info *info)
{
	memset(info, 0, sizeof(*info));
	info->size = (uint64_t)st->st_size;
	info->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000LL +
			 st->st_mtim.tv_nsec;
}

static int file_head(void *priv, const char *key,
		     struct store_obj_info *info_ret, struct err *err)
{
	struct file_store *fs = priv;
	struct stat st;
	int ret;

	if (fstatat(fs->root_fd, key, &st, 0)) {
		ret = -errno;
		if (ret == -ENOENT || ret == -ENOTDIR)
			return file_no_object(fs, key, err);
		return file_io_err(fs, ret, "looking up", key, err);
	}
	if (!S_ISREG(st.st_mode))
		return file_no_object(fs, key, err);
	file_info(&st, info_ret);
	return 0;
}

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

/*
 * Read the entries of the directory w->key[0..key_len) whose names start
 * with match: regular files (with their info) and directories, sorted.
 */
static int file_read_dir(struct file_walk *w, size_t key_len, const char *match,
			 struct file_ent **ents_ret, size_t *n_ret)
{
	struct file_ent *ents = NULL, *nents;
	size_t n = 0, cap = 0, match_len = strlen(match);
	struct dirent *de;
	DIR *dir;
	int fd, ret = 0;

	*ents_ret = NULL;
	*n_ret = 0;
	fd = openat(w->fs->root_fd, key_len ? w->key : ".",
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		/* Gone or an object: nothing under it. */
		if (ret == -ENOENT || ret == -ENOTDIR)
			return 0;
		return file_io_err(w->fs, ret, "listing", w->key, w->err);
	}
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
		is_dir = de->d_type == DT_DIR;
		if (!is_dir) {
			if (fstatat(fd, de->d_name, &st, 0)) {
				if (errno == ENOENT)    /* deleted meanwhile */
					continue;
				ret = file_io_err(w->fs, -errno, "listing",
						  de->d_name, w->err);
				break;
			}
			is_dir = S_ISDIR(st.st_mode);
			if (!is_dir && !S_ISREG(st.st_mode))
				continue;
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

/* Walk w->key[0..key_len) (a directory, "" or ending in '/') in key order. */
static int file_walk_dir(struct file_walk *w, size_t key_len, const char *match)
{
	struct file_ent *ents;
	size_t n;
	int ret;

	ret = file_read_dir(w, key_len, match, &ents, &n);
	if (ret)
		return ret;
	for (size_t i = 0; i < n && !ret; i++) {
		size_t len = strlen(ents[i].name);

		memcpy(w->key + key_len, ents[i].name, len + 1);
		if (ents[i].is_dir) {
			w->key[key_len + len] = '/';
			w->key[key_len + len + 1] = '\0';
			ret = file_walk_dir(w, key_len + len + 1, "");
		} else {
			ret = w->fn(w->ctx, w->key, &ents[i].info);
		}
		w->key[key_len] = '\0';
	}
	file_ents_free(ents, n);
	return ret;
}

/*
 * Calls fn for every object whose key starts with prefix, in strcmp order
 * of keys.  Returns fn's value when it is nonzero (which stops the walk).
 */
static int file_list(void *priv, const char *prefix, store_list_fn fn,
		     void *ctx, struct err *err)
{
	struct file_walk *w;
	const char *slash = strrchr(prefix, '/');
	size_t dir_len = slash ? (size_t)(slash - prefix) + 1 : 0;
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
	assert(dir_len < sizeof(w->key));
	memcpy(w->key, prefix, dir_len);
	w->key[dir_len] = '\0';
	ret = file_walk_dir(w, dir_len, prefix + dir_len);
	free(w);
	return ret;
}

static int file_delete(void *priv, const char *const *keys, size_t n,
		       struct err *err)
{
	struct file_store *fs = priv;
	int ret = 0;

	for (size_t i = 0; i < n; i++) {
		if (unlinkat(fs->root_fd, keys[i], 0)) {
			int code = -errno;

			/* Not there (or a directory): no such object. */
			if (code == -ENOENT || code == -ENOTDIR ||
			    code == -EISDIR)
				continue;
			if (!ret)
				ret = file_io_err(fs, code, "deleting", keys[i],
						  err);
			continue;
		}
		file_prune_dirs(fs, keys[i]);
	}
	return ret;
}

struct file_tmp_ctx {
	struct file_store *fs;
	unsigned count;
};

static int file_unlink_tmp(void *ctx, const char *key,
			   const struct store_obj_info *info)
{
	struct file_tmp_ctx *tc = ctx;

	(void)info;
	if (unlinkat(tc->fs->root_fd, key, 0) == 0)
		tc->count++;
	return 0;
}

/*
 * Remove the temp files of puts that never committed (a writer killed
 * mid-object) in the directories under prefix.
 */
static int file_abort_incomplete(void *priv, const char *prefix,
				 unsigned *count_ret, struct err *err)
{
	struct file_tmp_ctx tc = { .fs = priv };
	struct file_walk *w = malloc(sizeof(*w));
	const char *slash = strrchr(prefix, '/');
	size_t dir_len = slash ? (size_t)(slash - prefix) + 1 : 0;
	int ret;

	if (!w)
		return err_set(err, -ENOMEM, "out of memory");
	w->fs = priv;
	w->fn = file_unlink_tmp;
	w->ctx = &tc;
	w->err = err;
	w->tmp_only = true;
	memcpy(w->key, prefix, dir_len);
	w->key[dir_len] = '\0';
	ret = file_walk_dir(w, dir_len, prefix + dir_len);
	free(w);
	if (count_ret)
		*count_ret = tc.count;
	return ret;
}

const struct store_ops store_file_ops = {
	.scheme = "file",
	.features = STORE_FEAT_RANGE | STORE_FEAT_ATOMIC_PUT,
	.open = file_open,
	.free = file_free,
	.put_begin = file_put_begin,
	.write = file_write,
	.put_commit = file_put_commit,
	.put_abort = file_put_abort,
	.get_range = file_get_range,
	.head = file_head,
	.list = file_list,
	.delete = file_delete,
	.abort_incomplete = file_abort_incomplete,
};
