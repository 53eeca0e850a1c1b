// SPDX-License-Identifier: MIT
/*
 * LVM snapshots of ext4 and xfs logical volumes (cow/lvm.h says how).
 *
 * lvcreate suspends the origin and freezes its filesystem while the
 * snapshot is taken, so the snapshot is a clean point in time; it is
 * mounted read-only without journal replay (ext4 noload, xfs
 * norecovery) so nothing ever writes to it.
 */
#include "cow/lvm.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "cow/cow.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LVS_FIELDS "lv_name,vg_name,lv_attr,pool_lv,origin,lv_dm_path," \
	"lv_size,vg_free,data_percent,lv_kernel_major,lv_kernel_minor"

static bool lvm_fstype_ok(const char *fstype)
{
	return !strcmp(fstype, "ext4") || !strcmp(fstype, "xfs");
}

/* The LVs lvs reports for what (a VG, or NULL for all). */
static int lvm_lvs(const char *what, struct lvm_lv **lvs_ret, size_t *n_ret,
		   struct err *err)
{
	const char *argv[] = { "lvs", "--reportformat", "json", "--units", "b",
			       "--nosuffix", "-o", LVS_FIELDS, what, NULL };
	char *out = NULL;
	int ret;

	ret = lvm_exec(argv, LVM_TIMEOUT_S, &out, err);
	if (!ret)
		ret = lvm_parse_lvs(out, lvs_ret, n_ret, err);
	free(out);
	return ret;
}

/* Row vg/name of the VG's LVs into lv; -ENOENT when it has none. */
static int lvm_find(const char *vg, const char *name, struct lvm_lv *lv,
		    struct err *err)
{
	struct lvm_lv *lvs;
	size_t n;
	int ret;

	ret = lvm_lvs(vg, &lvs, &n, err);
	if (ret)
		return ret;
	ret = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(lvs[i].vg, vg) && !strcmp(lvs[i].name, name)) {
			*lv = lvs[i];
			ret = 0;
			break;
		}
	}
	free(lvs);
	return ret;
}

/* The cow_ops check: ext4 or xfs on a device LVM made. */
static int lvm_check(const char *source, struct err *err)
{
	char fstype[32], mnt[PATH_MAX], rel[PATH_MAX];
	struct stat st;
	bool is_lvm;
	int ret;

	if (stat(source, &st))
		return err_set(err, -errno, "partition \"%s\": %s", source,
			       err_str(-errno));
	ret = lvm_sysfs_is_lvm("", major(st.st_dev), minor(st.st_dev),
			       &is_lvm, NULL, 0);
	if (ret)
		return err_set(err, ret, "partition \"%s\": cannot read "
			       "/sys/dev/block/%u:%u: %s", source,
			       major(st.st_dev), minor(st.st_dev), err_str(ret));
	if (!is_lvm)
		return err_set(err, -ENODEV, "partition \"%s\": its "
			       "device %u:%u is not an LVM logical volume",
			       source, major(st.st_dev), minor(st.st_dev));
	ret = lvm_mount_of(source, fstype, sizeof(fstype), mnt, rel, err);
	if (ret)
		return ret;
	if (!lvm_fstype_ok(fstype))
		return err_set(err, -EOPNOTSUPP, "partition \"%s\" is on %s on "
			       "an LVM logical volume: snapship makes LVM "
			       "snapshots of ext4 and xfs only", source, fstype);
	return 0;
}

/* The origin (by the device of source) and, for thin, its pool. */
static int lvm_find_origin(const char *source, struct lvm_plan *p,
			   struct lvm_lv *pool, struct err *err)
{
	struct lvm_lv *lvs = NULL;
	struct stat st;
	size_t n = 0;
	bool found = false;
	int ret;

	if (stat(source, &st))
		return err_set(err, -errno, "partition \"%s\": %s", source,
			       err_str(-errno));
	ret = lvm_lvs(NULL, &lvs, &n, err);
	if (ret)
		return ret;
	for (size_t i = 0; i < n && !found; i++) {
		if (lvs[i].major == (int)major(st.st_dev) &&
		    lvs[i].minor == (int)minor(st.st_dev)) {
			p->origin = lvs[i];
			found = true;
		}
	}
	memset(pool, 0, sizeof(*pool));
	for (size_t i = 0; found && *p->origin.pool && i < n; i++)
		if (!strcmp(lvs[i].vg, p->origin.vg) &&
		    !strcmp(lvs[i].name, p->origin.pool))
			*pool = lvs[i];
	free(lvs);
	if (!found)
		return err_set(err, -ENODEV, "partition \"%s\": lvs lists no "
			       "active logical volume with device %u:%u",
			       source, major(st.st_dev), minor(st.st_dev));
	return 0;
}

/* The refusals: a full thin pool, a VG without room; else the size. */
static int lvm_plan_space(struct lvm_plan *p, const struct lvm_lv *pool,
			  const char *lvm_size, struct err *err)
{
	const struct lvm_lv *o = &p->origin;
	char need[32], have[32];

	if (o->attr[0] == 'V') {
		if (!*pool->name)
			return err_set(err, -ENODEV, "thin volume %s/%s: lvs "
				       "does not list its pool \"%s\"", o->vg,
				       o->name, o->pool);
		if (pool->data_percent >= 100.0)
			return err_set(err, -ENOSPC, "thin pool %s/%s is full "
				       "(%.2f%% of its data space used): no "
				       "snapshot of %s/%s can be made; extend "
				       "the pool (lvextend -L +SIZE %s/%s) or "
				       "free space in it", o->vg, pool->name,
				       pool->data_percent, o->vg, o->name,
				       o->vg, pool->name);
		p->cow_bytes = 0;
		return 0;
	}
	if (o->attr[0] != '-' && o->attr[0] != 'o')
		return err_set(err, -EOPNOTSUPP, "logical volume %s/%s (lv_attr "
			       "%s) is neither a plain nor a thin volume: "
			       "snapship snapshots only those", o->vg, o->name,
			       o->attr);
	if (lvm_snapshot_bytes(lvm_size, o->size, &p->cow_bytes))
		return err_set(err, -EINVAL, "lvm_snapshot_size \"%s\" is not a "
			       "size (512M, 2G) or a percentage of the volume "
			       "(1%% to 100%%)", lvm_size);
	if (o->vg_free < p->cow_bytes)
		return err_set(err, -ENOSPC, "volume group %s has %s free, but a "
			       "thick snapshot of %s/%s needs %s "
			       "(lvm_snapshot_size %s): free space in %s "
			       "(vgextend, or shrink a volume) or lower "
			       "lvm_snapshot_size in the [partition] section",
			       o->vg, util_human_size(o->vg_free, have,
						      sizeof(have)),
			       o->vg, o->name,
			       util_human_size(p->cow_bytes, need, sizeof(need)),
			       lvm_size ? lvm_size : LVM_DEFAULT_SNAPSHOT_SIZE,
			       o->vg);
	return 0;
}

void lvm_plan_free(struct lvm_plan *plan)
{
	if (!plan)
		return;
	free(plan->rel);
	free(plan->mount);
	free(plan);
}

int lvm_plan_new(const char *source, const char *state_dir, const char *tag,
		 const char *lvm_size, struct lvm_plan **plan_ret,
		 struct err *err)
{
	char mnt[PATH_MAX], rel[PATH_MAX], state_real[PATH_MAX];
	struct lvm_plan *p;
	struct lvm_lv pool;
	int ret;

	*plan_ret = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(err, -ENOMEM, "out of memory");
	ret = lvm_mount_of(source, p->fstype, sizeof(p->fstype), mnt, rel, err);
	if (ret)
		goto out_free;
	if (!lvm_fstype_ok(p->fstype)) {
		ret = err_set(err, -EOPNOTSUPP, "partition \"%s\" is on %s: "
			      "snapship makes LVM snapshots of ext4 and xfs "
			      "only", source, p->fstype);
		goto out_free;
	}
	if (snprintf(p->snap_name, sizeof(p->snap_name), COW_PREFIX "%s",
		     tag) >= (int)sizeof(p->snap_name) ||
	    !lvm_snap_name_ok(p->snap_name)) {
		ret = err_set(err, -EINVAL, "snapshot name \"" COW_PREFIX
			      "%s\" is not a valid LVM name (letters, digits "
			      "and +_.- only, at most %d bytes): shorten the "
			      "partition's name", tag, LVM_NAME_MAX);
		goto out_free;
	}
	if (!realpath(state_dir, state_real)) {
		ret = err_set(err, -errno, "state directory \"%s\": %s",
			      state_dir, err_str(-errno));
		goto out_free;
	}
	p->rel = strdup(rel);
	if (!p->rel || asprintf(&p->mount, "%s/lvm/%s", state_real,
				p->snap_name) < 0) {
		p->mount = NULL;
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out_free;
	}
	ret = lvm_find_origin(source, p, &pool, err);
	if (!ret)
		ret = lvm_plan_space(p, &pool, lvm_size, err);
	if (ret)
		goto out_free;
	*plan_ret = p;
	return 0;
out_free:
	lvm_plan_free(p);
	return ret;
}

/* "VG/NAME" of the snapshot into buf. */
static const char *lvm_snap_ref(const struct lvm_plan *p, char *buf,
				size_t len)
{
	snprintf(buf, len, "%s/%s", p->origin.vg, p->snap_name);
	return buf;
}

/* lvcreate (and for thin, lvchange -ay -K: thin snapshots skip
 * activation by default). */
static int lvm_lvcreate(struct lvm_plan *p, struct err *err)
{
	char origin[2 * LVM_NAME_MAX + 2], snap[2 * LVM_NAME_MAX + 2];
	char size[32];
	const char *thin[] = { "lvcreate", "-s", "-n", p->snap_name, origin, NULL };
	const char *thick[] = { "lvcreate", "-s", "-L", size, "-n", p->snap_name,
				origin, NULL };
	const char *activate[] = { "lvchange", "-ay", "-K", snap, NULL };
	double t0 = util_now_mono();
	int ret;

	snprintf(origin, sizeof(origin), "%s/%s", p->origin.vg, p->origin.name);
	lvm_snap_ref(p, snap, sizeof(snap));
	snprintf(size, sizeof(size), "%llub", (unsigned long long)p->cow_bytes);
	ret = lvm_exec(p->cow_bytes ? thick : thin, LVM_TIMEOUT_S, NULL, err);
	if (ret)
		return ret;
	log_info("lvm: created %s snapshot %s of %s in %.3f s",
		 p->cow_bytes ? "thick" : "thin", snap, origin,
		 util_now_mono() - t0);
	if (!p->cow_bytes)
		ret = lvm_exec(activate, LVM_TIMEOUT_S, NULL, err);
	return ret;
}

/* Mount the snapshot read-only at p->mount, never replaying a log. */
static int lvm_mount(struct lvm_plan *p, struct err *err)
{
	char dev[PATH_MAX];
	struct lvm_lv lv;
	const char *opts = strcmp(p->fstype, "xfs") ? "noload"
						     : "nouuid,norecovery";
	int ret;

	ret = lvm_find(p->origin.vg, p->snap_name, &lv, err);
	if (ret == -ENOENT)
		return err_set(err, ret, "snapshot %s/%s is gone right after "
			       "lvcreate", p->origin.vg, p->snap_name);
	if (ret)
		return ret;
	if (*lv.dm_path)
		snprintf(dev, sizeof(dev), "%s", lv.dm_path);
	else
		snprintf(dev, sizeof(dev), "/dev/%s/%s", p->origin.vg,
			 p->snap_name);
	if (mount(dev, p->mount, p->fstype,
		  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, opts))
		return err_set(err, -errno, "cannot mount snapshot %s (%s) "
			       "read-only at \"%s\" (-o ro,%s): %s", dev,
			       p->fstype, p->mount, opts, err_str(-errno));
	p->mounted = true;
	return 0;
}

int lvm_create(struct lvm_plan *p, struct cow_snapshot *snap, struct err *err)
{
	char dir[PATH_MAX];
	struct err undo = { 0 };
	int ret;

	snprintf(dir, sizeof(dir), "%s", p->mount);
	*strrchr(dir, '/') = '\0';
	ret = util_mkdir_p(dir, 0700);
	if (!ret && mkdir(p->mount, 0700) && errno != EEXIST)
		ret = -errno;
	if (ret)
		return err_set(err, ret, "cannot create mount point \"%s\": %s",
			       p->mount, err_str(ret));
	p->leftover = true;
	ret = lvm_lvcreate(p, err);
	if (ret)
		goto out_undo;
	ret = lvm_mount(p, err);
	if (ret)
		goto out_undo;
	free(snap->path);
	if (asprintf(&snap->path, "%s%s%s", p->mount, *p->rel ? "/" : "",
		     p->rel) < 0) {
		snap->path = NULL;
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out_undo;
	}
	return 0;
out_undo:
	if (lvm_release(p, &undo) && undo.code != -ENOENT)
		log_warn("%s; the journal entry stays so recovery removes it",
			 undo.msg);
	else
		p->leftover = false;
	return ret;
}

/* Unmount (retrying a busy mount a little) and drop the mount point. */
static int lvm_unmount(const char *mount, struct err *err)
{
	int tries = 0;

	while (umount2(mount, UMOUNT_NOFOLLOW)) {
		if (errno == EINVAL || errno == ENOENT)
			break;  /* not mounted */
		if (errno != EBUSY || ++tries > 50)
			return err_set(err, -errno, "cannot unmount snapshot "
				       "at \"%s\": %s; close what uses it "
				       "(fuser -m) and run snapship clean",
				       mount, err_str(-errno));
		usleep(100000);
	}
	if (rmdir(mount) && errno != ENOENT)
		log_warn("cannot remove mount point \"%s\": %s", mount,
			 strerror(errno));
	return 0;
}

/* lvremove -f vg/name when it is ours and a snapshot; -ENOENT if gone. */
static int lvm_remove_lv(const char *vg, const char *name, struct err *err)
{
	char ref[2 * LVM_NAME_MAX + 2];
	const char *argv[] = { "lvremove", "-f", ref, NULL };
	struct lvm_lv lv;
	int ret;

	if (!lvm_snap_name_ok(name))
		return err_set(err, -EINVAL, "refusing to remove logical volume "
			       "%s/%s: its name is not " COW_PREFIX
			       "<partition>-<id>", vg, name);
	ret = lvm_find(vg, name, &lv, err);
	if (ret)
		return ret;
	if (!*lv.origin || (lv.attr[0] != 's' && lv.attr[0] != 'S' &&
			    lv.attr[0] != 'V'))
		return err_set(err, -EINVAL, "refusing to remove logical volume "
			       "%s/%s (lv_attr %s): it is not a snapshot",
			       vg, name, lv.attr);
	snprintf(ref, sizeof(ref), "%s/%s", vg, name);
	return lvm_exec(argv, LVM_TIMEOUT_S, NULL, err);
}

int lvm_release(struct lvm_plan *p, struct err *err)
{
	int ret;

	ret = lvm_unmount(p->mount, err);
	if (ret)
		return ret;
	p->mounted = false;
	return lvm_remove_lv(p->origin.vg, p->snap_name, err);
}

int lvm_intact(const struct lvm_plan *p, struct err *err)
{
	struct lvm_lv lv;
	int ret;

	if (!p->cow_bytes)
		return 0;  /* thin snapshots do not overflow on their own */
	ret = lvm_find(p->origin.vg, p->snap_name, &lv, err);
	if (ret == -ENOENT)
		return err_set(err, -EIO, "snapshot %s/%s vanished during the "
			       "backup", p->origin.vg, p->snap_name);
	if (ret)
		return ret;
	if (lv.attr[0] == 'S' || lv.attr[4] == 'I' || lv.data_percent >= 100.0)
		return err_set(err, -ENOSPC, "thick snapshot %s/%s overflowed "
			       "during the backup (%.0f%% of its %llu bytes "
			       "used, lv_attr %s): the backup is not consistent "
			       "and nothing was committed; raise "
			       "lvm_snapshot_size in the [partition] section "
			       "or back up when fewer writes happen",
			       p->origin.vg, p->snap_name, lv.data_percent,
			       (unsigned long long)p->cow_bytes, lv.attr);
	return 0;
}

int lvm_recover(const char *lv, const char *mount, bool *removed_ret,
		struct err *err)
{
	char vg[LVM_NAME_MAX + 1];
	const char *slash = strchr(lv, '/'), *base = strrchr(mount, '/');
	int ret;

	*removed_ret = false;
	if (!slash || (size_t)(slash - lv) > LVM_NAME_MAX || !base ||
	    strcmp(base + 1, slash + 1) || !lvm_snap_name_ok(slash + 1))
		return err_set(err, -EINVAL, "refusing to remove \"%s\" "
			       "(mounted at \"%s\"): not an LVM snapshot named "
			       COW_PREFIX "<partition>-<id> at its own mount "
			       "point", lv, mount);
	snprintf(vg, sizeof(vg), "%.*s", (int)(slash - lv), lv);
	ret = lvm_unmount(mount, err);
	if (ret)
		return ret;
	ret = lvm_remove_lv(vg, slash + 1, err);
	if (ret == 0)
		*removed_ret = true;
	return ret;
}

const struct cow_ops cow_lvm_ops = {
	.name = "lvm",
	.check = lvm_check,
};
