/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_CAT_H
#define SNAPSHIP_AGENT_CAT_H

/*
 * snapship cat: one backup's data stream as stock zstd reads it — its
 * zstd frames in order, then a seek table — written to a descriptor.  An
 * encrypted backup's frames are opened (each authenticated as frame k of
 * this backup, the last one as the last) and its seek table rewritten
 * with the plain sizes; a plain backup's object goes out as stored.  The
 * bytes read are hashed and compared with the manifest's SHA-256 at the
 * end.  `snapship cat ... | zstd -d | tar -x` restores a full with stock
 * tools; an incremental's stream holds only what changed (snapship export
 * gives its whole tree).
 */

#include <stdint.h>

struct err;
struct keyring;
struct manifest;
struct store;

/* m's data object in store (its key m->data_key) to fd (the caller's);
 * kr: the key files (NULL: none).  *bytes_ret (may be NULL): bytes
 * written. */
int cat_backup(struct store *store, const struct manifest *m,
	       const struct keyring *kr, int fd, uint64_t *bytes_ret,
	       struct err *err);

#endif
