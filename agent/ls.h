/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_LS_H
#define SNAPSHIP_AGENT_LS_H

/*
 * ls: the entries of one directory of a backup, or one entry, from the
 * backup's index alone (no data is read): names, types, modes, owners,
 * sizes, times and link targets.
 *
 * Ownership: a listing owns the index it was read from and a copy of the
 * path; its entries point into the index.  ls_free frees it all.
 */

#include <stdbool.h>
#include <stddef.h>

struct err;
struct index;
struct index_entry;
struct manifest;
struct restore_opts;
struct store;

struct ls_listing {
	struct index *idx;
	char *path;                        /* as listed: "." is the root */
	bool dir;                          /* path is a directory: e are its entries */
	const struct index_entry **e;      /* sorted by name; path itself when !dir */
	size_t n;
};

/*
 * List path (NULL or "." : the partition's root; "./" and a trailing "/"
 * are dropped) in backup m, whose index is read as restore_index reads it
 * (store first, then o's fallbacks).  -EINVAL for a path that is not
 * relative or has "..", -ENOENT when the backup does not hold it.  On
 * success *ls_ret is the caller's (ls_free); on error it holds nothing.
 */
int ls_backup(struct store *store, const struct manifest *m,
	      const struct restore_opts *o, const char *path,
	      struct ls_listing *ls_ret, struct err *err);
void ls_free(struct ls_listing *ls);

/* The entry's name: the last component of its path (a pointer into it). */
const char *ls_name(const struct index_entry *e);

#endif
