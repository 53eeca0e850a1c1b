// SPDX-License-Identifier: MIT
#include "agent/backup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "agent/geo.h"
#include "agent/hooks.h"
#include "agent/index.h"
#include "agent/keyring.h"
#include "agent/lowimpact.h"
#include "agent/planner.h"
#include "common/err.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "cow/cow.h"
#include "stream/frame.h"
#include "stream/pack.h"
#include "stream/seal.h"
#include "uploader/sink.h"
#include "uploader/store.h"

#ifndef SNAPSHIP_VERSION
#define SNAPSHIP_VERSION "0.1.0"
#endif

/* The data stream: framer output goes to the data sink; a cancellation
 * (backup_opts.cancelled) ends it between two writes. */
struct tar_ctx {
	struct framer *framer;
	const struct backup_opts *bo;
};

static bool run_cancelled(const struct backup_opts *bo)
{
	return bo->cancelled && bo->cancelled(bo->cancel_ctx);
}

static bool pack_cancelled(void *ctx)
{
	return run_cancelled(ctx);
}

static int tar_out(void *ctx, const void *buf, size_t len, struct err *err)
{
	struct tar_ctx *t = ctx;

	if (run_cancelled(t->bo))
		return err_set(err, -ECANCELED, "cancelled while streaming");
	return framer_write(t->framer, buf, len, err);
}

struct progress_ctx {
	const char *partition;
	double t0;
};

static void show_progress(void *ctx, uint64_t bytes, uint64_t entries)
{
	struct progress_ctx *p = ctx;
	double dt = util_now_mono() - p->t0;
	char hb[32];

	fprintf(stderr, "\r\033[Ksnapship: %s: %s read, %llu entries, %.0f MiB/s",
		p->partition, util_human_size(bytes, hb, sizeof(hb)),
		(unsigned long long)entries,
		dt > 0 ? (double)bytes / dt / 1048576.0 : 0.0);
}

static int stream_snapshot(const struct config *cfg, const char *root,
			   struct sink *data, struct sink *index,
			   struct manifest *m, const struct backup_opts *bo,
			   const char *partition, struct planner *pl,
			   const struct backup_keys *keys,
			   bool on_btrfs, double *slowed_s, struct err *err)
{
	struct framer_opts fo = {
		.level = cfg->compression_level,
		.frame_size = (size_t)cfg->frame_size,
		.cpu_priority = cfg->cpu_priority,
		.seal = keys->data,
	};
	struct pack_opts po = {
		.max_read_rate = cfg->max_read_rate,
		.ioprio_class = cfg->io_priority,
		.cancelled = bo->cancelled ? pack_cancelled : NULL,
		.cancel_ctx = (void *)bo,
		.plan = pl ? planner_plan : NULL,
		.plan_ctx = pl,
		.content_only = pl != NULL,
		.blocks = true,
		.extents = on_btrfs,
	};
	struct lowimpact li;
	struct progress_ctx pctx = { .partition = partition, .t0 = util_now_mono() };
	struct index_writer *iw = NULL;
	struct seal_writer *sw = NULL;   /* an encrypted index: sealed segments */
	struct tar_ctx tc = { .bo = bo };
	bool progress = bo->progress;
	struct framer_stats fs;
	struct pack_stats ps;
	int ret;

	if (progress) {
		po.progress = show_progress;
		po.progress_ctx = &pctx;
	}
	if (cfg->low_impact) {
		lowimpact_init(&li, cfg->pressure_cgroup);
		po.throttle = lowimpact_throttle;
		po.throttle_ctx = &li;
	}
	ret = framer_new(&fo, sink_write, data, &tc.framer, err);
	if (ret)
		return ret;
	if (keys->index)
		ret = seal_writer_new(keys->index, sink_write, index, &sw, err);
	if (!ret)
		ret = sw ? index_writer_new_fn(seal_writer_write, sw, cfg->compression_level, &iw, err) :
			   index_writer_new(index, cfg->compression_level, &iw, err);
	if (ret)
		goto out_free;
	ret = pack_tree(root, &po, tar_out, &tc, index_writer_add, iw, &ps, err);
	if (progress)
		fprintf(stderr, "\r\033[K");
	if (ret)
		goto out_free;
	if (cfg->low_impact) {
		double wall = util_now_mono() - pctx.t0;

		lowimpact_report(&li, partition, ps.throttled_s, wall);
		if (ps.throttled_s >= 1 && cfg->interval > 0 && wall > (double)cfg->interval)
			log_warn("%s: held back by the low-impact mode, reading took %.0f s, longer than the interval (%lld s): the next backup starts late; raise the interval, give a pressure_cgroup (the database's), or set low_impact = off",
				 partition, wall, (long long)cfg->interval);
	}
	*slowed_s = ps.throttled_s;
	ret = framer_finish(tc.framer, &fs, err);
	if (ret)
		goto out_free;
	ret = index_writer_finish(iw, err);
	if (!ret && sw)
		ret = seal_writer_finish(sw, err);
	if (ret)
		goto out_free;
	if (pl) {
		ret = planner_finish(pl, m, ps.logical_bytes - ps.referenced_bytes, err);
		if (ret)
			goto out_free;
	}
	m->entries = ps.entries;
	m->files = ps.files;
	m->dirs = ps.dirs;
	m->others = ps.others;
	m->logical_bytes = ps.logical_bytes;
	m->tar_bytes = ps.tar_bytes;
	m->frames = fs.frames;
	m->frame_size = (uint32_t)(fo.frame_size ? fo.frame_size : FRAME_SIZE_DEFAULT);
	m->level = fo.level;
out_free:
	index_writer_free(iw);
	seal_writer_free(sw);
	framer_free(tc.framer);
	return ret;
}

/* The manifest of m to region g (locked as its objects are). */
static int put_manifest(const struct region *g, const struct manifest *m,
			const char *key, const char *json, struct err *err)
{
	const struct store_put_opts po = { .retain_until = geo_lock_until(g, m) };

	return store_put_buf_opts(g->store, key, json, strlen(json), &po, err);
}

/*
 * Object Lock: the data objects m references (an incremental's) must stay
 * locked as long as m is; each region's lock is extended to m's
 * (PutObjectRetention, never shortened).  A failure is a warning: the
 * backup is good, its references are only protected for less long.
 */
static void extend_ref_locks(const struct region *g, const struct manifest *m)
{
	int64_t until = geo_lock_until(g, m);

	for (size_t k = 0; until && g->store && k < m->nrefs; k++) {
		struct manifest rm;
		struct err e = { 0 };
		char *key;

		geo_ref_manifest(m, k, &rm);
		if (!strcmp(rm.backup_id, m->backup_id))
			continue;
		key = geo_region_key(g, &rm, "data.tar.zst");
		if (!key || store_retain(g->store, key, until, &e))
			log_warn("region %s: could not extend the Object Lock of %s's data, which %s references (%s); it is locked for less long than %s",
				 g->name, rm.backup_id, m->backup_id,
				 key ? err_strip_region(g->name, e.msg) : "out of memory",
				 m->backup_id);
		free(key);
	}
}

/* Remove a failed backup's objects from region g (best effort): how many
 * deletes were asked that succeeded (an absent object counts). */
static unsigned remove_objects(struct region *g, const struct manifest *m, int mask)
{
	char *keys[2] = { 0 };
	const char *k[2];
	size_t n = 0;
	struct err de = { 0 };
	unsigned removed = 0;

	if (!g->store)
		return 0;
	/* the manifest alone first: the backup stops existing before its
	 * parts go, and if it cannot be deleted the parts must stay */
	if (mask & OBJ_MANIFEST) {
		char *mk = geo_region_key(g, m, "manifest.json");
		const char *one[1] = { mk };

		if (!mk || store_delete(g->store, one, 1, &de)) {
			log_error("region %s: the failed backup's manifest %s could not be deleted (%s): the backup %s stays listed there; delete it by hand or let snapship repair copy the rest",
				  g->name, mk ? mk : "?", err_strip_region(g->name, de.msg), m->backup_id);
			free(mk);
			return 0;
		}
		free(mk);
		removed++;
	}
	if (mask & OBJ_DATA)
		keys[n++] = geo_region_key(g, m, "data.tar.zst");
	if (mask & OBJ_INDEX)
		keys[n++] = geo_region_key(g, m, "index.jsonl.zst");
	for (size_t i = 0; i < n; i++)
		k[i] = keys[i] ? keys[i] : "";
	if (n && store_delete(g->store, k, n, &de))
		log_warn("region %s: could not remove the unfinished backup's objects (%s); snapship clean removes them later",
			 g->name, err_strip_region(g->name, de.msg));
	else
		removed += (unsigned)n;
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	return removed;
}

/* Can region g be reached with our credentials?  (A HEAD of a key that
 * does not exist: 404 means yes.) */
static int probe_region(struct region *g, const char *host, struct err *err)
{
	struct store_obj_info info;
	char *key;
	int ret;

	if (asprintf(&key, "%s%s/.snapship-probe", g->prefix, host) < 0)
		return err_set(err, -ENOMEM, "out of memory");
	ret = store_head(g->store, key, &info, err);
	free(key);
	if (ret == -ENOENT) {
		err_clear(err);
		ret = 0;
	}
	return ret;
}

/*
 * One run of backup_partition, phase by phase:
 *   plan     the manifest's fields, the source check, which secondaries
 *            can take the backup, the upload targets and their keys
 *   freeze   pre_snapshot hook, the snapshot, post_snapshot hook
 *   upload   data and index streamed to every target, then committed
 *   release  the snapshot goes (before the commit point)
 *   commit   the manifest: on the primary (the commit point), then on the
 *            agent regions
 *   geo      wait for the secondaries to show a verified copy
 * A phase that fails closes what it opened itself; objects it made
 * visible are noted in visible[]; backup_partition then unwinds what the
 * run holds (the snapshot, those objects).  Everything a phase finds or
 * makes is in here.
 */
struct backup_run {
	const struct config *cfg;
	const struct cfg_partition *part;
	struct regions *rs;
	const char *host;
	const struct backup_opts *bo;
	struct backup_result *res;
	struct manifest *m;          /* &res->m */
	struct geo_state *gs;        /* &res->gs */
	double t0;                   /* monotonic start */

	/* plan */
	char *mkey;                  /* the manifest's key on the primary */
	struct planner *pl;          /* an incremental's; NULL: a full */
	bool skip[REGIONS_MAX];      /* secondary left out of this run */
	size_t nt;                   /* upload targets: primary + agent regions */
	size_t tgt[REGIONS_MAX];     /* region index of each target */
	char *tkeys[2][REGIONS_MAX]; /* each target's data and index key */
	/* freeze */
	const char *hooks[3];        /* the hooks that ran, for the manifest */
	struct cow_snapshot *snap;   /* held from freeze to release */
	struct cow_opts copts;       /* the partition's snapshot choices */
	/* upload, commit */
	int visible[REGIONS_MAX];    /* OBJ_* that may exist, per region */
	char *json;                  /* the manifest, byte for byte */
	bool state_saved;            /* the replication state file exists */
	/* what a failed run undid (for the line a cancelled run prints) */
	const char *phase;           /* the phase running or about to */
	bool in_phase;               /* it started */
	unsigned aborted;            /* unfinished uploads aborted */
	unsigned removed;            /* visible objects removed */
	bool released;               /* the snapshot is released */
	struct backup_keys keys;     /* encrypted: this backup's keys */
	struct keyring *kr;          /* the key files (encrypted), read once */
};

/* Encrypted ([agent] encryption): the key files, read once (the keys
 * follow the parent: choose_parent). */
static int run_keys(struct backup_run *r, struct err *err)
{
	if (!r->cfg->encrypt)
		return 0;
	return keyring_load(r->cfg, &r->kr, err);
}

/* Set up the run and the manifest's fixed fields. */
static int run_start(struct backup_run *r, struct err *err)
{
	struct manifest *m = r->m;
	int ret;

	memset(r->res, 0, sizeof(*r->res));
	r->res->geo_seconds = -1;
	m->format_version = FORMAT_VERSION;
	m->started_ns = util_now_unix_ns();
	ret = catalog_new_id(m->started_ns / 1000000000LL, m->backup_id, err);
	if (ret)
		return ret;
	m->tool_version = strdup(SNAPSHIP_VERSION);
	m->host = strdup(r->host);
	m->partition = strdup(r->part->name);
	m->source = strdup(r->part->path);
	m->compression = strdup("zstd");
	m->encryption = strdup("none");
	m->data_key = geo_region_key(&r->rs->v[0], m, "data.tar.zst");
	m->index_key = geo_region_key(&r->rs->v[0], m, "index.jsonl.zst");
	r->mkey = geo_region_key(&r->rs->v[0], m, "manifest.json");
	if (!m->tool_version || !m->host || !m->partition || !m->source ||
	    !m->compression || !m->encryption || !m->data_key || !m->index_key || !r->mkey)
		return err_set(err, -ENOMEM, "out of memory");
	strcpy(r->gs->backup_id, m->backup_id);
	return run_keys(r, err);
}

/* Free what the run holds; the manifest (the caller's result) stays. */
static void run_free(struct backup_run *r)
{
	for (size_t t = 0; t < REGIONS_MAX; t++) {
		free(r->tkeys[0][t]);
		free(r->tkeys[1][t]);
	}
	free(r->json);
	free(r->mkey);
	backup_keys_clear(&r->keys);
	planner_free(r->pl);
	r->pl = NULL;
	keyring_free(r->kr);
	r->kr = NULL;
}

/*
 * Secondaries: reachable now?  An agent region that is not is left out
 * (at risk) rather than slowing the backup down; with require_geo any that
 * is not fails the backup before anything is frozen.  (A server region may
 * come back before its deadline: it is polled.)
 */
static int probe_secondaries(struct backup_run *r, struct err *err)
{
	struct regions *rs = r->rs;

	for (size_t i = 1; i < rs->n; i++) {
		struct err pe = { 0 };
		struct geo_region_state *g = geo_state_region(r->gs, rs->v[i].name);
		const char *why;

		g->replication = rs->v[i].replication;
		if (!r->cfg->require_geo && rs->v[i].replication != REPL_AGENT)
			continue;
		if (rs->v[i].down)
			err_set(&pe, -EIO, "%s", rs->v[i].down_why[0] ? rs->v[i].down_why :
				"it did not answer when asked to clean up");
		else if (!probe_region(&rs->v[i], r->host, &pe))
			continue;
		if (pe.code == -ECANCELED)   /* a stop, not the region's fault */
			return err_set(err, -ECANCELED, "cancelled while probing region %s",
				       rs->v[i].name);
		why = err_strip_region(rs->v[i].name, pe.msg);
		if (r->cfg->require_geo)
			return err_set(err, pe.code ? pe.code : -EIO,
				       "require_geo = yes and region %s cannot take the backup: %s",
				       rs->v[i].name, why);
		r->skip[i] = true;
		g->state = RS_AT_RISK;
		snprintf(g->detail, sizeof(g->detail), "unreachable during the backup: %.600s", why);
		log_warn("region %s is unreachable (%s); backing up to the others, the backup will be at risk until snapship repair copies it there",
			 rs->v[i].name, why);
	}
	return 0;
}

/*
 * The parent and the planner of an incremental, or a full (r->pl NULL);
 * encrypted, then this backup's keys: an incremental's master key is its
 * parent's (a passphrase stretched with the parent's salt), a full's a new
 * one (a passphrase with a new salt).
 */
static int choose_parent(struct backup_run *r, struct err *err)
{
	struct planner_opts po = {
		.force_full = r->bo->full,
		.full_every = config_full_every(r->cfg, r->part),
		.max_chain = config_max_chain(r->cfg, r->part),
		.kr = r->kr,
	};
	const struct seal_master *pm;
	int ret = planner_open(&r->rs->v[0], r->m, &po, &r->pl, r->res->why_full,
			       sizeof(r->res->why_full), err);

	if (ret || !r->kr)
		return ret;
	pm = planner_master(r->pl);
	return keyring_for_new(r->kr, r->m->backup_id, pm && pm->has_salt ? pm->salt : NULL,
			       &r->keys, err);
}

/* Phase plan: the source, the secondaries, the upload targets, the parent. */
static int phase_plan(struct backup_run *r, struct err *err)
{
	struct regions *rs = r->rs;
	int ret;

	ret = cow_check_source_opts(r->part->path, &r->copts, err);
	if (ret)
		return ret;
	ret = probe_secondaries(r, err);
	if (ret)
		return ret;
	for (size_t i = 0; i < rs->n; i++) {
		if (i > 0 && (r->skip[i] || rs->v[i].replication != REPL_AGENT))
			continue;
		r->tkeys[0][r->nt] = geo_region_key(&rs->v[i], r->m, "data.tar.zst");
		r->tkeys[1][r->nt] = geo_region_key(&rs->v[i], r->m, "index.jsonl.zst");
		if (!r->tkeys[0][r->nt] || !r->tkeys[1][r->nt])
			return err_set(err, -ENOMEM, "out of memory");
		r->tgt[r->nt++] = i;
	}
	return choose_parent(r, err);
}

/* Release the snapshot of a run that failed (best effort, logged). */
static void drop_snapshot(struct backup_run *r)
{
	struct err re = { 0 };

	if (cow_release(r->snap, &re))
		log_error("%s (the snapshot stays in the journal; snapship clean or the next run removes it)",
			  re.msg);
	else
		r->released = true;
	r->snap = NULL;
}

static int take_snapshot(struct backup_run *r, struct err *err)
{
	const struct cfg_partition *part = r->part;
	char tag[256];
	int ret;

	snprintf(tag, sizeof(tag), "%s-%s", part->name, r->m->backup_id);
	ret = cow_freeze_opts(part->path, part->snapshot_dir, r->cfg->state_dir,
			      tag, &r->copts, &r->snap, err);
	if (ret)
		return ret;
	strcpy(r->m->snap_uuid, r->snap->uuid);
	strcpy(r->m->source_uuid, r->snap->source_uuid);
	r->m->snap_generation = r->snap->generation;
	r->m->snap_time_ns = r->snap->time_ns;
	snprintf(r->m->fstype, sizeof(r->m->fstype), "%s", r->snap->fstype);
	(void)fault_hit("backup.snapshot", NULL);   /* tests: a crash here (:kill) */
	return 0;
}

/* Phase freeze: the snapshot, between the partition's hooks.  The post
 * hook always runs once the pre hook did; if it fails, so does the run. */
static int phase_freeze(struct backup_run *r, struct err *err)
{
	const struct cfg_partition *part = r->part;
	struct err e2 = { 0 };
	int ret, ret2;

	if (!part->pre_snapshot)
		return take_snapshot(r, err);
	r->hooks[0] = "pre_snapshot";
	ret = hook_run("pre_snapshot", part->pre_snapshot, part->hook_timeout,
		       part->name, part->path, err);
	if (!ret)
		ret = take_snapshot(r, err);
	if (!part->post_snapshot)
		return ret;
	r->hooks[1] = "post_snapshot";
	ret2 = hook_run("post_snapshot", part->post_snapshot, part->hook_timeout,
			part->name, part->path, ret ? &e2 : err);
	if (!ret2)
		return ret;
	if (ret) {
		if (e2.code)
			log_error("%s", e2.msg);
		return ret;
	}
	drop_snapshot(r);
	return ret2;
}

/* Note the copies of one object the sink s made visible. */
static void mark_visible(struct backup_run *r, const struct sink *s, int obj)
{
	for (size_t t = 0; t < r->nt; t++)
		if (s->committed[t])
			r->visible[r->tgt[t]] |= obj;
}

/* Make data and index visible (a commit that fails leaves no object and
 * frees the writer); an agent region that missed either is at risk. */
static int commit_objects(struct backup_run *r, struct sink *data,
			  struct sink *index, struct err *err)
{
	struct manifest *m = r->m;
	int ret;

	ret = sink_commit(data, m->data_sha256, err);
	mark_visible(r, data, OBJ_DATA);
	if (ret)
		return ret;
	ret = sink_commit(index, m->index_sha256, err);
	mark_visible(r, index, OBJ_INDEX);
	if (ret)
		return ret;
	snprintf(m->data_etag, sizeof(m->data_etag), "%s", data->info[0].etag);
	snprintf(m->index_etag, sizeof(m->index_etag), "%s", index->info[0].etag);
	for (size_t t = 1; t < r->nt; t++) {
		struct geo_region_state *g = geo_state_region(r->gs, r->rs->v[r->tgt[t]].name);

		if (data->failed[t] || index->failed[t]) {
			r->skip[r->tgt[t]] = true;
			g->state = RS_AT_RISK;
			snprintf(g->detail, sizeof(g->detail), "upload failed: %.600s",
				 data->failed[t] ? data->errs[t].msg : index->errs[t].msg);
		}
	}
	return 0;
}

/* Copies the two sinks made visible. */
static unsigned sinks_committed(const struct sink *data, const struct sink *index)
{
	unsigned n = 0;

	for (size_t t = 0; t < SINK_MAX; t++)
		n += data->committed[t] + index->committed[t];
	return n;
}

/* An incremental's pass 1 over the frozen tree (planner_prepare): a
 * parent's index that does not check there makes the backup a full. */
static int plan_renames(struct backup_run *r, struct err *err)
{
	int ret;

	if (!r->pl)
		return 0;
	planner_set_source(r->pl, r->snap->source_uuid);
	ret = planner_prepare(r->pl, r->snap->path, r->bo->cancelled ? pack_cancelled : NULL,
			      (void *)r->bo, r->res->why_full, sizeof(r->res->why_full), err);
	if (ret != 1)
		return ret;
	log_info("%s: full backup (%s)", r->part->name, r->res->why_full);
	planner_free(r->pl);
	r->pl = NULL;
	return 0;
}

/* A thick LVM snapshot that overflowed reads as EIO (or worse): its
 * overflow is then the error to report, whatever ret says, and nothing
 * may be committed.  ret, or the overflow's error. */
static int check_intact(struct backup_run *r, int ret, struct err *err)
{
	struct err ie = { 0 };

	if (!cow_intact(r->snap, &ie))
		return ret;
	if (ret)
		log_error("%s", err->msg);
	err_clear(err);
	return err_set(err, ie.code, "%s", ie.msg);
}

/* Phase upload: the snapshot streamed once into data and index sinks that
 * tee to every target, then the objects committed. */
static int phase_upload(struct backup_run *r, struct err *err)
{
	struct sink data, index = { 0 };
	struct sink_target dt[REGIONS_MAX], it[REGIONS_MAX];
	struct manifest *m = r->m;
	unsigned open = 0;
	int ret;

	ret = check_intact(r, plan_renames(r, err), err);
	if (ret)
		return ret;
	for (size_t t = 0; t < r->nt; t++) {
		const struct region *g = &r->rs->v[r->tgt[t]];

		int64_t until = geo_lock_until(g, m);

		dt[t] = (struct sink_target){ g->store, r->tkeys[0][t], g->name, until };
		it[t] = (struct sink_target){ g->store, r->tkeys[1][t], g->name, until };
	}
	ret = sink_open_multi(&data, dt, r->nt, r->cfg->require_geo, err);
	if (ret)
		return ret;
	ret = sink_open_multi(&index, it, r->nt, r->cfg->require_geo, err);
	if (ret)
		goto out_abort_uploads;
	log_debug("%s: frozen in %.3f s", r->part->name, util_now_mono() - r->t0);
	ret = stream_snapshot(r->cfg, r->snap->path, &data, &index, m,
			      r->bo, r->part->name, r->pl, &r->keys,
			      !strcmp(r->snap->ops->name, "btrfs"), &r->res->slowed_s, err);
	ret = check_intact(r, ret, err);
	if (ret)
		goto out_abort_uploads;
	log_debug("%s: streamed in %.3f s", r->part->name, util_now_mono() - r->t0);
	m->data_size = data.bytes;
	m->index_size = index.bytes;
	m->stored_bytes = data.bytes + index.bytes;
	/* a commit that fails ends (aborts) its writers itself */
	open = sink_open_writers(&data) + sink_open_writers(&index);
	ret = commit_objects(r, &data, &index, err);
	if (ret)
		goto out_abort_uploads;
	return 0;

out_abort_uploads:
	/* the unfinished uploads, for the line a cancelled run prints */
	if (!open)
		open = sink_open_writers(&data) + sink_open_writers(&index);
	r->aborted += open - sinks_committed(&data, &index);
	/* a no-op on a committed sink */
	sink_abort(&data);
	sink_abort(&index);
	return ret;
}

/* Phase release: the snapshot goes before the commit point, so a backup is
 * only listed once its snapshot is gone and a crash never leaves both. */
static int phase_release(struct backup_run *r, struct err *err)
{
	int ret;

	log_debug("%s: objects committed at %.3f s", r->part->name, util_now_mono() - r->t0);
	ret = cow_release(r->snap, err);
	r->snap = NULL;
	if (ret)
		return ret;
	r->released = true;
	log_debug("%s: snapshot released at %.3f s", r->part->name, util_now_mono() - r->t0);
	return 0;
}

/* The manifest's last fields and its JSON, self size and hash. */
static int seal_manifest(struct backup_run *r, struct err *err)
{
	struct manifest *m = r->m;
	int ret;

	m->finished_ns = util_now_unix_ns();
	if (r->hooks[0]) {
		m->hooks = calloc(3, sizeof(char *));
		for (int i = 0; m->hooks && r->hooks[i]; i++)
			m->hooks[i] = strdup(r->hooks[i]);
	}
	if (r->keys.manifest) {
		ret = keyring_seal_manifest(&r->keys, m, err);
		if (ret)
			return ret;
	}
	ret = manifest_to_json(m, &r->json, err);
	if (ret)
		return ret;
	m->self_size = strlen(r->json);
	util_sha256_hex(r->json, m->self_size, m->self_sha256);
	for (size_t i = 1; i < r->rs->n; i++) {
		struct geo_region_state *g = geo_state_region(r->gs, r->rs->v[i].name);

		g->deadline_ns = m->finished_ns + r->rs->v[i].deadline * 1000000000LL;
	}
	return 0;
}

/* Save the replication state (best effort: verify rebuilds it); 0 if saved. */
static int save_state(const struct backup_run *r)
{
	struct err se = { 0 };
	int ret;

	ret = geo_state_save(r->cfg->state_dir, r->host, r->part->name, r->gs, &se);
	if (ret)
		log_warn("cannot save the replication state: %s (snapship verify rebuilds it)", se.msg);
	return ret;
}

/* The same manifest, byte for byte, to the agent regions: one that fails
 * is at risk (with require_geo, the run fails). */
static int replicate_manifest(struct backup_run *r, struct err *err)
{
	struct regions *rs = r->rs;
	int ret;

	for (size_t t = 1; t < r->nt; t++) {
		size_t i = r->tgt[t];
		struct geo_region_state *g = geo_state_region(r->gs, rs->v[i].name);
		struct err pe = { 0 };
		char *k;

		if (r->skip[i])
			continue;
		k = geo_region_key(&rs->v[i], r->m, "manifest.json");
		r->visible[i] |= OBJ_MANIFEST;
		extend_ref_locks(&rs->v[i], r->m);
		ret = k ? put_manifest(&rs->v[i], r->m, k, r->json, &pe) : -ENOMEM;
		free(k);
		if (!ret)
			continue;
		r->skip[i] = true;
		g->state = RS_AT_RISK;
		snprintf(g->detail, sizeof(g->detail), "manifest upload failed: %.600s", pe.msg);
		if (r->cfg->require_geo)
			return err_set(err, ret, "require_geo = yes and region %s could not take the manifest: %s",
				       rs->v[i].name, err_strip_region(rs->v[i].name, pe.msg));
		log_warn("region %s: %s; the backup is at risk until snapship repair copies it", rs->v[i].name,
			 err_strip_region(rs->v[i].name, pe.msg));
	}
	return 0;
}

/* Phase commit: the manifest on the primary is the commit point; with
 * require_geo the server regions must hold the data before it. */
static int phase_commit(struct backup_run *r, struct err *err)
{
	int ret;

	ret = seal_manifest(r, err);
	if (ret)
		return ret;
	if (r->cfg->require_geo) {
		r->gs->committed_ns = r->m->finished_ns;
		if (geo_wait(r->rs, r->m, OBJ_DATA | OBJ_INDEX, false, r->gs))
			return err_set(err, -ETIMEDOUT, "require_geo = yes and %s",
				       "a secondary region did not receive the backup's data in time (see the warnings above)");
		/* the wait ends early on a stop request: not before a commit */
		if (run_cancelled(r->bo))
			return err_set(err, -ECANCELED, "cancelled while waiting for replication");
	}
	if (fault_hit("backup.manifest", &ret))
		return err_set(err, ret, "injected fault before the manifest");
	/* a put that failed may still have happened (a lost answer): the
	 * rollback deletes the manifest either way */
	extend_ref_locks(&r->rs->v[0], r->m);
	r->visible[0] |= OBJ_MANIFEST;
	ret = put_manifest(&r->rs->v[0], r->m, r->mkey, r->json, err);
	if (ret)
		return ret;
	(void)fault_hit("backup.committed", NULL);   /* tests: a crash here (:kill) */
	r->gs->committed_ns = util_now_unix_ns();
	r->res->seconds = util_now_mono() - r->t0;
	/* what is known now survives a kill during the wait */
	if (r->gs->n && !save_state(r))
		r->state_saved = true;
	return replicate_manifest(r, err);
}

/* Phase geo: every secondary not yet at risk is proven by HEADs now (agent)
 * or when the store's replication delivers (server). */
static int phase_wait_geo(struct backup_run *r, struct err *err)
{
	struct geo_state *gs = r->gs;
	bool once = r->bo->no_wait && !r->cfg->require_geo;

	if (geo_wait(r->rs, r->m, OBJ_ALL, once, gs) && r->cfg->require_geo)
		return err_set(err, -ETIMEDOUT, "require_geo = yes and a secondary region does not hold the backup by its replication deadline (see the warnings above)");
	if (!strcmp(geo_summary(gs, util_now_unix_ns()), "geo-protected") && gs->n) {
		r->res->geo_seconds = 0;
		for (size_t i = 0; i < gs->n; i++)
			if (gs->r[i].lag_s > r->res->geo_seconds)
				r->res->geo_seconds = gs->r[i].lag_s;
	}
	if (gs->n)
		save_state(r);
	return 0;
}

/* Roll back a failed run: objects without a manifest are not a backup. */
static void roll_back(struct backup_run *r)
{
	struct regions *rs = r->rs;

	for (size_t i = 0; i < rs->n; i++) {
		int mask = r->visible[i];

		/* require_geo: what a server region received from the primary
		 * goes too, or it would hold (and repair would spread back) a
		 * backup that failed */
		if (r->cfg->require_geo && i > 0 && r->visible[0] &&
		    rs->v[i].replication == REPL_SERVER && !rs->v[i].down)
			mask = OBJ_ALL;
		if (mask)
			r->removed += remove_objects(&rs->v[i], r->m, mask);
	}
	/* a backup rolled back after its commit has no state either */
	if (r->state_saved)
		geo_state_remove(r->cfg->state_dir, r->host, r->part->name, r->m->backup_id);
}

/*
 * Before a phase: the one place a run may stop early (the daemon's
 * cancellation, bo->cancelled), then the phase.  A phase that fails closes
 * what it opened, so a cancelled phase and a failed one unwind alike.
 * Release is not a place to stop (it only lets the snapshot go) nor is
 * anything after the commit point.
 */
static int run_phase(struct backup_run *r, const char *name,
		     int (*phase)(struct backup_run *r, struct err *err),
		     struct err *err)
{
	r->phase = name;
	r->in_phase = false;
	if (run_cancelled(r->bo))
		return err_set(err, -ECANCELED, "cancelled before its %s phase", name);
	r->in_phase = true;
	if (r->bo->phase)
		r->bo->phase(r->bo->phase_ctx, name);
	return phase(r, err);
}

/*
 * A run that failed while a cancellation was pending says what it undid,
 * in one message (the one line an interrupted backup prints): the cause
 * of the failure was the cancellation, whatever stage noticed it first.
 */
static int say_cancelled(const struct backup_run *r, struct err *err)
{
	char undone[256];
	int n = 0;

	undone[0] = '\0';
	if (r->aborted)
		n += snprintf(undone + n, sizeof(undone) - (size_t)n,
			      "%u unfinished upload%s aborted and %s temporary objects removed, ",
			      r->aborted, r->aborted == 1 ? "" : "s",
			      r->aborted == 1 ? "its" : "their");
	if (r->removed && n < (int)sizeof(undone))
		n += snprintf(undone + n, sizeof(undone) - (size_t)n,
			      "%u uploaded object%s removed, ", r->removed,
			      r->removed == 1 ? "" : "s");
	if (r->released && n < (int)sizeof(undone))
		n += snprintf(undone + n, sizeof(undone) - (size_t)n, "snapshot released, ");
	if (n >= 2 && n < (int)sizeof(undone))
		undone[n - 2] = '\0';
	err_clear(err);    /* whatever noticed it first said less */
	return err_set(err, -ECANCELED, "backup of %s cancelled %s its %s phase: %s; nothing committed, the next run takes a new backup",
		r->part->name, r->in_phase ? "in" : "before", r->phase ? r->phase : "plan",
		undone[0] ? undone : "nothing to undo");
}

int backup_partition(const struct config *cfg, const struct cfg_partition *part,
		     struct regions *rs, const char *host,
		     const struct backup_opts *bo, struct backup_result *res_ret,
		     struct err *err)
{
	struct backup_run run = {
		.cfg = cfg, .part = part, .rs = rs, .host = host, .bo = bo,
		.res = res_ret, .m = &res_ret->m, .gs = &res_ret->gs,
		.t0 = util_now_mono(),
		.copts = { .mode = (enum cow_mode)part->snapshot_mode,
			   .lvm_snapshot_size = part->lvm_snapshot_size },
	};
	int ret;

	ret = run_start(&run, err);
	if (ret)
		goto out_free;
	ret = run_phase(&run, "plan", phase_plan, err);
	if (ret)
		goto out_free;
	ret = run_phase(&run, "freeze", phase_freeze, err);
	if (ret)
		goto out_free;
	ret = run_phase(&run, "upload", phase_upload, err);
	if (ret)
		goto out_release_snapshot;
	run.phase = "release";
	run.in_phase = true;
	ret = phase_release(&run, err);
	if (ret)
		goto out_roll_back;
	ret = run_phase(&run, "commit", phase_commit, err);
	if (ret)
		goto out_roll_back;
	/* committed: no cancelling now (the wait is bounded by the deadlines) */
	if (bo->phase)
		bo->phase(bo->phase_ctx, "replication");
	ret = phase_wait_geo(&run, err);
	if (ret)
		goto out_roll_back;
	run_free(&run);
	return 0;

out_release_snapshot:
	drop_snapshot(&run);
out_roll_back:
	roll_back(&run);
out_free:
	if (run_cancelled(bo))
		ret = say_cancelled(&run, err);
	run_free(&run);
	manifest_clear(run.m);
	return ret;
}
