/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_STATUS_H
#define SNAPSHIP_AGENT_STATUS_H

/*
 * What list and status say about the backups of a host: each listed
 * backup's replication state (from the state dir; "unknown until verify"
 * when there is none) and the per-partition summary of snapship status:
 * every configured partition, each judged ok, at risk, stale or never.
 *
 * Ownership: every pointer argument is only read; results point into the
 * list they were built from (valid while it is) and are freed as said.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/catalog.h"
#include "agent/config.h"
#include "agent/drill.h"
#include "agent/geo.h"
#include "agent/runrec.h"

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

/*
 * A partition's state for monitoring, worst last: the exit status of
 * snapship status is that of its worst partition (status_exit).
 */
enum status_state {
	STATUS_OK,          /* backed up within rpo_max, every backup geo-protected */
	STATUS_AT_RISK,     /* a backup of it is at risk (not in every region) */
	STATUS_STALE,       /* the latest is older than rpo_max */
	STATUS_NEVER,       /* configured, never backed up */
};

/* "ok", "at risk", "stale", "never" (static) */
const char *status_state_name(enum status_state st);
/* 0 for STATUS_OK, else 3 (at risk), 4 (stale), 5 (never) */
int status_exit(enum status_state st);

struct status_row {
	const char *partition;         /* points into the list or the config */
	size_t backups;
	const struct manifest *latest; /* points into the list; NULL: none */
	double age_s;                  /* of the latest */
	size_t at_risk;                /* backups whose geo word is "at risk" */
	struct geo_state gs;           /* the latest's */
	const char *geo;               /* status_geo_word of the latest, "-" if none */
	bool configured;               /* a [partition] of the config */
	int64_t rpo_max;               /* seconds; 0: its age is not judged */
	/* when the agent backs it up next (schedule_next_try: after failures,
	 * not before the run record's backoff; unix seconds, now or earlier:
	 * due), 0 for a partition not configured */
	int64_t next_due;
	enum status_state state;
	struct runrec run;             /* its run record (zeroed: none); owned */
	struct drillrec drill;         /* its last drill (last_drill 0: none) */
	double drill_age_s;            /* since that drill */
};

struct status_result {
	struct status_row *rows;       /* one per partition, by name */
	size_t n;
	size_t at_risk;                /* over every partition */
	size_t not_ok;                 /* partitions whose state is not ok */
	enum status_state worst;
};

/* What status_build sums up and judges by. */
struct status_in {
	const char *state_dir;
	const struct regions *rs;
	const char *host;
	/* interval and rpo_max; with configured, its [partition]s are listed
	 * (never backed up: "never") and only their age is judged, else every
	 * partition listed is judged by [agent] rpo_max or 2 x interval */
	const struct config *cfg;
	bool configured;
	int64_t now_ns;
};

/*
 * Sort list by partition (list->m is reordered), sum it up per partition
 * and judge each; each row's run and drill records from in->state_dir
 * (one that cannot be read is a warning and an empty record).  *res_ret is the caller's (status_result_free) on
 * success; -ENOMEM leaves it empty.
 */
int status_build(const struct status_in *in, struct catalog_list *list,
		 struct status_result *res_ret);
void status_result_free(struct status_result *res);

#endif
