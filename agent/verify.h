/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_VERIFY_H
#define SNAPSHIP_AGENT_VERIFY_H

/*
 * verify and repair (design §6): every backup of a host in any region
 * that answers, each region's copy checked (HEADs; with deep, every byte
 * decoded), and with repair a missing or bad copy streamed from a region
 * whose copy is whole.  Two regions whose manifests of one backup differ
 * are never repaired from.  With two or more regions (and no --region)
 * the replication state in the state dir is updated from what was found.
 *
 * Ownership: rs is used (its stores; regions that do not answer are marked
 * down) and stays the caller's; opts are only read.  What a result points
 * to lives until verify_result_free.
 */

#include <stdbool.h>
#include <stddef.h>

#include "agent/catalog.h"
#include "agent/geo.h"

struct err;
struct verify_union;

struct keyring;

struct verify_opts {
	const char *state_dir;        /* the replication state and host lock */
	const char *host;
	const char *partition;        /* NULL: every partition */
	bool deep;                    /* download and decode every byte */
	bool repair;
	/* asked between backups and by a deep check between entries (NULL:
	 * never): true ends the run with -ECANCELED; the backup cut short
	 * and those not reached get no verdict (nor their state touched) */
	bool (*cancelled)(void *ctx);
	void *cancel_ctx;
	/* --deep: the key files for encrypted backups (NULL: none) */
	const struct keyring *keys;
};

/* One region's copy of one backup, after any repair. */
struct verify_copy {
	const char *region;           /* the region's name (rs's) */
	int copy;                     /* enum geo_copy */
	const char *status;           /* "ok", "missing", ..., "repaired", "failed" */
	char detail[700];             /* from a store: not escaped */
};

struct verify_backup {
	const struct manifest *m;
	struct verify_copy r[REGIONS_MAX];   /* one per region of rs */
	size_t n;
	char first_bad[800];          /* "region R: STATUS: DETAIL" of the first
				       * copy not ok; "" when all are */
	const char *geo;              /* its geo summary when the state is kept, else NULL */
};

/* The manifests one region lists that are not backups. */
struct verify_bad_manifests {
	const char *region;
	char *const *why;             /* "KEY: why", names escaped */
	size_t nwhy;
	size_t more;                  /* and this many not said */
};

struct verify_result {
	size_t backups;
	size_t bad;                   /* copies still missing or bad, plus broken */
	size_t fixed;                 /* copies repaired */
	size_t broken;                /* manifests that are not backups */
	struct verify_bad_manifests bm[REGIONS_MAX];  /* regions that answered */
	size_t nbm;
	struct verify_union *u;       /* private: owns what bm points to */
};

/* Where each backup's verdict goes as soon as it is known. */
struct verify_sink {
	/* once, before the first backup: how many backups and broken manifests */
	void (*begin)(void *ctx, size_t backups, size_t broken);
	void (*backup)(void *ctx, const struct verify_backup *b);
	void *ctx;
};

/*
 * Verify (or repair) every backup of o->host (o->partition) in rs,
 * holding the host lock while the state is written or copies are made.
 * Errors only when no region can be listed (or the lock is not had);
 * every copy's problem is in the results instead.  On success
 * *res_ret is the caller's (verify_result_free); on error it holds nothing.
 */
int verify_run(struct regions *rs, const struct verify_opts *o,
	       const struct verify_sink *sink, struct verify_result *res_ret,
	       struct err *err);
void verify_result_free(struct verify_result *res);

#endif
