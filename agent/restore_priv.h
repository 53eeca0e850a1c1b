/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_RESTORE_PRIV_H
#define SNAPSHIP_AGENT_RESTORE_PRIV_H

/*
 * Shared between restore.c (what both formats share, restore_backup),
 * restore_v1.c (version 1: one data object, read in ranges of the index's
 * paths) and restore_v2.c (version 2: the index is the
 * authority; content read from the data objects it points at, by offset).
 * Everything here is internal to the restore; restore.h is the interface.
 */

#include <archive.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/keyring.h"
#include "agent/restore.h"
#include "common/err.h"
#include "cow/cow.h"

struct extractor;
struct index;
struct index_entry;
struct pack_run;
struct readahead;
struct seek_table;
struct unframer;
struct v2_obj;
struct xcache;

/* One data object a version 2 restore reads (its own or a referenced one). */
struct v2_obj {
	struct rctx *r;               /* the restore it is read for */
	const char *id;               /* the backup it belongs to (borrowed) */
	const char *key;              /* in the restore's store */
	char *key_owned;              /* key, when made here (a reference's) */
	char **fkeys;                 /* the copy under each o->fallback; owned */
	uint64_t size;                /* as the manifest (or its reference) says */
	const char *sha256;           /* borrowed, likewise */
	uint32_t frame_size;          /* the largest frame it may hold */
	struct seek_table *st;        /* owned; NULL until loaded */
	struct seal_key *seal;        /* encrypted, a reference's data key
				       * (the restored backup's master key and
				       * this id); owned */
	unsigned char *tail;          /* its seek table bytes; owned */
	size_t tail_len;
	struct readahead *ra;         /* owned */
	struct v2_want *want;         /* the offsets read in it, sorted; owned */
	size_t nwant, capwant;
	bool runs;                    /* some want is a run of a file in blocks */
	bool whole;                   /* read every frame: its SHA-256 is checked */
	bool started;                 /* its first run [sfirst, slast] is being
				       * read ahead (while the object before it
				       * is read) */
	uint32_t sfirst, slast;
	bool direct;                  /* export: runs of files in blocks are
				       * read from it one by one
				       * (restore_export.c) */
	struct xcache *xc;            /* export: the last frame and headers
				       * read from it; owned (blocks_export_free) */
};

/* An offset of an object's tar stream and the index entry it is read for:
 * the whole file (run 0), or run - 1 of its blocks (restore_blocks.c). */
struct v2_want {
	uint64_t off;
	size_t entry;
	uint32_t run;
};

/* A file in blocks being restored from runs: how many are still to read. */
struct v2_bfile {
	size_t entry;
	size_t left;
};

/* The stream bytes a run's tar entry's headers are taken from (libarchive
 * drops the pax record SNAPSHIP.part): the last HDR_RING bytes handed to
 * libarchive before the current buffer, and that buffer. */
#define HDR_RING (256u << 10)

struct rctx {
	struct store *store;
	const struct manifest *m;
	const struct restore_opts *o;
	struct restore_result *res;
	struct err *err;
	struct backup_keys keys;      /* an encrypted backup's (else NULLs) */

	struct index *idx;
	struct seek_table *st;
	unsigned char *tail;          /* the seek table bytes at the object's end */
	size_t tail_len;

	/* current range */
	struct unframer *u;
	size_t skip;                  /* bytes to drop at the start of the range */
	uint64_t left;                /* bytes of the range still to hand out */
	bool hashing;                 /* the range covers every frame: hash it */
	bool hashed;                  /* a range hashed the whole object */
	EVP_MD_CTX *sha;              /* whole-object hash */
	int read_error;
	struct err read_err;
	struct readahead *ra;         /* the data's copies: 0 the store, i > 0
				       * o->fallback[i - 1] */
	struct v2_obj *obj;           /* version 2: the object read now (for
				       * messages); NULL in v1 */
	struct v2_obj *objs;          /* version 2: [0] its own data object,
				       * [1 + k] m->refs[k]; owned */
	size_t nobjs;
	struct v2_bfile *bfiles;      /* version 2: the files in runs, by entry;
				       * owned */
	size_t nbfiles;
	uint64_t pos;                 /* stream offset of the next byte handed
				       * to libarchive (version 2) */
	bool capture;                 /* keep the ring (a range with runs) */
	unsigned char *ring;          /* HDR_RING bytes; owned */
	uint64_t ring_end;            /* stream offset after its last byte */
	const unsigned char *cur;     /* the buffer handed last, at cur_off */
	uint64_t cur_off;
	size_t cur_len;
	struct extractor *x;          /* writing into o->target (or the
				       * exported stream); NULL: verify */
	int cwd, tfd;                 /* the working directory, the target */
	bool target_made;             /* cow_make_target succeeded: made says */
	enum cow_target made;         /* what it did */
	bool target_was_empty;        /* an existing target, before the restore */
	bool said_cancel;             /* r->err says the restore was cancelled */
	double t0, t_progress;
};

/* read-ahead callbacks: ctx the rctx (version 1), or a v2_obj */
extern const struct readahead_ops restore_source_ops, restore_obj_ops;

/* libarchive's read callback over r->u, r->skip, r->left (ctx = r). */
la_ssize_t restore_read_cb(struct archive *a, void *ctx, const void **buf);
/* ikey: the index's key when the backup is encrypted (else NULL) */
int restore_index_counted(struct store *store, const struct manifest *m,
			  const struct restore_opts *o, const struct seal_key *ikey,
			  struct index **idx_ret, uint64_t *bytes_read,
			  struct err *err);
/* path is prefix or below it ("." holds every path) */
bool restore_under(const char *path, const char *prefix);
bool restore_wanted(const struct rctx *r, const char *path);
void restore_show_progress(struct rctx *r, bool done);
int restore_check_cancel(struct rctx *r, const char *path);
/* The current entry's data of a (x NULL: only read), hashed against ie. */
int restore_file_data(struct rctx *r, struct archive *a, struct extractor *x,
		      const char *path, const struct index_entry *ie);
int restore_check_paths(struct rctx *r);
int restore_open_target(struct rctx *r);
void restore_close_target(struct rctx *r);
void restore_leftovers(struct rctx *r);

/* restore_v1.c: a version 1 backup's restore, after r is set up (the
 * target is opened by it); leaves r's resources for restore_backup. */
int restore_v1(struct rctx *r);

/* restore_v2.c: a version 2 backup's restore, after r is set up (the
 * target is opened by it); leaves r's resources for restore_backup. */
int restore_v2(struct rctx *r);
/* Free what restore_v2 keeps in r beyond v1's fields. */
void restore_v2_free(struct rctx *r);
/* restore_v2.c, for restore_blocks.c: entry i produced (once only); the
 * archive entry the index describes (archive_entry_free it); want_add. */
int restore_v2_produced(struct rctx *r, size_t i);
int restore_v2_synth(struct rctx *r, const struct index_entry *e,
		     struct archive_entry **ae_ret);
int restore_v2_want(struct rctx *r, struct v2_obj *b, uint64_t off, size_t entry,
		    uint32_t run);
struct v2_obj *restore_v2_obj(struct rctx *r, const char *id);

/*
 * restore_blocks.c: large files in blocks whose content is in runs
 * (doc/incremental.md "Large files in blocks").
 * blocks_plan: entry i's runs as wants of their objects (each ref in the
 * references).  blocks_make: every such file wanted made in the target at
 * its final size (after the directories).  blocks_need: the bytes of a
 * run's tar entry's data it reads.  blocks_entry: the tar entry ae (headers
 * [hdr_off, hdr_end) of the stream) read once for the n wants w of the
 * same offset: every run's blocks checked and written at their place; a
 * file whose last run this was is checked whole and gets its metadata.
 * blocks_capture: the callback's buffer [off, off + len) handed to
 * libarchive (kept for the headers).
 */
int blocks_plan(struct rctx *r, size_t i);

/* Blocks of a file checked in order from block k (restore_blocks.c; also
 * a whole entry of a file in blocks): blk_hash_feed takes the next len
 * bytes (buf NULL: zeros) and returns -1 at a block whose XXH3-128 differs
 * from the index's (k is that block). */
struct blk_hash {
	const struct pack_blocks *b;
	uint64_t size;
	uint64_t k, in;
	void *h;                  /* an XXH3_state_t (inlined xxhash: opaque here) */
};
int blk_hash_init(struct blk_hash *c, const struct index_entry *e, uint64_t first);
int blk_hash_feed(struct blk_hash *c, const void *buf, size_t len);
void blk_hash_free(struct blk_hash *c);
int blocks_make(struct rctx *r);
uint64_t blocks_need(const struct rctx *r, const struct v2_want *w);
int blocks_entry(struct rctx *r, struct archive *a, struct archive_entry *ae,
		 struct v2_obj *b, const struct v2_want *w, size_t n,
		 uint64_t hdr_off, uint64_t hdr_end);
void blocks_capture(struct rctx *r, const void *buf, uint64_t off, size_t len);
void blocks_capture_flush(struct rctx *r);
/* Blocks [run->first, ..) of e read from the entry at off of b, up to byte
 * hi of its data: checked against the entry's SNAPSHIP.part (has, start,
 * size); the error names the file, the blocks and the backup. */
int blocks_check_part(struct rctx *r, const struct index_entry *e,
		      const struct pack_run *run, uint64_t off, uint64_t hi,
		      struct v2_obj *b, bool has, uint64_t start, uint64_t size);
/* Block h->k of e (read from the entry at off of b) does not match. */
int blocks_block_error(struct rctx *r, const struct index_entry *e,
		       const struct blk_hash *h, uint64_t off, struct v2_obj *b);

/* A tar entry's headers (pax 'x' and 'g', GNU 'L' and 'K', then the
 * file's), each one's checksum checked: the file header's type, where its
 * data starts (hlen bytes after the first header), its size (pax size, else
 * the header's), its SNAPSHIP.part and whether a pax record makes it
 * sparse.  -1: not such headers within len bytes. */
struct blocks_tar_head {
	char type;
	size_t hlen;
	uint64_t dsize;
	bool has_dsize;
	bool has;                 /* SNAPSHIP.part="start size" */
	uint64_t start, size;
	bool sparse;              /* a GNU.sparse.* record */
};
int blocks_tar_head(const unsigned char *h, size_t len, struct blocks_tar_head *th);

/*
 * restore_export.c: snapship export of the files in blocks whose content
 * is in runs (their objects marked direct by blocks_plan): each file into
 * the stream in block order, each run a ranged read of the frames holding
 * its bytes of its tar entry (after the entry's headers are read and
 * checked), each block checked against bxxh3 before it goes out, the file
 * against its xxh3 when the index has one.  Memory: the unframer's frames
 * in flight and the read-ahead's blocks, as any restore; nothing on disk.
 */
int blocks_export(struct rctx *r);
void blocks_export_free(struct v2_obj *b);
void restore_blocks_free(struct rctx *r);

#endif
