/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_CLAIMS_H
#define SNAPSHIP_AGENT_CLAIMS_H

/*
 * A stored backup is written by someone else: what its index and its data
 * claim is checked before a restore does any work proportional to it or
 * writes anything.  Each check returns 0, or -EBADMSG (-EFBIG for holes past
 * the budget) with err saying which backup, which entry and what is wrong.
 * Nothing here allocates or keeps a pointer: every argument is borrowed for
 * the call.
 */

#include <stdint.h>

struct archive_entry;
struct err;
struct index;
struct index_entry;

/*
 * The index against the data's d_total stream bytes: every entry's header
 * lies inside the stream, after the entry before it; only files (and hard
 * links) have a size; a regular file's data (unless sparse) fits in the
 * stream after it, as do all of them together.
 */
int claims_index(const struct index *idx, uint64_t d_total, const char *backup_id,
		 struct err *err);

/*
 * The data's entry ae at path is what index entry ie says was backed up:
 * type, mode, owner, size, mtime, link target, device number.
 */
int claims_entry(struct archive_entry *ae, const char *path,
		 const struct index_entry *ie, const char *backup_id, struct err *err);

/*
 * A regular file's size (ie->size) fits what the data can hold: its data
 * (the sparse map's regions, or the whole size) within the stream's d_total
 * bytes, its holes within what one restore hashes after the holes_done
 * bytes of holes already hashed.
 */
int claims_file(struct archive_entry *ae, const char *path,
		const struct index_entry *ie, uint64_t d_total, uint64_t holes_done,
		const char *backup_id, struct err *err);

/*
 * Bytes of holes one restore hashes as zeros at most: 256 GiB, or
 * SNAPSHIP_RESTORE_MAX_HOLES=BYTES (for a trusted store with larger sparse
 * files; a value that is not a number is warned about and ignored).
 */
uint64_t claims_holes_max(void);

#endif
