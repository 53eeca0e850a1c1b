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
 * Others may write to a store (a fleet's NFS export), and snapship runs as
 * root: nothing found inside the store is ever followed out of it.  Paths
 * are resolved only by file_open_dir() (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, and RESOLVE_NO_XDEV for
 * deleting and cleaning); final names are then used relative to that
 * directory with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW.  A symlink or other
 * non-regular, non-directory entry is no object: list skips it with a
 * warning (file_anomaly), get and head refuse it.
 *
 * Keys reach this file already checked by store.c (relative, no empty, "."
 * or ".." component, at most 1024 bytes).
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

struct file_writer {
	struct file_store *fs;
	int dir_fd;             /* directory the object goes into */
	int fd;                 /* the temp file; -1 once closed */
	const char *base;       /* last component of key */
	char tmp[NAME_MAX + 1]; /* temp name inside dir_fd */
	char key[];
};

/* A hint for errors of writing: what the operator can do about them. */
const char *file_hint(int code)
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

int file_io_err(const struct file_store *fs, int code, const char *what,
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

/* Names put_begin refuses as keys: they look like temp files. */
static bool file_is_reserved_name(const char *name)
{
	return name[0] == '.' && strstr(name, FILE_TMP_TAG);
}

/* Exactly a temp name put_begin makes: ".<base>.tmp-<16 lowercase hex>". */
bool file_is_tmp_name(const char *name)
{
	size_t len = strlen(name), tag = sizeof(FILE_TMP_TAG) - 1;
	const char *hex;

	if (name[0] != '.' || len < 2 + tag + FILE_TMP_HEX)
		return false;
	hex = name + len - FILE_TMP_HEX;
	if (memcmp(hex - tag, FILE_TMP_TAG, tag))
		return false;
	for (size_t i = 0; i < FILE_TMP_HEX; i++)
		if (!strchr("0123456789abcdef", hex[i]))
			return false;
	return true;
}

/* A name from the store for a message: control and non-ASCII bytes as \xNN. */
static const char *file_escape(const char *s, char *buf, size_t size)
{
	size_t o = 0;

	assert(size >= 8);
	for (; *s && o + 8 < size; s++) {       /* room for "..." after */
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f || c == '\\')
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	if (*s)
		o += (size_t)snprintf(buf + o, size - o, "...");
	buf[o] = '\0';
	return buf;
}


/*
 * Report an entry of the store that is no object and is not followed: a
 * warning once per entry (the first FILE_WARN_MAX of them, then one line
 * saying the rest go unreported).  The walk goes on.
 */
void file_anomaly(struct file_store *fs, const char *key,
			 const char *what)
{
	unsigned nth = 0;       /* this entry's number; 0: reported already */
	char esc[512];

	pthread_mutex_lock(&fs->lock);
	for (unsigned i = 0; i < fs->anomalies && i < FILE_WARN_MAX; i++)
		if (!strcmp(fs->warned[i], key))
			goto out_unlock;
	if (fs->anomalies < FILE_WARN_MAX) {
		fs->warned[fs->anomalies] = strdup(key);
		if (!fs->warned[fs->anomalies])
			goto out_unlock;        /* out of memory: stay quiet */
	}
	nth = ++fs->anomalies;
out_unlock:
	pthread_mutex_unlock(&fs->lock);
	if (!nth || nth > FILE_WARN_MAX + 1)
		return;
	if (nth == FILE_WARN_MAX + 1) {
		log_warn("store %s: more entries that are not objects; not reporting them one by one",
			 fs->root);
		return;
	}
	log_warn("store %s: %s %s", fs->root, file_escape(key, esc, sizeof(esc)),
		 what);
}

/* ---- resolving names without following links ---- */

static atomic_bool file_no_openat2;     /* the kernel has none (< 5.6) */

/* The fallback: one component at a time, each with O_NOFOLLOW. */
static int file_walk_path(const struct file_store *fs, int dir_fd,
			  const char *path, enum file_resolve how, int *fd_ret)
{
	char comp[NAME_MAX + 1];
	int fd, ret;

	fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (*path) {
		const char *slash = strchr(path, '/');
		size_t n = slash ? (size_t)(slash - path) : strlen(path);
		struct stat st;
		int next;

		if (n == 0 || n > NAME_MAX) {
			ret = n ? -ENAMETOOLONG : -ENOENT;
			goto out_close;
		}
		memcpy(comp, path, n);
		comp[n] = '\0';
		next = openat(fd, comp,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			ret = -errno;
			/* O_DIRECTORY | O_NOFOLLOW on a link: ENOTDIR */
			if (ret == -ENOTDIR &&
			    !fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) &&
			    S_ISLNK(st.st_mode))
				ret = -ELOOP;
			goto out_close;
		}
		close(fd);
		fd = next;
		if ((how & FILE_NO_XDEV) &&
		    (fstat(fd, &st) || st.st_dev != fs->root_dev)) {
			ret = -EXDEV;
			goto out_close;
		}
		path += n + (slash != NULL);
	}
	*fd_ret = fd;
	return 0;

out_close:
	close(fd);
	return ret;
}

/*
 * Open the directory path ("a/b"; "" opens dir_fd anew) below dir_fd, a
 * directory of the store, into *fd_ret (the caller closes it).  Never
 * follows a link and never leaves the store; with FILE_NO_XDEV never
 * crosses a mount point.  -ELOOP: a component is a symlink; -EXDEV: a
 * mount point; -ENOENT, -ENOTDIR: no such directory.  Every path with a '/'
 * goes through here; everything else takes one name relative to its fd.
 */
int file_open_dir(const struct file_store *fs, int dir_fd,
			 const char *path, enum file_resolve how, int *fd_ret)
{
	struct open_how oh = {
		/* no O_NOFOLLOW: a trailing link must fail with ELOOP too */
		.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS |
			   ((how & FILE_NO_XDEV) ? RESOLVE_NO_XDEV : 0),
	};
	int fd, ret = -ENOSYS;

	for (int try = 0; try < FILE_RETRIES && !atomic_load(&file_no_openat2);
	     try++) {
		if (fault_hit("file.openat2", &ret))    /* tests: the fallback */
			break;
		fd = (int)syscall(SYS_openat2, dir_fd, path[0] ? path : ".",
				  &oh, sizeof(oh));
		if (fd >= 0) {
			*fd_ret = fd;
			return 0;
		}
		ret = -errno;
		if (ret != -EAGAIN)     /* EAGAIN: a rename raced the lookup */
			break;
	}
	if (ret != -ENOSYS)
		return ret;
	atomic_store(&file_no_openat2, true);
	return file_walk_path(fs, dir_fd, path, how, fd_ret);
}

/*
 * Open the directory that holds key into *dir_fd_ret; *base_ret points at
 * key's last component.
 */
int file_open_parent(const struct file_store *fs, const char *key,
			    enum file_resolve how, int *dir_fd_ret,
			    const char **base_ret)
{
	const char *slash = strrchr(key, '/');
	size_t dir_len = slash ? (size_t)(slash - key) : 0;
	char dir[PATH_MAX];

	*base_ret = slash ? slash + 1 : key;
	if (dir_len >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, key, dir_len);
	dir[dir_len] = '\0';
	return file_open_dir(fs, fs->root_fd, dir, how, dir_fd_ret);
}

/* The error of a key whose way leads through a link or a mount point. */
int file_refused(const struct file_store *fs, int code,
			const char *what, const char *key, struct err *err)
{
	char esc[512];

	file_escape(key, esc, sizeof(esc));
	if (code == -EXDEV)
		return err_set(err, code,
			       "store %s: not %s %s: it lies on another filesystem mounted inside the store; snapship never deletes across a mount point",
			       fs->root, what, esc);
	return err_set(err, -ELOOP,
		       "store %s: not %s %s: it is, or lies under, a symbolic link; links inside a store are never followed (remove the link, or find out who put it there)",
		       fs->root, what, esc);
}

/* What the user typed the location as: where a hint says to fix it. */
static const char *file_given_as(const struct store_opts *o, char *buf,
				 size_t len)
{
	if (o->given_as)
		snprintf(buf, len, "%s", o->given_as);
	else if (o->name)
		snprintf(buf, len, "[region %s] path", o->name);
	else
		snprintf(buf, len, "the store location");
	return buf;
}

static int file_open_opts(const char *location, const struct store_opts *o,
			  void **priv_ret, struct err *err)
{
	struct file_store *fs;
	struct stat st;
	char given[128];
	int fd, ret;

	fd = open(location, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			return err_set(err, ret,
				       "store \"%s\": no such directory; create it (mkdir -p %s) or fix %s",
				       location, location,
				       file_given_as(o, given, sizeof(given)));
		if (ret == -ENOTDIR)
			return err_set(err, ret,
				       "store \"%s\": not a directory; point %s at a directory",
				       location, file_given_as(o, given, sizeof(given)));
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
	if (fstat(fd, &st)) {
		ret = err_set(err, -errno, "store \"%s\": cannot open: %s",
			      location, err_str(-errno));
		goto out_free_root;
	}
	fs->root_dev = st.st_dev;
	fs->root_fd = fd;
	pthread_mutex_init(&fs->lock, NULL);
	*priv_ret = fs;
	return 0;

out_free_root:
	free(fs->root);

out_free_fs:
	free(fs);
out_close:
	close(fd);
	return ret;
}

static int file_open(const char *location, void **priv_ret, struct err *err)
{
	static const struct store_opts none;

	return file_open_opts(location, &none, priv_ret, err);
}

static void file_free(void *priv)
{
	struct file_store *fs = priv;

	if (!fs)
		return;
	close(fs->root_fd);
	for (unsigned i = 0; i < fs->anomalies && i < FILE_WARN_MAX; i++)
		free(fs->warned[i]);
	pthread_mutex_destroy(&fs->lock);
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
void file_prune_dirs(const struct file_store *fs, const char *key)
{
	char dir[PATH_MAX];
	const char *base;
	char *slash;
	int dir_fd, rc;

	if (strlen(key) >= sizeof(dir))
		return;
	strcpy(dir, key);
	while ((slash = strrchr(dir, '/'))) {
		*slash = '\0';
		if (file_open_parent(fs, dir, FILE_NO_XDEV, &dir_fd, &base))
			break;
		rc = unlinkat(dir_fd, base, AT_REMOVEDIR);
		close(dir_fd);
		if (rc)
			break;
	}
}

/*
 * Create the directories of key (key[0..dir_len) is "a/b") one at a time,
 * each relative to its parent and none through a link, and open the last
 * one into *dir_fd_ret.  New directories are synced into their parents.
 */
static int file_make_dirs(const struct file_store *fs, const char *key,
			  size_t dir_len, int *dir_fd_ret, struct err *err)
{
	const char *p = key, *end = key + dir_len;
	char comp[NAME_MAX + 1];
	int fd, next, ret;

	ret = file_open_dir(fs, fs->root_fd, "", FILE_READ, &fd);
	if (ret)
		return file_io_err(fs, ret, "opening the directory of", key, err);
	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		size_t n = slash ? (size_t)(slash - p) : (size_t)(end - p);
		bool made = false;

		if (n > NAME_MAX) {
			ret = -ENAMETOOLONG;
			goto out_failed;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (!mkdirat(fd, comp, FILE_DIR_MODE))
			made = true;
		else if (errno != EEXIST) {
			ret = -errno;
			goto out_failed;
		}
		ret = file_open_dir(fs, fd, comp, FILE_READ, &next);
		if (ret)
			goto out_failed;
		/* Make the new entry durable in its parent. */
		ret = made ? file_sync_dir(fd) : 0;
		close(fd);
		fd = next;
		if (ret) {
			close(fd);
			return file_io_err(fs, ret, "syncing the directory of",
					   key, err);
		}
		p += n + (slash != NULL);
	}
	*dir_fd_ret = fd;
	return 0;

out_failed:
	close(fd);
	if (ret == -ENOENT)     /* a concurrent delete pruned it: retry */
		return ret;
	if (ret == -ELOOP || ret == -EXDEV)
		return file_refused(fs, ret, "writing", key, err);
	if (ret == -ENOTDIR || ret == -EEXIST)
		return err_set(err, -ENOTDIR,
			       "store %s: cannot create %s: a directory it needs (\"%.*s\") is an object",
			       fs->root, key, (int)((size_t)(p - key) + strlen(comp)),
			       key);
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
	int ret = -ENOENT, depth = 0;

	if (strlen(base) > FILE_BASE_MAX)
		return err_set(err, -ENAMETOOLONG,
			       "store %s: %s: name \"%s\" is too long for a file store (at most %zu bytes)",
			       fs->root, key, base, (size_t)FILE_BASE_MAX);
	for (const char *q = key; (q = strchr(q, '/')); q++)
		if (++depth > FILE_DEPTH_MAX)
			return err_set(err, -EINVAL,
				       "store %s: %s: more than %d directory levels; a file store does not list deeper keys",
				       fs->root, key, FILE_DEPTH_MAX);
	if (file_is_reserved_name(base))
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

/*
 * Look key up without following links: its directory into *dir_fd_ret, its
 * lstat into *st.  -ENOENT (with err) unless it is a regular file; -ELOOP
 * (with err) when it is, or lies under, a symlink.
 */
static int file_lookup(const struct file_store *fs, const char *key,
		       int *dir_fd_ret, const char **base_ret, struct stat *st,
		       struct err *err)
{
	int dir_fd, ret;

	ret = file_open_parent(fs, key, FILE_READ, &dir_fd, base_ret);
	if (ret == -ENOENT || ret == -ENOTDIR)
		return file_no_object(fs, key, err);
	if (ret == -ELOOP || ret == -EXDEV)
		return file_refused(fs, ret, "reading", key, err);
	if (ret)
		return file_io_err(fs, ret, "looking up", key, err);
	if (fstatat(dir_fd, *base_ret, st, AT_SYMLINK_NOFOLLOW)) {
		ret = -errno;
		close(dir_fd);
		if (ret == -ENOENT || ret == -ENOTDIR)
			return file_no_object(fs, key, err);
		return file_io_err(fs, ret, "looking up", key, err);
	}
	if (S_ISLNK(st->st_mode)) {
		close(dir_fd);
		return file_refused(fs, -ELOOP, "reading", key, err);
	}
	if (!S_ISREG(st->st_mode)) {
		close(dir_fd);
		return file_no_object(fs, key, err);
	}
	*dir_fd_ret = dir_fd;
	return 0;
}

/* Open key for reading: -ENOENT (with err) unless it is a regular file. */
static int file_open_obj(const struct file_store *fs, const char *key,
			 int *fd_ret, struct stat *st, struct err *err)
{
	const char *base;
	int dir_fd, fd, ret;

	ret = file_lookup(fs, key, &dir_fd, &base, st, err);
	if (ret)
		return ret;
	/* O_NONBLOCK: a FIFO swapped in meanwhile must not block us. */
	fd = openat(dir_fd, base,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	ret = -errno;
	close(dir_fd);
	if (fd < 0) {
		if (ret == -ENOENT || ret == -ENOTDIR)
			return file_no_object(fs, key, err);
		if (ret == -ELOOP)
			return file_refused(fs, ret, "reading", key, err);
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

void file_info(const struct stat *st, struct store_obj_info *info)
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
	const char *base;
	struct stat st;
	int dir_fd, ret;

	ret = file_lookup(fs, key, &dir_fd, &base, &st, err);
	if (ret)
		return ret;
	close(dir_fd);
	file_info(&st, info_ret);
	return 0;
}

const struct store_ops store_file_ops = {
	.scheme = "file",
	.features = STORE_FEAT_RANGE | STORE_FEAT_ATOMIC_PUT,
	.open = file_open,
	.open_opts = file_open_opts,
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
	.remove_empty_dirs = file_remove_empty_dirs,
};
