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

#include "stream/pack.h"

#define QCAP 1024u            /* entries walked ahead */
#define CCAP 4096u            /* chunks assigned ahead */
#define MAX_OPEN 256u         /* files held open by the reader */

struct region {
	uint64_t off, len;
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

/* The reader (pack_read.c) */
bool pk_needs_data(const struct pent *e);
int pk_reader_open(struct packer *p, struct pent *e);
bool pk_cancelled(const struct packer *p);
int pk_reader_submit(struct packer *p);
int pk_reader_reap(struct packer *p, bool wait);
int pk_reader_pump(struct packer *p);

#endif
