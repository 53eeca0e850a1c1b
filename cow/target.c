// SPDX-License-Identifier: MIT
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "common/err.h"
#include "common/util.h"
#include "cow/cow.h"

int cow_make_target(const char *path, bool force, bool *subvol_ret,
		    struct err *err)
{
	char buf[PATH_MAX];
	const char *parent;
	struct statfs sfs;
	struct stat st;
	const struct cow_ops *ops = NULL;
	int ret;

	*subvol_ret = false;
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
	strcpy(buf, path);
	parent = dirname(buf);  /* "." for a relative name: not always in buf */
	if (stat(parent, &st) || !S_ISDIR(st.st_mode))
		return err_set(err, -ENOENT,
			       "the parent directory of the restore target %s does not exist; create it first", path);
	/* the parent's filesystem decides: its backend's volume, if it has one */
	if (!statfs(parent, &sfs))
		ops = cow_backend_for((unsigned long)sfs.f_type);
	if (ops && ops->make_target) {
		ret = ops->make_target(path, err);
		if (!ret)
			*subvol_ret = true;
		return ret;
	}
	if (mkdir(path, 0700))
		return err_set(err, -errno, "cannot create restore target %s: %s",
			       path, strerror(errno));
	return 0;
}
