/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_BACKUP_H
#define SNAPSHIP_AGENT_BACKUP_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/catalog.h"
#include "agent/geo.h"

struct err;
struct store;
struct config;
struct cfg_partition;

struct backup_opts {
	bool progress;            /* a progress line on stderr */
	bool no_wait;             /* do not wait for server-side replication */
	bool full;                /* a full backup even if an incremental could be made */
	/*
	 * The seam for cancellation (signals_cancelled; NULL: never): asked
	 * with cancel_ctx before the plan, freeze, upload and commit phases
	 * and, inside the upload, between writes of the stream and while the
	 * read rate limit sleeps; once true it must stay true.  It stops the
	 * run, which unwinds as on any failure and returns -ECANCELED with a
	 * message saying what it undid ("backup of P cancelled in its upload
	 * phase: 2 unfinished uploads aborted ..., snapshot released; nothing
	 * committed ...").  Once the manifest is committed a run is not
	 * cancelled.  (The stores' uploads are cancelled by their own hook,
	 * store_opts.cancelled.)
	 */
	bool (*cancelled)(void *ctx);
	void *cancel_ctx;
	/*
	 * Told each phase as it starts ("plan", "freeze", "upload",
	 * "commit", "replication": static strings), from the thread running
	 * the backup; NULL: not told.  The daemon's status line.
	 */
	void (*phase)(void *ctx, const char *name);
	void *phase_ctx;
};

struct backup_result {
	struct manifest m;        /* the committed manifest */
	double seconds;           /* start to commit on the primary */
	struct geo_state gs;      /* per secondary region */
	double geo_seconds;       /* commit to geo-protected, < 0 if not (yet) */
	double slowed_s;          /* the low-impact mode held the reader back */
	char why_full[256];       /* a full: why ("" for an incremental) */
};

/*
 * One backup of one partition into the regions rs (rs->v[0] the primary)
 * under host, in phases (agent/backup.c): plan, freeze (with the hooks),
 * upload (to the primary and every replication = agent region in the same
 * pass), release, commit (manifest last, on the primary first), then wait
 * for replication = server regions to show a verified copy (unless
 * no_wait).  The snapshot is released whatever happens; on failure
 * nothing becomes visible and objects already written are removed.
 * With cfg->require_geo a secondary that cannot take the backup fails it.
 * The replication state is saved in cfg->state_dir.  The caller holds the
 * host lock (hostlock_acquire).
 *
 * cfg, part, host and bo are only read; rs is used (its stores) and stays
 * the caller's.  *res_ret is filled on success and then the caller's:
 * manifest_clear(&res_ret->m) frees it; on failure it holds nothing.
 */
int backup_partition(const struct config *cfg, const struct cfg_partition *part,
		     struct regions *rs, const char *host,
		     const struct backup_opts *bo, struct backup_result *res_ret,
		     struct err *err);

#endif
