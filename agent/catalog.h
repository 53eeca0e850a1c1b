/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_CATALOG_H
#define SNAPSHIP_AGENT_CATALOG_H

/*
 * Backups in a store: object keys, backup ids, manifests (the commit
 * markers) and listing.  A backup exists only when its manifest does.
 *
 *   <prefix><host>/<partition>/<backup-id>/data.tar.zst
 *   <prefix><host>/<partition>/<backup-id>/index.jsonl.zst
 *   <prefix><host>/<partition>/<backup-id>/manifest.json
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;
struct store;

#define FORMAT_VERSION 1       /* what backups are written as */
#define FORMAT_VERSION_MAX 2   /* the newest this build reads (doc/incremental.md) */
#define BACKUP_ID_LEN 23   /* YYYYMMDDTHHMMSSZ-xxxxxx */
#define MANIFEST_REFS_MAX 4096 /* references of one version 2 backup */

/*
 * What a manifest may claim (manifest_from_json refuses the rest): frames
 * of 1 byte to 64 MiB (the config allows up to 64M; restore sizes its
 * buffers by this), at most 2^32 - 1 of them, keys of up to 1024 bytes (a
 * store's limit), zstd levels as zstd has them.
 */
#define MANIFEST_FRAME_SIZE_MAX (64u << 20)
#define MANIFEST_KEY_MAX 1024
#define MANIFEST_LEVEL_MIN (-131072)
#define MANIFEST_LEVEL_MAX 22

/*
 * A version 2 backup's reference: an older backup of the same host and
 * partition whose data object holds content this backup's index points at,
 * with that object as its manifest recorded it.
 */
struct manifest_ref {
	char id[BACKUP_ID_LEN + 1];
	char *key;                      /* [PREFIX]<host>/<partition>/<id>/data.tar.zst; owned */
	uint64_t size;
	char sha256[65];
	char etag[80];
};

struct manifest {
	int format_version;
	char backup_id[BACKUP_ID_LEN + 1];
	char *tool_version, *host, *partition, *source;
	char snap_uuid[37];
	uint64_t snap_generation;
	int64_t snap_time_ns, started_ns, finished_ns;
	uint64_t files, dirs, others, entries, logical_bytes, tar_bytes, stored_bytes;
	char *compression;              /* "zstd" */
	int level;
	uint32_t frame_size, frames;
	char *data_key, *index_key;
	uint64_t data_size, index_size;
	char data_sha256[65], index_sha256[65];
	/* the objects' ETags as the primary stored them ("" unknown): copies
	 * in other regions must match them, byte for byte */
	char data_etag[80], index_etag[80];
	/* the manifest object itself (filled when loaded or written, not part
	 * of the JSON): every region holds these same bytes */
	uint64_t self_size;
	char self_sha256[65];
	char **hooks;                   /* commands run, NULL-terminated; may be NULL */
	char *encryption;               /* "none" or SEAL_ALG */
	/* encrypted (doc/protection.md): the master key's fingerprint (16
	 * hex digits), the passphrase's scrypt salt (32 hex digits; "" for a
	 * raw key) and the sealed sensitive fields (base64; owned) — source,
	 * source_uuid and hooks are empty in the manifest's clear text */
	char enc_fp[17];
	char enc_salt[33];
	char *enc_sealed;
	/* the subvolume snapshotted ("" unknown): written in version 2 only */
	char source_uuid[37];
	/* snapshot.fstype, optional in every version: the filesystem frozen
	 * ("btrfs", "ext4", "xfs"; "" unknown), for restore --to-lv */
	char fstype[8];
	/* version 2 only (zero in version 1) */
	char parent[BACKUP_ID_LEN + 1]; /* "" = none: a full */
	struct manifest_ref *refs;      /* sorted by id, unique; owned */
	size_t nrefs;
	uint64_t chain;                 /* backups back to the oldest reference */
	char full_id[BACKUP_ID_LEN + 1]; /* the chain's newest full */
	uint64_t new_bytes, referenced_bytes;
	uint64_t n_unchanged, n_changed, n_new, n_deleted, n_meta_only, n_renamed;
};

/* "YYYYMMDDTHHMMSSZ-xxxxxx" for time t (unix seconds) plus random hex. */
int catalog_new_id(int64_t t, char out[BACKUP_ID_LEN + 1], struct err *err);
/* Seconds since the epoch encoded in an id, or -1 if it is not one. */
int64_t catalog_id_time(const char *id);

/* "<prefix><host>/<partition>/<id>/<name>" into a malloc'd string. */
char *catalog_key(const char *prefix, const char *host, const char *partition,
		  const char *id, const char *name);

int manifest_to_json(const struct manifest *m, char **json_ret, struct err *err);
/*
 * Parse a manifest (a store's bytes: anyone may have written them) into *m
 * (manifest_clear frees it; nothing to free on error).  Format versions 1
 * and 2 are read; another is refused with -EPROTONOSUPPORT naming it ("upgrade
 * snapship").  Version 2's parent, references, chain, full_id, counts and
 * snapshot.source_uuid are required in it: parent null or an id, the
 * references (at most MANIFEST_REFS_MAX) sorted and unique, each id not
 * newer than this backup's (by the id's time) and not its own, each key
 * exactly "[PREFIX]<host>/<partition>/<id>/data.tar.zst" under this
 * manifest's own PREFIX; a full (parent null) has no references, chain 0
 * and itself as full_id.  Refused with
 * -EBADMSG and one message naming the field: wrong types, negative or
 * out-of-range numbers, hooks that are not strings, and names snapship
 * would not write — host and partition outside util_name_ok(), a backup_id
 * that is not one, data and index keys other than
 * "[PREFIX]<host>/<partition>/<backup_id>/data.tar.zst" (and
 * index.jsonl.zst) under one clean PREFIX.  So every name in a parsed
 * manifest is safe in a key, a path and a message.
 */
int manifest_from_json(const char *json, size_t len, struct manifest *m,
		       struct err *err);
void manifest_clear(struct manifest *m);

/* Read and parse one backup's manifest; it must name the same host,
 * partition and id as its key (-EBADMSG otherwise). */
int catalog_load(struct store *store, const char *prefix, const char *host,
		 const char *partition, const char *id, struct manifest *m,
		 struct err *err);

/*
 * The data objects a set of manifests references (version 2's
 * `references`): one use per (referenced backup, referencing backup),
 * matched by partition and id (the keys' prefix may differ by region).
 * The strings are borrowed from the manifests added, which must outlive
 * the set.  What prune and the orphan sweep keep: a data object whose
 * backup some manifest references stays although its manifest is gone.
 */
struct catalog_ref_use {
	const char *partition, *id;     /* the referenced backup */
	const char *by;                 /* the backup whose manifest references it */
};

struct catalog_refs {
	struct catalog_ref_use *v;      /* sorted by partition, id, by; owned */
	size_t n, cap;
	bool sorted;
};

/* Add the references of m (none for version 1 or a full). */
int catalog_refs_add(struct catalog_refs *r, const struct manifest *m);
/* How many manifests added reference backup id of partition; *first_ret
 * (may be NULL) the first use in r->v (the others follow it). */
size_t catalog_refs_users(struct catalog_refs *r, const char *partition, const char *id,
			  size_t *first_ret);
/* "B1, B2, ..." the backups referencing id, cut to fit len ("..."). */
const char *catalog_refs_by(struct catalog_refs *r, const char *partition, const char *id,
			    char *buf, size_t len);
void catalog_refs_free(struct catalog_refs *r);

#define CATALOG_BROKEN_MAX 64

struct catalog_list {
	struct manifest *m;             /* sorted by partition, then oldest first */
	size_t n;
	/* manifests that are not backups (unreadable, malformed, misnamed,
	 * or not where snapship puts them): counted, skipped, and the first
	 * CATALOG_BROKEN_MAX of them said why, "KEY: why", names escaped
	 * (owned by the list) */
	size_t broken;
	char *broken_why[CATALOG_BROKEN_MAX];
	size_t nbroken_why;
	/* a union of regions' listings (failover_list): the index of the
	 * region each m[i] was listed from; NULL when all are from one */
	size_t *region;
};

/*
 * Every committed backup under prefix+host (partition NULL = all).
 * Backup directories without a manifest are not backups and are skipped;
 * a manifest that cannot be used is counted in broken and skipped, the
 * rest are listed (one bad object never hides the others).  host and
 * partition must be util_name_ok() names (-EINVAL otherwise).  Nothing is
 * logged: the caller reports broken_why.
 */
int catalog_list(struct store *store, const char *prefix, const char *host,
		 const char *partition, struct catalog_list *list_ret,
		 struct err *err);
void catalog_list_free(struct catalog_list *list);

/*
 * Delete the objects of this host's backups that have no manifest (a run
 * that died between its data and its commit).  Only with the host lock
 * held: a backup in progress looks the same.  *removed_ret counts objects.
 */
int catalog_remove_orphans(struct store *store, const char *prefix,
			   const char *host, size_t *removed_ret, struct err *err);

/*
 * Remove this host's empty backup directories (a store with directories:
 * what an interrupted run left once its temp files went): only those at
 * <prefix><host>/<partition>/<backup-id>, named as snapship names them,
 * never through a link.  Only with the host lock held.  *removed_ret
 * counts them.
 */
int catalog_remove_empty_dirs(struct store *store, const char *prefix,
			      const char *host, unsigned *removed_ret,
			      struct err *err);

/* The hosts a store holds backups of (a replacement host finds its
 * predecessor's): counted from the manifests' keys, none read. */
struct catalog_host {
	char name[64 + 1];              /* a util_name_ok() name */
	size_t backups, partitions;
	char latest[BACKUP_ID_LEN + 1]; /* the newest backup's id */
};

struct catalog_hosts {
	struct catalog_host *v;         /* sorted by name; owned */
	size_t n;
	size_t other;                   /* manifests not where snapship puts them */
};

/*
 * Every host with a manifest at <prefix><host>/<partition>/<id>/manifest.json
 * (names snapship writes; others are only counted in other).  *hosts_ret
 * is the caller's (catalog_hosts_free), empty on error.
 */
int catalog_hosts(struct store *store, const char *prefix,
		  struct catalog_hosts *hosts_ret, struct err *err);
void catalog_hosts_free(struct catalog_hosts *hosts);
/* The hosts other than host that store holds backups of, "a, b" (names
 * escaped, cut to fit), into buf (returned); "" when none or the listing
 * fails. */
const char *catalog_other_hosts(struct store *store, const char *prefix,
				const char *host, char *buf, size_t len);

/* Which backup is newer: <0 when a was taken before b, >0 after (the id's
 * time, then the snapshot time in ns, then the id: a total order). */
int catalog_cmp_age(const struct manifest *a, const struct manifest *b);
/* Find id (or the latest when id is NULL) in a list; NULL if absent. */
const struct manifest *catalog_find(const struct catalog_list *list,
				    const char *partition, const char *id);

/*
 * What restore --at picks for one partition (pointers into the list):
 * pick, the newest backup whose snapshot time (snap_time_ns) is at or
 * before at_ns, NULL when none is; next, the oldest taken after at_ns
 * (NULL: none), so the bracket shows; oldest and newest of the partition
 * and how many it has (n = 0: none, every pointer NULL).  Backups of one
 * snapshot time are ordered as catalog_cmp_age orders them: of a tie at
 * or before at_ns the newer is picked.
 */
struct catalog_at {
	const struct manifest *pick, *next, *oldest, *newest;
	size_t n;
};
void catalog_at(const struct catalog_list *list, const char *partition,
		int64_t at_ns, struct catalog_at *at_ret);

#endif
