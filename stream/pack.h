/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_STREAM_PACK_H
#define SNAPSHIP_STREAM_PACK_H

/*
 * Walk a frozen tree and write it as a POSIX pax tar stream (libarchive),
 * reading file data through io_uring: many files in flight, large reads
 * into one registered buffer, bounded queue depth and read-ahead window,
 * page cache dropped behind the reader.  Every entry is reported with its
 * XXH3-128 content checksum and the offset of its header in the stream.
 *
 * Walk order: depth first, a directory before its contents, the entries of
 * a directory in byte order of their names (strcmp) — deterministic, so two
 * walks (or a walk and an older index) merge by path.
 *
 * Memory: the read-ahead window plus about one kilobyte per entry walked
 * ahead (bounded), plus the names of the directories on the current path
 * (each read whole and sorted when entered: a name and a pointer each, so a
 * directory of a million 20-byte names costs ~30 MB while it is walked) —
 * independent of the tree's size otherwise, except for one path per
 * multiply-linked inode (hard links).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct err;
struct stat;

/*
 * An incremental's planner (pack_opts.plan) is asked about every entry of
 * the walk, in walk order, before any of its data is read.  For a file
 * whose content would be packed (content: a regular file, the first path
 * of its inode, size > 0) it may answer "that content is already stored"
 * with where: the backup holding it, the offset of its tar entry there and
 * its XXH3-128.  The file is then not read, not put in the tar, and its
 * entry is reported with that location (pack_entry_info.ref).
 */
struct pack_plan_entry {
	const char *path;         /* relative; "." for the root */
	const struct stat *st;    /* lstat of the entry */
	bool content;             /* its content would be packed */
	int rootfd;               /* the walked root, to read path (openat) */
};

#define PACK_REF_ID_LEN 23    /* a backup id, BACKUP_ID_LEN */

struct pack_ref {
	char id[PACK_REF_ID_LEN + 1];
	uint64_t offset;
	unsigned char xxh3[16];
	bool sparse;              /* that entry is sparse (holes not stored) */
};

/* 1 = referenced (*ref filled; only when pe->content), 0 = pack as usual,
 * negative = abort the walk (err set). */
typedef int (*pack_plan_fn)(void *ctx, const struct pack_plan_entry *pe,
			    struct pack_ref *ref, struct err *err);

struct pack_opts {
	unsigned queue_depth;     /* io_uring reads in flight; 0 = 64 */
	size_t window;            /* read-ahead bytes; 0 = 4 MiB */
	size_t chunk;             /* largest single read; 0 = 1 MiB */
	uint64_t max_read_rate;   /* bytes per second, 0 = unlimited */
	int ioprio_class;         /* 0 = leave, 2 = best-effort, 3 = idle */
	bool keep_cache;          /* true: do not drop page cache after reads */
	/* Called now and then with bytes and entries done so far (may be NULL). */
	void (*progress)(void *ctx, uint64_t bytes, uint64_t entries);
	void *progress_ctx;
	/* Asked between reads and while the rate limit sleeps (may be NULL):
	 * true ends the walk with -ECANCELED.  May be called often: cheap. */
	bool (*cancelled)(void *ctx);
	void *cancel_ctx;
	/* The adaptive limit (may be NULL): asked before every read and while
	 * the reader waits, returns the read rate allowed now in bytes per
	 * second (0 = no limit); the lower of it and max_read_rate applies.
	 * May be called often: cheap (it samples what it watches itself). */
	uint64_t (*throttle)(void *ctx);
	void *throttle_ctx;
	/* The planner (NULL: every file packed) and its context. */
	pack_plan_fn plan;
	void *plan_ctx;
	/* Format version 2's data object: the tar holds only the packed
	 * regular files' entries (no directories, links, empty or referenced
	 * files); the other entries are reported without an offset. */
	bool content_only;
};

enum pack_type {
	PACK_FILE = 'f', PACK_DIR = 'd', PACK_SYMLINK = 'l', PACK_HARDLINK = 'h',
	PACK_CHAR = 'c', PACK_BLOCK = 'b', PACK_FIFO = 'p',
};

/* One extended attribute: name and value as the filesystem has them. */
struct pack_xattr {
	const char *name;
	const void *value;
	size_t len;
};

struct pack_entry_info {
	const char *path;         /* relative to the root; "." for the root */
	enum pack_type type;
	mode_t mode;              /* permission bits (07777) */
	uid_t uid;
	gid_t gid;
	uint64_t size;            /* logical size of regular files */
	int64_t mtime_ns;
	const char *link;         /* symlink or hard-link target, else NULL */
	dev_t rdev;
	bool xattrs;              /* has extended attributes (incl. ACLs) */
	bool sparse;
	bool has_sum;
	unsigned char xxh3[16];   /* XXH3-128 of the content, big-endian */
	uint64_t offset;          /* of the entry's first header in the stream */
	uint64_t ino;             /* st_ino */
	uint64_t igen;            /* inode generation (FS_IOC_GETVERSION) of
				   * files and directories; 0: none or not
				   * supported (symlinks, devices, fifos) */
	int64_t ctime_ns;
	/* The extended attributes the tar entry carries (SCHILY.xattr) plus
	 * the POSIX ACLs as their raw system.posix_acl_* values; valid during
	 * the callback only. */
	const struct pack_xattr *xattr;
	size_t nxattr;
	/* The backup holding the content (offset is in its tar stream), NULL:
	 * this one.  no_offset: the entry has no location (content_only mode:
	 * not in the tar, made from the index). */
	const char *ref;
	bool no_offset;
};

/* The tar stream, in order.  Negative return aborts the walk. */
typedef int (*pack_out_fn)(void *ctx, const void *buf, size_t len,
			   struct err *err);
/* Each entry once its data is in the stream.  Negative return aborts. */
typedef int (*pack_entry_fn)(void *ctx, const struct pack_entry_info *e,
			     struct err *err);

struct pack_stats {
	uint64_t entries, files, dirs, others;
	uint64_t logical_bytes;   /* regular file contents */
	uint64_t tar_bytes;       /* length of the stream */
	uint64_t skipped;         /* sockets and the like */
	double throttled_s;       /* the reader waited for opts->throttle's rate */
	uint64_t referenced;      /* files the planner pointed at older content */
	uint64_t referenced_bytes;
};

int pack_tree(const char *root, const struct pack_opts *opts,
	      pack_out_fn out, void *out_ctx, pack_entry_fn on_entry,
	      void *entry_ctx, struct pack_stats *stats_ret, struct err *err);

#endif
