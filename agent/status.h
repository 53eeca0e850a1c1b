/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_STATUS_H
#define SNAPSHIP_AGENT_STATUS_H

/*
 * What list and status say about the backups of a host: each listed
 * backup's replication state (from the state dir; "unknown until verify"
 * when there is none) and the per-partition summary of snapship status.
 *
 * Ownership: every pointer argument is only read; results point into the
 * list they were built from (valid while it is) and are freed as said.
 */

#include <stddef.h>

#include "agent/catalog.h"
#include "agent/geo.h"

/*
 * The replication state of a listed backup into *gs_ret (a plain struct):
 * the saved one, or each secondary "not verified from this host" when
 * there is none; empty (single region) with one region or --region.
 */
void status_backup_geo(const char *state_dir, const struct regions *rs,
		       const char *host, const struct manifest *m,
		       struct geo_state *gs_ret);

/* "-" (single region or --region), "unverified" (no state) or the
 * geo_summary; a static string. */
const char *status_geo_word(const struct regions *rs, const struct geo_state *gs);

struct status_row {
	const char *partition;         /* points into the list */
	size_t backups;
	const struct manifest *latest; /* points into the list */
	double age_s;                  /* of the latest */
	size_t at_risk;                /* backups whose geo word is "at risk" */
	struct geo_state gs;           /* the latest's */
	const char *geo;               /* status_geo_word of the latest */
};

struct status_result {
	struct status_row *rows;       /* one per partition, by name */
	size_t n;
	size_t at_risk;                /* over every partition */
};

/*
 * Sort list by partition (list->m is reordered) and sum it up per
 * partition at now_ns.  *res_ret is the caller's (status_result_free) on
 * success; -ENOMEM leaves it empty.
 */
int status_build(const char *state_dir, const struct regions *rs,
		 const char *host, struct catalog_list *list, int64_t now_ns,
		 struct status_result *res_ret);
void status_result_free(struct status_result *res);

#endif
