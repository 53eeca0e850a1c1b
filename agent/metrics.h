/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_METRICS_H
#define SNAPSHIP_AGENT_METRICS_H

/*
 * The metrics file: Prometheus text exposition format (version 0.0.4),
 * for node-exporter's textfile collector, written atomically.  The facts
 * are those snapship status shows (status_build: the listing, the geo
 * state of each partition's latest backup, the run records), so the two
 * never disagree.
 *
 * Ownership: every pointer argument is only read and not kept; the text
 * metrics_render returns is the caller's (free).
 */

#include <stddef.h>
#include <stdint.h>

#include "agent/drill.h"
#include "agent/geo.h"
#include "agent/runrec.h"

struct catalog_list;
struct config;
struct err;

struct metrics_due { const char *partition; int64_t next_due; };   /* 0 = unknown */

/*
 * Write cfg->metrics_file (no-op if NULL) in the Prometheus text format,
 * atomically (tmp file in the same directory + fsync + rename, mode 0644),
 * from the run records and the geo state in the state dir and a listing of
 * the regions (retained counts; a listing that fails leaves them out, with
 * a warning), and the drill records (`snapship drill` and the agent's).  due: the next due time of partitions (NULL/0: unknown); a
 * partition named there but not configured is included too.
 */
int metrics_write(const struct config *cfg, const char *host,
		  const struct metrics_due *due, size_t ndue, struct err *err);
/* The same from the caller's regions and listing of host's backups (the
 * agent's round: no listing of its own); list is reordered (by partition,
 * then age), its manifests stay the caller's. */
int metrics_write_listed(const struct config *cfg, const char *host,
			 const struct regions *rs, struct catalog_list *list,
			 const struct metrics_due *due, size_t ndue, struct err *err);

/* One partition's facts for metrics_render. */
struct metrics_part {
	const char *partition;
	const struct runrec *run;        /* NULL: no run record */
	int64_t next_due;                /* unix seconds, 0: unknown (omitted) */
	int64_t retained;                /* backups listed, < 0: unknown (omitted) */
	const struct geo_state *gs;      /* the latest backup's (secondaries); NULL: none */
	const struct drillrec *drill;    /* the last drill; NULL or last_drill 0: none
					  * (the snapship_drill_* omitted) */
};

/*
 * The text of the metrics file for host's parts (in the order given) as
 * of now_ns (replication lag of a copy not yet verified: time since the
 * commit) into *text_ret (malloc'd).  Label values are escaped as the
 * format says (\\, \", \n).  0 or -ENOMEM.
 */
int metrics_render(const char *host, const struct metrics_part *parts, size_t n,
		   int64_t now_ns, char **text_ret);

#endif
