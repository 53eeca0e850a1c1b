/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_COW_LVM_H
#define SNAPSHIP_COW_LVM_H

/*
 * LVM snapshots (cow/lvm.c): inside cow/ only, and for the unit tests.
 *
 * A partition whose directory is on ext4 or xfs on an LVM logical volume
 * is frozen by a snapshot of the whole volume: thin ("lvcreate -s", no
 * size, activated with -K) or thick ("lvcreate -s -L SIZE").  The
 * snapshot LV is named "snapship-<tag>" (the tag is "<partition>-<id>")
 * and mounted read-only at <state_dir>/lvm/snapship-<tag>; the backup
 * reads the partition's directory at the same relative path inside it.
 * The journal entry cow.c writes before lvcreate carries "lv=VG/NAME" and
 * "mount=..." so recovery unmounts and removes exactly that LV — and only
 * when its name is snapship-<partition>-<id> and it is a snapshot.
 *
 * The lvm2 tools run through lvm_exec(): fork/exec, no shell, a timeout,
 * stderr kept for the error message.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;
struct cow_snapshot;

#define LVM_NAME_MAX 127           /* an LV or VG name, as lvm2 allows */
#define LVM_DEFAULT_SNAPSHOT_SIZE "20%"
#define LVM_TIMEOUT_S 120          /* any one lvm2 command */

/* One row of "lvs --reportformat json" (all values are strings there). */
struct lvm_lv {
	char vg[LVM_NAME_MAX + 1];
	char name[LVM_NAME_MAX + 1];
	char attr[16];             /* lv_attr, e.g. "Vwi-aotz--" */
	char pool[LVM_NAME_MAX + 1];   /* pool_lv, "" for a thick LV */
	char origin[LVM_NAME_MAX + 1]; /* "" unless a snapshot */
	char dm_path[256];         /* lv_dm_path, "" if unknown */
	uint64_t size;             /* lv_size, bytes */
	uint64_t vg_free;          /* vg_free, bytes */
	double data_percent;       /* -1 when lvs left it empty */
	int major, minor;          /* lv_kernel_major/minor, -1 inactive */
};

/* What lvm_plan found and decided; owned by the cow_snapshot. */
struct lvm_plan {
	struct lvm_lv origin;      /* the LV the partition lives on */
	char snap_name[LVM_NAME_MAX + 1]; /* "snapship-<tag>" */
	char fstype[8];            /* "ext4" or "xfs" */
	char *rel;                 /* partition dir inside the fs ("" = root) */
	char *mount;               /* <state_dir>/lvm/<snap_name> */
	uint64_t cow_bytes;        /* thick snapshot size; 0 for thin */
	bool mounted;
	bool leftover;             /* an LV or mount of ours may exist */
};

/*
 * Run argv[0] (looked up in PATH, then /sbin and /usr/sbin) with argv,
 * without a shell, for at most timeout_s seconds.  Its stdout goes to
 * *out_ret (NUL-terminated, caller frees; out_ret may be NULL to drop
 * it), its stderr into err's message when it fails.  0, or -errno: a
 * non-zero exit is -EIO, the timeout -ETIMEDOUT, a missing program
 * -ENOENT.
 */
int lvm_exec(const char *const argv[], int timeout_s, char **out_ret,
	     struct err *err);

/*
 * Parse lvs JSON output ("report"[0]."lv"[]) into a new array
 * (*lvs_ret, caller frees; *n_ret rows).  -EBADMSG on output that is not
 * that shape.
 */
int lvm_parse_lvs(const char *json, struct lvm_lv **lvs_ret, size_t *n_ret,
		  struct err *err);

/*
 * Is block device maj:min a device-mapper device set up by LVM?  Reads
 * <sysroot>/sys/dev/block/MAJ:MIN/dm/uuid (sysroot "" for the real
 * one); dm/name goes into dm_name (may be NULL).  0 with *is_lvm_ret, or
 * -errno for an unreadable sysfs.
 */
int lvm_sysfs_is_lvm(const char *sysroot, unsigned maj, unsigned min,
		     bool *is_lvm_ret, char *dm_name, size_t dm_name_len);

/*
 * Size of a thick snapshot: spec is "N%" (of origin_size, 1 to 100) or
 * a size ("512M", "2G", bytes); NULL means LVM_DEFAULT_SNAPSHOT_SIZE.
 * The result is rounded up to 512 bytes.  -EINVAL for anything else.
 */
int lvm_snapshot_bytes(const char *spec, uint64_t origin_size,
		       uint64_t *bytes_ret);

/* Is name one of ours: "snapship-<partition>-<id>", characters lvm2
 * allows, no more than LVM_NAME_MAX? */
bool lvm_snap_name_ok(const char *name);

/* The filesystem of source (its mount in /proc/self/mountinfo): type
 * into fstype (size len), the mount point's path into mnt (PATH_MAX) and
 * source's path below the filesystem's root into rel (PATH_MAX, "" at the
 * root).  0 or -errno with err set. */
int lvm_mount_of(const char *source, char *fstype, size_t len, char *mnt,
		 char *rel, struct err *err);

/* cow.c's steps of an LVM freeze/release/recovery. */

/* Everything before the snapshot: the LV (lvs), refusals (a full thin
 * pool, a VG without room for the thick size), the names.  lvm_size is
 * [partition] lvm_snapshot_size (NULL: the default).  *plan_ret is the
 * caller's (lvm_plan_free). */
int lvm_plan_new(const char *source, const char *state_dir, const char *tag,
		 const char *lvm_size, struct lvm_plan **plan_ret,
		 struct err *err);
void lvm_plan_free(struct lvm_plan *plan);
/* lvcreate, activate, mount read-only; fills snap->path.  On failure
 * whatever was made is taken back where it can be (else the journal
 * entry lets recovery do it). */
int lvm_create(struct lvm_plan *plan, struct cow_snapshot *snap,
	       struct err *err);
/* Unmount and lvremove; -ENOENT when the LV was already gone. */
int lvm_release(struct lvm_plan *plan, struct err *err);
/* Is the snapshot still whole (a thick one may overflow)?  -ENOSPC
 * with err saying so when it is not. */
int lvm_intact(const struct lvm_plan *plan, struct err *err);
/* Recovery of a journal entry "lv=VG/NAME", "mount=PATH": unmount,
 * rmdir, lvremove -f when NAME is ours and a snapshot.  *removed_ret
 * tells whether anything was removed; -EINVAL for an entry that names
 * something not ours (left alone). */
int lvm_recover(const char *lv, const char *mount, bool *removed_ret,
		struct err *err);

#endif
