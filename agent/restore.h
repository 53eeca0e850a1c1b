/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_RESTORE_H
#define SNAPSHIP_AGENT_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct keyring;

struct err;
struct index;
struct store;
struct manifest;

/* Another region's copy of a backup's data object. */
struct restore_source {
	struct store *store;
	const char *data_key;
	const char *index_key;
	const char *region;
};

struct restore_opts {
	const char *target;           /* NULL: verify only, write nothing */
	bool force;                   /* restore into a non-empty directory */
	bool devices;                 /* create device nodes */
	bool keep_privileges;         /* setuid/setgid bits, file capabilities */
	const char *const *paths;     /* only these files/subtrees; NULL = all */
	size_t npaths;
	bool progress;
	/* read failover: when reading the data fails (connection, 5xx, a
	 * missing object), go on from these copies, in order */
	const char *region;           /* the store's region, for messages */
	const struct restore_source *fallback;
	size_t nfallback;
	/* asked between entries and data blocks (NULL: never): true stops
	 * the restore with -ECANCELED, its message saying what the target
	 * holds (as for any failed restore) */
	bool (*cancelled)(void *ctx);
	void *cancel_ctx;
	/* snapship export (target NULL): the tree as one pax stream on
	 * export_fd (the caller's; extractor_new_stream); nothing is written
	 * to local disk (files in blocks whose content is in runs go out in
	 * block order, each run read on its own: restore_export.c) */
	bool export;
	int export_fd;
	/* the key files (agent/keyring.h) an encrypted backup is opened
	 * with; NULL: none configured (an encrypted backup then fails with
	 * the fingerprint it wants, before anything is written) */
	const struct keyring *keys;
};

struct restore_result {
	uint64_t entries, files, bytes;
	uint64_t skipped_devices;
	uint64_t stripped_privileges; /* setuid/setgid bits, capability xattrs */
	uint64_t hole_bytes;          /* of sparse files, hashed as zeros */
	uint64_t frames_read, frames_total;
	/* bytes fetched from the stores: data (ranges and the seek table)
	 * and index, of every copy read, retries included */
	uint64_t bytes_read;
	bool subvolume;               /* the target was made a new subvolume */
	/* the restore failed because a file's (or a block's) content does
	 * not match the index's checksum — not because data could not be
	 * read or parsed */
	bool checksum_mismatch;
	double seconds;
};

/*
 * Restore (or with target NULL, deep-verify) one backup.  Every file's
 * XXH3-128 is checked against the index, every frame's checksum, and for
 * whole restores the data object's SHA-256 against the manifest.  Nothing is
 * ever written outside target.  A --path the index does not hold fails
 * before the target is made.  On failure a target this call made and wrote
 * nothing into is removed; any other target is kept and the message in err
 * ends by saying what it holds.  store, m and o (with what they point to)
 * are borrowed for the call; *res is filled in (nothing in it to free).
 * A backup of format version 2 (incremental) is restored from its index:
 * entries without content are made from it, files' content is read at the
 * offsets it gives in its own data object and the referenced backups'
 * (m->refs), each object through the read-ahead with failover to the
 * same object under o->fallback's prefixes (doc/incremental.md).
 */
int restore_backup(struct store *store, const struct manifest *m,
		   const struct restore_opts *o, struct restore_result *res,
		   struct err *err);

/*
 * The index of backup m: its index object in store (m->index_key), else
 * the first of o->fallback that holds a good copy (a warning says so),
 * checked against the manifest's SHA-256 and parsed.  Of o only region and
 * fallback are used.  On success *idx_ret is the caller's (index_free).
 */
int restore_index(struct store *store, const struct manifest *m,
		  const struct restore_opts *o, struct index **idx_ret,
		  struct err *err);

#endif
