/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_CLEAN_H
#define SNAPSHIP_AGENT_CLEAN_H

/*
 * What an interrupted run leaves in a store: uploads never completed (a
 * directory store's temp files, S3 multipart uploads), backup objects
 * without a manifest, and (directory store) empty backup directories.
 * Only with the host lock held (hostlock_acquire): a backup in progress
 * looks the same.
 *
 * Ownership: the regions are used (their stores; one that does not answer
 * is marked down) and stay the caller's; host is only read; results are
 * plain structs (nothing to free).
 */

#include <stdbool.h>
#include <stddef.h>

#include "agent/geo.h"

/* What clean did in one region, and what it did not look at. */
struct clean_result {
	char region[65];
	char store[512];            /* store_describe, or "" without a store */
	bool looked;                /* false: not looked at (why says) */
	bool whole;                 /* manifest-less objects and empty backup
				     * directories looked for too; false in a
				     * server-replicated region (why says) */
	unsigned uploads;           /* unfinished uploads removed */
	size_t objects;             /* objects of backups without a manifest */
	unsigned dirs;              /* empty backup directories removed */
	int error;                  /* 0, or what stopped it (why says) */
	char why[700];
};

/*
 * Remove host's unfinished uploads, manifest-less objects and empty backup
 * directories in region g (a region without a store is skipped); says what
 * it removed, or why it could not, as warnings.  A secondary that does not
 * answer is marked down in g.  Returns how many uploads and objects were
 * removed.
 */
unsigned clean_region(struct region *g, const char *host);

/*
 * clean_region on every region of rs that snapship uploads to itself: the
 * primary and the replication = agent ones (in a server-replicated region
 * a backup whose manifest has not arrived yet looks unfinished).
 */
unsigned clean_regions(struct regions *rs, const char *host);

/*
 * snapship clean: every region of rs, one result each into res (rs->n of
 * them), nothing logged.  In the primary and the replication = agent
 * regions all three kinds of leftovers go; in a server-replicated one only
 * unfinished uploads (a repair's: snapship's own), since a backup whose
 * manifest has not arrived yet looks unfinished there.  Returns how many
 * regions could not be cleaned (a region down, an error).
 */
size_t clean_every_region(struct regions *rs, const char *host,
			  struct clean_result res[REGIONS_MAX]);

#endif
