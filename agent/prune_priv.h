/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_PRUNE_PRIV_H
#define SNAPSHIP_AGENT_PRUNE_PRIV_H

/*
 * Shared between prune.c (listing, deciding, data objects, the agent's
 * round) and prune_record.c (the pending-deletion records and the
 * deletions they drive).  The caller owns every record, region and report
 * passed; nothing here keeps a pointer.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/catalog.h"
#include "agent/geo.h"
#include "agent/prune.h"

struct err;

/* One backup's deletions still to do, per region: region[] its manifest
 * and index (then its data), data[] only its data object, which stays
 * while a listed manifest references it. */
struct prune_record {
	char id[BACKUP_ID_LEN + 1];
	char rule[32];
	int64_t decided;                /* unix s */
	char region[REGIONS_MAX][65];
	size_t n;
	char data[REGIONS_MAX][65];
	size_t ndata;
};

/* Write rec atomically (tmp, fsync, rename); no regions left: remove it. */
int prune_record_save(const char *state_dir, const char *host, const char *part,
		      const struct prune_record *rec, struct err *err);

/* Read the record of id (a backup id, as a file name told). */
int prune_record_load(const char *state_dir, const char *host, const char *part,
		      const char *id, struct prune_record *rec, struct err *err);

/* The ids of the records of host/part, sorted, into *ids_ret (free with
 * prune_ids_free); 0 when there are none. */
int prune_record_ids(const char *state_dir, const char *host, const char *part,
		     char ***ids_ret, size_t *n_ret);
void prune_ids_free(char **ids, size_t n);

/* Delete objects [from, to) of host/part/id in g: 0 the manifest, 1 the
 * data object, 2 the index. */
int prune_delete_objects(struct region *g, const char *host, const char *part,
			 const char *id, int from, int to, struct err *err);

/* Set what happened to b in region (action a string literal; detail
 * copied, may be NULL). */
void prune_act(struct prune_backup *b, const char *region, const char *action,
	       const char *detail);

/* A region's store failed: unreachable ones are down for the rest of run. */
void prune_region_failed(struct region *g, const struct err *e);

/*
 * Do what rec says: in each of its regions the manifest, then (where that
 * went) the index; a region done leaves rec's regions for its data regions
 * (prune_data deletes the data object once nothing references it); the
 * record is saved.  Actions into b.  Returns the regions left.
 */
size_t prune_record_apply(struct regions *rs, const char *state_dir, const char *host,
			  const char *part, struct prune_record *rec, bool dry,
			  struct prune_backup *b, struct prune_report *rep);

/* Pending records of earlier runs for host/part, applied first (into
 * rep->finished).  0 or -ENOMEM. */
int prune_apply_pending(struct regions *rs, const char *state_dir, const char *host,
			const char *part, bool dry, struct prune_report *rep);

#endif
