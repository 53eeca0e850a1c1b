// SPDX-License-Identifier: MIT
#include "agent/config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"

struct parse_ctx {
	struct config *cfg;
	const char *file;
	FILE *fp;
	int line;
	struct err *err;
	int error;
};

static int set_str(char **dst, const char *v)
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
		return set_str(&c->pressure_cgroup, v);
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
		return set_str(&c->state_dir, v);
	} else if (!strcmp(k, "host")) {
		if (!util_name_ok(v))
			return bad(pc, s, k, v, "expected a name of letters, digits, '-', '_' and '.'");
		return set_str(&c->host, v);
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
		return set_str(&c->metrics_file, v);
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
				    "%s:%d: unknown key \"%s\" in [agent] (known: interval, jitter, window, max_concurrent, discover, state_dir, host, compression_level, frame_size, max_read_rate, max_upload_rate, io_priority, low_impact, pressure_cgroup, cpu_priority, metrics_file, require_geo, rpo_max, rto_max, drill_interval, full_every, max_chain)",
				    pc->file, pc->line, k);
	}
	return 0;
}

/* The [retention] keys: name, field, duration (else a count or yes/no). */
static const struct ret_key {
	const char *name;
	size_t off;
	bool duration;
} ret_keys[CFG_RET_KEYS] = {
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
		const struct ret_key *rk = &ret_keys[i];
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
		return set_str(k[0] == 'p' ? &p->path : &p->snapshot_dir, v);
	} else if (!strcmp(k, "pre_snapshot")) {
		return set_str(&p->pre_snapshot, v);
	} else if (!strcmp(k, "post_snapshot")) {
		return set_str(&p->post_snapshot, v);
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
				    "%s:%d: unknown key \"%s\" in [%s] (known: path, snapshot_dir, pre_snapshot, post_snapshot, hook_timeout, rpo_max, rto_max, drill_interval, full_every, max_chain, interval, jitter, window; and the [retention] keys " RET_KEYS_KNOWN ")",
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
	return set_str(&r->s3_key, k);
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
		if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
			return bad(pc, s, k, v, "expected http://HOST[:PORT] or https://HOST[:PORT]");
		return set_str(&r->endpoint, v);
	} else if (!strcmp(k, "bucket")) {
		if (!valid_token(v, "-._"))
			return bad(pc, s, k, v, "expected a bucket name (letters, digits, '-', '.', '_')");
		return set_str(&r->bucket, v);
	} else if (!strcmp(k, "sigv4_region")) {
		if (!valid_token(v, "-_"))
			return bad(pc, s, k, v, "expected a region name such as us-east-1");
		return set_str(&r->sigv4_region, v);
	} else if (!strcmp(k, "addressing")) {
		if (strcmp(v, "path") && strcmp(v, "virtual"))
			return bad(pc, s, k, v, "expected path or virtual");
		r->virtual_hosted = !strcmp(v, "virtual");
	} else if (!strcmp(k, "access_key_id")) {
		if (!valid_token(v, "-_+/=."))
			return bad(pc, s, k, v, "expected an access key id (letters and digits)");
		return set_str(&r->access_key_id, v);
	} else if (!strcmp(k, "secret_access_key_file") || !strcmp(k, "ca_file")) {
		if (v[0] != '/')
			return bad(pc, s, k, v, "expected an absolute path");
		return set_str(k[0] == 's' ? &r->secret_access_key_file : &r->ca_file, v);
	} else if (!strcmp(k, "insecure_tls")) {
		if (!parse_bool(v, &yes))
			return bad(pc, s, k, v, "expected yes or no");
		r->insecure_tls = yes;
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
		"secret_access_key_file", "ca_file", "insecure_tls", "part_size",
		"parts_in_flight", NULL,
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
		return set_str(&r->store, v);
	} else if (!strcmp(k, "path")) {
		if (v[0] != '/')
			return bad(pc, s, k, v, "expected an absolute path");
		return set_str(&r->path, v);
	} else if (!strcmp(k, "prefix")) {
		if (v[0] == '/' || strstr(v, ".."))
			return bad(pc, s, k, v, "a prefix may not start with '/' or contain '..'");
		return set_str(&r->prefix, v);
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
				    "%s:%d: unknown key \"%s\" in [%s] (known: store, prefix, primary, replication, replication_deadline; for store = file: path; for store = s3: endpoint, bucket, sigv4_region, addressing, access_key_id, secret_access_key_file, ca_file, insecure_tls, part_size, parts_in_flight)",
				    pc->file, pc->line, k, s);
	}
	return 0;
}

static int handler(void *user, const char *section, const char *key,
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
static char *reader(char *str, int num, void *stream)
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

int config_defaults(struct config *cfg, struct err *err)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->interval = 4 * 3600;
	cfg->jitter = 5 * 60;
	cfg->max_concurrent = 1;
	cfg->compression_level = 3;
	cfg->full_every = 30 * 86400;
	cfg->max_chain = 180;
	cfg->io_priority = 3;
	cfg->low_impact = true;
	cfg->cpu_priority = 2;
	/* the managed service's policy: the last 2, purged at 90 days */
	cfg->ret.keep_last = 2;
	cfg->ret.max_age = 90 * 86400;
	cfg->state_dir = strdup("/var/lib/snapship");
	if (!cfg->state_dir)
		return err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* keep_within longer than max_age, globally or in a partition. */
static int retention_check(const struct config *cfg, struct err *err)
{
	struct cfg_retention r;

	for (size_t i = 0; i <= cfg->nparts; i++) {
		const struct cfg_partition *p = i < cfg->nparts ? &cfg->parts[i] : NULL;
		int line;

		config_retention(cfg, p, &r);
		if (!r.max_age || r.keep_within <= r.max_age)
			continue;
		line = p && p->ret.line ? p->ret.line : cfg->ret.line;
		return err_set(err, -EINVAL, "%s:%d: [%s%s] keep_within (%llds) is longer than max_age (%llds); max_age purges first, so lower keep_within",
			       cfg->file, line, p ? "partition " : "retention", p ? p->name : "",
			       (long long)r.keep_within, (long long)r.max_age);
	}
	return 0;
}

static int config_check(struct config *cfg, struct err *err)
{
	const struct cfg_region *primary = NULL;

	for (size_t i = 0; i < cfg->nparts; i++)
		if (!cfg->parts[i].path)
			return err_set(err, -EINVAL,
				       "%s: [partition %s] has no path; add path = /the/btrfs/subvolume",
				       cfg->file, cfg->parts[i].name);
	for (size_t i = 0; i < cfg->nregions; i++) {
		struct cfg_region *r = &cfg->regions[i];

		if (!r->store)
			return err_set(err, -EINVAL, "%s:%d: [region %s] has no store; add store = file or store = s3",
				       cfg->file, r->line, r->name);
		if (!strcmp(r->store, "file")) {
			if (r->s3_line)
				return err_set(err, -EINVAL, "%s:%d: [region %s] %s is for store = s3; this region has store = file",
					       cfg->file, r->s3_line, r->name, r->s3_key);
			if (!r->path)
				return err_set(err, -EINVAL, "%s:%d: [region %s] has no path; add path = /the/backup/directory",
					       cfg->file, r->line, r->name);
			r->location = strdup(r->path);
		} else {
			if (r->path)
				return err_set(err, -EINVAL, "%s:%d: [region %s] path is for store = file; an S3 region has bucket (and prefix)",
					       cfg->file, r->line, r->name);
			if (!r->bucket)
				return err_set(err, -EINVAL, "%s:%d: [region %s] (store = s3) has no bucket; add bucket = NAME of the S3 bucket",
					       cfg->file, r->line, r->name);
			if (!r->access_key_id != !r->secret_access_key_file)
				return err_set(err, -EINVAL, "%s:%d: [region %s] sets only one of access_key_id and secret_access_key_file; set both, or neither to use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
					       cfg->file, r->line, r->name);
			if (!r->sigv4_region && set_str(&r->sigv4_region, "us-east-1"))
				return err_set(err, -ENOMEM, "out of memory");
			if (asprintf(&r->location, "s3://%s", r->bucket) < 0)
				r->location = NULL;
		}
		if (!r->location)
			return err_set(err, -ENOMEM, "out of memory");
		if (!r->prefix && set_str(&r->prefix, ""))
			return err_set(err, -ENOMEM, "out of memory");
		if (r->primary && primary)
			return err_set(err, -EINVAL, "%s:%d: [region %s] and [region %s] are both primary; exactly one region is primary",
				       cfg->file, r->line, primary->name, r->name);
		if (r->primary)
			primary = r;
		if (!r->replication_deadline)
			r->replication_deadline = 15 * 60;
	}
	if (cfg->nregions == 1 && !primary)
		cfg->regions[0].primary = true;
	else if (cfg->nregions > 1 && !primary)
		return err_set(err, -EINVAL, "%s: no region is primary; set primary = yes in one [region]",
			       cfg->file);
	for (size_t i = 0; i < cfg->nregions; i++) {
		struct cfg_region *r = &cfg->regions[i];

		if (r->primary && r->repl_line)
			return err_set(err, -EINVAL, "%s:%d: [region %s] is the primary: backups are written there first, so it takes no replication keys; set them on the secondaries",
				       cfg->file, r->repl_line, r->name);
		if (!r->primary && !r->replication)
			r->replication = REPL_SERVER;
	}
	{
		const struct cfg_region *p = config_primary(cfg);

		for (size_t i = 0; p && !strcmp(p->store, "s3") && i < cfg->nregions; i++)
			if (!cfg->regions[i].primary && cfg->regions[i].part_size)
				return err_set(err, -EINVAL, "%s: [region %s] sets part_size: every region's copy is written with the primary's part size (so the copies and their ETags are the same); set it in [region %s] only",
					       cfg->file, cfg->regions[i].name, p->name);
	}
	for (size_t i = 0; i < cfg->nregions; i++)
		for (size_t j = 0; j < i; j++) {
			const struct cfg_region *a = &cfg->regions[j], *b = &cfg->regions[i];

			if (!strcmp(a->store, b->store) && !strcmp(a->location, b->location) &&
			    !strcmp(a->prefix, b->prefix) &&
			    (strcmp(a->store, "s3") || !a->endpoint == !b->endpoint) &&
			    (!a->endpoint || !b->endpoint || !strcmp(a->endpoint, b->endpoint)))
				return err_set(err, -EINVAL, "%s:%d: [region %s] is the same place as [region %s]; a second copy in the same bucket or directory is not geo-redundant",
					       cfg->file, b->line, b->name, a->name);
		}
	if (cfg->require_geo && cfg->nregions < 2)
		return err_set(err, -EINVAL, "%s: [agent] require_geo = yes needs a secondary [region] besides the primary",
			       cfg->file);
	return retention_check(cfg, err);
}

/* Parse fp (named file in messages) over the defaults and check it. */
static int load_stream(FILE *fp, const char *file, struct config *cfg, struct err *err)
{
	struct parse_ctx pc = { .cfg = cfg, .file = file, .err = err, .fp = fp };
	int ret;

	ret = config_defaults(cfg, err);
	if (ret)
		return ret;
	cfg->file = strdup(file);
	ret = ini_parse_stream(reader, &pc, handler, &pc);
	if (pc.error) {
		ret = pc.error;
		goto out_free;
	}
	if (ret) {
		ret = err_set(err, -EINVAL, "%s:%d: syntax error (expected [section] or key = value)",
			      file, ret > 0 ? ret : pc.line);
		goto out_free;
	}
	ret = config_check(cfg, err);
	if (ret)
		goto out_free;
	return 0;
out_free:
	config_free(cfg);
	return ret;
}

int config_load(const char *file, struct config *cfg, struct err *err)
{
	FILE *fp = fopen(file, "re");
	int ret;

	if (!fp) {
		ret = -errno;
		if (config_defaults(cfg, err) == 0)
			cfg->file = strdup(file);
		err_set(err, ret, "cannot read config %s: %s%s", file, strerror(-ret),
			ret == -ENOENT ? " (create it, or pass --config FILE)" : "");
		config_free(cfg);
		return ret;
	}
	ret = load_stream(fp, file, cfg, err);
	fclose(fp);
	return ret;
}

int config_load_fd(int fd, const char *file, struct config *cfg, struct err *err)
{
	int dfd = dup(fd);
	FILE *fp;
	int ret;

	if (dfd < 0 || lseek(dfd, 0, SEEK_SET) < 0 || !(fp = fdopen(dfd, "r"))) {
		ret = -errno;
		if (dfd >= 0)
			close(dfd);
		return err_set(err, ret, "cannot read the agent's copy of config %s (fd %d): %s",
			       file, fd, strerror(-ret));
	}
	ret = load_stream(fp, file, cfg, err);
	fclose(fp);
	return ret;
}

/* The whole of file into a malloc'd buffer (*len_ret bytes). */
static int read_all(const char *file, char **buf_ret, size_t *len_ret, struct err *err)
{
	FILE *fp = fopen(file, "re");
	size_t cap = 0, len = 0, n;
	char *buf = NULL;
	int ret = 0;

	if (!fp)
		return err_set(err, -errno, "cannot read config %s: %s", file, strerror(errno));
	do {
		if (len == cap) {
			char *nb = realloc(buf, cap = cap ? 2 * cap : 8192);

			if (!nb) {
				ret = err_set(err, -ENOMEM, "out of memory reading config %s", file);
				break;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
	} while (n > 0);
	if (!ret && ferror(fp))
		ret = err_set(err, -EIO, "cannot read config %s: read error", file);
	fclose(fp);
	if (ret) {
		free(buf);
		return ret;
	}
	*buf_ret = buf;
	*len_ret = len;
	return 0;
}

int config_load_copy(const char *file, int copy_fd, struct config *cfg, struct err *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp;
	int ret = read_all(file, &buf, &len, err);

	if (ret)
		return ret;
	if (!len) {   /* fmemopen wants a size: an empty file reads as one blank line */
		free(buf);
		buf = strdup("\n");
		len = 1;
		if (!buf)
			return err_set(err, -ENOMEM, "out of memory reading config %s", file);
	}
	fp = fmemopen(buf, len, "r");
	if (!fp) {
		ret = err_set(err, -errno, "cannot parse config %s: %s", file, strerror(errno));
		goto out;
	}
	ret = load_stream(fp, file, cfg, err);
	fclose(fp);
	if (ret || copy_fd < 0)
		goto out;
	if (ftruncate(copy_fd, 0) || (len && pwrite(copy_fd, buf, len, 0) != (ssize_t)len)) {
		ret = err_set(err, -errno, "cannot keep a copy of config %s: %s", file,
			      strerror(errno));
		config_free(cfg);
	}
out:
	free(buf);
	return ret;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nparts; i++) {
		free(cfg->parts[i].name);
		free(cfg->parts[i].path);
		free(cfg->parts[i].snapshot_dir);
		free(cfg->parts[i].pre_snapshot);
		free(cfg->parts[i].post_snapshot);
	}
	free(cfg->parts);
	for (size_t i = 0; i < cfg->nregions; i++) {
		free(cfg->regions[i].name);
		free(cfg->regions[i].store);
		free(cfg->regions[i].path);
		free(cfg->regions[i].prefix);
		free(cfg->regions[i].endpoint);
		free(cfg->regions[i].bucket);
		free(cfg->regions[i].sigv4_region);
		free(cfg->regions[i].access_key_id);
		free(cfg->regions[i].secret_access_key_file);
		free(cfg->regions[i].ca_file);
		free(cfg->regions[i].s3_key);
		free(cfg->regions[i].location);
	}
	free(cfg->regions);
	free(cfg->file);
	free(cfg->state_dir);
	free(cfg->host);
	free(cfg->metrics_file);
	free(cfg->pressure_cgroup);
	for (size_t i = 0; i < cfg->ndiscover; i++)
		free(cfg->discover[i]);
	free(cfg->discover);
	memset(cfg, 0, sizeof(*cfg));
}

const struct cfg_partition *config_partition(const struct config *cfg,
					     const char *name)
{
	for (size_t i = 0; i < cfg->nparts; i++)
		if (!strcmp(cfg->parts[i].name, name))
			return &cfg->parts[i];
	return NULL;
}

const struct cfg_region *config_primary(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nregions; i++)
		if (cfg->regions[i].primary)
			return &cfg->regions[i];
	return NULL;
}

int64_t config_interval(const struct config *cfg, const struct cfg_partition *p)
{
	return p && p->interval ? p->interval : cfg->interval;
}

int64_t config_jitter(const struct config *cfg, const struct cfg_partition *p)
{
	return p && p->has_jitter ? p->jitter : cfg->jitter;
}

void config_window(const struct config *cfg, const struct cfg_partition *p,
		   int *start_ret, int *end_ret)
{
	*start_ret = p && p->has_window ? p->win_start : cfg->win_start;
	*end_ret = p && p->has_window ? p->win_end : cfg->win_end;
}

int64_t config_rpo_max(const struct config *cfg, const struct cfg_partition *p)
{
	if (p && p->rpo_max)
		return p->rpo_max;
	return cfg->rpo_max ? cfg->rpo_max : 2 * config_interval(cfg, p);
}

int64_t config_rto_max(const struct config *cfg, const struct cfg_partition *p)
{
	if (p && p->has_rto_max)
		return p->rto_max;
	return cfg->rto_max;
}

int64_t config_full_every(const struct config *cfg, const struct cfg_partition *p)
{
	return p && p->has_full_every ? p->full_every : cfg->full_every;
}

uint64_t config_max_chain(const struct config *cfg, const struct cfg_partition *p)
{
	return p && p->has_max_chain ? p->max_chain : cfg->max_chain;
}

int64_t config_drill_interval(const struct config *cfg, const struct cfg_partition *p)
{
	if (p && p->has_drill_interval)
		return p->drill_interval;
	return cfg->drill_interval;
}

static void review(void (*say)(void *ctx, bool error, const char *msg), void *ctx,
		   bool error, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void review(void (*say)(void *ctx, bool error, const char *msg), void *ctx,
		   bool error, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	say(ctx, error, msg);
}

unsigned config_review(const struct config *cfg,
		       void (*say)(void *ctx, bool error, const char *msg), void *ctx)
{
	unsigned errors = 0;

	if (!cfg->nregions) {
		review(say, ctx, true, "no [region] section: backups have nowhere to go; add [region NAME] with store = file or store = s3");
		errors++;
	}
	if (!cfg->nparts && !cfg->ndiscover)
		review(say, ctx, false, "no [partition] section and no [agent] discover: backup has nothing to back up (list and restore still work)");
	if (cfg->jitter >= cfg->interval)
		review(say, ctx, false, "[agent] jitter (%llds) is not shorter than interval (%llds): runs may come twice as far apart",
		       (long long)cfg->jitter, (long long)cfg->interval);
	for (size_t i = 0; i < cfg->nparts; i++) {
		const struct cfg_partition *p = &cfg->parts[i];
		int64_t rpo = config_rpo_max(cfg, p);

		if (rpo <= config_interval(cfg, p))
			review(say, ctx, false, "[partition %s]: rpo_max (%llds) is not longer than its interval (%llds): status calls it stale before each run",
			       p->name, (long long)rpo, (long long)config_interval(cfg, p));
	}
	return errors;
}

void config_retention(const struct config *cfg, const struct cfg_partition *p,
		      struct cfg_retention *ret_ret)
{
	*ret_ret = cfg->ret;
	if (!p)
		return;
	for (int i = 0; i < CFG_RET_KEYS; i++) {
		if (!(p->ret.set & (1u << i)))
			continue;
		if (i == CFG_RET_MAX_AGE_NEWEST) {
			ret_ret->max_age_newest = p->ret.max_age_newest;
		} else {
			size_t off = ret_keys[i].off;

			*(int64_t *)(void *)((char *)ret_ret + off) =
				*(const int64_t *)(const void *)((const char *)&p->ret + off);
		}
	}
	ret_ret->set |= p->ret.set;
	if (p->ret.line)
		ret_ret->line = p->ret.line;
}

const char *config_region_location(const struct cfg_region *r)
{
	return r->location ? r->location : r->path;
}
