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
	struct packer *packer;    /* for pack_pread: the planner's own reads */
	struct pack_meta *meta;   /* the planner may fill it (below) */
};

/*
 * What the planner knows of an entry's metadata beyond its lstat: its
 * parent backup's record of the same inode with the same ctime (nothing
 * of it changed since).  known: the packer takes link, xattrs and igen
 * from here instead of reading them, for an entry it does not put in the
 * tar.  Valid until the planner's next call (the packer copies it).
 */
struct pack_xattr;

struct pack_meta {
	bool known;
	bool xattrs;              /* as pack_entry_info.xattrs */
	const char *link;         /* a symlink's target; NULL: none */
	uint64_t igen;
	const struct pack_xattr *xattr;
	size_t nxattr;
};

#define PACK_REF_ID_LEN 23    /* a backup id, BACKUP_ID_LEN */

struct pack_blocks;

struct pack_ref {
	char id[PACK_REF_ID_LEN + 1];
	uint64_t offset;
	unsigned char xxh3[16];
	bool sparse;              /* that entry is sparse (holes not stored) */
	bool has_sum;             /* xxh3 is known (a blocked file's may not be) */
	/* a blocked file (the planner's; valid until its next call): on 1, the
	 * whole description; on 2, the runs already stored */
	const struct pack_blocks *blocks;
};

/*
 * Large files in blocks (doc/incremental.md "Large files in blocks"): a
 * regular, not sparse file of at least PACK_BLOCKED_MIN bytes is also
 * described block by block — bsize bytes each (the last one shorter), each
 * with its XXH3-128 and, on btrfs, a fingerprint of the file extent items
 * that hold it — and its content may be spread over several tar entries
 * (runs), in this backup or older ones.  An incremental then stores only the
 * blocks that changed.
 */
#define PACK_BLOCKED_MIN ((uint64_t)4 << 20)
#define PACK_BSIZE_MIN ((uint32_t)16 << 10)       /* what a backup writes */
#define PACK_BSIZE_READ_MIN ((uint32_t)4 << 10)   /* what a reader accepts */
#define PACK_BSIZE_MAX ((uint32_t)1 << 30)
#define PACK_BLOCKS_MAX 16384u

/* The block size a backup uses for a file of size bytes, 0: not described
 * in blocks (too small, or too large even for PACK_BSIZE_MAX): the smallest
 * power of two from 16 KiB up giving at most PACK_BLOCKS_MAX blocks — 16 KiB
 * up to 256 MiB, 64 KiB at 1 GiB (a PostgreSQL segment), 1 MiB at 16 GiB.
 * Small blocks, as a database rewrites random 8 KiB pages: each touched
 * block is stored again (64 KiB stored 1.9x what 16 KiB does of a random
 * page churn; each block costs 48 hex digits in every backup's index:
 * doc/BENCHMARKS.md "Block size").  Readers accept any power of two in
 * [PACK_BSIZE_READ_MIN, PACK_BSIZE_MAX] with at most PACK_BLOCKS_MAX blocks
 * (the rule may change; a file whose block size changes is read whole
 * once). */
static inline uint32_t pack_block_size(uint64_t size)
{
	uint64_t b = PACK_BSIZE_MIN;

	if (size < PACK_BLOCKED_MIN)
		return 0;
	while ((size + b - 1) / b > PACK_BLOCKS_MAX) {
		if (b >= PACK_BSIZE_MAX)
			return 0;
		b <<= 1;
	}
	return (uint32_t)b;
}

/* Blocks [first, first + n) of a file are the data of the tar entry whose
 * header is at offset in backup ref's stream ("" = this backup), starting
 * skip blocks (skip * bsize bytes) into that entry's data. */
struct pack_run {
	uint64_t first, n;
	uint64_t offset;
	uint64_t skip;
	char ref[PACK_REF_ID_LEN + 1];
};

struct pack_blocks {
	uint32_t bsize;
	uint32_t nblocks;         /* ceil(size / bsize) */
	unsigned char (*xxh3)[16]; /* per block: XXH3-128, big-endian */
	uint64_t *ext;            /* per block: extent fingerprint; NULL: none */
	struct pack_run *run;     /* by first, covering [0, nblocks) */
	size_t nrun;
};

/* 1 = referenced (*ref filled; only when pe->content), 0 = pack as usual,
 * 2 = in part (a blocked file: ref->blocks names the runs already stored,
 * with their blocks' xxh3, and ext when known; the blocks no run covers are
 * packed), negative = abort the walk (err set). */
typedef int (*pack_plan_fn)(void *ctx, const struct pack_plan_entry *pe,
			    struct pack_ref *ref, struct err *err);

/*
 * A read the planner makes itself (a file compared block by block by
 * reading it): pread of fd under the same rules as the packer's reads —
 * the rate limit (max_read_rate and the adaptive throttle, waited for)
 * and the I/O priority class (the calling thread's, for the read only).
 * p may be NULL: a plain pread.
 */
ssize_t pack_pread(struct packer *p, int fd, void *buf, size_t len, uint64_t off);

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
	/* Large files in blocks: every regular, not sparse file of
	 * pack_block_size(size) != 0 is hashed block by block while read
	 * (pack_entry_info.blocks) and the planner's 2 is honoured; extents:
	 * also its extent fingerprint (stream/extents.h; none off btrfs). */
	bool blocks;
	bool extents;
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
	/* A blocked file's blocks and runs (NULL: not blocked); valid during
	 * the callback only.  A file in several runs has no single location
	 * (no_offset) and, when some run is older, no whole xxh3 (!has_sum). */
	const struct pack_blocks *blocks;
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
