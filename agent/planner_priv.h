/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_PLANNER_PRIV_H
#define SNAPSHIP_AGENT_PLANNER_PRIV_H

/*
 * Inside the planner (agent/planner.c: parent, merge, renames;
 * agent/planner_blocks.c: large files in blocks).  Not for other files.
 */
#include <stdbool.h>
#include <stdint.h>

#include "agent/catalog.h"
#include "agent/index.h"
#include "stream/pack.h"

/* The largest version 1 parent index read whole (compressed): 4 GiB. */
#define PLANNER_INDEX_MAX ((size_t)4 << 30)

struct store;

/*
 * A version 2 parent's index object read from the store in ranges (the
 * index reader's 256 KiB), its bytes hashed as they pass: one per pass.
 * At the reader's end, size and SHA-256 must be the manifest's.
 */
struct pidx_src {
	struct store *store;      /* the region's */
	const char *key;          /* planner.ikey */
	const char *parent;       /* planner.parent (messages) */
	uint64_t off;             /* bytes read (and hashed) so far */
	uint64_t size;            /* the manifest's index_size */
	void *sha;                /* EVP_MD_CTX (owned) */
	/* an encrypted parent: the sealed stream (SEAL_SEGMENT-byte segments,
	 * its SHA-256 over the sealed bytes) opened segment by segment */
	const struct seal_key *seal; /* planner.iseal; NULL: plain */
	unsigned char *sbuf;      /* sealed bytes fetched, [spos, slen) unused */
	size_t spos, slen;
	unsigned char *pbuf;      /* the open segment, [ppos, plen) not passed */
	size_t ppos, plen;
	uint64_t seg;             /* the next segment's number */
	uint64_t opened;          /* sealed bytes of the segments opened */
};

/* A backup the new one may point at: the parent's references plus the
 * parent itself, oldest first (ids sort by time). */
struct cand {
	struct manifest_ref r;    /* key owned */
	bool used;
};

/* A file of the parent whose path the new tree lacks (pass 1). */
struct gone {
	uint64_t ino, igen, size;
	int64_t mtime_ns;
	struct pack_ref loc;      /* id "" = the parent */
	struct pack_blocks *blk;  /* a blocked file's (owned), NULL: none */
	bool taken;
};

/* A new path whose content is a file of the parent under another path. */
struct rename {
	char *path;
	uint64_t ino, igen, size;
	int64_t mtime_ns;
	const struct gone *g;     /* into planner.gone; NULL: no match */
};

struct planner {
	char parent[BACKUP_ID_LEN + 1];
	int parent_format;
	uint64_t parent_chain;
	char full_id[BACKUP_ID_LEN + 1];
	char parent_source[37];   /* the parent's snapshot.source_uuid */
	/* the new snapshot is of the parent's subvolume (planner_prepare): only
	 * then are extent fingerprints comparable (same filesystem, same
	 * subvolume's history) */
	bool same_source;
	struct cand *cand;
	size_t ncand;

	/* version 2 parent: its index object, streamed once per pass */
	struct store *store;      /* the region's (planner_open's g) */
	char *ikey;               /* the parent's index key (owned) */
	uint64_t isize;           /* its size and SHA-256, as the manifest says */
	char isha[65];
	struct pidx_src src1, src2; /* pass 1's and pass 2's */
	/* an encrypted parent: its master key (the keyring's) and its index's
	 * key (owned) */
	const struct seal_master *master;
	struct seal_key *iseal;
	/* version 2 parent: the merge (pass 2) */
	struct index_reader *rd;
	struct index_entry cur;   /* the parent's entry not yet passed */
	bool have_cur, rd_end;
	char *last;               /* the previous parent path (order check) */
	bool order_warned;
	/* version 1 parent: by path */
	struct index *idx;
	size_t matched;

	/* renames (pass 1): new paths with the parent's location, walk order */
	struct rename *ren;
	size_t nren, ren_cap, ren_next;
	struct gone *gone;        /* pass 1: the parent's unmatched files */
	size_t ngone, gone_cap;
	struct index_reader *rd1; /* pass 1's merge (version 2 parent) */
	bool rd1_failed;          /* rd1 failed: the parent's index is unreadable */
	bool *seen1;              /* pass 1, version 1 parent: paths found */
	bool (*cancelled)(void *ctx);
	void *cancel_ctx;
	struct index_entry cur1;
	bool have1, end1;

	uint64_t n_unchanged, n_changed, n_new, n_deleted, n_meta_only, n_renamed;
	uint64_t referenced_bytes;
	unsigned char *hbuf;      /* for hashing metadata-only candidates */
	struct pack_xattr *mxa;   /* pack_meta.xattr of the last entry planned */
	size_t mxa_cap;

	/* large files in blocks (planner_blocks.c): what planner_plan's ref
	 * ->blocks points at (valid until its next call), capacities in blocks */
	struct pack_blocks out;
	unsigned char *same;      /* per block: unchanged */
	uint64_t *ext_buf;        /* out.ext's memory (out.ext NULL: none) */
	size_t out_cap;
};

/* The candidate named id ("" = the parent), NULL if the parent's
 * references do not name it. */
struct cand *planner_find_cand(struct planner *pl, const char *id);

/* Shared by the passes (planner.c; pass 1 is planner_renames.c): walk
 * order's path comparison, a timespec in ns, and the parent's index object
 * streamed with its size and SHA-256 checked at the end. */
int planner_path_cmp(const char *a, const char *b);
int64_t planner_ts_ns(const struct timespec *t);
int planner_pidx_open(struct planner *pl, struct pidx_src *s, struct index_reader **rd_ret,
		      struct err *err);
int planner_pidx_check(const struct planner *pl, const struct pidx_src *s, struct err *err);
void planner_pidx_close(struct pidx_src *s);

/*
 * The parent's entry old has blocks ob (same path, or a rename source):
 * its whole description with its runs pointing at backup ids into ref
 * (ref->blocks = pl->out): 1, or 0 when a run's backup is not a candidate.
 * has_sum/sum: the parent's whole checksum, when it has one.
 */
int planner_ref_blocks(struct planner *pl, const struct pack_blocks *ob, bool has_sum,
		       const unsigned char sum[16], struct pack_ref *ref, struct err *err);

/* May pe be compared with old block by block (old is blocked with the
 * bsize of pe's size, pe not sparse)? */
bool planner_blocks_apply(const struct index_entry *old, const struct pack_plan_entry *pe);

/*
 * pe's blocks against old's: 1 = all unchanged (referenced whole, as
 * metadata only), 2 = in part (ref->blocks: the unchanged ones), 0 = none
 * unchanged (packed whole), negative = error.
 */
int planner_plan_blocks(struct planner *pl, const struct pack_plan_entry *pe,
			const struct index_entry *old, struct pack_ref *ref, struct err *err);

void planner_blocks_free(struct planner *pl);

#endif
