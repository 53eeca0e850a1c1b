/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_COW_COW_H
#define SNAPSHIP_COW_COW_H

/*
 * Copy-on-write snapshots of a partition directory ("freeze" and "release").
 *
 * A snapshot is recorded in a journal in the state directory *before* it is
 * created and the journal entry is removed only after the snapshot is gone,
 * so a crash at any point leaves something cow_recover() can clean up.
 * Snapshots are always named "snapship-<tag>" so snapship recognises its own
 * and never touches anything else.
 *
 * Callers serialise create/release/recover for one state directory with the
 * host lock (agent/lock); cow_recover() assumes it holds that lock and that
 * every journal entry therefore belongs to a process that is gone.
 */

#include <stdbool.h>
#include <stdint.h>

struct err;
struct lvm_plan;

#define COW_PREFIX "snapship-"

/* [partition] snapshot: which backend freezes the partition. */
enum cow_mode {
	COW_MODE_AUTO,    /* btrfs on btrfs, LVM on an LVM volume */
	COW_MODE_BTRFS,
	COW_MODE_LVM,
};

/* The partition's choices for cow_check_source_opts and cow_freeze_opts
 * (NULL: all defaults).  Strings are borrowed. */
struct cow_opts {
	enum cow_mode mode;
	const char *lvm_snapshot_size;  /* thick LVM: "20%", "2G"; NULL default */
};

struct cow_snapshot {
	char *path;          /* readable directory of the frozen tree; owned */
	char *source;        /* the partition directory it was taken of; owned */
	char uuid[37];       /* snapshot subvolume UUID, "" when unknown */
	char source_uuid[37]; /* UUID of the subvolume snapshotted, "" unknown */
	uint64_t generation; /* filesystem generation at snapshot time */
	int64_t time_ns;     /* wall time the snapshot was taken (unix ns) */
	char *journal;       /* journal entry path; owned (internal) */
	const struct cow_ops *ops;
	char fstype[8];      /* filesystem frozen, "btrfs", "ext4" or "xfs" */
	struct lvm_plan *lvm; /* an LVM snapshot's volume and mount; owned
			       * (internal), NULL on btrfs */
};

struct cow_ops {
	const char *name;                       /* "btrfs" */
	/* Is source something this backend can snapshot?  Clear error if not. */
	int (*check)(const char *source, struct err *err);
	/* Create a read-only snapshot of source at dest (which does not exist). */
	int (*create)(const char *source, const char *dest,
		      struct cow_snapshot *snap, struct err *err);
	/* Delete the snapshot at path (only if it is one of ours). */
	int (*remove)(const char *path, struct err *err);
	/* Create the missing path, whose parent is on this backend's
	 * filesystem, as a new volume to restore into (a btrfs subvolume).
	 * NULL: the backend has none; the target is a plain directory. */
	int (*make_target)(const char *path, struct err *err);
	/* Delete the volume make_target made at path, only while it is
	 * empty (-ENOTEMPTY, kept, when it is not); refuse anything that is
	 * not a writable volume.  NULL when make_target is. */
	int (*remove_target)(const char *path, struct err *err);
	/* Delete the writable volume make_target made at path with what it
	 * holds; refuse anything else.  NULL when make_target is. */
	int (*delete_volume)(const char *path, struct err *err);
	/* Are directories a and b on the same filesystem of this backend
	 * (across its volumes)?  NULL: compare st_dev. */
	int (*same_fs)(const char *a, const char *b, bool *same_ret,
		       struct err *err);
};

extern const struct cow_ops cow_btrfs_ops;
/* LVM has only check: cow.c runs the rest through cow/lvm.h itself, as a
 * snapshot there is a volume and a mount, not a path. */
extern const struct cow_ops cow_lvm_ops;

/*
 * The backend for a filesystem of statfs type magic, or NULL when none
 * snapshots it.  The table is static: nothing to free.
 */
const struct cow_ops *cow_backend_for(unsigned long magic);

/*
 * Check that source can be frozen: exists, is a directory, is on a supported
 * filesystem, is a btrfs subvolume.  On failure err says what to do.
 */
int cow_check_source(const char *source, struct err *err);
/* The same with the partition's choices (opts NULL: defaults). */
int cow_check_source_opts(const char *source, const struct cow_opts *opts,
			  struct err *err);

/*
 * Freeze source.  snap_dir is where the snapshot goes (must be on the same
 * filesystem; created if missing; NULL = "<parent of source>/.snapship").
 * state_dir holds the journal.  tag becomes part of the name
 * ("snapship-<tag>", e.g. "orders-20261124T110000Z-a1b2c3").
 * On success *snap_ret is owned by the caller and must be released with
 * cow_release(), which also frees it.
 */
int cow_freeze(const char *source, const char *snap_dir, const char *state_dir,
	       const char *tag, struct cow_snapshot **snap_ret, struct err *err);
/*
 * The same with the partition's choices (opts NULL: defaults).  On an LVM
 * volume snap_dir is not used: the snapshot LV "snapship-<tag>" is mounted
 * read-only at <state_dir>/lvm/snapship-<tag>, and snap->path is the
 * partition's directory inside that mount.
 */
int cow_freeze_opts(const char *source, const char *snap_dir,
		    const char *state_dir, const char *tag,
		    const struct cow_opts *opts, struct cow_snapshot **snap_ret,
		    struct err *err);

/*
 * restore --to-lv: make the new logical volume vg_lv ("VG/NAME", which
 * must not exist) of size (e.g. "20G") with a new fstype filesystem
 * ("ext4", "xfs" or "btrfs") and mount it read-write at
 * <state_dir>/lvm/restore-VG-NAME; *mount_ret (caller frees) is where to
 * restore.  On failure the new volume is removed again.
 */
int cow_lv_target_open(const char *vg_lv, const char *size,
		       const char *fstype, const char *state_dir,
		       char **mount_ret, struct err *err);
/* Unmount what cow_lv_target_open mounted and remove the mount point
 * (the volume stays: it is the restore). */
int cow_lv_target_close(const char *mount, struct err *err);

/* Is spec a valid lvm_snapshot_size ("20%", "512M", "2G")? */
bool cow_lvm_size_ok(const char *spec);

/*
 * Is the snapshot still whole?  A thick LVM snapshot whose copy-on-write
 * space filled during the backup is not (-ENOSPC, err says so); the backup
 * must then fail before it commits anything.  Always 0 on btrfs.
 */
int cow_intact(const struct cow_snapshot *snap, struct err *err);

/*
 * Delete the snapshot and its journal entry and free snap (always freed,
 * also on error; on error the journal entry stays for cow_recover()).
 * NULL is a no-op returning 0.
 */
int cow_release(struct cow_snapshot *snap, struct err *err);

/*
 * Remove every snapshot the journal in state_dir still lists (left by a
 * crash or kill) and their journal entries.  *removed_ret (may be NULL)
 * counts snapshots deleted.  A journal entry whose snapshot is already gone is
 * just dropped.  Never deletes a path whose name lacks COW_PREFIX or that is
 * not a snapshot.
 */
int cow_recover(const char *state_dir, unsigned *removed_ret, struct err *err);

/* What cow_make_target did for a restore target. */
enum cow_target {
	COW_TARGET_EXISTED,     /* an existing directory, used as it was */
	COW_TARGET_DIR,         /* a new plain directory */
	COW_TARGET_VOLUME,      /* a new volume of the backend (btrfs subvolume) */
};

/*
 * Prepare a restore target.  A missing path whose parent's filesystem has a
 * backend with make_target becomes a new volume of it (on btrfs a
 * subvolume, *made_ret = COW_TARGET_VOLUME); elsewhere a new directory
 * (COW_TARGET_DIR).  An existing directory must be empty unless force
 * (COW_TARGET_EXISTED).  Never removes anything.
 */
int cow_make_target(const char *path, bool force, enum cow_target *made_ret,
		    struct err *err);

/*
 * Undo cow_make_target after a restore that wrote nothing: remove the
 * target it made (made: what it said), only while the target is empty —
 * -ENOTEMPTY, and the target kept, when it holds anything.  A target that
 * existed before (COW_TARGET_EXISTED) is never removed: a no-op returning 0.
 */
int cow_remove_target(const char *path, enum cow_target made, struct err *err);

/*
 * Delete the volume cow_make_target made at path (COW_TARGET_VOLUME) with
 * everything it holds — a drill's scratch copy.  Refuses what is not a
 * writable volume of a backend (-EINVAL) and never follows a link.
 */
int cow_delete_volume(const char *path, struct err *err);

/*
 * Are the existing directories a and b on one filesystem?  On btrfs the
 * whole filesystem counts (subvolumes differ in st_dev); elsewhere st_dev.
 * *same_ret; 0 or -errno (err says which path).
 */
int cow_same_fs(const char *a, const char *b, bool *same_ret, struct err *err);

#endif
