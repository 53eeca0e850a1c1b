/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_CONFIG_H
#define SNAPSHIP_AGENT_CONFIG_H

/*
 * snapship.conf: an INI file parsed with libinih.  Unknown sections, unknown
 * keys and bad values are errors that name the file, line and key.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

enum { REPL_NONE = 0, REPL_SERVER, REPL_AGENT };

/*
 * [retention] (design §7): global, and each key overridable in a
 * [partition NAME] section (set says which ones it overrides).  Durations
 * in seconds; 0 turns a rule off (max_age 0: no purge).
 */
struct cfg_retention {
	int64_t keep_last, keep_within, keep_hourly, keep_daily, keep_weekly,
		keep_monthly, max_age;
	bool max_age_newest;      /* max_age_deletes_newest = yes */
	unsigned set;             /* bits 1 << CFG_RET_* of the keys given */
	int line;                 /* line of keep_within or max_age, 0 if unset */
};

enum { CFG_RET_KEEP_LAST, CFG_RET_KEEP_WITHIN, CFG_RET_KEEP_HOURLY,
       CFG_RET_KEEP_DAILY, CFG_RET_KEEP_WEEKLY, CFG_RET_KEEP_MONTHLY,
       CFG_RET_MAX_AGE, CFG_RET_MAX_AGE_NEWEST, CFG_RET_KEYS };

struct cfg_partition {
	char *name;
	char *path;               /* the btrfs subvolume to back up */
	char *snapshot_dir;       /* NULL = default next to the subvolume */
	int snapshot_mode;        /* enum cow_mode: snapshot = auto|btrfs|lvm */
	char *lvm_snapshot_size;  /* thick LVM snapshot size; NULL = 20% */
	char *pre_snapshot;       /* shell command or NULL */
	char *post_snapshot;
	int64_t hook_timeout;     /* seconds */
	int64_t rpo_max;          /* seconds; 0: [agent] rpo_max */
	int64_t rto_max;          /* seconds (0: no limit), if has_rto_max */
	bool has_rto_max;         /* unset: [agent] rto_max */
	int64_t drill_interval;   /* seconds (0: no drills), if has_drill_interval */
	bool has_drill_interval;  /* unset: [agent] drill_interval */
	/* chains of incrementals (doc/incremental.md "Chains"); unset: [agent]'s */
	int64_t full_every;       /* seconds, if has_full_every */
	bool has_full_every;
	uint64_t max_chain;       /* if has_max_chain */
	bool has_max_chain;
	struct cfg_retention ret; /* overrides of [retention] (ret.set) */
	/* the schedule (agent/schedule.h); unset: [agent]'s */
	int64_t interval;         /* seconds; 0: [agent] interval */
	int64_t jitter;           /* seconds, if has_jitter */
	bool has_jitter;
	bool has_window;          /* win_*: this partition's window */
	int win_start, win_end;   /* minutes after local midnight; equal: none */
};

struct cfg_region {
	char *name;
	char *store;              /* "file" or "s3" */
	char *path;               /* file store directory */
	char *prefix;             /* key prefix, "" by default */
	bool primary;
	int line;
	/* secondaries: who copies backups here (design §6) */
	int replication;          /* REPL_SERVER (default) or REPL_AGENT */
	int64_t replication_deadline;  /* seconds; default 15m */
	int repl_line;            /* line of replication/deadline, 0 if unset */
	/* store = s3 */
	char *endpoint;           /* NULL: https://s3.SIGV4_REGION.amazonaws.com;
				   * given without a scheme: https:// added */
	char *bucket;
	char *sigv4_region;       /* "us-east-1" unless set */
	bool virtual_hosted;      /* addressing = virtual (default path) */
	char *access_key_id;      /* NULL: AWS_ACCESS_KEY_ID etc. from the env */
	char *secret_access_key_file;
	/* deletions' credentials (prune, clean, repair); NULL: the ones above */
	char *prune_access_key_id;
	char *prune_secret_access_key_file;
	int object_lock;          /* enum store_lock: 0 off, governance, compliance */
	int64_t lock_margin;      /* seconds added to the lock; default 1d */
	char *ca_file;            /* NULL: the system's CA store */
	bool insecure_tls;
	bool allow_http;          /* http:// to a host that is not loopback */
	int endpoint_line;        /* line of endpoint, 0 if unset */
	uint64_t part_size;       /* 0: the store's default */
	unsigned parts_in_flight; /* 0: the store's default */
	int s3_line;              /* first line of an S3-only key, 0 if none */
	char *s3_key;             /* its name */
	char *location;           /* the store location: path or "s3://bucket" */
};

struct config {
	char *file;               /* NULL for the zero-config form */
	/* [agent] */
	int64_t interval, jitter; /* seconds */
	char *state_dir;
	char *host;
	int compression_level;
	uint64_t frame_size;
	uint64_t max_read_rate, max_upload_rate;
	int io_priority;          /* 0 leave, 2 best-effort, 3 idle */
	bool low_impact;          /* adaptive (agent/lowimpact.h); false: off */
	char *pressure_cgroup;    /* watch this cgroup's PSI; NULL: the host's */
	int cpu_priority;         /* compression threads: FRAMER_CPU_* */
	char *metrics_file;
	/* client-side encryption (agent/keyring.h): new backups are
	 * encrypted with key_file; restores also try old_key_files (a
	 * comma-separated list of paths, as written) */
	bool encrypt;
	char *key_file, *old_key_files;
	bool require_geo;         /* a backup fails unless every secondary has it */
	int64_t rpo_max;          /* seconds; 0: 2 x interval (config_rpo_max) */
	int64_t rto_max;          /* seconds a drill's restore may take; 0: no limit */
	int64_t drill_interval;   /* seconds between the agent's drills; 0: none */
	/* a full backup when the chain's full is this old (seconds; 0: no
	 * limit; default 30d) or has this many incrementals after it (0: every
	 * backup is a full; default 180) */
	int64_t full_every;
	uint64_t max_chain;
	struct cfg_retention ret; /* [retention] */
	int win_start, win_end;   /* window: minutes after local midnight; equal: none */
	unsigned max_concurrent;  /* the agent's backups at a time (of different partitions) */
	char **discover;          /* discover = GLOB lines, in order (owned) */
	size_t ndiscover;

	struct cfg_partition *parts;
	size_t nparts;
	struct cfg_region *regions;
	size_t nregions;
};

/* Built-in defaults (no partitions, no regions). */
int config_defaults(struct config *cfg, struct err *err);
/* Parse a file over the defaults and check it as a whole. */
int config_load(const char *file, struct config *cfg, struct err *err);
/* config_load from the descriptor fd (read from its start; fd stays the
 * caller's), file naming it in messages: the supervised agent's worker
 * reads the supervisor's copy of the last good config (agent/supervise.c). */
int config_load_fd(int fd, const char *file, struct config *cfg, struct err *err);
/* config_load of file's bytes read once; when they load and copy_fd >= 0,
 * those same bytes replace copy_fd's contents (a memfd: the last good
 * config). */
int config_load_copy(const char *file, int copy_fd, struct config *cfg, struct err *err);
void config_free(struct config *cfg);

const struct cfg_partition *config_partition(const struct config *cfg,
					     const char *name);
const struct cfg_region *config_primary(const struct config *cfg);

/* How old p's latest backup may be before status calls it stale: p's
 * rpo_max, [agent] rpo_max, or 2 x interval (p NULL: the agent's). */
int64_t config_rpo_max(const struct config *cfg, const struct cfg_partition *p);

/* How long a drill's restore of p may take: p's rto_max, else [agent]'s
 * (seconds; 0: no limit; p NULL: the agent's). */
int64_t config_rto_max(const struct config *cfg, const struct cfg_partition *p);

/* How often the agent drills p: p's drill_interval, else [agent]'s
 * (seconds; 0: the agent does not drill it; p NULL: the agent's). */
/* p's full_every and max_chain (p's own, else [agent]'s; p may be NULL). */
int64_t config_full_every(const struct config *cfg, const struct cfg_partition *p);
uint64_t config_max_chain(const struct config *cfg, const struct cfg_partition *p);
int64_t config_drill_interval(const struct config *cfg, const struct cfg_partition *p);

/*
 * What config check says besides what config_load refuses: each problem
 * that makes the agent unusable (error) or that is probably not meant
 * (warning), one message at a time to say(); no I/O.  Returns the number
 * of errors.
 */
unsigned config_review(const struct config *cfg,
		       void (*say)(void *ctx, bool error, const char *msg), void *ctx);

/* The retention of partition p (NULL: the global one): [retention] with
 * p's overrides applied, into *ret_ret. */
void config_retention(const struct config *cfg, const struct cfg_partition *p,
		      struct cfg_retention *ret_ret);
/* p's interval, jitter and window (p's own or [agent]'s; p may be NULL). */
int64_t config_interval(const struct config *cfg, const struct cfg_partition *p);
int64_t config_jitter(const struct config *cfg, const struct cfg_partition *p);
void config_window(const struct config *cfg, const struct cfg_partition *p,
		   int *start_ret, int *end_ret);

/* "01:00-05:00" (minutes after midnight; across midnight allowed) or
 * "none" (start = end = 0); false if v is neither. */
bool config_parse_window(const char *v, int *start_ret, int *end_ret);

/* Store location string for a region ("/srv/backups", "s3://bucket"). */
const char *config_region_location(const struct cfg_region *r);

#endif
