/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_PLANNER_H
#define SNAPSHIP_AGENT_PLANNER_H

/*
 * The planner of an incremental (format version 2) backup
 * (doc/incremental.md "Change detection", "Chains"): picks the parent (the
 * newest committed backup of the partition in the region the backup writes
 * to) or decides a full, then, as pack_opts.plan, classifies each entry of
 * the new walk against the parent's index and points unchanged content at
 * where it already is.
 *
 * The quick check: an entry matches the parent's entry of the same path
 * when type, size, mtime_ns, ino (when the parent has one) and ctime_ns are
 * equal (unchanged: the parent's location); with only ctime_ns different
 * the file is read and hashed here and referenced when its XXH3-128 equals
 * the parent's (metadata only), else packed (changed).  Renames:
 * planner_prepare.  Generations (btrfs transids) are not used.
 *
 * Large files in blocks (planner_blocks.c): a changed file of a blocked
 * parent entry with the same bsize is compared block by block (extent
 * fingerprints, else each block read and hashed); planner_plan then
 * returns 2 with the unchanged blocks' runs in ref->blocks (memory the
 * planner owns, valid until its next call).
 *
 * Memory, constant in the parent's size for a version 2 parent: its
 * index object is streamed from the store twice (pass 1, pass 2), in the
 * index reader's 256 KiB ranges, each pass hashing what it reads; one
 * entry of it at a time is held (the merge by path).  What grows is what
 * changed: pass 1's new paths with content and the parent's files whose
 * paths are gone (rename candidates), and the candidates (the parent's
 * references).  A version 1 parent's index (its order may be readdir
 * order) is loaded whole, keyed by path: once, the first incremental
 * after an upgrade.  The planner owns all of it; planner_free releases it.
 */

#include <stdbool.h>
#include <stdint.h>

#include "agent/catalog.h"
#include "stream/pack.h"

struct err;
struct region;
struct planner;

struct keyring;
struct seal_master;

struct planner_opts {
	bool force_full;          /* backup --full */
	int64_t full_every;       /* seconds since the chain's full; 0 = no limit */
	uint64_t max_chain;       /* backups since the chain's full; 0 = every backup a full */
	/* the run's keys (NULL: none); encrypting when kr->encrypt: only an
	 * encrypted parent under key_file's master key is chained onto
	 * (keyring_chain), and only a plain one when not encrypting */
	const struct keyring *kr;
};

/*
 * The parent of the backup m is about to be (m: host, partition, backup_id
 * set) in region g.  *pl_ret = NULL when a full is to be made (why logged,
 * and copied into why_full when not NULL); else the planner, holding the
 * parent's manifest and index.  Errors: the store's (listing, reading).
 * A parent whose index is missing or does not check gives a full, logged
 * (a version 2 parent's: missing or of another size here; its SHA-256 is
 * checked by planner_prepare).  An encrypted parent's sealed index is
 * opened segment by segment as it is read (exactly its manifest's size,
 * the SHA-256 over the sealed bytes); a parent under another key, or
 * encrypted when o->kr does not encrypt or the reverse, gives a full.
 * g and o->kr must outlive the planner.
 */
int planner_open(struct region *g, const struct manifest *m,
		 const struct planner_opts *o, struct planner **pl_ret,
		 char *why_full, size_t why_len, struct err *err);

/*
 * Pass 1, before the pack walk, over the same frozen tree at root: a
 * metadata walk merged with the parent's index keeps the new paths and
 * the parent's files that did not match by path, and joins them by
 * identity (ino, igen, size, mtime_ns) into the renames planner_plan
 * then references.  Memory: what did not match, and one directory's names.
 * cancelled (may be NULL) is asked between entries: true ends it with
 * -ECANCELED.
 * A version 2 parent's index is read from the store as it is merged; at
 * its end its size and SHA-256 must be the manifest's.  When they are not,
 * or it cannot be read or parsed, 1: a full is to be made (why logged and
 * copied into why_full; the caller frees the planner).  Then pass 2 (the
 * merge of planner_plan) reads it again; planner_finish checks it again
 * and fails the backup when it changed in between.
 * A version 1 parent: its index, in memory, by path (an index of a release
 * before ino was written has no rename sources).
 */
int planner_prepare(struct planner *pl, const char *root,
		    bool (*cancelled)(void *ctx), void *cancel_ctx,
		    char *why_full, size_t why_len, struct err *err);

/*
 * The new snapshot's source subvolume UUID (before planner_plan): extent
 * fingerprints are compared only when it is the parent's (a tree restored
 * onto another filesystem can repeat a layout); otherwise changed blocks
 * are found by reading and hashing.
 */
void planner_set_source(struct planner *pl, const char *source_uuid);

/* pack_plan_fn: ctx is the planner. */
int planner_plan(void *ctx, const struct pack_plan_entry *pe,
		 struct pack_ref *ref, struct err *err);

/*
 * After the walk: m's version 2 fields (format_version, parent,
 * references used, chain, full_id, change counts, referenced_bytes;
 * new_bytes from new_bytes).  A version 2 parent's index is read to its
 * end and checked: -EBADMSG (the message naming the object and saying to
 * run the backup again) when it is not what pass 1 checked.
 */
int planner_finish(struct planner *pl, struct manifest *m, uint64_t new_bytes,
		   struct err *err);

/* An encrypted parent's master key (the keyring's: its salt is the one
 * the new backup reuses), NULL for a plain parent. */
const struct seal_master *planner_master(const struct planner *pl);

void planner_free(struct planner *pl);

#endif
