/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_GEO_H
#define SNAPSHIP_AGENT_GEO_H

/*
 * Geo-redundancy (design §6): the configured regions, proof that a backup's
 * objects are in a region, the wait for server-side replication, the
 * per-backup replication state kept in the state dir, and streamed repair
 * copies between regions.
 *
 * A copy in a region is *verified* when each of the backup's three objects
 * is there with the manifest's size, the manifest's ETag (the store's MD5
 * fingerprint; multipart ETags agree because every region's upload uses the
 * same part sizes, and Ceph RGW multisite keeps them) and, where the object
 * carries it (single-request puts), the x-amz-meta-snapship-sha256 metadata.
 * Deep verification downloads and decompresses (restore.c).
 *
 * Ownership: struct regions owns its stores, names and prefixes
 * (geo_regions_free); every other pointer argument is only read (or, for
 * *_ret and the region structs, written) and stays the caller's.  Strings
 * returned as const char * are static; char * ones are malloc'd and the
 * caller's to free.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/catalog.h"

struct err;
struct store;
struct config;
struct cfg_region;

#define REGIONS_MAX 8

struct region {
	char *name;                 /* "east"; "default" for --from/--to */
	struct store *store;
	char *prefix;               /* key prefix, "" if none */
	bool primary;
	int replication;            /* REPL_NONE (primary), _SERVER, _AGENT */
	int64_t deadline;           /* replication_deadline, seconds */
	/* Object Lock ([region] object_lock, lock_margin; 0 for --from/--to)
	 * and the config it came from (borrowed from geo_regions_open: it
	 * must outlive the regions), for geo_lock_until */
	int object_lock;
	int64_t lock_margin;
	const struct config *cfg;
	bool down;                  /* failed to answer in this run: skip it */
	char down_why[512];         /* why (store NULL: it could not be opened) */
};

struct regions {
	struct region v[REGIONS_MAX];   /* v[0] the primary (or the --region one) */
	size_t n;
	bool forced;                /* --region: only that one, no failover */
	/* list and status: each request is tried REGION_READ_ATTEMPTS times
	 * (about a second), not the store's 8 (about 25 s), before the next
	 * region is asked.  Restore keeps the full retries: its data may have
	 * only one whole copy, and a throttled read must not fail it. */
	bool fast_failover;
};

#define REGION_READ_ATTEMPTS 3

/*
 * Open a configured region's store (no request is made yet); r is only
 * read.  *store_ret is the caller's (store_free); nothing on error.
 * part_size / max_attempts 0: the region's own (or the store's default).
 */
int geo_region_store_open(const struct cfg_region *r, uint64_t part_size,
			  unsigned max_attempts, struct store **store_ret,
			  struct err *err);

/*
 * Open region r's store as geo_region_store_open does and, for S3, ask it
 * something (a listing of one key): an S3 store says what is wrong (keys,
 * bucket, clock, endpoint) only when asked.  *store_ret as there.
 */
int geo_region_probe(const struct cfg_region *r, struct store **store_ret,
		     struct err *err);

/*
 * The regions to use: from (a --from/--to STORE: one region "default"; its
 * errors' hints name from_flag, "--from" or "--to", as typed), or the
 * config's, primary first; only (--region NAME) keeps just that one.
 * reads: the command only reads and can fail over (fast_failover).  The
 * strings are only read (and not kept), but cfg is kept (region.cfg): it
 * must outlive the regions.  On success *rs_ret is the
 * caller's, freed with geo_regions_free; on error it holds nothing.
 */
int geo_regions_open(const struct config *cfg, const char *from,
		     const char *from_flag, const char *only, bool reads,
		     struct regions *rs_ret, struct err *err);
/* Close the stores and free the names of rs; rs is left empty (n = 0), so
 * a second call is a no-op. */
void geo_regions_free(struct regions *rs);

/*
 * Until when region g locks the objects of backup m (unix seconds; 0: g has
 * no object_lock, or m has no snapshot time): m's snapshot time + the
 * longest time its partition's retention keeps it (ret_lock_span) + g's
 * lock_margin, never before now + lock_margin (ret_lock_until).
 */
int64_t geo_lock_until(const struct region *g, const struct manifest *m);

/* "<prefix><host>/<partition>/<id>/<name>" in region r: malloc'd, the
 * caller frees it; NULL when out of memory. */
char *geo_region_key(const struct region *r, const struct manifest *m,
		     const char *name);

/* A region's copy of one backup. */
enum geo_copy {
	COPY_OK = 0,
	COPY_MISSING,               /* some object is not there (yet) */
	COPY_BAD,                   /* an object differs: size, ETag or SHA-256 */
	COPY_UNREACHABLE,           /* the region did not answer */
};

struct geo_check {
	int copy;                   /* enum geo_copy */
	int bad_mask;               /* objects 1 data, 2 index, 4 manifest */
	char detail[600];           /* "data.tar.zst: size 12, expected 34" */
};

#define OBJ_DATA 1
#define OBJ_INDEX 2
#define OBJ_MANIFEST 4
#define OBJ_ALL 7
/* (bad_mask only) a data object of a backup m references (version 2) */
#define OBJ_REFS 8

/*
 * HEAD the objects of m in r (mask: OBJ_*) and compare them with m; the
 * verdict goes to *check_ret (always filled; the return is its copy
 * field).  r is used (its store), m only read.
 */
int geo_check_copy(struct region *r, const struct manifest *m, int mask,
		   struct geo_check *check_ret);

/*
 * The data object of m's reference k as a manifest that names it alone
 * (host, partition, the referenced id; data size, SHA-256 and ETag as m's
 * references record them): what geo_check_copy and geo_copy take with
 * OBJ_DATA.  Its strings are borrowed from m.
 */
void geo_ref_manifest(const struct manifest *m, size_t k, struct manifest *ref_ret);

/*
 * HEAD in r the data object of every backup m references (none for a
 * version 1 or a full), each against m's references record.  A missing or
 * bad one sets OBJ_REFS in check_ret->bad_mask, worsens its copy (missing,
 * corrupt) and adds to its detail "reference ID: data.tar.zst missing";
 * an unreachable store makes it unreachable.  check_ret is added to, not
 * cleared (call it after geo_check_copy).
 */
void geo_check_refs(struct region *r, const struct manifest *m, struct geo_check *check_ret);

/* Replication state of one backup (in <state_dir>/geo/HOST/PART/ID.json). */
enum geo_rstate {
	RS_PENDING = 0,             /* not (yet) verified, deadline ahead */
	RS_VERIFIED,
	RS_AT_RISK,                 /* deadline passed / copy missing, bad or unreachable */
};

struct geo_region_state {
	char name[65];
	int replication;            /* REPL_* */
	int state;                  /* enum geo_rstate */
	int64_t deadline_ns;        /* unix ns */
	int64_t verified_ns;        /* unix ns of the last verification, 0 never */
	double lag_s;               /* commit -> verified as measured, < 0 unknown */
	char detail[700];
};

struct geo_state {
	char backup_id[BACKUP_ID_LEN + 1];
	int64_t committed_ns;
	struct geo_region_state r[REGIONS_MAX];
	size_t n;
};

/* Load a backup's state into *gs_ret (a plain struct: nothing to free);
 * -ENOENT when there is none. */
int geo_state_load(const char *state_dir, const char *host,
		   const char *partition, const char *id, struct geo_state *gs_ret,
		   struct err *err);
int geo_state_save(const char *state_dir, const char *host,
		   const char *partition, const struct geo_state *gs,
		   struct err *err);
/* Remove a backup's state (after a failed or pruned backup). */
void geo_state_remove(const char *state_dir, const char *host,
		      const char *partition, const char *id);
/*
 * The backups of host (partition NULL: all) this state dir keeps a
 * replication state of — the ones this host committed with secondaries —
 * as "<partition>/<id>" strings into *ids_ret (geo_state_ids_free frees
 * it); names snapship does not write are skipped.  0 (none) when there is
 * no state; -errno.
 */
int geo_state_ids(const char *state_dir, const char *host,
		  const char *partition, char ***ids_ret, size_t *n_ret);
void geo_state_ids_free(char **ids, size_t n);
/* Region name's entry in gs (added if new): points into gs; NULL when gs
 * is full. */
struct geo_region_state *geo_state_region(struct geo_state *gs,
					  const char *name);

/* "geo-protected", "replicating", "at risk" or "single region" (static
 * strings, as are the names below). */
const char *geo_summary(const struct geo_state *gs, int64_t now_ns);
const char *geo_rstate_name(int state);
const char *geo_copy_name(int copy);

/*
 * Poll the secondaries of rs whose entries in gs are RS_PENDING (server
 * replication) until each has a verified copy or its deadline passes;
 * updates gs (verified_ns, lag_s from gs->committed_ns, or RS_AT_RISK).
 * With once, one look only (what is not there yet stays pending); a stop
 * request (signals_stop()) ends the wait the same way.
 * Returns the number of regions found at risk.
 */
size_t geo_wait(struct regions *rs, const struct manifest *m, int mask,
		bool once, struct geo_state *gs);

/*
 * Copy objects of m (bits of mask as in geo_check.bad_mask) from region src
 * to dst, streamed through a bounded buffer, each checked against the
 * manifest's SHA-256 (the manifest against its own bytes) before it is
 * committed; the manifest goes last.  With OBJ_REFS, before them, each
 * data object m references that dst lacks or holds bad (geo_check_refs).
 * Object Lock (dst's object_lock): every copy is locked until m's date
 * (geo_lock_until) or lock_floor when later — the date of the newest
 * backup that reads m's data (0: none); a referenced object copied here
 * gets m's date, not its own backup's.
 */
int geo_copy(struct region *src, struct region *dst, const struct manifest *m,
	     int mask, int64_t lock_floor, struct err *err);

#endif
