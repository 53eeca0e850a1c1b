// SPDX-License-Identifier: MIT
/*
 * Reading snapship.conf's INI text (agent/config.h): the values (booleans,
 * numbers, durations, windows), each section's keys ([agent], [retention],
 * [partition NAME], [region NAME]), and libinih's handler and line reader.
 * The strings set go into the caller's struct config (config_free frees
 * them).  config.c loads the file and checks the sections together.
 */
#include "agent/config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/config_priv.h"
#include "uploader/store.h"
#include "common/err.h"
#include "common/util.h"
#include "cow/cow.h"

int config_set_str(char **dst, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static bool parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "off"))
		*out = false;
	else
		return false;
	return true;
}

static bool parse_int(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi)
		return false;
	*out = n;
	return true;
}

static int bad(struct parse_ctx *pc, const char *section, const char *key,
	       const char *v, const char *want)
{
	pc->error = err_set(pc->err, -EINVAL, "%s:%d: [%s] %s = %s: %s",
			    pc->file, pc->line, section, key, v, want);
	return 0;
}

/* "partition orders" → kind "partition", name "orders" */
static bool split_section(const char *section, const char *kind,
			  const char **name_ret)
{
	size_t k = strlen(kind);

	if (strncmp(section, kind, k) || section[k] != ' ')
		return false;
	*name_ret = section + k + 1;
	while (**name_ret == ' ')
		(*name_ret)++;
	return **name_ret != '\0';
}

static struct cfg_partition *get_part(struct parse_ctx *pc, const char *name)
{
	struct config *c = pc->cfg;
	struct cfg_partition *n;

	for (size_t i = 0; i < c->nparts; i++)
		if (!strcmp(c->parts[i].name, name))
			return &c->parts[i];
	n = realloc(c->parts, (c->nparts + 1) * sizeof(*n));
	if (!n)
		return NULL;
	c->parts = n;
	n = &c->parts[c->nparts++];
	memset(n, 0, sizeof(*n));
	n->name = strdup(name);
	n->hook_timeout = 300;
	return n;
}

static struct cfg_region *get_region(struct parse_ctx *pc, const char *name)
{
	struct config *c = pc->cfg;
	struct cfg_region *n;

	for (size_t i = 0; i < c->nregions; i++)
		if (!strcmp(c->regions[i].name, name))
			return &c->regions[i];
	n = realloc(c->regions, (c->nregions + 1) * sizeof(*n));
	if (!n)
		return NULL;
	c->regions = n;
	n = &c->regions[c->nregions++];
	memset(n, 0, sizeof(*n));
	n->name = strdup(name);
	n->line = pc->line;
	n->lock_margin = -1;      /* unset: 1d (config.c) */
	return n;
}

bool config_parse_window(const char *v, int *start_ret, int *end_ret)
{
	unsigned h1, m1, h2, m2;
	int n = 0;

	if (!strcmp(v, "none")) {
		*start_ret = *end_ret = 0;
		return true;
	}
	if (sscanf(v, "%2u:%2u-%2u:%2u%n", &h1, &m1, &h2, &m2, &n) != 4 || v[n] ||
	    h1 > 24 || h2 > 24 || m1 > 59 || m2 > 59 ||
	    (h1 == 24 && m1) || (h2 == 24 && m2))
		return false;
	*start_ret = (int)((h1 % 24) * 60 + m1);
	*end_ret = (int)((h2 % 24) * 60 + m2);
	return *start_ret != *end_ret;
}

/* interval and jitter, in [agent] or a [partition]: 0 or -EINVAL (said) */
static int parse_schedule_duration(struct parse_ctx *pc, const char *s, const char *k,
				   const char *v, int64_t *n_ret)
{
	if (util_parse_duration(v, n_ret) || *n_ret < 0) {
		bad(pc, s, k, v, "expected a duration such as 4h, 30m or 90s");
		return -EINVAL;
	}
	if (!strcmp(k, "interval") && *n_ret < 1) {
		bad(pc, s, k, v, "the interval must be at least 1s");
		return -EINVAL;
	}
	return 0;
}

/* discover = GLOB: one glob a line; the key may repeat */
static int add_discover(struct parse_ctx *pc, const char *s, const char *k,
			const char *v)
{
	struct config *c = pc->cfg;
	char **n;

	if (v[0] != '/')
		return bad(pc, s, k, v, "expected an absolute path glob such as /srv/db/*");
	n = realloc(c->discover, (c->ndiscover + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	c->discover = n;
	n[c->ndiscover] = strdup(v);
	if (!n[c->ndiscover])
		return -ENOMEM;
	c->ndiscover++;
	return 0;
}

/* low_impact, pressure_cgroup, cpu_priority: 1 if k is not one of them */
static int lowimpact_key(struct parse_ctx *pc, const char *s, const char *k,
			 const char *v)
{
	struct config *c = pc->cfg;

	if (!strcmp(k, "low_impact")) {
		if (strcmp(v, "adaptive") && strcmp(v, "off"))
			return bad(pc, s, k, v, "expected adaptive or off");
		c->low_impact = !strcmp(v, "adaptive");
	} else if (!strcmp(k, "pressure_cgroup")) {
		if (v[0] != '/')
			return bad(pc, s, k, v, "expected a cgroup v2 directory such as /sys/fs/cgroup/system.slice/postgresql.service");
		return config_set_str(&c->pressure_cgroup, v);
	} else if (!strcmp(k, "cpu_priority")) {
		if (!strcmp(v, "idle"))
			c->cpu_priority = 2;
		else if (!strcmp(v, "low"))
			c->cpu_priority = 1;
		else if (!strcmp(v, "normal"))
			c->cpu_priority = 0;
		else
			return bad(pc, s, k, v, "expected idle, low or normal");
	} else {
		return 1;
	}
	return 0;
}

static int agent_key(struct parse_ctx *pc, const char *s, const char *k,
		     const char *v)
{
	struct config *c = pc->cfg;
	int64_t n;

	if (!strcmp(k, "rpo_max")) {
		if (util_parse_duration(v, &n) || n < 1)
			return bad(pc, s, k, v, "expected a duration such as 8h or 1d");
		c->rpo_max = n;
	} else if (!strcmp(k, "rto_max") || !strcmp(k, "drill_interval")) {
		if (util_parse_duration(v, &n) || n < 0)
			return bad(pc, s, k, v, "expected a duration such as 30m or 1d, or 0 (none)");
		*(k[0] == 'r' ? &c->rto_max : &c->drill_interval) = n;
	} else if (!strcmp(k, "interval") || !strcmp(k, "jitter")) {
		if (parse_schedule_duration(pc, s, k, v, &n))
			return 0;
		*(k[0] == 'i' ? &c->interval : &c->jitter) = n;
	} else if (!strcmp(k, "window")) {
		if (!config_parse_window(v, &c->win_start, &c->win_end))
			return bad(pc, s, k, v, "expected HH:MM-HH:MM (local time, e.g. 01:00-05:00) or none");
	} else if (!strcmp(k, "max_concurrent")) {
		if (!parse_int(v, 1, 64, &n))
			return bad(pc, s, k, v, "expected a count from 1 to 64");
		c->max_concurrent = (unsigned)n;
	} else if (!strcmp(k, "discover")) {
		return add_discover(pc, s, k, v);
	} else if (!strcmp(k, "state_dir")) {
		if (v[0] != '/')
			return bad(pc, s, k, v, "expected an absolute path");
		return config_set_str(&c->state_dir, v);
	} else if (!strcmp(k, "host")) {
		if (!util_name_ok(v))
			return bad(pc, s, k, v, "expected a name of letters, digits, '-', '_' and '.'");
		return config_set_str(&c->host, v);
	} else if (!strcmp(k, "compression_level")) {
		if (!parse_int(v, 1, 19, &n))
			return bad(pc, s, k, v, "expected a zstd level from 1 to 19");
		c->compression_level = (int)n;
	} else if (!strcmp(k, "frame_size")) {
		uint64_t b;

		if (util_parse_size(v, &b) || b < (64u << 10) || b > (64u << 20))
			return bad(pc, s, k, v, "expected a size from 64K to 64M");
		c->frame_size = b;
	} else if (!strcmp(k, "max_read_rate") || !strcmp(k, "max_upload_rate")) {
		uint64_t b;

		if (util_parse_size(v, &b))
			return bad(pc, s, k, v, "expected bytes per second such as 200M or 0 (unlimited)");
		*(k[4] == 'r' ? &c->max_read_rate : &c->max_upload_rate) = b;
	} else if (!strcmp(k, "io_priority")) {
		if (!strcmp(v, "idle"))
			c->io_priority = 3;
		else if (!strcmp(v, "best-effort"))
			c->io_priority = 2;
		else
			return bad(pc, s, k, v, "expected idle or best-effort");
	} else if (!strcmp(k, "metrics_file")) {
		return config_set_str(&c->metrics_file, v);
	} else if (!strcmp(k, "encryption")) {
		if (strcmp(v, "none") && strcmp(v, "aes-256-gcm"))
			return bad(pc, s, k, v, "expected none or aes-256-gcm");
		c->encrypt = !strcmp(v, "aes-256-gcm");
	} else if (!strcmp(k, "key_file")) {
		return config_set_str(&c->key_file, v);
	} else if (!strcmp(k, "old_key_files")) {
		return config_set_str(&c->old_key_files, v);
	} else if ((n = lowimpact_key(pc, s, k, v)) <= 0) {
		return (int)n;   /* one of them: set, refused (pc->error) or -ENOMEM */
	} else if (!strcmp(k, "require_geo")) {
		bool b;

		if (!parse_bool(v, &b))
			return bad(pc, s, k, v, "expected yes or no");
		c->require_geo = b;
	} else if (!strcmp(k, "full_every")) {
		if (util_parse_duration(v, &n) || n < 0)
			return bad(pc, s, k, v, "expected a duration such as 30d, or 0 (no time limit)");
		c->full_every = n;
	} else if (!strcmp(k, "max_chain")) {
		if (!parse_int(v, 0, 100000, &n))
			return bad(pc, s, k, v, "expected a count from 0 (every backup a full) to 100000");
		c->max_chain = (uint64_t)n;
	} else {
		pc->error = err_set(pc->err, -EINVAL,
				    "%s:%d: unknown key \"%s\" in [agent] (known: interval, jitter, window, max_concurrent, discover, state_dir, host, compression_level, frame_size, max_read_rate, max_upload_rate, io_priority, low_impact, pressure_cgroup, cpu_priority, metrics_file, require_geo, rpo_max, rto_max, drill_interval, full_every, max_chain, encryption, key_file, old_key_files)",
				    pc->file, pc->line, k);
	}
	return 0;
}

const struct ret_key config_ret_keys[CFG_RET_KEYS] = {
	[CFG_RET_KEEP_LAST] = { "keep_last", offsetof(struct cfg_retention, keep_last), false },
	[CFG_RET_KEEP_WITHIN] = { "keep_within", offsetof(struct cfg_retention, keep_within), true },
	[CFG_RET_KEEP_HOURLY] = { "keep_hourly", offsetof(struct cfg_retention, keep_hourly), false },
	[CFG_RET_KEEP_DAILY] = { "keep_daily", offsetof(struct cfg_retention, keep_daily), false },
	[CFG_RET_KEEP_WEEKLY] = { "keep_weekly", offsetof(struct cfg_retention, keep_weekly), false },
	[CFG_RET_KEEP_MONTHLY] = { "keep_monthly", offsetof(struct cfg_retention, keep_monthly), false },
	[CFG_RET_MAX_AGE] = { "max_age", offsetof(struct cfg_retention, max_age), true },
	[CFG_RET_MAX_AGE_NEWEST] = { "max_age_deletes_newest", 0, false },
};

#define RET_KEYS_KNOWN "keep_last, keep_within, keep_hourly, keep_daily, keep_weekly, keep_monthly, max_age, max_age_deletes_newest"

/*
 * A retention key k = v into r (a [retention] or [partition] section s),
 * noted in r->set.  1 when k is one (its value refused into pc->error),
 * 0 when it is not a retention key.
 */
static int retention_setting(struct parse_ctx *pc, const char *s, const char *k,
			     const char *v, struct cfg_retention *r)
{
	int64_t n;
	bool b;

	for (int i = 0; i < CFG_RET_KEYS; i++) {
		const struct ret_key *rk = &config_ret_keys[i];
		const char *want = NULL;

		if (strcmp(k, rk->name))
			continue;
		if (i == CFG_RET_MAX_AGE_NEWEST) {
			if (parse_bool(v, &b))
				r->max_age_newest = b;
			else
				want = "expected yes or no";
		} else if (rk->duration) {
			if (util_parse_duration(v, &n) || n < 0)
				want = "expected a duration such as 30d, or 0 (off)";
			r->line = pc->line;
		} else if (!parse_int(v, 0, 100000, &n)) {
			want = "expected a count (0 or more)";
		}
		if (want) {
			bad(pc, s, k, v, want);
			return 1;
		}
		if (i != CFG_RET_MAX_AGE_NEWEST)
			*(int64_t *)(void *)((char *)r + rk->off) = n;
		r->set |= 1u << i;
		return 1;
	}
	return 0;
}

static int retention_key(struct parse_ctx *pc, const char *s, const char *k,
			 const char *v)
{
	if (!retention_setting(pc, s, k, v, &pc->cfg->ret))
		pc->error = err_set(pc->err, -EINVAL,
				    "%s:%d: unknown key \"%s\" in [retention] (known: " RET_KEYS_KNOWN ")",
				    pc->file, pc->line, k);
	return 0;
}

static int partition_key(struct parse_ctx *pc, const char *s, const char *name,
			 const char *k, const char *v)
{
	struct cfg_partition *p;
	int64_t n;

	if (!util_name_ok(name)) {
		pc->error = err_set(pc->err, -EINVAL,
				    "%s:%d: [%s]: partition names may use letters, digits, '-', '_' and '.'",
				    pc->file, pc->line, s);
		return 0;
	}
	p = get_part(pc, name);
	if (!p || !p->name)
		return -ENOMEM;
	if (!strcmp(k, "path") || !strcmp(k, "snapshot_dir")) {
		if (v[0] != '/')
			return bad(pc, s, k, v, "expected an absolute path");
		return config_set_str(k[0] == 'p' ? &p->path : &p->snapshot_dir, v);
	} else if (!strcmp(k, "snapshot")) {
		if (!strcmp(v, "auto") || !strcmp(v, "btrfs") || !strcmp(v, "lvm"))
			p->snapshot_mode = v[0] == 'a' ? COW_MODE_AUTO
				: v[0] == 'b' ? COW_MODE_BTRFS : COW_MODE_LVM;
		else
			return bad(pc, s, k, v, "expected auto, btrfs or lvm");
	} else if (!strcmp(k, "lvm_snapshot_size")) {
		if (!cow_lvm_size_ok(v))
			return bad(pc, s, k, v, "expected a size (512M, 2G) or a percentage of the volume (1% to 100%)");
		return config_set_str(&p->lvm_snapshot_size, v);
	} else if (!strcmp(k, "pre_snapshot")) {
		return config_set_str(&p->pre_snapshot, v);
	} else if (!strcmp(k, "post_snapshot")) {
		return config_set_str(&p->post_snapshot, v);
	} else if (!strcmp(k, "hook_timeout")) {
		if (util_parse_duration(v, &n) || n < 1)
			return bad(pc, s, k, v, "expected a duration such as 60s");
		p->hook_timeout = n;
	} else if (!strcmp(k, "rpo_max")) {
		if (util_parse_duration(v, &n) || n < 1)
			return bad(pc, s, k, v, "expected a duration such as 8h or 1d");
		p->rpo_max = n;
	} else if (!strcmp(k, "rto_max")) {
		if (util_parse_duration(v, &n) || n < 0)
			return bad(pc, s, k, v, "expected a duration such as 30m or 1d, or 0 (no limit)");
		p->rto_max = n;
		p->has_rto_max = true;
	} else if (!strcmp(k, "drill_interval")) {
		if (util_parse_duration(v, &n) || n < 0)
			return bad(pc, s, k, v, "expected a duration such as 1d, or 0 (no drills of it)");
		p->drill_interval = n;
		p->has_drill_interval = true;
	} else if (!strcmp(k, "full_every")) {
		if (util_parse_duration(v, &n) || n < 0)
			return bad(pc, s, k, v, "expected a duration such as 30d, or 0 (no time limit)");
		p->full_every = n;
		p->has_full_every = true;
	} else if (!strcmp(k, "max_chain")) {
		if (!parse_int(v, 0, 100000, &n))
			return bad(pc, s, k, v, "expected a count from 0 (every backup a full) to 100000");
		p->max_chain = (uint64_t)n;
		p->has_max_chain = true;
	} else if (!strcmp(k, "interval") || !strcmp(k, "jitter")) {
		if (parse_schedule_duration(pc, s, k, v, &n))
			return 0;
		if (k[0] == 'i') {
			p->interval = n;
		} else {
			p->jitter = n;
			p->has_jitter = true;
		}
	} else if (!strcmp(k, "window")) {
		if (!config_parse_window(v, &p->win_start, &p->win_end))
			return bad(pc, s, k, v, "expected HH:MM-HH:MM (local time, e.g. 01:00-05:00) or none");
		p->has_window = true;
	} else if (!retention_setting(pc, s, k, v, &p->ret)) {
		pc->error = err_set(pc->err, -EINVAL,
				    "%s:%d: unknown key \"%s\" in [%s] (known: path, snapshot_dir, snapshot, lvm_snapshot_size, pre_snapshot, post_snapshot, hook_timeout, rpo_max, rto_max, drill_interval, full_every, max_chain, interval, jitter, window; and the [retention] keys " RET_KEYS_KNOWN ")",
				    pc->file, pc->line, k, s);
	}
	return 0;
}

/* Keys only an S3 region has: remembered so that store = file refuses them. */
static int s3_only_key(struct parse_ctx *pc, struct cfg_region *r, const char *k)
{
	if (r->s3_line)
		return 0;
	r->s3_line = pc->line;
	return config_set_str(&r->s3_key, k);
}

static bool valid_token(const char *v, const char *extra)
{
	if (!*v)
		return false;
	for (; *v; v++)
		if (!(('a' <= *v && *v <= 'z') || ('A' <= *v && *v <= 'Z') ||
		      ('0' <= *v && *v <= '9') || strchr(extra, *v)))
			return false;
	return true;
}

static int region_s3_key(struct parse_ctx *pc, const char *s, struct cfg_region *r,
			 const char *k, const char *v)
{
	uint64_t b;
	int64_t n;
	bool yes;
	int ret = s3_only_key(pc, r, k);

	if (ret)
		return ret;
	if (!strcmp(k, "endpoint")) {
		if (strchr(v, '@')) {      /* user:password@: do not echo it */
			pc->error = err_set(pc->err, -EINVAL,
					    "%s:%d: [%s] endpoint: no user information (\"...@\") in the endpoint; use access_key_id and secret_access_key_file",
					    pc->file, pc->line, s);
			return 0;
		}
		r->endpoint_line = pc->line;
		if (!strncmp(v, "http://", 7) || !strncmp(v, "https://", 8))
			return config_set_str(&r->endpoint, v);
		if (strstr(v, "://"))
			return bad(pc, s, k, v, "expected https://HOST[:PORT] (or HOST[:PORT], which means https; http:// only with allow_http = yes unless HOST is this host)");
		/* no scheme: https, never a silent plain HTTP */
		free(r->endpoint);
		if (asprintf(&r->endpoint, "https://%s", v) < 0) {
			r->endpoint = NULL;
			return -ENOMEM;
		}
		return 0;
	} else if (!strcmp(k, "bucket")) {
		if (!valid_token(v, "-._"))
			return bad(pc, s, k, v, "expected a bucket name (letters, digits, '-', '.', '_')");
		return config_set_str(&r->bucket, v);
	} else if (!strcmp(k, "sigv4_region")) {
		if (!valid_token(v, "-_"))
			return bad(pc, s, k, v, "expected a region name such as us-east-1");
		return config_set_str(&r->sigv4_region, v);
	} else if (!strcmp(k, "addressing")) {
		if (strcmp(v, "path") && strcmp(v, "virtual"))
			return bad(pc, s, k, v, "expected path or virtual");
		r->virtual_hosted = !strcmp(v, "virtual");
	} else if (!strcmp(k, "access_key_id") || !strcmp(k, "prune_access_key_id")) {
		if (!valid_token(v, "-_+/=."))
			return bad(pc, s, k, v, "expected an access key id (letters and digits)");
		return config_set_str(k[0] == 'a' ? &r->access_key_id : &r->prune_access_key_id, v);
	} else if (!strcmp(k, "secret_access_key_file") || !strcmp(k, "ca_file") ||
		   !strcmp(k, "prune_secret_access_key_file")) {
		if (v[0] != '/')
			return bad(pc, s, k, v, "expected an absolute path");
		return config_set_str(k[0] == 's' ? &r->secret_access_key_file :
				      k[0] == 'c' ? &r->ca_file : &r->prune_secret_access_key_file, v);
	} else if (!strcmp(k, "object_lock")) {
		if (!strcmp(v, "governance"))
			r->object_lock = STORE_LOCK_GOVERNANCE;
		else if (!strcmp(v, "compliance"))
			r->object_lock = STORE_LOCK_COMPLIANCE;
		else if (!strcmp(v, "off") || !strcmp(v, "no"))
			r->object_lock = STORE_LOCK_NONE;
		else
			return bad(pc, s, k, v, "expected governance, compliance or off");
	} else if (!strcmp(k, "lock_margin")) {
		if (util_parse_duration(v, &n) || n < 0)
			return bad(pc, s, k, v, "expected a duration such as 1d or 12h");
		r->lock_margin = n;
	} else if (!strcmp(k, "insecure_tls") || !strcmp(k, "allow_http")) {
		if (!parse_bool(v, &yes))
			return bad(pc, s, k, v, "expected yes or no");
		*(k[0] == 'i' ? &r->insecure_tls : &r->allow_http) = yes;
	} else if (!strcmp(k, "part_size")) {
		if (util_parse_size(v, &b) || b < (5ull << 20) || b > (5ull << 30))
			return bad(pc, s, k, v, "expected a size from 5M to 5G");
		r->part_size = b;
	} else if (!strcmp(k, "parts_in_flight")) {
		if (!parse_int(v, 1, 64, &n))
			return bad(pc, s, k, v, "expected a count from 1 to 64");
		r->parts_in_flight = (unsigned)n;
	}
	return 0;
}

static int region_setting(struct parse_ctx *pc, const char *s, const char *name,
			  const char *k, const char *v)
{
	static const char *const s3_keys[] = {
		"endpoint", "bucket", "sigv4_region", "addressing", "access_key_id",
		"secret_access_key_file", "ca_file", "insecure_tls", "allow_http",
		"part_size", "parts_in_flight", "prune_access_key_id",
		"prune_secret_access_key_file", "object_lock", "lock_margin", NULL,
	};
	struct cfg_region *r;
	bool b;

	if (!util_name_ok(name)) {
		pc->error = err_set(pc->err, -EINVAL,
				    "%s:%d: [%s]: region names may use letters, digits, '-', '_' and '.'",
				    pc->file, pc->line, s);
		return 0;
	}
	r = get_region(pc, name);
	if (!r || !r->name)
		return -ENOMEM;
	for (size_t i = 0; s3_keys[i]; i++)
		if (!strcmp(k, s3_keys[i]))
			return region_s3_key(pc, s, r, k, v);
	if (!strcmp(k, "store")) {
		if (strcmp(v, "file") && strcmp(v, "s3"))
			return bad(pc, s, k, v, "expected file or s3");
		return config_set_str(&r->store, v);
	} else if (!strcmp(k, "path")) {
		if (v[0] != '/')
			return bad(pc, s, k, v, "expected an absolute path");
		return config_set_str(&r->path, v);
	} else if (!strcmp(k, "prefix")) {
		if (v[0] == '/' || strstr(v, ".."))
			return bad(pc, s, k, v, "a prefix may not start with '/' or contain '..'");
		return config_set_str(&r->prefix, v);
	} else if (!strcmp(k, "primary")) {
		if (!parse_bool(v, &b))
			return bad(pc, s, k, v, "expected yes or no");
		r->primary = b;
	} else if (!strcmp(k, "replication")) {
		if (!strcmp(v, "server"))
			r->replication = REPL_SERVER;
		else if (!strcmp(v, "agent"))
			r->replication = REPL_AGENT;
		else
			return bad(pc, s, k, v, "expected server (the store replicates; snapship verifies) or agent (snapship uploads here too)");
		r->repl_line = pc->line;
	} else if (!strcmp(k, "replication_deadline")) {
		int64_t n;

		if (util_parse_duration(v, &n) || n < 1)
			return bad(pc, s, k, v, "expected a duration such as 15m or 30s");
		r->replication_deadline = n;
		r->repl_line = pc->line;
	} else {
		pc->error = err_set(pc->err, -EINVAL,
				    "%s:%d: unknown key \"%s\" in [%s] (known: store, prefix, primary, replication, replication_deadline; for store = file: path; for store = s3: endpoint, bucket, sigv4_region, addressing, access_key_id, secret_access_key_file, prune_access_key_id, prune_secret_access_key_file, object_lock, lock_margin, ca_file, insecure_tls, allow_http, part_size, parts_in_flight)",
				    pc->file, pc->line, k, s);
	}
	return 0;
}

int config_ini_handler(void *user, const char *section, const char *key,
		       const char *value)
{
	struct parse_ctx *pc = user;
	const char *name;
	int ret;

	if (pc->error)
		return 0;
	if (!key)   /* a new section (INI_CALL_HANDLER_ON_NEW_SECTION) */
		return 1;
	if (!strcmp(section, "agent"))
		ret = agent_key(pc, section, key, value);
	else if (!strcmp(section, "retention"))
		ret = retention_key(pc, section, key, value);
	else if (split_section(section, "partition", &name))
		ret = partition_key(pc, section, name, key, value);
	else if (split_section(section, "region", &name))
		ret = region_setting(pc, section, name, key, value);
	else {
		pc->error = err_set(pc->err, -EINVAL,
				    "%s:%d: unknown section [%s] (known: [agent], [retention], [partition NAME], [region NAME])",
				    pc->file, pc->line, section);
		return 0;
	}
	if (ret) {
		pc->error = err_set(pc->err, ret, "%s:%d: %s", pc->file, pc->line,
				    err_str(ret));
		return 0;
	}
	return pc->error ? 0 : 1;
}

/* fgets that counts lines, so errors can name them */
char *config_ini_reader(char *str, int num, void *stream)
{
	struct parse_ctx *pc = stream;
	char *s = fgets(str, num, pc->fp);
	size_t len;

	if (!s)
		return NULL;
	pc->line++;
	len = strlen(s);
	if (len == (size_t)num - 1 && s[len - 1] != '\n' && !feof(pc->fp)) {
		/* libinih would parse the rest of the line as a new line */
		if (!pc->error)
			pc->error = err_set(pc->err, -EINVAL,
					    "%s:%d: line too long (at most %d characters)",
					    pc->file, pc->line, num - 2);
		return NULL;
	}
	return s;
}
