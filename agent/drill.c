// SPDX-License-Identifier: MIT
/*
 * A DR drill of one partition (agent/drill.h): the newest committed backup
 * in one region, restored into the scratch directory with restore_backup()
 * (every file checked against the index, every frame's checksum, the data's
 * SHA-256 on a whole restore), timed, judged against rpo_max and rto_max,
 * the copy removed, the record written.  Only that region is read: no
 * fallback copies, no failover listing.  drill_scratch.c keeps the files.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/catalog.h"
#include "agent/config.h"
#include "agent/drill.h"
#include "agent/drill_priv.h"
#include "agent/failover.h"
#include "agent/geo.h"
#include "agent/index.h"
#include "agent/keyring.h"
#include "agent/lock.h"
#include "agent/restore.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "uploader/store.h"

static const char *const failure_names[] = {
	[DRILL_OK] = "ok", [DRILL_MISSING] = "missing",
	[DRILL_UNREACHABLE] = "unreachable", [DRILL_CORRUPT] = "corrupt",
	[DRILL_CHECKSUM] = "checksum", [DRILL_RPO] = "rpo", [DRILL_RTO] = "rto",
	[DRILL_ERROR] = "error", [DRILL_CANCELLED] = "cancelled",
};

const char *drill_failure_name(enum drill_failure f)
{
	if ((size_t)f >= sizeof(failure_names) / sizeof(failure_names[0]))
		return "error";
	return failure_names[f];
}

size_t drill_default_region(const struct regions *rs)
{
	for (size_t i = 1; i < rs->n; i++)
		if (!rs->v[i].primary)
			return i;
	return 0;
}

/* One drill's state. */
struct drill_run {
	struct region *rg;
	const struct config *cfg;
	const struct cfg_partition *p;
	const struct drill_opts *o;
	struct drill_result *res;
	struct catalog_list list;
	const struct manifest *picked;  /* in list */
	struct manifest m;              /* picked, with this region's keys */
	char *keys[2];                  /* data and index key in the region */
	struct index *idx;              /* --sample: the files to pick from */
	const char **paths;             /* --sample: borrowed from idx */
	size_t npaths;
	struct keyring *kr;             /* the config's key files */
};

/* The verdict: failure f on object (NULL none), the message
 * "partition P, region R: ..." (escaped). */
__attribute__((format(printf, 4, 5)))
static void fail(struct drill_run *d, enum drill_failure f, const char *object,
		 const char *fmt, ...)
{
	struct drill_result *res = d->res;
	char msg[sizeof(res->message)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res->failure = f;
	util_escape_ctl(object ? object : "", res->object, sizeof(res->object));
	snprintf(res->message, sizeof(res->message), "partition %s, region %s: %s",
		 res->partition, res->region, UTIL_ESC_CTL(msg));
}

/* The newest committed backup of the partition in the region (d->picked). */
static int pick_backup(struct drill_run *d, struct err *err)
{
	const char *host = d->o->host, *part = d->p->name;
	int ret;

	if (!d->rg->store || d->rg->down) {
		fail(d, DRILL_UNREACHABLE, NULL, "the region cannot be used: %s; check its store and drill again",
		     d->rg->down_why[0] ? d->rg->down_why : "it did not answer");
		return 0;
	}
	ret = catalog_list(d->rg->store, d->rg->prefix, host, part, &d->list, err);
	if (ret && failover_unreachable(err)) {
		d->rg->down = true;
		snprintf(d->rg->down_why, sizeof(d->rg->down_why), "%.500s", err->msg);
		fail(d, DRILL_UNREACHABLE, NULL, "the region did not answer (%s); check that region's store (endpoint, network, credentials) and drill again",
		     err_strip_region(d->rg->name, err->msg));
		err_clear(err);
		return 0;
	}
	if (ret)
		return ret;
	for (size_t i = 0; i < d->list.n; i++)
		if (!strcmp(d->list.m[i].partition, part) &&
		    (!d->picked || catalog_cmp_age(&d->list.m[i], d->picked) > 0))
			d->picked = &d->list.m[i];
	if (!d->picked && d->list.nbroken_why) {
		char key[MANIFEST_KEY_MAX + 1];

		/* "KEY: why": the object is the key */
		snprintf(key, sizeof(key), "%s", d->list.broken_why[0]);
		key[strcspn(key, ":")] = '\0';
		fail(d, DRILL_CORRUPT, key,
		     "no usable backup of %s/%s: %zu manifest(s) cannot be read (%s); run snapship verify %s --region %s, then snapship repair %s",
		     host, part, d->list.broken, d->list.broken_why[0], part, d->rg->name, part);
	} else if (!d->picked) {
		fail(d, DRILL_MISSING, NULL,
		     "no committed backup of %s/%s in %s; back it up (snapship backup %s) and check that the region receives copies (snapship status)",
		     host, part, store_describe(d->rg->store), part);
	}
	return 0;
}

/* d->m: the picked backup with its keys in the drilled region (the
 * manifest's name the primary's). */
static int region_keys(struct drill_run *d, struct err *err)
{
	d->m = *d->picked;
	d->keys[0] = geo_region_key(d->rg, d->picked, "data.tar.zst");
	d->keys[1] = geo_region_key(d->rg, d->picked, "index.jsonl.zst");
	if (!d->keys[0] || !d->keys[1])
		return err_set(err, -ENOMEM, "out of memory");
	d->m.data_key = d->keys[0];
	d->m.index_key = d->keys[1];
	return 0;
}

/* --sample N: N regular files spread evenly through the index (all of
 * them, and a whole restore, when it holds no more than N). */
static int pick_sample(struct drill_run *d, struct err *err)
{
	struct restore_opts ro = { .region = d->rg->name, .keys = d->kr };
	size_t nfiles = 0, k = 0;
	uint64_t n = d->o->sample;
	int ret;

	ret = restore_index(d->rg->store, &d->m, &ro, &d->idx, err);
	if (ret)
		return ret;
	d->res->bytes_read += d->m.index_size;
	for (size_t i = 0; i < d->idx->n; i++)
		nfiles += d->idx->e[i].type == PACK_FILE;
	if (nfiles <= n) {
		log_info("partition %s: --sample %llu: the backup holds %zu files; restoring it whole",
			 d->p->name, (unsigned long long)n, nfiles);
		return 0;
	}
	d->paths = calloc((size_t)n, sizeof(*d->paths));
	if (!d->paths)
		return err_set(err, -ENOMEM, "out of memory");
	/* file number j*nfiles/n + half a step, j = 0..n-1: distinct */
	for (size_t i = 0, f = 0; i < d->idx->n && k < n; i++) {
		if (d->idx->e[i].type != PACK_FILE)
			continue;
		if (f++ == (size_t)((k * nfiles + nfiles / 2) / n))
			d->paths[k++] = d->idx->e[i].path;
	}
	d->npaths = k;
	d->res->sampled = k;
	return 0;
}

/* The object a failed restore's message names (the index or the data). */
static const char *failed_object(const struct drill_run *d, const char *msg)
{
	if (strstr(msg, d->m.index_key))
		return d->m.index_key;
	return d->m.data_key;
}

/* A failed restore's message without what it says of its target (the
 * drill removes that copy itself), into buf. */
static const char *restore_why(const struct drill_run *d, const struct err *e,
			       char *buf, size_t len)
{
	static const char *const tails[] = {
		"; a partial restore is left in the new ", "; nothing was restored",
		"; nothing was written into ",
	};

	snprintf(buf, len, "%s", err_strip_region(d->rg->name, e->msg));
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		char *t = strstr(buf, tails[i]);

		if (t)
			*t = '\0';
	}
	return buf;
}

/* A failed restore: why, in drill_failure's terms. */
static void classify(struct drill_run *d, int ret, bool checksum, const struct err *e)
{
	char why[ERR_MSG_MAX];
	const char *msg = restore_why(d, e, why, sizeof(why)), *part = d->p->name;
	const char *id = d->m.backup_id, *r = d->rg->name;

	if (failover_unreachable(e))
		fail(d, DRILL_UNREACHABLE, failed_object(d, msg),
		     "the region stopped answering while backup %s was read (%s); check that region's store and drill again",
		     id, msg);
	else if (checksum)
		fail(d, DRILL_CHECKSUM, d->m.data_key,
		     "backup %s holds a file that does not match the checksum in its index (%s); run snapship verify %s --region %s --deep, then snapship repair %s --deep to copy a good backup from another region",
		     id, msg, part, r, part);
	else if (ret == -EBADMSG || ret == -ENOENT)
		fail(d, DRILL_CORRUPT, failed_object(d, msg),
		     "object %s of backup %s is unreadable or corrupt (%s); run snapship verify %s --region %s --deep, then snapship repair %s --deep to copy a good one from another region",
		     failed_object(d, msg), id, msg, part, r, part);
	else
		fail(d, DRILL_ERROR, NULL, "the restore of backup %s into %s failed (%s); fix that and drill again (--scratch DIR chooses another place)",
		     id, d->res->scratch, msg);
}

/* Restore the backup into the scratch copy, timed and counted. */
static int drill_restore(struct drill_run *d, struct err *err)
{
	const struct drill_opts *o = d->o;
	struct restore_opts ro = { .target = d->res->scratch, .progress = o->progress,
				   .region = d->rg->name, .paths = d->paths,
				   .npaths = d->npaths, .cancelled = o->cancelled,
				   .cancel_ctx = o->cancel_ctx, .keys = d->kr };
	struct restore_result rr = { 0 };
	double t0 = util_now_mono();
	int ret = restore_backup(d->rg->store, &d->m, &ro, &rr, err);
	struct drill_result *res = d->res;

	res->rto_s = util_now_mono() - t0;
	res->files = rr.files;
	res->bytes = rr.bytes;
	res->bytes_read += rr.bytes_read;
	res->frames_read = rr.frames_read;
	res->frames_total = rr.frames_total;
	res->mb_per_s = res->rto_s > 0 ? (double)rr.bytes / res->rto_s / 1e6 : 0;
	if (ret == -ECANCELED) {
		fail(d, DRILL_CANCELLED, NULL, "stopped by a signal while restoring backup %s",
		     d->m.backup_id);
		return ret;
	}
	if (ret) {
		classify(d, ret, rr.checksum_mismatch, err);
		err_clear(err);
	}
	return 0;
}

/* RPO and RTO against their limits (a drill whose restore passed). */
static void check_limits(struct drill_run *d)
{
	struct drill_result *res = d->res;

	if (res->rpo_max && res->rpo_s > (double)res->rpo_max)
		fail(d, DRILL_RPO, NULL,
		     "backup %s (the newest there) was taken %.0f s ago, more than rpo_max %lld s: restoring now would lose more data than allowed; check that backups run and reach this region (snapship status), or raise rpo_max",
		     res->backup_id, res->rpo_s, (long long)res->rpo_max);
	else if (res->rto_max && res->rto_s > (double)res->rto_max)
		fail(d, DRILL_RTO, d->m.data_key,
		     "restoring backup %s took %.1f s, more than rto_max %lld s (%llu bytes at %.1f MB/s, %llu bytes downloaded): the region is too slow to restore in time; check its throughput, or raise rto_max",
		     res->backup_id, res->rto_s, (long long)res->rto_max,
		     (unsigned long long)res->bytes, res->mb_per_s,
		     (unsigned long long)res->bytes_read);
}

/* The scratch copy removed (unless kept), the record written. */
static void drill_finish(struct drill_run *d)
{
	struct drill_result *res = d->res;
	struct drillrec old, rec;
	struct err e = { 0 };

	if (res->scratch[0] && d->o->keep) {
		struct stat st;

		res->kept = !lstat(res->scratch, &st);
	} else if (res->scratch[0] && drill_remove_copy(res->scratch, &e)) {
		log_warn("partition %s: the drill's copy %s could not be removed: %s; snapship drill removes it next time",
			 res->partition, res->scratch, e.msg);
		res->kept = true;
	}
	if (res->failure == DRILL_CANCELLED)
		return;
	err_clear(&e);
	if (drillrec_load(d->o->state_dir, d->o->host, res->partition, &old, &e))
		err_clear(&e);
	drillrec_from_result(res, &rec);
	if (!rec.passed)
		rec.last_pass = old.last_pass;
	if (drillrec_save(d->o->state_dir, d->o->host, res->partition, &rec, &e))
		log_warn("%s; status and the metrics do not show this drill", e.msg);
}

/* Fill in what is known before anything is read. */
static void drill_begin(struct drill_run *d)
{
	struct drill_result *res = d->res;

	memset(res, 0, sizeof(*res));
	snprintf(res->partition, sizeof(res->partition), "%s", d->p->name);
	snprintf(res->region, sizeof(res->region), "%s", d->rg->name);
	res->region_is_primary = d->rg->primary;
	res->started = d->o->now;
	res->rpo_s = res->rto_s = -1;
	res->rpo_max = config_rpo_max(d->cfg, d->p->path ? d->p : NULL);
	res->rto_max = config_rto_max(d->cfg, d->p->path ? d->p : NULL);
}

/* Pick, restore, judge: a verdict in d->res (0), or -errno. */
static int drill_run(struct drill_run *d, const char *scratch, struct err *err)
{
	struct drill_result *res = d->res;
	int ret, readfd;

	ret = pick_backup(d, err);
	if (ret || res->failure)
		return ret;
	ret = region_keys(d, err);
	if (ret)
		return ret;
	snprintf(res->backup_id, sizeof(res->backup_id), "%s", d->m.backup_id);
	snprintf(res->why_backup, sizeof(res->why_backup),
		 "the newest committed backup in region %s (of %zu there)",
		 d->rg->name, d->list.n);
	res->snap_time = d->m.snap_time_ns / 1000000000;
	res->rpo_s = ((double)res->started * 1e9 - (double)d->m.snap_time_ns) / 1e9;
	if (res->rpo_s < 0)
		res->rpo_s = 0;
	if (snprintf(res->scratch, sizeof(res->scratch), "%s/drill-%s-%s", scratch,
		     res->partition, res->backup_id) >= (int)sizeof(res->scratch))
		return err_set(err, -ENAMETOOLONG, "drill scratch path %s is too long", scratch);
	if (d->o->sample) {
		ret = pick_sample(d, err);
		if (ret) {
			classify(d, ret, false, err);
			err_clear(err);
			res->scratch[0] = '\0';
			return 0;
		}
	}
	readfd = readlock_acquire(d->o->state_dir, d->o->host, res->partition,
				  res->backup_id, err);
	err_clear(err);
	ret = drill_restore(d, err);
	readlock_release(readfd, NULL, NULL, NULL, NULL, false);
	if (!ret && !res->failure)
		check_limits(d);
	if (!ret && !res->failure)
		snprintf(res->message, sizeof(res->message),
			 "partition %s, region %s: backup %s restored and checked (%llu files, %llu bytes)",
			 res->partition, res->region, res->backup_id,
			 (unsigned long long)res->files, (unsigned long long)res->bytes);
	return ret;
}

int drill_partition(struct regions *rs, size_t ri, const struct config *cfg,
		    const struct cfg_partition *p, const struct drill_opts *o,
		    struct drill_result *res, struct err *err)
{
	struct drill_run d = { .rg = &rs->v[ri], .cfg = cfg, .p = p, .o = o, .res = res };
	char sbuf[PATH_MAX];
	const char *scratch = o->scratch ? o->scratch : drill_scratch_dir(cfg, p, sbuf, sizeof(sbuf));
	unsigned removed = 0;
	int ret, lockfd;

	if (ri >= rs->n || !util_name_ok(p->name) || !util_name_ok(o->host))
		return err_set(err, -EINVAL, "drill: no such region or a bad partition/host name");
	drill_begin(&d);
	lockfd = drill_lock(o->state_dir, o->cancelled, o->cancel_ctx, err);
	if (lockfd < 0)
		return lockfd;
	ret = util_mkdir_p(scratch, 0700);
	if (ret)
		err_set(err, ret, "cannot create the drill scratch directory %s: %s; pass --scratch DIR",
			scratch, strerror(-ret));
	if (!ret)
		ret = drill_remove_leftovers(scratch, &removed, err);
	if (!ret)
		ret = keyring_load(cfg, &d.kr, err);
	if (!ret)
		ret = drill_run(&d, scratch, err);
	if (ret == -ECANCELED && res->failure == DRILL_OK)
		res->failure = DRILL_CANCELLED;   /* stopped before the restore: no verdict */
	if (!ret || ret == -ECANCELED)
		drill_finish(&d);
	close(lockfd);
	free(d.paths);
	index_free(d.idx);
	free(d.keys[0]);
	free(d.keys[1]);
	keyring_free(d.kr);
	catalog_list_free(&d.list);
	return ret;
}
