// SPDX-License-Identifier: MIT
#include "common/afile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"

/* fsync the directory holding path, so the rename survives a crash */
static void sync_dir(const char *path)
{
	char *dir = strdup(path), *slash;
	int fd;

	if (!dir)
		return;
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

static int make_parent(const char *path, struct err *err)
{
	char *dir = strdup(path), *slash;
	int ret = 0;

	if (!dir)
		return err_set(err, -ENOMEM, "out of memory");
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		ret = util_mkdir_p(dir, 0700);
		if (ret)
			err_set(err, ret, "cannot create %s: %s", dir, err_str(ret));
	}
	free(dir);
	return ret;
}

int afile_write(const char *path, const void *buf, size_t len, unsigned mode,
		int mkdirs, struct err *err)
{
	char *tmp = NULL;
	int fd, ret;

	if (mkdirs) {
		ret = make_parent(path, err);
		if (ret)
			return ret;
	}
	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
		return err_set(err, -ENOMEM, "out of memory");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = err_set(err, -errno, "cannot create %s: %s; check that its directory exists and is writable",
			      tmp, strerror(errno));
		goto out_free;
	}
	ret = util_write_all(fd, buf, len);
	if (!ret && fchmod(fd, (mode_t)mode))
		ret = -errno;
	if (!ret && fsync(fd))
		ret = -errno;
	if (ret) {
		err_set(err, ret, "cannot write %s: %s", tmp, err_str(ret));
		goto out_close;
	}
	if (close(fd)) {
		fd = -1;
		ret = err_set(err, -errno, "cannot write %s: %s", tmp, strerror(errno));
		goto out_unlink;
	}
	fd = -1;
	if (rename(tmp, path)) {
		ret = err_set(err, -errno, "cannot rename %s to %s: %s", tmp, path,
			      strerror(errno));
		goto out_unlink;
	}
	sync_dir(path);
	free(tmp);
	return 0;
out_close:
	close(fd);
out_unlink:
	unlink(tmp);
out_free:
	free(tmp);
	return ret;
}
