// SPDX-License-Identifier: MIT
/*
 * restore --to-lv VG/NAME --size S: a new logical volume with a new
 * filesystem of the backup's type, mounted under the state directory for
 * the restore and unmounted after it (cow.h).
 */
#include "cow/lvm.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "cow/cow.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define LVM_MKFS_TIMEOUT_S 600

/* A VG or LV name lvm2 accepts (and not one of our snapshot names). */
static bool lvt_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > LVM_NAME_MAX || s[0] == '-' ||
	    (len <= 2 && s[0] == '.' && (len == 1 || s[1] == '.')))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("+_.-", s[i]))
			return false;
	return true;
}

/* Split "VG/NAME" into vg and name; -EINVAL with err set. */
static int lvt_split(const char *vg_lv, char *vg, char *name, struct err *err)
{
	const char *slash = strchr(vg_lv, '/');

	if (!slash || !lvt_name_ok(vg_lv, (size_t)(slash - vg_lv)) ||
	    !lvt_name_ok(slash + 1, strlen(slash + 1)))
		return err_set(err, -EINVAL, "--to-lv \"%s\": expected VG/NAME, "
			       "names of letters, digits and +_.- (at most %d)",
			       vg_lv, LVM_NAME_MAX);
	if (!strncmp(slash + 1, COW_PREFIX, strlen(COW_PREFIX)))
		return err_set(err, -EINVAL, "--to-lv \"%s\": names starting "
			       "\"" COW_PREFIX "\" are snapship's snapshots, "
			       "which recovery removes; choose another name",
			       vg_lv);
	snprintf(vg, LVM_NAME_MAX + 1, "%.*s", (int)(slash - vg_lv), vg_lv);
	snprintf(name, LVM_NAME_MAX + 1, "%s", slash + 1);
	return 0;
}

/* The device of vg/name from lvs, into dev (PATH_MAX). */
static int lvt_device(const char *vg, const char *name, char *dev,
		      struct err *err)
{
	const char *argv[] = { "lvs", "--reportformat", "json", "-o",
			       "lv_name,vg_name,lv_dm_path", vg, NULL };
	struct lvm_lv *lvs = NULL;
	char *out = NULL;
	size_t n = 0;
	int ret;

	ret = lvm_exec(argv, LVM_TIMEOUT_S, &out, err);
	if (!ret)
		ret = lvm_parse_lvs(out, &lvs, &n, err);
	free(out);
	if (ret)
		return ret;
	ret = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(lvs[i].name, name))
			continue;
		if (*lvs[i].dm_path)
			snprintf(dev, PATH_MAX, "%s", lvs[i].dm_path);
		else
			snprintf(dev, PATH_MAX, "/dev/%s/%s", vg, name);
		ret = 0;
	}
	free(lvs);
	return ret;
}

/* mkfs of fstype on dev. */
static int lvt_mkfs(const char *fstype, const char *dev, struct err *err)
{
	char prog[32];
	const char *argv[] = { prog, "-q", dev, NULL };

	snprintf(prog, sizeof(prog), "mkfs.%s", fstype);
	return lvm_exec(argv, LVM_MKFS_TIMEOUT_S, NULL, err);
}

static void lvt_remove_new(const char *vg, const char *name)
{
	char ref[2 * LVM_NAME_MAX + 2];
	const char *argv[] = { "lvremove", "-f", ref, NULL };
	struct err e = { 0 };

	snprintf(ref, sizeof(ref), "%s/%s", vg, name);
	if (lvm_exec(argv, LVM_TIMEOUT_S, NULL, &e))
		log_warn("%s; remove the new volume %s by hand", e.msg, ref);
}

/* Make vg/name (size bytes) with a new fstype filesystem, mounted at mnt. */
static int lvt_make(const char *vg, const char *name, uint64_t size,
		    const char *fstype, const char *mnt, struct err *err)
{
	char bytes[32], dev[PATH_MAX];
	const char *create[] = { "lvcreate", "--yes", "--wipesignatures", "y",
				 "-L", bytes, "-n", name, vg, NULL };
	int ret;

	ret = lvt_device(vg, name, dev, err);
	if (ret != -ENOENT)
		return ret ? ret : err_set(err, -EEXIST, "logical volume %s/%s "
					   "exists: --to-lv makes a new one; "
					   "choose a new name", vg, name);
	snprintf(bytes, sizeof(bytes), "%llub", (unsigned long long)size);
	ret = lvm_exec(create, LVM_TIMEOUT_S, NULL, err);
	if (ret)
		return ret;
	ret = lvt_device(vg, name, dev, err);
	if (!ret)
		ret = lvt_mkfs(fstype, dev, err);
	if (!ret && mount(dev, mnt, fstype, MS_NOSUID | MS_NODEV, NULL))
		ret = err_set(err, -errno, "cannot mount the new volume %s "
			      "(%s) at \"%s\": %s", dev, fstype, mnt,
			      err_str(-errno));
	if (ret)
		lvt_remove_new(vg, name);   /* new and empty: ours to remove */
	return ret;
}

int cow_lv_target_open(const char *vg_lv, const char *size,
		       const char *fstype, const char *state_dir,
		       char **mount_ret, struct err *err)
{
	char vg[LVM_NAME_MAX + 1], name[LVM_NAME_MAX + 1], dir[PATH_MAX];
	uint64_t bytes;
	char *mnt = NULL;
	int ret;

	*mount_ret = NULL;
	ret = lvt_split(vg_lv, vg, name, err);
	if (ret)
		return ret;
	if (!size || util_parse_size(size, &bytes) || bytes < (1u << 20))
		return err_set(err, -EINVAL, "--size \"%s\": expected a size of "
			       "at least 1M (512M, 20G)", size ? size : "");
	if (strcmp(fstype, "ext4") && strcmp(fstype, "xfs") &&
	    strcmp(fstype, "btrfs"))
		return err_set(err, -EOPNOTSUPP, "the backup was of a %s "
			       "filesystem: --to-lv makes ext4, xfs or btrfs "
			       "only; restore into a directory (--to)", fstype);
	if (snprintf(dir, sizeof(dir), "%s/lvm", state_dir) >= (int)sizeof(dir) ||
	    asprintf(&mnt, "%s/restore-%s-%s", dir, vg, name) < 0)
		return err_set(err, -ENOMEM, "out of memory");
	ret = util_mkdir_p(dir, 0700);
	if (!ret && mkdir(mnt, 0700) && errno != EEXIST)
		ret = -errno;
	if (ret) {
		err_set(err, ret, "cannot create mount point \"%s\": %s", mnt,
			err_str(ret));
		goto out_free;
	}
	ret = lvt_make(vg, name, bytes, fstype, mnt, err);
	if (ret) {
		rmdir(mnt);
		goto out_free;
	}
	log_info("made logical volume %s/%s (%s, %s) mounted at \"%s\"", vg,
		 name, size, fstype, mnt);
	*mount_ret = mnt;
	return 0;
out_free:
	free(mnt);
	return ret;
}

int cow_lv_target_close(const char *mount, struct err *err)
{
	if (umount2(mount, UMOUNT_NOFOLLOW))
		return err_set(err, -errno, "cannot unmount the restored volume "
			       "at \"%s\": %s; unmount it by hand", mount,
			       err_str(-errno));
	if (rmdir(mount))
		log_warn("cannot remove mount point \"%s\": %s", mount,
			 strerror(errno));
	return 0;
}
