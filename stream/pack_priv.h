/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_STREAM_PACK_PRIV_H
#define SNAPSHIP_STREAM_PACK_PRIV_H

/*
 * Inside the packer (stream/pack.c: walker and pax writer;
 * stream/pack_read.c: the io_uring reader).  Not for other files.
 */
#include <archive.h>
#include <dirent.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "stream/pack.h"

#define QCAP 1024u            /* entries walked ahead */
#define CCAP 4096u            /* chunks assigned ahead */
#define MAX_OPEN 256u         /* files held open by the reader */

struct region {
	uint64_t off, len;
};

/*
 * A blocked file being packed (pack_blocks.c): its blocks' checksums and
 * fingerprints (b.xxh3, b.ext: nblocks each, owned) and the runs reported
 * (b.run, owned).  old: the runs the planner said are stored already (its 1
 * or 2, copied when the entry is planned: the planner's pointer is valid
 * only until its next call); part: its 2 — only the blocks no old run
 * covers are read, one tar entry per run of them.
 */
struct pblk {
	struct pack_blocks b;
	struct pack_run *old;
	size_t nold;
	bool part;
	bool planned;             /* copied from the planner (counted in nblk) */
	XXH3_state_t *h;          /* the block being hashed (XXH3_createState:
				   * the state wants 64-byte alignment) */
};

struct pent {
	char *path;               /* relative, "." for the root */
	struct stat st;
	char *hardlink;           /* first path of this inode, for later links */
	int fd;
	struct region *reg;       /* data regions (holes elsewhere) */
	unsigned nreg;
	bool sparse;
	unsigned ri;              /* reader: next region to assign */
	uint64_t roff;            /* reader: next offset in region ri */
	bool assigned;            /* reader: all chunks assigned */
	uint64_t igen;            /* inode generation, 0 unknown */
	bool is_ref;              /* the planner points it at older content */
	struct pack_ref ref;
	/* the planner's pack_meta, copied (owned): used when not in the tar */
	bool meta_known, meta_xattrs;
	uint64_t meta_igen;
	char *meta_link;
	struct pack_xattr *meta_xa;   /* one allocation: array, names, values */
	size_t meta_nxa;
	struct pblk *blk;         /* a blocked file; NULL: not (yet) */
};

struct chunk {
	struct pent *e;
	uint64_t off;
	uint32_t len, done;
	uint64_t apos;            /* absolute arena position of the data */
	uint64_t aend;            /* arena position after this chunk */
	bool submitted, complete;
	int res;
};

/*
 * A directory being walked: its names read whole when it is entered and
 * sorted in byte order (strcmp), emitted one by one.  Memory: the names of
 * each directory on the current path (a name plus a pointer each), freed
 * when the walk leaves it.
 */
struct dirframe {
	DIR *dir;                 /* kept open for dirfd() */
	char *path;               /* relative path of the directory */
	char *buf;                /* the names, NUL-separated */
	char **names;             /* into buf, sorted */
	size_t n, next;
};

struct linkent {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct packer {
	const char *root;
	int rootfd;
	struct pack_opts o;
	pack_out_fn out;
	void *out_ctx;
	struct err *err;
	int error;

	/* walker */
	struct dirframe *stack;
	unsigned depth, stack_cap;
	bool walk_done, root_done;
	struct pent *q[QCAP];
	uint64_t qpack, qread, qwalk;
	unsigned nblk;            /* queued entries holding the planner's blocks */
	struct linkent *links;
	size_t nlinks, links_cap;

	/* reader */
	struct io_uring ring;
	bool ring_ok;
	unsigned char *arena;
	uint64_t ahead, atail;
	struct chunk c[CCAP];
	uint64_t chead, ctail, csub;   /* assigned, consumed, first unsubmitted */
	unsigned inflight, open_files;
	uint64_t bytes_submitted;
	double t_start;
	double rate_due;          /* the rate limit: when the next read may start */

	/* packer */
	struct pack_xattr *xa;     /* the entry being packed: its xattrs */
	size_t nxa, xa_cap;
	char *acl_buf;             /* raw ACL values (two of XATTR_SIZE_MAX) */
	struct archive *a;
	struct archive *disk;
	uint64_t pos;              /* bytes of tar stream so far */
	struct pack_stats stats;
	double t_progress;
};

double pk_now(void);
int pk_fail(struct packer *p, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Produce the next entry into the ring.  1 = produced, 0 = done, <0 error. */
int pk_walk_one(struct packer *p);

/* The inode generation of an open file or directory; 0 when unsupported. */
uint64_t pk_igen(int fd);

/* The data regions of a regular file (SEEK_DATA/SEEK_HOLE) into e. */
int pk_find_regions(struct packer *p, struct pent *e, int fd);

/* The walk ahead stops while this many planned blocked files wait (their
 * copies of the planner's blocks: up to 16384 x 24 bytes each). */
#define NBLK_AHEAD 8u

void pk_progress(struct packer *p, bool force);

/* The reader (pack_read.c) */
bool pk_needs_data(const struct pent *e);
int pk_reader_open(struct packer *p, struct pent *e);
bool pk_cancelled(const struct packer *p);
int pk_reader_submit(struct packer *p);
int pk_reader_reap(struct packer *p, bool wait);
int pk_reader_pump(struct packer *p);
/* The next chunk of e, read: 1 = *c_ret, 0 = e has no more, <0 error. */
int pk_next_chunk(struct packer *p, struct pent *e, struct chunk **c_ret);
/* c consumed: its arena space free, the reader moved on. */
int pk_chunk_done(struct packer *p, struct chunk *c);

/* Large files in blocks (pack_blocks.c) */
/* The planner's 1 or 2 with blocks pb: copied into e. */
int pk_blk_planned(struct packer *p, struct pent *e, const struct pack_blocks *pb,
		   bool part);
/* e was opened (regions found): is it read in blocks?  Set up e->blk (and
 * for a part read e->reg: the blocks to read), or drop a plan that cannot
 * hold (sparse, another bsize: read whole). */
int pk_blk_opened(struct packer *p, struct pent *e);
/* len bytes of e's content at file offset off, in order, into the blocks. */
void pk_blk_hash(struct pblk *bk, uint64_t size, uint64_t off, const void *buf,
		 size_t len);
/* A part read: e's tar entries (one per run of blocks read), its merged
 * runs into info. */
int pk_blk_write_parts(struct packer *p, struct pent *e, struct pack_entry_info *info);
/* info's blocks for a whole read (one run at info->offset) or a plan 1. */
int pk_blk_report(struct packer *p, struct pent *e, struct pack_entry_info *info);
/* e is done: its blocks freed, the walk ahead may go on. */
void pk_blk_done(struct packer *p, struct pent *e);
void pk_blk_free(struct pblk *bk);

/* pack_walk.c: an entry's memory; the walker's innermost directory left */
void pk_pent_free(struct pent *e);
void pk_walk_pop(struct packer *p);

#endif
