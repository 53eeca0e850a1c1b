/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_SINK_H
#define SNAPSHIP_AGENT_SINK_H

/* A streamed object put that also counts and SHA-256-hashes its bytes. */

#include <stddef.h>
#include <stdint.h>

struct err;
struct store;
struct store_writer;

struct sink {
	struct store_writer *w;
	void *sha;               /* EVP_MD_CTX */
	uint64_t bytes;
};

int sink_open(struct sink *s, struct store *store, const char *key,
	      struct err *err);
/* framer_out_fn-compatible: ctx is the struct sink. */
int sink_write(void *ctx, const void *buf, size_t len, struct err *err);
/* Make the object visible; hex receives its SHA-256. */
int sink_commit(struct sink *s, char hex[65], struct err *err);
/* Discard an unfinished object.  Safe on a zeroed or finished sink. */
void sink_abort(struct sink *s);

#endif
