// SPDX-License-Identifier: MIT
/*
 * Freeze and release: backend selection, the snapshot journal, recovery.
 *
 * Journal: one small text file per snapshot in <state_dir>/journal/, named
 * "<snapshot name>.journal", holding "key=value" lines:
 *
 *	snapshot=/srv/db/.snapship/snapship-orders-20261124T110000Z-a1b2c3
 *	source=/srv/db/orders
 *	backend=btrfs
 *	pid=1234
 *	time=2026-11-24T11:00:00Z
 *	time_ns=1795518000000000000
 *
 * Only "snapshot" is needed by recovery; the rest is for the operator.
 * An LVM snapshot's entry has backend=lvm, its snapshot= is the mount
 * point, and two more lines recovery uses (cow/lvm.h):
 *
 *	lv=vg0/snapship-orders-20261124T110000Z-a1b2c3
 *	mount=/var/lib/snapship/lvm/snapship-orders-20261124T110000Z-a1b2c3
 *
 * An entry is written to ".<name>.<pid>.tmp", fsynced, linked to its final
 * name (which fails if it exists) and the directory fsynced, all before the
 * snapshot is created; it is unlinked (and the directory fsynced) only after
 * the snapshot is gone.  A leftover .tmp file never had a snapshot.
 */
#include "cow/cow.h"

#include "common/err.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "cow/lvm.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#define COW_JOURNAL_DIR "journal"
#define COW_JOURNAL_SUFFIX ".journal"
#define COW_JOURNAL_MAX 8192
#define COW_TAG_MAX 200

static const struct {
	unsigned long magic;
	const struct cow_ops *ops;
} cow_backends[] = {
	{ BTRFS_SUPER_MAGIC, &cow_btrfs_ops },
};

static const char *cow_fs_name(unsigned long magic)
{
	static const struct {
		unsigned long magic;
		const char *name;
	} names[] = {
		{ BTRFS_SUPER_MAGIC, "btrfs" },
		{ EXT4_SUPER_MAGIC, "ext4" },
		{ XFS_SUPER_MAGIC, "xfs" },
		{ TMPFS_MAGIC, "tmpfs" },
		{ OVERLAYFS_SUPER_MAGIC, "overlayfs" },
		{ NFS_SUPER_MAGIC, "nfs" },
		{ FUSE_SUPER_MAGIC, "fuse" },
		{ SQUASHFS_MAGIC, "squashfs" },
		{ 0x2fc12fc1UL, "zfs" },
		{ 0xf2f52010UL, "f2fs" },
		{ 0x58295829UL, "zonefs" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].magic == magic)
			return names[i].name;
	return "a filesystem snapship cannot snapshot";
}

const struct cow_ops *cow_backend_for(unsigned long magic)
{
	for (size_t i = 0; i < sizeof(cow_backends) / sizeof(cow_backends[0]); i++)
		if (cow_backends[i].magic == magic)
			return cow_backends[i].ops;
	return NULL;
}

static int cow_statfs_type(const char *path, unsigned long *type_ret,
			   struct err *err)
{
	struct statfs sfs;

	if (statfs(path, &sfs))
		return err_set(err, -errno, "cannot read the filesystem of "
			       "\"%s\": %s", path, err_str(-errno));
	*type_ret = (unsigned long)sfs.f_type;
	return 0;
}

/* The refusal of a directory no backend of mode can freeze. */
static int cow_refuse(const char *source, unsigned long type,
		      enum cow_mode mode, const struct err *lvm_err,
		      struct err *err)
{
	if (mode == COW_MODE_BTRFS)
		return err_set(err, -EOPNOTSUPP,
			       "\"%s\" is on %s, not btrfs, and only btrfs "
			       "is taken here ([partition] snapshot = btrfs, "
			       "or a discover glob): put the partition on a "
			       "btrfs subvolume (btrfs subvolume create ...) "
			       "or, in a [partition], set snapshot = auto",
			       source, cow_fs_name(type));
	if (mode == COW_MODE_LVM)
		return err_set(err, -EOPNOTSUPP, "%s, but its [partition] has "
			       "snapshot = lvm: put the partition on an ext4 or "
			       "xfs LVM logical volume or set snapshot = auto",
			       lvm_err->msg);
	if (lvm_err->code != -ENODEV)
		return err_set(err, lvm_err->code, "%s", lvm_err->msg);
	return err_set(err, -EOPNOTSUPP,
		       "\"%s\" is on %s, not btrfs, and not on an LVM "
		       "logical volume: snapship freezes partitions with "
		       "btrfs or LVM snapshots; put the partition on a btrfs "
		       "subvolume (btrfs subvolume create ...) or on an ext4 "
		       "or xfs LVM logical volume",
		       source, cow_fs_name(type));
}

/* Check source and pick its backend (opts NULL: auto). */
static int cow_select(const char *source, const struct cow_opts *opts,
		      const struct cow_ops **ops_ret, struct err *err)
{
	enum cow_mode mode = opts ? opts->mode : COW_MODE_AUTO;
	struct err lvm_err = { 0 };
	const struct cow_ops *ops;
	unsigned long type;
	struct stat st;
	int ret;

	if (!source || !*source)
		return err_set(err, -EINVAL, "no partition path given");
	if (stat(source, &st)) {
		if (errno == ENOENT)
			return err_set(err, -ENOENT,
				       "partition \"%s\" does not exist: check "
				       "the path in its [partition] section",
				       source);
		return err_set(err, -errno, "cannot access partition \"%s\": "
			       "%s", source, err_str(-errno));
	}
	if (!S_ISDIR(st.st_mode))
		return err_set(err, -ENOTDIR,
			       "partition \"%s\" is not a directory: set path "
			       "in its [partition] section to the data "
			       "directory (a btrfs subvolume or a directory on "
			       "an LVM volume)", source);
	ret = cow_statfs_type(source, &type, err);
	if (ret)
		return ret;
	ops = mode == COW_MODE_LVM ? NULL : cow_backend_for(type);
	if (!ops && mode != COW_MODE_BTRFS) {
		ret = cow_lvm_ops.check(source, &lvm_err);
		if (!ret)
			ops = &cow_lvm_ops;
	}
	if (!ops)
		return cow_refuse(source, type, mode, &lvm_err, err);
	ret = ops->check(source, err);
	if (ret)
		return ret;
	*ops_ret = ops;
	return 0;
}

int cow_check_source(const char *source, struct err *err)
{
	return cow_check_source_opts(source, NULL, err);
}

int cow_check_source_opts(const char *source, const struct cow_opts *opts,
			  struct err *err)
{
	const struct cow_ops *ops;

	return cow_select(source, opts, &ops, err);
}

/* Tags become file names: keep them plain. */
static bool cow_tag_ok(const char *tag)
{
	size_t len = strlen(tag);

	if (len == 0 || len > COW_TAG_MAX || tag[0] == '.' || tag[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = tag[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("._-+:@", c)))
			return false;
	}
	return true;
}

static bool cow_name_is_ours(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;

	return strncmp(name, COW_PREFIX, strlen(COW_PREFIX)) == 0 &&
	       name[strlen(COW_PREFIX)] != '\0';
}

static int cow_fsync_dir(const char *path)
{
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd))
		ret = -errno;
	close(fd);
	return ret;
}

/* Copy path's directory part into dir (which has room for PATH_MAX). */
static int cow_dirname(const char *path, char *dir)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	snprintf(dir, PATH_MAX, "%s", dirname(tmp));
	return 0;
}

/*
 * Make sure dir exists (mode 0700) and is on the same kind of filesystem
 * as source, without creating anything on the wrong one: the nearest
 * existing ancestor is checked before mkdir.  dir_real gets its real path;
 * *made_ret tells whether dir was created (so a failure can take it back).
 */
static int cow_prepare_snap_dir(const char *src_real, const char *dir,
				bool is_default, char *dir_real,
				bool *made_ret, struct err *err)
{
	unsigned long src_type, type;
	char probe[PATH_MAX];
	struct stat st;
	size_t len;
	int ret;

	*made_ret = false;
	ret = cow_statfs_type(src_real, &src_type, err);
	if (ret)
		return ret;
	if (snprintf(probe, sizeof(probe), "%s", dir) >= (int)sizeof(probe))
		return err_set(err, -ENAMETOOLONG, "snapshot directory \"%s\" "
			       "is too long", dir);
	while (stat(probe, &st) && errno == ENOENT && strcmp(probe, "/") &&
	       strcmp(probe, "."))
		cow_dirname(probe, probe);
	ret = cow_statfs_type(probe, &type, err);
	if (ret)
		return ret;
	if (type != src_type)
		goto out_other_fs;
	*made_ret = stat(dir, &st) && errno == ENOENT;
	ret = util_mkdir_p(dir, 0700);
	if (ret)
		return err_set(err, ret, "cannot create snapshot directory "
			       "\"%s\": %s", dir, err_str(ret));
	if (!realpath(dir, dir_real))
		return err_set(err, -errno, "snapshot directory \"%s\": %s",
			       dir, err_str(-errno));
	if (stat(dir_real, &st) || !S_ISDIR(st.st_mode))
		return err_set(err, -ENOTDIR, "snapshot directory \"%s\" is "
			       "not a directory: set snapshot_dir in the "
			       "[partition] section to a directory", dir);
	ret = cow_statfs_type(dir_real, &type, err);
	if (ret)
		return ret;
	if (type != src_type)
		goto out_other_fs;
	len = strlen(src_real);
	if (!strncmp(dir_real, src_real, len) &&
	    (dir_real[len] == '/' || dir_real[len] == '\0' ||
	     !strcmp(src_real, "/"))) {
		/* take back what we made: never leave a trace in the partition */
		if (*made_ret && rmdir(dir_real) == 0)
			*made_ret = false;
		return err_set(err, -EINVAL,
			       "snapshot directory \"%s\" is inside the "
			       "partition \"%s\": snapshots would become part "
			       "of the partition; set snapshot_dir in the "
			       "[partition] section to a directory outside it "
			       "on the same btrfs filesystem", dir_real, src_real);
	}
	return 0;
out_other_fs:
	return err_set(err, -EXDEV,
		       "%ssnapshot directory \"%s\" is on %s, but partition "
		       "\"%s\" is on %s: a snapshot must be on the same "
		       "filesystem; set snapshot_dir in the [partition] "
		       "section to a directory on the same btrfs filesystem",
		       is_default ? "default " : "", dir, cow_fs_name(type),
		       src_real, cow_fs_name(src_type));
}

/* Create <state_dir>/journal (0700) and make it durable. */
static int cow_journal_dir(const char *state_dir, char *dir, struct err *err)
{
	char parent[PATH_MAX];
	struct stat st;
	int ret;

	if (snprintf(dir, PATH_MAX, "%s/" COW_JOURNAL_DIR, state_dir) >= PATH_MAX)
		return err_set(err, -ENAMETOOLONG, "state directory \"%s\" is "
			       "too long", state_dir);
	if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	ret = util_mkdir_p(dir, 0700);
	if (ret)
		return err_set(err, ret, "cannot create journal directory "
			       "\"%s\": %s; check state_dir in [agent]", dir,
			       err_str(ret));
	/* the new directory entries must survive a crash too */
	ret = cow_fsync_dir(state_dir);
	if (!ret && !cow_dirname(state_dir, parent))
		ret = cow_fsync_dir(parent);
	if (ret)
		return err_set(err, ret, "cannot sync state directory \"%s\": "
			       "%s", state_dir, err_str(ret));
	return 0;
}

static int cow_journal_write(const char *state_dir, const char *name,
			     const char *snapshot, const char *source,
			     const char *backend, const char *extra,
			     char **journal_ret, struct err *err)
{
	char dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX], text[COW_JOURNAL_MAX];
	char when[32] = "";
	int64_t now = util_now_unix_ns();
	time_t secs = (time_t)(now / 1000000000LL);
	struct tm tm;
	int fd, ret, len;

	ret = cow_journal_dir(state_dir, dir, err);
	if (ret)
		return ret;
	if (snprintf(path, sizeof(path), "%s/%s" COW_JOURNAL_SUFFIX, dir,
		     name) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.tmp", dir, name,
		     (long)getpid()) >= (int)sizeof(tmp))
		return err_set(err, -ENAMETOOLONG, "journal path for \"%s\" is "
			       "too long", snapshot);
	if (gmtime_r(&secs, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	len = snprintf(text, sizeof(text),
		       "# snapship snapshot journal: the snapshot below is "
		       "deleted by recovery if it still exists\n"
		       "snapshot=%s\nsource=%s\nbackend=%s\npid=%ld\n"
		       "time=%s\ntime_ns=%lld\n%s",
		       snapshot, source, backend, (long)getpid(), when,
		       (long long)now, extra ? extra : "");
	if (len < 0 || len >= (int)sizeof(text))
		return err_set(err, -ENAMETOOLONG, "journal entry for \"%s\" "
			       "is too long", snapshot);

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(err, -errno, "cannot create journal entry "
			       "\"%s\": %s", tmp, err_str(-errno));
	ret = util_write_all(fd, text, (size_t)len);
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (ret) {
		err_set(err, ret, "cannot write journal entry \"%s\": %s", tmp,
			err_str(ret));
		goto out_unlink_tmp;
	}
	if (link(tmp, path)) {
		ret = -errno;
		if (ret == -EEXIST)
			err_set(err, ret,
				"journal entry \"%s\" already exists: a snapshot "
				"of that name may be left from a crash; run "
				"recovery (snapship clean) first", path);
		else
			err_set(err, ret, "cannot create journal entry \"%s\": "
				"%s", path, err_str(ret));
		goto out_unlink_tmp;
	}
	unlink(tmp);
	ret = cow_fsync_dir(dir);
	if (ret) {
		err_set(err, ret, "cannot sync journal directory \"%s\": %s",
			dir, err_str(ret));
		goto out_unlink_path;
	}
	*journal_ret = strdup(path);
	if (!*journal_ret) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out_unlink_path;
	}
	return 0;
out_unlink_path:
	unlink(path);
out_unlink_tmp:
	unlink(tmp);
	return ret;
}

/* Drop a journal entry (after its snapshot is gone) durably. */
static int cow_journal_remove(const char *path, struct err *err)
{
	char dir[PATH_MAX];
	int ret;

	if (unlink(path) && errno != ENOENT)
		return err_set(err, -errno, "cannot remove journal entry \"%s\": "
			       "%s", path, err_str(-errno));
	ret = cow_dirname(path, dir);
	if (!ret)
		ret = cow_fsync_dir(dir);
	if (ret)
		return err_set(err, ret, "cannot sync journal directory of "
			       "\"%s\": %s", path, err_str(ret));
	return 0;
}

static void cow_snapshot_free(struct cow_snapshot *snap)
{
	if (!snap)
		return;
	free(snap->path);
	free(snap->source);
	free(snap->journal);
	lvm_plan_free(snap->lvm);
	free(snap);
}

static bool cow_has_newline(const char *s)
{
	return strchr(s, '\n') != NULL;
}

/* The LVM part of cow_freeze_opts: plan, journal, lvcreate and mount. */
static int cow_freeze_lvm(const char *source, const char *src_real,
			  const char *state_dir, const char *tag,
			  const struct cow_opts *opts,
			  struct cow_snapshot **snap_ret, struct err *err)
{
	char extra[PATH_MAX + 2 * LVM_NAME_MAX + 32];
	struct err create_err = { 0 };
	struct cow_snapshot *snap;
	struct lvm_plan *p;
	int ret;

	snap = calloc(1, sizeof(*snap));
	if (!snap)
		return err_set(err, -ENOMEM, "out of memory");
	snap->ops = &cow_lvm_ops;
	ret = lvm_plan_new(src_real, state_dir, tag,
			   opts ? opts->lvm_snapshot_size : NULL, &snap->lvm,
			   err);
	if (ret)
		goto out_free_snap;
	p = snap->lvm;
	snap->source = strdup(source);
	snap->path = strdup(p->mount);
	if (!snap->source || !snap->path) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out_free_snap;
	}
	if (cow_has_newline(src_real) || cow_has_newline(p->mount)) {
		ret = err_set(err, -EINVAL, "partition \"%s\" or the state "
			      "directory has a newline in its path; rename it",
			      source);
		goto out_free_snap;
	}
	snprintf(snap->fstype, sizeof(snap->fstype), "%s", p->fstype);
	snprintf(extra, sizeof(extra), "lv=%s/%s\nmount=%s\n", p->origin.vg,
		 p->snap_name, p->mount);
	ret = cow_journal_write(state_dir, p->snap_name, p->mount, src_real,
				"lvm", extra, &snap->journal, err);
	if (ret)
		goto out_free_snap;
	snap->time_ns = util_now_unix_ns();
	ret = lvm_create(p, snap, &create_err);
	if (ret) {
		err_set(err, ret, "%s", create_err.msg);
		if (!p->leftover)
			cow_journal_remove(snap->journal, NULL);
		goto out_free_snap;
	}
	log_debug("froze \"%s\" as LVM snapshot %s/%s mounted at \"%s\"",
		  source, p->origin.vg, p->snap_name, p->mount);
	*snap_ret = snap;
	return 0;
out_free_snap:
	cow_snapshot_free(snap);
	return ret;
}

int cow_freeze(const char *source, const char *snap_dir, const char *state_dir,
	       const char *tag, struct cow_snapshot **snap_ret, struct err *err)
{
	return cow_freeze_opts(source, snap_dir, state_dir, tag, NULL, snap_ret,
			       err);
}

/* Where a btrfs snapshot of src_real (source as given, for messages)
 * goes: snap_dir, else .snapship beside the partition. */
static int cow_snap_dir_of(const char *source, const char *src_real,
			   const char *snap_dir, char dir[PATH_MAX], struct err *err)
{
	int ret;

	if (snap_dir) {
		snprintf(dir, PATH_MAX, "%s", snap_dir);
		return 0;
	}
	ret = cow_dirname(src_real, dir);
	if (!ret && strlen(dir) + sizeof("/.snapship") > PATH_MAX)
		ret = -ENAMETOOLONG;
	if (ret)
		return err_set(err, ret, "partition \"%s\": %s", source,
			       err_str(ret));
	strcat(dir, strcmp(dir, "/") ? "/.snapship" : ".snapship");
	return 0;
}

int cow_freeze_opts(const char *source, const char *snap_dir,
		    const char *state_dir, const char *tag,
		    const struct cow_opts *opts, struct cow_snapshot **snap_ret,
		    struct err *err)
{
	char src_real[PATH_MAX], dir[PATH_MAX], dir_real[PATH_MAX];
	char name[PATH_MAX], dest[PATH_MAX];
	const struct cow_ops *ops;
	struct cow_snapshot *snap;
	struct err create_err = { 0 };
	struct stat st;
	bool made_dir;
	int ret, code = -EIO;

	if (!snap_ret)
		return err_set(err, -EINVAL, "cow_freeze: no snap_ret");
	*snap_ret = NULL;
	if (!source || !state_dir || !tag)
		return err_set(err, -EINVAL, "cow_freeze: missing source, "
			       "state_dir or tag");
	if (!cow_tag_ok(tag))
		return err_set(err, -EINVAL,
			       "invalid snapshot tag \"%s\": use 1 to %d "
			       "letters, digits and ._-+:@, not starting with "
			       "'.' or '-'", tag, COW_TAG_MAX);
	if (fault_hit("cow.freeze", &code))
		return err_set(err, code, "cannot freeze \"%s\": injected fault "
			       "cow.freeze (SNAPSHIP_FAULT): %s", source,
			       err_str(code));
	ret = cow_select(source, opts, &ops, err);
	if (ret)
		return ret;
	if (!realpath(source, src_real))
		return err_set(err, -errno, "partition \"%s\": %s", source,
			       err_str(-errno));
	if (ops == &cow_lvm_ops)
		return cow_freeze_lvm(source, src_real, state_dir, tag, opts,
				      snap_ret, err);
	if (snap_dir && !*snap_dir)
		snap_dir = NULL;
	ret = cow_snap_dir_of(source, src_real, snap_dir, dir, err);
	if (ret)
		return ret;
	ret = cow_prepare_snap_dir(src_real, dir, !snap_dir, dir_real,
				   &made_dir, err);
	if (ret)
		return ret;
	snprintf(name, sizeof(name), COW_PREFIX "%s", tag);
	if (snprintf(dest, sizeof(dest), "%s/%s", dir_real, name) >=
	    (int)sizeof(dest)) {
		ret = err_set(err, -ENAMETOOLONG, "snapshot path in \"%s\" is "
			      "too long", dir_real);
		goto out_rmdir;
	}
	if (cow_has_newline(src_real) || cow_has_newline(dest)) {
		ret = err_set(err, -EINVAL, "partition \"%s\" or its "
			      "snapshot directory has a newline in its path; "
			      "rename it", source);
		goto out_rmdir;
	}
	ret = lstat(dest, &st) ? -errno : -EEXIST;
	if (ret == -EEXIST) {
		err_set(err, ret, "snapshot \"%s\" already exists: snapship "
			"never overwrites one; run recovery (snapship clean) "
			"or remove it", dest);
		goto out_rmdir;
	}
	if (ret != -ENOENT) {
		err_set(err, ret, "cannot check \"%s\": %s", dest,
			err_str(ret));
		goto out_rmdir;
	}

	snap = calloc(1, sizeof(*snap));
	if (!snap) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out_rmdir;
	}
	snap->path = strdup(dest);
	snap->source = strdup(source);
	snap->ops = ops;
	snprintf(snap->fstype, sizeof(snap->fstype), "btrfs");
	if (!snap->path || !snap->source) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out_free_snap;
	}
	ret = cow_journal_write(state_dir, name, dest, src_real, ops->name,
				NULL, &snap->journal, err);
	if (ret)
		goto out_free_snap;
	snap->time_ns = util_now_unix_ns();
	ret = ops->create(src_real, dest, snap, &create_err);
	if (ret) {
		err_set(err, ret, "%s", create_err.msg);
		/* Keep the entry if something is there that we may have made. */
		if (ret == -EEXIST || lstat(dest, &st))
			cow_journal_remove(snap->journal, NULL);
		else
			log_warn("snapshot \"%s\" may be half made; its journal "
				 "entry stays so recovery removes it", dest);
		goto out_free_snap;
	}
	log_debug("froze \"%s\" as \"%s\" (uuid %s, generation %llu)", source,
		  dest, snap->uuid, (unsigned long long)snap->generation);
	*snap_ret = snap;
	return 0;
out_free_snap:
	cow_snapshot_free(snap);
out_rmdir:
	if (made_dir)
		rmdir(dir_real);  /* only if still empty */
	return ret;
}

int cow_release(struct cow_snapshot *snap, struct err *err)
{
	struct err remove_err = { 0 };
	int ret, code = -EIO;

	if (!snap)
		return 0;
	assert(snap->ops && snap->path);
	if (fault_hit("cow.release", &code)) {
		ret = err_set(err, code, "cannot release snapshot \"%s\": "
			      "injected fault cow.release (SNAPSHIP_FAULT): %s",
			      snap->path, err_str(code));
		goto out_free;
	}
	if (!cow_name_is_ours(snap->lvm ? snap->lvm->mount : snap->path)) {
		ret = err_set(err, -EINVAL, "refusing to delete \"%s\": its "
			      "name does not start with \"" COW_PREFIX "\"",
			      snap->path);
		goto out_free;
	}
	if (snap->lvm)
		ret = lvm_release(snap->lvm, &remove_err);
	else
		ret = snap->ops->remove(snap->path, &remove_err);
	if (ret == -ENOENT) {
		log_warn("snapshot \"%s\" was already gone", snap->path);
		ret = 0;
	}
	if (ret) {
		err_set(err, ret, "%s", remove_err.msg);
		goto out_free;
	}
	if (snap->journal)
		ret = cow_journal_remove(snap->journal, err);
out_free:
	cow_snapshot_free(snap);
	return ret;
}

int cow_intact(const struct cow_snapshot *snap, struct err *err)
{
	int code = -ENOSPC;

	if (!snap)
		return 0;
	if (fault_hit("cow.intact", &code))
		return err_set(err, code, "snapshot \"%s\" is not whole: "
			       "injected fault cow.intact (SNAPSHIP_FAULT): %s",
			       snap->path, err_str(code));
	return snap->lvm ? lvm_intact(snap->lvm, err) : 0;
}

/* What recovery reads of a journal entry. */
struct cow_entry {
	char snapshot[PATH_MAX];   /* "snapshot=", absolute */
	char backend[16];          /* "backend=", "" if absent */
	char lv[2 * LVM_NAME_MAX + 2]; /* "lv=" (LVM), "" if absent */
};

/* Copy a "key=" line's value into buf (len) when line has that key. */
static void cow_entry_field(const char *line, const char *key, char *buf,
			    size_t len)
{
	size_t klen = strlen(key);

	if (!strncmp(line, key, klen) && line[klen] == '=' &&
	    strlen(line + klen + 1) < len)
		strcpy(buf, line + klen + 1);
}

/* Parse a journal entry; -EINVAL without an absolute snapshot= line. */
static int cow_journal_parse(int dir_fd, const char *name,
			     struct cow_entry *e)
{
	char text[COW_JOURNAL_MAX + 1];
	ssize_t len;
	int fd;

	memset(e, 0, sizeof(*e));
	fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = read(fd, text, sizeof(text) - 1);
	if (len < 0)
		len = -errno;
	close(fd);
	if (len < 0)
		return (int)len;
	text[len] = '\0';
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		cow_entry_field(line, "snapshot", e->snapshot,
				sizeof(e->snapshot));
		cow_entry_field(line, "backend", e->backend, sizeof(e->backend));
		cow_entry_field(line, "lv", e->lv, sizeof(e->lv));
	}
	return e->snapshot[0] == '/' ? 0 : -EINVAL;
}

static int cow_journal_drop(int dir_fd, const char *name, const char *dir,
			    struct err *err)
{
	if (unlinkat(dir_fd, name, 0) && errno != ENOENT)
		return err_set(err, -errno, "cannot remove journal entry "
			       "\"%s/%s\": %s", dir, name, err_str(-errno));
	return 0;
}

/* Recover an LVM entry: its mount and snapshot LV go, nothing else. */
static int cow_recover_lvm(int dir_fd, const char *dir, const char *name,
			   const struct cow_entry *e, bool *removed_ret,
			   struct err *err)
{
	struct err remove_err = { 0 };
	int ret;

	ret = lvm_recover(e->lv, e->snapshot, removed_ret, &remove_err);
	if (ret == 0 || ret == -ENOENT) {
		if (ret == 0)
			log_info("removed leftover LVM snapshot %s (mounted at "
				 "\"%s\")", e->lv, e->snapshot);
		else
			log_info("LVM snapshot %s is already gone; dropping its "
				 "journal entry", e->lv);
		return cow_journal_drop(dir_fd, name, dir, err);
	}
	if (ret == -EINVAL) {
		log_warn("%s; journal entry \"%s/%s\" left in place: inspect "
			 "it and delete the entry by hand", remove_err.msg, dir,
			 name);
		return 0;
	}
	return err_set(err, ret, "%s", remove_err.msg);
}

/* Recover one journal entry; *removed_ret is set when a snapshot was deleted. */
static int cow_recover_entry(int dir_fd, const char *dir, const char *name,
			     bool *removed_ret, struct err *err)
{
	struct cow_entry e;
	const char *snapshot = e.snapshot;
	struct err remove_err = { 0 };
	const struct cow_ops *ops;
	unsigned long type;
	struct stat st;
	int ret;

	ret = cow_journal_parse(dir_fd, name, &e);
	if (ret) {
		log_warn("journal entry \"%s/%s\" is unreadable or has no "
			 "absolute snapshot= line (%s); left in place: inspect "
			 "it and delete it by hand", dir, name, err_str(ret));
		return 0;
	}
	if (!strcmp(e.backend, "lvm"))
		return cow_recover_lvm(dir_fd, dir, name, &e, removed_ret, err);
	if (lstat(snapshot, &st)) {
		if (errno != ENOENT && errno != ENOTDIR)
			return err_set(err, -errno, "cannot check snapshot "
				       "\"%s\": %s", snapshot, err_str(-errno));
		log_info("snapshot \"%s\" is already gone; dropping its journal "
			 "entry", snapshot);
		return cow_journal_drop(dir_fd, name, dir, err);
	}
	ops = NULL;
	if (!cow_name_is_ours(snapshot)) {
		err_set(&remove_err, -EINVAL, "refusing to delete \"%s\": its "
			"name does not start with \"" COW_PREFIX "\"", snapshot);
	} else if (!S_ISDIR(st.st_mode)) {
		err_set(&remove_err, -EINVAL, "refusing to delete \"%s\": it is "
			"not a directory (or is a symlink)", snapshot);
	} else if (cow_statfs_type(snapshot, &type, &remove_err) == 0) {
		ops = cow_backend_for(type);
		if (!ops)
			err_set(&remove_err, -EINVAL, "refusing to delete "
				"\"%s\": it is on %s, where snapship makes no "
				"snapshots", snapshot, cow_fs_name(type));
	}
	if (ops)
		ret = ops->remove(snapshot, &remove_err);
	else
		ret = remove_err.code;
	if (ret == 0 || ret == -ENOENT) {
		*removed_ret = ret == 0;
		if (ret == 0)
			log_info("removed leftover snapshot \"%s\"", snapshot);
		return cow_journal_drop(dir_fd, name, dir, err);
	}
	if (ret == -EINVAL) {
		log_warn("%s; journal entry \"%s/%s\" left in place: inspect "
			 "it and delete the entry by hand", remove_err.msg, dir,
			 name);
		return 0;
	}
	return err_set(err, ret, "%s", remove_err.msg);
}

static bool cow_has_suffix(const char *s, const char *suffix)
{
	size_t len = strlen(s), slen = strlen(suffix);

	return len > slen && !strcmp(s + len - slen, suffix);
}

int cow_recover(const char *state_dir, unsigned *removed_ret, struct err *err)
{
	char dir[PATH_MAX];
	struct dirent *de;
	bool was_removed;
	unsigned removed = 0;
	int ret = 0, first = 0;
	DIR *d;

	if (removed_ret)
		*removed_ret = 0;
	if (!state_dir)
		return err_set(err, -EINVAL, "cow_recover: no state_dir");
	if (snprintf(dir, sizeof(dir), "%s/" COW_JOURNAL_DIR, state_dir) >=
	    (int)sizeof(dir))
		return err_set(err, -ENAMETOOLONG, "state directory \"%s\" is "
			       "too long", state_dir);
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return err_set(err, -errno, "cannot open journal directory "
			       "\"%s\": %s", dir, err_str(-errno));
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' && cow_has_suffix(de->d_name, ".tmp")) {
			/* Never linked: its snapshot was never created. */
			unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		if (de->d_name[0] == '.' ||
		    !cow_has_suffix(de->d_name, COW_JOURNAL_SUFFIX))
			continue;
		was_removed = false;
		ret = cow_recover_entry(dirfd(d), dir, de->d_name, &was_removed,
					err);
		if (was_removed)
			removed++;
		if (ret && !first)
			first = ret;
	}
	closedir(d);
	ret = cow_fsync_dir(dir);
	if (ret && !first)
		first = err_set(err, ret, "cannot sync journal directory \"%s\": "
				"%s", dir, err_str(ret));
	if (removed_ret)
		*removed_ret = removed;
	return first;
}
