// SPDX-License-Identifier: MIT
/*
 * btrfs snapshots through libbtrfsutil.
 *
 * Every btrfs_util_error is turned into a struct err message where it
 * happens: what failed, on what, and what to do.  errno is saved right after
 * the library call because the library sets it alongside its own code.
 */
#include "cow/cow.h"

#include "common/err.h"
#include "common/util.h"

#include <btrfsutil.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/btrfs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Negative errno for a library error: its errno when it set one, else EIO. */
static int btrfs_code(enum btrfs_util_error e, int saved_errno)
{
	if (e == BTRFS_UTIL_ERROR_NO_MEMORY)
		return -ENOMEM;
	return saved_errno > 0 ? -saved_errno : -EIO;
}

/* "cannot create snapshot "/x": Could not ... (Operation not permitted)" */
static int btrfs_fail(struct err *err, enum btrfs_util_error e, int saved_errno,
		      const char *what, const char *path)
{
	int code = btrfs_code(e, saved_errno);
	bool deleting = e == BTRFS_UTIL_ERROR_SNAP_DESTROY_FAILED;

	if (code == -EPERM || code == -EACCES)
		return err_set(err, code,
			       "%s \"%s\": %s (%s): run snapship as root (or "
			       "with CAP_SYS_ADMIN)%s",
			       what, path, btrfs_util_strerror(e),
			       err_str(code),
			       deleting ? "; other users can delete snapshots "
					  "only when the btrfs filesystem is "
					  "mounted with user_subvol_rm_allowed"
					: "");
	if (code == -EROFS)
		return err_set(err, code,
			       "%s \"%s\": the filesystem is mounted read-only; "
			       "remount it read-write",
			       what, path);
	if (code == -ENOSPC || code == -EDQUOT)
		return err_set(err, code,
			       "%s \"%s\": %s (%s): free space on the btrfs "
			       "filesystem or raise its quota",
			       what, path, btrfs_util_strerror(e),
			       err_str(code));
	return err_set(err, code, "%s \"%s\": %s (%s)", what, path,
		       btrfs_util_strerror(e), err_str(code));
}

/* The whole filesystem's UUID (statfs f_fsid differs per subvolume). */
static int btrfs_fsid(const char *path, unsigned char fsid[BTRFS_FSID_SIZE],
		      struct err *err)
{
	struct btrfs_ioctl_fs_info_args args;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, -errno, "cannot open \"%s\": %s", path,
			       err_str(-errno));
	memset(&args, 0, sizeof(args));
	if (ioctl(fd, BTRFS_IOC_FS_INFO, &args) < 0)
		ret = err_set(err, -errno,
			      "cannot read the btrfs filesystem id of \"%s\": %s",
			      path, err_str(-errno));
	else
		memcpy(fsid, args.fsid, BTRFS_FSID_SIZE);
	close(fd);
	return ret;
}

static int btrfs_check(const char *source, struct err *err)
{
	enum btrfs_util_error e;
	struct stat st;
	int saved;

	if (stat(source, &st))
		return err_set(err, -errno, "partition \"%s\": %s", source,
			       err_str(-errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(err, -ENOTDIR,
			       "partition \"%s\" is not a directory: snapshot "
			       "the partition's data directory", source);
	e = btrfs_util_is_subvolume(source);
	saved = errno;
	if (e == BTRFS_UTIL_OK)
		return 0;
	if (e == BTRFS_UTIL_ERROR_NOT_SUBVOLUME)
		return err_set(err, -EINVAL,
			       "\"%s\" is a directory on btrfs but not a btrfs "
			       "subvolume, so it cannot be snapshotted: make it "
			       "one (stop the database, then "
			       "btrfs subvolume create %s.new && "
			       "cp -a --reflink=always %s/. %s.new/ && "
			       "mv %s %s.old && mv %s.new %s)",
			       source, source, source, source, source, source,
			       source, source);
	if (e == BTRFS_UTIL_ERROR_NOT_BTRFS)
		return err_set(err, -EOPNOTSUPP,
			       "\"%s\" is not on btrfs: snapship freezes "
			       "partitions with btrfs snapshots; put the "
			       "partition on a btrfs subvolume "
			       "(btrfs subvolume create ...)", source);
	return btrfs_fail(err, e, saved, "cannot check subvolume", source);
}

/* Fill uuid, source_uuid, generation and time of the snapshot just made
 * at path. */
static int btrfs_fill_info(const char *path, struct cow_snapshot *snap,
			   struct err *err)
{
	struct btrfs_util_subvolume_info info;
	enum btrfs_util_error e;
	char hex[33];

	e = btrfs_util_subvolume_info(path, 0, &info);
	if (e)
		return btrfs_fail(err, e, errno,
				  "cannot read subvolume information of", path);
	util_hex(info.uuid, sizeof(info.uuid), hex);
	snprintf(snap->uuid, sizeof(snap->uuid), "%.8s-%.4s-%.4s-%.4s-%.12s",
		 hex, hex + 8, hex + 12, hex + 16, hex + 20);
	/* a snapshot's parent_uuid is the subvolume it was taken of */
	snap->source_uuid[0] = '\0';
	for (size_t i = 0; i < sizeof(info.parent_uuid); i++) {
		if (info.parent_uuid[i]) {
			util_hex(info.parent_uuid, sizeof(info.parent_uuid), hex);
			snprintf(snap->source_uuid, sizeof(snap->source_uuid),
				 "%.8s-%.4s-%.4s-%.4s-%.12s",
				 hex, hex + 8, hex + 12, hex + 16, hex + 20);
			break;
		}
	}
	snap->generation = info.otransid ? info.otransid : info.generation;
	if (info.otime.tv_sec)
		snap->time_ns = (int64_t)info.otime.tv_sec * 1000000000LL +
				info.otime.tv_nsec;
	return 0;
}

/* dest's directory must be on the same btrfs filesystem as source. */
static int btrfs_check_same_fs(const char *source, const char *dest,
			       struct err *err)
{
	unsigned char src_fsid[BTRFS_FSID_SIZE], dst_fsid[BTRFS_FSID_SIZE];
	char dir[PATH_MAX];
	int ret;

	if (snprintf(dir, sizeof(dir), "%s", dest) >= (int)sizeof(dir))
		return err_set(err, -ENAMETOOLONG, "snapshot path \"%s\" is "
			       "too long", dest);
	ret = btrfs_fsid(source, src_fsid, err);
	if (ret)
		return ret;
	ret = btrfs_fsid(dirname(dir), dst_fsid, err);
	if (ret)
		return err_wrap(err, "snapshot directory");
	if (memcmp(src_fsid, dst_fsid, sizeof(src_fsid)))
		return err_set(err, -EXDEV,
			       "snapshot directory \"%s\" is on another btrfs "
			       "filesystem than \"%s\": a snapshot can only be "
			       "made on the same filesystem; set snapshot_dir "
			       "in the [partition] section to a directory on "
			       "the same btrfs filesystem", dir, source);
	return 0;
}

static int btrfs_create(const char *source, const char *dest,
			struct cow_snapshot *snap, struct err *err)
{
	enum btrfs_util_error e;
	int ret;

	ret = btrfs_check_same_fs(source, dest, err);
	if (ret)
		return ret;
	e = btrfs_util_create_snapshot(source, dest,
				       BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY,
				       NULL, NULL);
	if (e) {
		int code = btrfs_code(e, errno);

		if (code == -EEXIST)
			return err_set(err, code,
				       "snapshot \"%s\" already exists: snapship "
				       "never overwrites one; run recovery "
				       "(snapship clean) or remove it", dest);
		return btrfs_fail(err, e, -code, "cannot create snapshot",
				  dest);
	}
	/*
	 * The snapshot exists from here on; if its information cannot be read
	 * the caller keeps the journal entry so recovery deletes it.
	 */
	return btrfs_fill_info(dest, snap, err);
}

/*
 * Refuse anything that is not one of our snapshots: the name carries
 * COW_PREFIX, it is a directory (not a symlink), a btrfs subvolume, and
 * read-only.  Returns 0 when it is ours, -ENOENT when it is gone, -EINVAL
 * (with the reason) when it is not ours.
 */
static int btrfs_check_ours(int dir_fd, const char *name, const char *path,
			    int *fd_ret, struct err *err)
{
	enum btrfs_util_error e;
	bool read_only = false;
	int fd, saved;

	if (strncmp(name, COW_PREFIX, strlen(COW_PREFIX)))
		return err_set(err, -EINVAL,
			       "refusing to delete \"%s\": its name does not "
			       "start with \"" COW_PREFIX "\", so it is not a "
			       "snapship snapshot", path);
	fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return err_set(err, -ENOENT, "snapshot \"%s\" does not "
				       "exist", path);
		if (errno == ENOTDIR || errno == ELOOP)
			return err_set(err, -EINVAL,
				       "refusing to delete \"%s\": it is not a "
				       "directory (or is a symlink), so it is "
				       "not a snapship snapshot", path);
		return err_set(err, -errno, "cannot open \"%s\": %s", path,
			       err_str(-errno));
	}
	e = btrfs_util_is_subvolume_fd(fd);
	saved = errno;
	if (e == BTRFS_UTIL_ERROR_NOT_SUBVOLUME ||
	    e == BTRFS_UTIL_ERROR_NOT_BTRFS) {
		close(fd);
		return err_set(err, -EINVAL,
			       "refusing to delete \"%s\": it is not a btrfs "
			       "subvolume, so not a snapship snapshot", path);
	}
	if (e == BTRFS_UTIL_OK) {
		e = btrfs_util_get_subvolume_read_only_fd(fd, &read_only);
		saved = errno;
	}
	if (e) {
		close(fd);
		return btrfs_fail(err, e, saved, "cannot check subvolume", path);
	}
	if (!read_only) {
		close(fd);
		return err_set(err, -EINVAL,
			       "refusing to delete \"%s\": it is a writable "
			       "subvolume, and snapship snapshots are always "
			       "read-only", path);
	}
	*fd_ret = fd;
	return 0;
}

static int btrfs_remove(const char *path, struct err *err)
{
	char dir[PATH_MAX], base[PATH_MAX];
	enum btrfs_util_error e;
	struct stat st_open, st_now;
	int dir_fd, fd = -1, ret;
	const char *name;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir) ||
	    snprintf(base, sizeof(base), "%s", path) >= (int)sizeof(base))
		return err_set(err, -ENAMETOOLONG, "snapshot path \"%s\" is "
			       "too long", path);
	name = basename(base);
	dir_fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		if (errno == ENOENT)
			return err_set(err, -ENOENT, "snapshot \"%s\" does not "
				       "exist", path);
		return err_set(err, -errno, "cannot open \"%s\": %s", dir,
			       err_str(-errno));
	}
	ret = btrfs_check_ours(dir_fd, name, path, &fd, err);
	if (ret)
		goto out_close_dir;
	/* What we checked must still be what the name points at. */
	if (fstat(fd, &st_open) ||
	    fstatat(dir_fd, name, &st_now, AT_SYMLINK_NOFOLLOW) ||
	    st_open.st_dev != st_now.st_dev || st_open.st_ino != st_now.st_ino) {
		ret = err_set(err, -EAGAIN, "snapshot \"%s\" changed while "
			      "being checked; not deleting it", path);
		goto out_close_fd;
	}
	e = btrfs_util_delete_subvolume_fd(dir_fd, name, 0);
	if (e)
		ret = btrfs_fail(err, e, errno, "cannot delete snapshot", path);
out_close_fd:
	close(fd);
out_close_dir:
	close(dir_fd);
	return ret;
}

/* A new subvolume at path to restore into. */
static int btrfs_make_target(const char *path, struct err *err)
{
	enum btrfs_util_error e = btrfs_util_create_subvolume(path, 0, NULL, NULL);
	int saved_errno = errno;

	if (e == BTRFS_UTIL_OK)
		return 0;
	return err_set(err, saved_errno ? -saved_errno : -EIO,
		       "cannot create subvolume %s for the restore: %s (%s)",
		       path, btrfs_util_strerror(e), strerror(saved_errno));
}

/* Is the directory open as fd empty?  (Read through a descriptor of its own.) */
static int btrfs_dir_empty(int fd, bool *empty_ret)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	*empty_ret = true;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			*empty_ret = false;
			break;
		}
	closedir(d);
	return 0;
}

/*
 * The writable subvolume at path deleted: only while empty unless whole (a
 * read-only one is a snapshot: never a restore target); never through a
 * link, and only the subvolume that was checked.
 */
static int btrfs_delete_writable(const char *path, bool whole, struct err *err)
{
	char dir[PATH_MAX], base[PATH_MAX];
	enum btrfs_util_error e;
	struct stat st_open, st_now;
	bool read_only = true, empty = false;
	int dir_fd, fd, ret, saved;
	const char *name;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir) ||
	    snprintf(base, sizeof(base), "%s", path) >= (int)sizeof(base))
		return err_set(err, -ENAMETOOLONG, "path \"%s\" is too long", path);
	name = basename(base);
	dir_fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return err_set(err, -errno, "cannot open \"%s\": %s", dir,
			       err_str(-errno));
	fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		ret = err_set(err, -errno, "cannot open \"%s\": %s", path,
			      err_str(-errno));
		goto out_close_dir;
	}
	e = btrfs_util_is_subvolume_fd(fd);
	if (e == BTRFS_UTIL_OK)
		e = btrfs_util_get_subvolume_read_only_fd(fd, &read_only);
	saved = errno;
	if (e == BTRFS_UTIL_ERROR_NOT_SUBVOLUME || e == BTRFS_UTIL_ERROR_NOT_BTRFS) {
		ret = err_set(err, -EINVAL, "refusing to delete \"%s\": it is not a btrfs subvolume",
			      path);
		goto out_close_fd;
	}
	if (e) {
		ret = btrfs_fail(err, e, saved, "cannot check subvolume", path);
		goto out_close_fd;
	}
	if (read_only) {
		ret = err_set(err, -EINVAL, "refusing to delete \"%s\": it is a read-only subvolume (a snapshot)",
			      path);
		goto out_close_fd;
	}
	ret = whole ? (empty = true, 0) : btrfs_dir_empty(fd, &empty);
	if (ret) {
		ret = err_set(err, ret, "cannot read \"%s\": %s", path, err_str(ret));
		goto out_close_fd;
	}
	if (!empty) {
		ret = err_set(err, -ENOTEMPTY, "\"%s\" is not empty", path);
		goto out_close_fd;
	}
	/* what we checked must still be what the name points at */
	if (fstat(fd, &st_open) ||
	    fstatat(dir_fd, name, &st_now, AT_SYMLINK_NOFOLLOW) ||
	    st_open.st_dev != st_now.st_dev || st_open.st_ino != st_now.st_ino) {
		ret = err_set(err, -EAGAIN, "\"%s\" changed while being checked; not deleting it",
			      path);
		goto out_close_fd;
	}
	e = btrfs_util_delete_subvolume_fd(dir_fd, name, 0);
	if (e)
		ret = btrfs_fail(err, e, errno, "cannot delete subvolume", path);
out_close_fd:
	close(fd);
out_close_dir:
	close(dir_fd);
	return ret;
}

/* The subvolume btrfs_make_target made at path, while it is still empty. */
static int btrfs_remove_target(const char *path, struct err *err)
{
	return btrfs_delete_writable(path, false, err);
}

/* A restored subvolume with everything in it (a drill's scratch copy). */
static int btrfs_delete_volume(const char *path, struct err *err)
{
	return btrfs_delete_writable(path, true, err);
}

/* Are a and b on the same btrfs filesystem (whatever their subvolumes)? */
static int btrfs_same_fs(const char *a, const char *b, bool *same_ret,
			 struct err *err)
{
	unsigned char fa[BTRFS_FSID_SIZE], fb[BTRFS_FSID_SIZE];
	int ret = btrfs_fsid(a, fa, err);

	if (!ret)
		ret = btrfs_fsid(b, fb, err);
	if (!ret)
		*same_ret = !memcmp(fa, fb, sizeof(fa));
	return ret;
}

const struct cow_ops cow_btrfs_ops = {
	.name = "btrfs",
	.check = btrfs_check,
	.create = btrfs_create,
	.remove = btrfs_remove,
	.make_target = btrfs_make_target,
	.remove_target = btrfs_remove_target,
	.delete_volume = btrfs_delete_volume,
	.same_fs = btrfs_same_fs,
};
