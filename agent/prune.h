/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_PRUNE_H
#define SNAPSHIP_AGENT_PRUNE_H

/*
 * Prune (design §7): apply the retention policy (retention.h) to one
 * partition in every configured region.
 *
 * - The decision is made on the union of the committed backups the regions
 *   list (a backup counts when any region holds its manifest).
 * - A backup to delete goes in every region that lists it: first a
 *   pending-deletion record <state_dir>/prune/<host>/<partition>/<id>.json
 *   (the regions and keys still to do), then the manifest in each region
 *   (the backup leaves `list` at once), then its index, then its data, then
 *   the record.  Only the three objects of that backup, at
 *   <prefix><host>/<partition>/<id>/, are ever deleted.
 * - The data object stays while a manifest listed in any region, other
 *   than those this prune deletes, references it (format 2's references),
 *   and where the region's listing looks partial: the record keeps it (its
 *   "data" regions) and every later prune looks again, deleting it in the
 *   prune that deletes its last referencing backup.
 * - A region whose listing failed deletes nothing now: its deletions stay in
 *   the record and are done by the next prune (or agent round) that reaches
 *   it; so is a deletion that failed midway (manifest gone, objects left).
 * - A region whose listing looks partial (it lacks backups this host
 *   committed, older than its newest, or a manifest could not be read)
 *   deletes nothing this time (no record: the next run decides again).
 * - A backup a restore on this host is reading (lock.h readlock) is
 *   skipped, with a note.
 * - A listing cancelled (the stores' cancel hooks: a stop) decides
 *   nothing: -ECANCELED, no deletion, no record.
 *
 * Ownership: cfg, host and p are only read; *rep_ret is the caller's
 * (prune_report_clear frees what it holds).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/catalog.h"
#include "agent/geo.h"
#include "common/util.h"

struct config;
struct cfg_partition;
struct err;

struct prune_opts {
	bool dry_run;
};

/* What was done (or, dry run, would be) with a backup in one region. */
struct prune_action {
	char region[65];
	const char *action;          /* static: "deleted", "pending", "kept",
				      * "would delete", "would be pending",
				      * "failed", "dropped" (region no longer
				      * configured), "data kept" (an earlier
				      * deletion's data, still referenced),
				      * "locked" (under Object Lock: nothing
				      * deleted there, a later prune does it) */
	char detail[400];            /* why, "" if nothing to say; "data kept:
				      * referenced by B1, B2" */
};

struct prune_backup {
	char id[BACKUP_ID_LEN + 1];
	int64_t time;                /* snapshot time, unix s (0: unknown) */
	bool keep;
	const char *rule;            /* retention.h's, static; "pending" for
				      * a record of an earlier run */
	char note[300];              /* skipped: why */
	unsigned locked;             /* regions where it is under Object Lock */
	struct prune_action r[REGIONS_MAX];
	size_t nr;
};

/* How one region's listing went. */
struct prune_listing {
	char region[65];
	const char *status;          /* "listed", "failed", "partial" */
	size_t backups;              /* of this partition */
	char detail[600];            /* why failed or partial */
};

struct prune_report {
	/* kept includes skipped: backups to delete that stay for now (being
	 * read; held only where the listing looks partial) */
	size_t kept, deleted, pending, skipped;
	/* backups to delete still under Object Lock in a region (kept there
	 * quietly; a prune after the lock's end deletes them), also counted
	 * in deleted when another region deleted them */
	size_t locked;
	size_t errors;               /* deletions that failed, failed listings */
	bool cancelled;              /* a listing was cancelled (a stop) */
	char partition[UTIL_NAME_MAX + 1];
	bool dry_run;
	struct prune_listing regions[REGIONS_MAX];
	size_t nregions;
	struct prune_backup *b;      /* the backups, oldest first (owned) */
	size_t nb;
	struct prune_backup *finished;  /* pending records of earlier runs
					 * applied (owned) */
	size_t nfinished;
};

/*
 * Apply the retention policy to one partition in every configured region
 * (pending deletions of earlier runs first).  The caller holds the host
 * lock.  0 when the policy could be decided (what could not be done is in
 * *rep_ret: pending, errors); -errno with err when not (no region could be
 * listed, the primary could not be opened, out of memory).
 */
int prune_partition(const struct config *cfg, const char *host, const struct cfg_partition *p,
		    const struct prune_opts *o, struct prune_report *rep_ret, struct err *err);
void prune_report_clear(struct prune_report *rep);

/*
 * A round's listings (the agent: one listing of the host per region a
 * round, for the newest backups and every prune of the round, instead of a
 * listing per partition and per prune).  rs is borrowed (the round's
 * regions, open for the round); lists[i] is region i's catalog_list of
 * every partition of the host when listed[i], else why[i] says why not.
 * Owned: prune_round_free.
 */
struct prune_round {
	struct regions *rs;
	struct catalog_list lists[REGIONS_MAX];
	bool listed[REGIONS_MAX];
	char why[REGIONS_MAX][600];
};

/* List host in every region of rs into *pr: 0 when one region at least was
 * listed (the others' why said; an unreachable secondary is marked down in
 * rs), else the first error (-ECANCELED for a stop) and *pr empty. */
int prune_round_list(struct prune_round *pr, struct regions *rs, const char *host,
		     struct err *err);
/* Add a copy of m (a backup just committed to region) to the listing of region. */
int prune_round_add(struct prune_round *pr, size_t region, const struct manifest *m,
		    struct err *err);
void prune_round_free(struct prune_round *pr);

/*
 * prune_partition from a round's listings, with the round's regions (the
 * caller holds the host lock): pending deletions first, then the decision
 * over pr's listing of p (a region not listed deletes nothing now, as a
 * failed listing; a broken manifest in a region's listing holds every
 * partition there).  What it deletes leaves pr's listings, so a second
 * prune of p in the same round decides on what is left.
 */
int prune_partition_round(const struct config *cfg, const char *host,
			  const struct cfg_partition *p, const struct prune_opts *o,
			  struct prune_round *pr, struct prune_report *rep_ret, struct err *err);

#endif
