// SPDX-License-Identifier: MIT
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "cow/cow.h"

/* The backend of the filesystem holding path's parent, or NULL; the
 * parent's name goes into buf (PATH_MAX bytes). */
static const struct cow_ops *parent_backend(const char *path, char *buf,
					    const char **parent_ret)
{
	struct statfs sfs;

	strcpy(buf, path);
	*parent_ret = dirname(buf);  /* "." for a relative name: not always in buf */
	if (statfs(*parent_ret, &sfs))
		return NULL;
	return cow_backend_for((unsigned long)sfs.f_type);
}

int cow_make_target(const char *path, bool force, enum cow_target *made_ret,
		    struct err *err)
{
	char buf[PATH_MAX];
	const char *parent;
	struct stat st;
	const struct cow_ops *ops;
	int ret;

	*made_ret = COW_TARGET_EXISTED;
	if (strlen(path) >= sizeof(buf))
		return err_set(err, -ENAMETOOLONG, "restore target path is too long");
	if (!stat(path, &st)) {
		if (!S_ISDIR(st.st_mode))
			return err_set(err, -ENOTDIR,
				       "restore target %s exists and is not a directory; choose a new path", path);
		if (!force && !util_dir_is_empty(path))
			return err_set(err, -ENOTEMPTY,
				       "restore target %s is not empty; restore into a new path, or pass --force to restore over its contents",
				       path);
		return 0;
	}
	if (errno != ENOENT)
		return err_set(err, -errno, "restore target %s: %s", path, strerror(errno));
	/* the parent's filesystem decides: its backend's volume, if it has one */
	ops = parent_backend(path, buf, &parent);
	if (stat(parent, &st) || !S_ISDIR(st.st_mode))
		return err_set(err, -ENOENT,
			       "the parent directory of the restore target %s does not exist; create it first", path);
	if (ops && ops->make_target) {
		ret = ops->make_target(path, err);
		if (!ret)
			*made_ret = COW_TARGET_VOLUME;
		return ret;
	}
	if (mkdir(path, 0700))
		return err_set(err, -errno, "cannot create restore target %s: %s",
			       path, strerror(errno));
	*made_ret = COW_TARGET_DIR;
	return 0;
}

int cow_remove_target(const char *path, enum cow_target made, struct err *err)
{
	char buf[PATH_MAX];
	const char *parent;
	const struct cow_ops *ops;

	if (made == COW_TARGET_EXISTED)
		return 0;
	if (strlen(path) >= sizeof(buf))
		return err_set(err, -ENAMETOOLONG, "restore target path is too long");
	if (made == COW_TARGET_DIR) {
		/* rmdir removes only an empty directory */
		if (!rmdir(path))
			return 0;
		if (errno == EEXIST || errno == ENOTEMPTY)
			return err_set(err, -ENOTEMPTY, "%s is not empty", path);
		return err_set(err, -errno, "cannot remove %s: %s", path, strerror(errno));
	}
	ops = parent_backend(path, buf, &parent);
	if (!ops || !ops->remove_target)
		return err_set(err, -EOPNOTSUPP,
			       "cannot remove %s: the filesystem of %s has no snapshot backend that removes volumes",
			       path, parent);
	return ops->remove_target(path, err);
}

int cow_delete_volume(const char *path, struct err *err)
{
	char buf[PATH_MAX];
	const char *parent;
	const struct cow_ops *ops;

	if (strlen(path) >= sizeof(buf))
		return err_set(err, -ENAMETOOLONG, "path \"%s\" is too long", path);
	ops = parent_backend(path, buf, &parent);
	if (!ops || !ops->delete_volume)
		return err_set(err, -EOPNOTSUPP,
			       "cannot delete %s as a volume: the filesystem of %s has no snapshot backend that removes volumes",
			       path, parent);
	return ops->delete_volume(path, err);
}

int cow_same_fs(const char *a, const char *b, bool *same_ret, struct err *err)
{
	struct stat sa, sb;
	struct statfs fa, fb;
	const struct cow_ops *ops;

	*same_ret = false;
	if (stat(a, &sa) || statfs(a, &fa))
		return err_set(err, -errno, "%s: %s", a, strerror(errno));
	if (stat(b, &sb) || statfs(b, &fb))
		return err_set(err, -errno, "%s: %s", b, strerror(errno));
	ops = cow_backend_for((unsigned long)fa.f_type);
	if (fa.f_type == fb.f_type && ops && ops->same_fs)
		return ops->same_fs(a, b, same_ret, err);
	*same_ret = sa.st_dev == sb.st_dev;
	return 0;
}
