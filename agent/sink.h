/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_SINK_H
#define SNAPSHIP_AGENT_SINK_H

/*
 * A streamed object put that also counts and SHA-256-hashes its bytes, into
 * one store or, for agent-side replication, the same bytes into several:
 * target 0 is the primary (its failure fails the sink); a later target that
 * fails is dropped (aborted, its error kept) and the others go on, unless
 * the sink was opened strict.
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

int sink_open(struct sink *s, struct store *store, const char *key,
	      struct err *err);
int sink_open_multi(struct sink *s, const struct sink_target *t, size_t n,
		    bool strict, struct err *err);
/* framer_out_fn-compatible: ctx is the struct sink. */
int sink_write(void *ctx, const void *buf, size_t len, struct err *err);
/* Make the object visible everywhere it still goes; hex receives its
 * SHA-256, s->info[i] each copy's size and ETag. */
int sink_commit(struct sink *s, char hex[65], struct err *err);
/* Discard an unfinished object.  Safe on a zeroed or finished sink. */
void sink_abort(struct sink *s);

#endif
