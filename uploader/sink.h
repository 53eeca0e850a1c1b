/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_UPLOADER_SINK_H
#define SNAPSHIP_UPLOADER_SINK_H

/*
 * A streamed object put that also counts and SHA-256-hashes its bytes, into
 * one store or, for agent-side replication, the same bytes into several:
 * target 0 is the primary (its failure fails the sink); a later target that
 * fails is dropped (aborted, its error kept, a warning logged unless it
 * was cancelled: -ECANCELED) and the others go on, unless the sink was
 * opened strict.
 *
 * A struct sink is the caller's (usually on its stack); the sink owns the
 * writers and the hash context it opens until sink_commit or sink_abort
 * ends them.  It knows stores only: region names are labels for messages.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "uploader/store.h"

#define SINK_MAX 8

struct sink_target {
	struct store *store;
	const char *key;
	const char *region;          /* for messages; may be NULL */
	int64_t retain_until;        /* Object Lock until (store_put_opts); 0 none */
};

struct sink {
	struct store_writer *w[SINK_MAX];
	const char *region[SINK_MAX];
	int failed[SINK_MAX];        /* 0, or the error that dropped target i */
	struct err errs[SINK_MAX];   /* its message */
	struct store_obj_info info[SINK_MAX];  /* after commit */
	bool committed[SINK_MAX];    /* target i's object is visible */
	size_t n;
	bool strict;                 /* any target's failure fails the sink */
	void *sha;                   /* EVP_MD_CTX */
	uint64_t bytes;
};

/*
 * Open s for one object key in store (strict).  store and key are borrowed:
 * they must outlive the sink.  On failure s holds nothing to abort.
 */
int sink_open(struct sink *s, struct store *store, const char *key,
	      struct err *err);
/*
 * Open s for the n targets t[0..n-1] (1 to SINK_MAX; t[0] the primary).
 * The stores, keys and region names in t are borrowed and must outlive the
 * sink; the array t itself may go once this returns.  On failure s holds
 * nothing to abort; a secondary that fails to open (not strict) is dropped.
 */
int sink_open_multi(struct sink *s, const struct sink_target *t, size_t n,
		    bool strict, struct err *err);
/* framer_out_fn-compatible: ctx is the struct sink; buf is only read. */
int sink_write(void *ctx, const void *buf, size_t len, struct err *err);
/*
 * Make the object visible everywhere it still goes; hex_ret (the caller's
 * 65 bytes) receives its SHA-256, s->info[i] each copy's size and ETag,
 * s->committed[i] which copies are visible.  Ends every writer whatever
 * the outcome: a commit that fails leaves nothing to abort (but copies
 * already committed stay visible; see s->committed).
 */
int sink_commit(struct sink *s, char hex_ret[65], struct err *err);
/* How many writers s still has open (what sink_abort would abort). */
unsigned sink_open_writers(const struct sink *s);
/* Discard an unfinished object.  Safe on a zeroed or finished sink. */
void sink_abort(struct sink *s);

#endif
