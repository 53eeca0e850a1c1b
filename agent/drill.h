/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_DRILL_H
#define SNAPSHIP_AGENT_DRILL_H

/*
 * DR drills (doc/design.md, "DR drills"): for a partition, the newest committed backup as
 * one region sees it is restored into a scratch directory (a subvolume on
 * btrfs), every file checked against the index, the scratch copy removed;
 * RPO (drill start - the backup's snapshot time) and RTO (the restore's
 * wall time) are measured and compared with rpo_max / rto_max.  A drill
 * reads only that region: no failover (it tests that region).
 *
 * The outcome of each partition's last drill is kept in
 * <state_dir>/drills/<host>/<partition>.json (drillrec), written atomically
 * by `snapship drill` and the agent; status and the metrics file read it.
 *
 * Ownership: rs is used (its stores; a region that does not answer is
 * marked down) and stays the caller's; every other pointer argument is
 * only read and not kept.  A drill_result holds no pointers.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/catalog.h"
#include "agent/geo.h"

struct config;
struct cfg_partition;
struct err;

/* Why a drill of a partition failed (DRILL_OK: it passed). */
enum drill_failure {
	DRILL_OK = 0,
	DRILL_MISSING,      /* no committed backup in the region */
	DRILL_UNREACHABLE,  /* the region did not answer */
	DRILL_CORRUPT,      /* an object unreadable, damaged or not what the manifest says */
	DRILL_CHECKSUM,     /* a file's content differs from the index */
	DRILL_RPO,          /* the backup is older than rpo_max */
	DRILL_RTO,          /* the restore took longer than rto_max */
	DRILL_ERROR,        /* anything else (scratch space, local I/O, ...) */
	DRILL_CANCELLED,    /* stopped by a signal */
};

/* "missing", "unreachable", ... (static) */
const char *drill_failure_name(enum drill_failure f);

struct drill_opts {
	const char *state_dir;
	const char *host;
	const char *scratch;        /* NULL: the default (drill_scratch_dir) */
	bool keep;                  /* keep the scratch copy */
	uint64_t sample;            /* 0: restore everything; N: N files spread
				     * through the backup */
	int64_t now;                /* the drill's start (unix seconds): RPO's origin */
	bool progress;
	bool (*cancelled)(void *ctx);   /* as restore_opts's */
	void *cancel_ctx;
};

struct drill_result {
	char partition[64 + 1];
	char region[64 + 1];            /* the region drilled */
	bool region_is_primary;         /* a one-region setup: said in the report */
	char backup_id[BACKUP_ID_LEN + 1];   /* "" when none was found */
	char why_backup[256];           /* "the newest committed backup in west" */
	int64_t started;                /* unix seconds */
	int64_t snap_time;              /* the backup's snapshot time, unix s; 0 none */
	double rpo_s, rto_s;            /* < 0: not measured */
	int64_t rpo_max, rto_max;       /* seconds; 0: no limit */
	uint64_t files, bytes;          /* restored and checked */
	uint64_t bytes_read;            /* downloaded from the region */
	uint64_t frames_read, frames_total;
	double mb_per_s;                /* bytes / rto_s, MB/s */
	uint64_t sampled;               /* files of a --sample run, 0 if full */
	char scratch[4096];             /* where it was restored ("" none) */
	bool kept;                      /* scratch kept (--keep) */
	enum drill_failure failure;
	char object[1100];              /* the object that failed, "" if none
					 * (escaped) */
	char message[1024];             /* what failed and what to do (escaped) */
};

/*
 * Drill partition p (a configured one, or a bare name for the zero-config
 * form: p->name only) from region index ri of rs.  The result (pass or
 * fail) is in *res; the return value is 0 when the drill ran to a verdict
 * (passed or failed: res->failure), -ECANCELED when stopped, -errno (err
 * set) only when it could not run at all.  Writes the drill record.
 */
int drill_partition(struct regions *rs, size_t ri, const struct config *cfg,
		    const struct cfg_partition *p, const struct drill_opts *o,
		    struct drill_result *res, struct err *err);

/* The region a drill reads by default: the first secondary of rs, or the
 * primary (index 0) in a one-region setup. */
size_t drill_default_region(const struct regions *rs);

/* The default scratch directory for partition p into buf: <state_dir>/drill
 * when that is on p's filesystem, else a "drill" directory next to p's
 * snapshots (same filesystem); NULL p: <state_dir>/drill. */
const char *drill_scratch_dir(const struct config *cfg, const struct cfg_partition *p,
			      char *buf, size_t len);

/* Remove what drills killed midway left in scratch (directories named
 * drill-<partition>-<backup-id>, never anything else, never through a link):
 * *removed_ret counts them. */
int drill_remove_leftovers(const char *scratch, unsigned *removed_ret,
			   struct err *err);

/* ---- the drill record ---- */

struct drillrec {
	int64_t last_drill;             /* unix seconds, 0 = never */
	int64_t last_pass;              /* of the last passing drill, 0 = never */
	bool passed;
	char failure[16];               /* drill_failure_name, "" when passed */
	char region[64 + 1];
	char backup_id[BACKUP_ID_LEN + 1];
	double rpo_s, rto_s;            /* of the last drill; < 0 unknown */
	uint64_t bytes;
	char message[1024];             /* escaped */
};

/* Load host/partition's record (a missing file: zeroed record, 0; not a
 * record: -EBADMSG and zeroed). */
int drillrec_load(const char *state_dir, const char *host, const char *partition,
		  struct drillrec *r_ret, struct err *err);
/* Save r atomically (tmp + fsync + rename). */
int drillrec_save(const char *state_dir, const char *host, const char *partition,
		  const struct drillrec *r, struct err *err);
/* The record of res (a drill just finished). */
void drillrec_from_result(const struct drill_result *res, struct drillrec *r_ret);

#endif
