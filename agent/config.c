// SPDX-License-Identifier: MIT
/*
 * snapship.conf (agent/config.h): the defaults, loading a file (by name, fd
 * or into a copy), the checks across sections once it is read, freeing, and
 * the getters that let a partition override the global keys.  The INI text
 * itself is read in config_ini.c.  The struct config and its strings are the
 * caller's; config_free frees them.
 */
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

#include "agent/config_priv.h"
#include "agent/retention.h"
#include "common/err.h"
#include "common/util.h"
#include "uploader/s3.h"

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

/* An http:// endpoint to a host other than this one without allow_http
 * (the store refuses it too when it opens: uploader/s3_open.c). */
static int plain_http_refused(const struct config *cfg, const struct cfg_region *r,
			      struct err *err)
{
	const char *auth;
	char host[300];

	if (!r->endpoint || strncmp(r->endpoint, "http://", 7) || r->allow_http)
		return 0;
	auth = r->endpoint + 7;
	snprintf(host, sizeof(host), "%.*s", (int)strcspn(auth, "/?#"), auth);
	if (s3_host_is_loopback(host))
		return 0;
	return err_set(err, -EINVAL, "%s:%d: [region %s] endpoint %s is plain HTTP to another host: anyone on the network path could read and alter backups; use https:// (with ca_file = the CA's PEM for a private CA), or set allow_http = yes in [region %s] if that network is trusted",
		       cfg->file, r->endpoint_line ? r->endpoint_line : r->line, r->name,
		       r->endpoint, r->name);
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
			if (!r->prune_access_key_id != !r->prune_secret_access_key_file)
				return err_set(err, -EINVAL, "%s:%d: [region %s] sets only one of prune_access_key_id and prune_secret_access_key_file; set both (the credentials for deletions), or neither to delete with the region's own",
					       cfg->file, r->line, r->name);
			int ret = plain_http_refused(cfg, r, err);

			if (ret)
				return ret;
			if (!r->sigv4_region && config_set_str(&r->sigv4_region, "us-east-1"))
				return err_set(err, -ENOMEM, "out of memory");
			if (asprintf(&r->location, "s3://%s", r->bucket) < 0)
				r->location = NULL;
		}
		if (!r->location)
			return err_set(err, -ENOMEM, "out of memory");
		if (!r->prefix && config_set_str(&r->prefix, ""))
			return err_set(err, -ENOMEM, "out of memory");
		if (r->primary && primary)
			return err_set(err, -EINVAL, "%s:%d: [region %s] and [region %s] are both primary; exactly one region is primary",
				       cfg->file, r->line, primary->name, r->name);
		if (r->primary)
			primary = r;
		if (!r->replication_deadline)
			r->replication_deadline = 15 * 60;
		if (r->lock_margin < 0)
			r->lock_margin = 24 * 3600;
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
	ret = ini_parse_stream(config_ini_reader, &pc, config_ini_handler, &pc);
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
		free(cfg->parts[i].lvm_snapshot_size);
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
		free(cfg->regions[i].prune_access_key_id);
		free(cfg->regions[i].prune_secret_access_key_file);
		free(cfg->regions[i].ca_file);
		free(cfg->regions[i].s3_key);
		free(cfg->regions[i].location);
	}
	free(cfg->regions);
	free(cfg->file);
	free(cfg->state_dir);
	free(cfg->host);
	free(cfg->metrics_file);
	free(cfg->key_file);
	free(cfg->old_key_files);
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

/* Object Lock spans past ~10 years (keep_monthly = 1000 is 85 years: each
 * backup then stays, undeletable, as long) are probably not meant. */
static void review_lock_span(const struct config *cfg,
			     void (*say)(void *ctx, bool error, const char *msg), void *ctx)
{
	const int64_t ten_years = INT64_C(3653) * 86400;

	for (size_t r = 0; r < cfg->nregions; r++) {
		const struct cfg_region *reg = &cfg->regions[r];

		for (size_t i = 0; reg->object_lock && i <= cfg->nparts; i++) {
			const struct cfg_partition *p = i < cfg->nparts ? &cfg->parts[i] : NULL;
			struct ret_policy pol;
			int64_t span;

			if (!p && cfg->nparts)
				break;          /* the global policy: only without partitions */
			ret_policy_of(cfg, p, &pol);
			span = ret_lock_span(&pol, config_interval(cfg, p));
			span = span > INT64_MAX - reg->lock_margin ? INT64_MAX : span + reg->lock_margin;
			if (span > ten_years)
				review(say, ctx, false, "[region %s] object_lock: %s%s%slocks each backup for %lld days (its retention's longest span + lock_margin), more than 10 years: nobody can delete them before; check the keep_* values",
				       reg->name, p ? "[partition " : "", p ? p->name : "",
				       p ? "] " : "", (long long)(span / 86400));
		}
	}
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
	review_lock_span(cfg, say, ctx);
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
			size_t off = config_ret_keys[i].off;

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
