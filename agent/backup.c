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
#include "common/err.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "cow/cow.h"
#include "stream/frame.h"
#include "stream/pack.h"
#include "uploader/sink.h"
#include "uploader/store.h"

#ifndef SNAPSHIP_VERSION
#define SNAPSHIP_VERSION "0.1.0"
#endif

/* The data stream: framer output goes to the data sink. */
struct tar_ctx {
	struct framer *framer;
};

static int tar_out(void *ctx, const void *buf, size_t len, struct err *err)
{
	struct tar_ctx *t = ctx;

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
			   struct manifest *m, bool progress, const char *partition,
			   struct err *err)
{
	struct framer_opts fo = {
		.level = cfg->compression_level,
		.frame_size = (size_t)cfg->frame_size,
	};
	struct pack_opts po = {
		.max_read_rate = cfg->max_read_rate,
		.ioprio_class = cfg->io_priority,
	};
	struct progress_ctx pctx = { .partition = partition, .t0 = util_now_mono() };
	struct index_writer *iw = NULL;
	struct tar_ctx tc = { 0 };
	struct framer_stats fs;
	struct pack_stats ps;
	int ret;

	if (progress) {
		po.progress = show_progress;
		po.progress_ctx = &pctx;
	}
	ret = framer_new(&fo, sink_write, data, &tc.framer, err);
	if (ret)
		return ret;
	ret = index_writer_new(index, cfg->compression_level, &iw, err);
	if (ret)
		goto out_free;
	ret = pack_tree(root, &po, tar_out, &tc, index_writer_add, iw, &ps, err);
	if (progress)
		fprintf(stderr, "\r\033[K");
	if (ret)
		goto out_free;
	ret = framer_finish(tc.framer, &fs, err);
	if (ret)
		goto out_free;
	ret = index_writer_finish(iw, err);
	if (ret)
		goto out_free;
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
	framer_free(tc.framer);
	return ret;
}

static int put_manifest(struct store *store, const char *key, const char *json,
			struct err *err)
{
	return store_put_buf(store, key, json, strlen(json), err);
}

/* Remove a failed backup's objects from region g (best effort). */
static void remove_objects(struct region *g, const struct manifest *m, int mask)
{
	char *keys[2] = { 0 };
	const char *k[2];
	size_t n = 0;
	struct err de = { 0 };

	if (!g->store)
		return;
	/* the manifest alone first: the backup stops existing before its
	 * parts go, and if it cannot be deleted the parts must stay */
	if (mask & OBJ_MANIFEST) {
		char *mk = region_key(g, m, "manifest.json");
		const char *one[1] = { mk };

		if (!mk || store_delete(g->store, one, 1, &de)) {
			log_error("region %s: the failed backup's manifest %s could not be deleted (%s): the backup %s stays listed there; delete it by hand or let snapship repair copy the rest",
				  g->name, mk ? mk : "?", region_strip(g->name, de.msg), m->backup_id);
			free(mk);
			return;
		}
		free(mk);
	}
	if (mask & OBJ_DATA)
		keys[n++] = region_key(g, m, "data.tar.zst");
	if (mask & OBJ_INDEX)
		keys[n++] = region_key(g, m, "index.jsonl.zst");
	for (size_t i = 0; i < n; i++)
		k[i] = keys[i] ? keys[i] : "";
	if (n && store_delete(g->store, k, n, &de))
		log_warn("region %s: could not remove the unfinished backup's objects (%s); snapship clean removes them later",
			 g->name, region_strip(g->name, de.msg));
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
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

int backup_partition(const struct config *cfg, const struct cfg_partition *part,
		     struct regions *rs, const char *host,
		     const struct backup_opts *bo, struct backup_result *res,
		     struct err *err)
{
	struct manifest *m = &res->m;
	struct geo_state *gs = &res->gs;
	struct cow_snapshot *snap = NULL;
	struct sink data = { 0 }, index = { 0 };
	struct sink_target dt[REGIONS_MAX], it[REGIONS_MAX];
	size_t tgt[REGIONS_MAX], nt = 0;        /* region index of each target */
	char *tkeys[2][REGIONS_MAX] = { { 0 } };
	bool skip[REGIONS_MAX] = { false };     /* secondary left out of this run */
	int visible[REGIONS_MAX] = { 0 };       /* OBJ_* committed per region */
	char *mkey = NULL, *json = NULL, tag[256];
	const char *hooks[3] = { 0 };
	bool data_closed = false, index_closed = false, pre_ran = false;
	bool state_saved = false;
	double t0 = util_now_mono();
	struct err e2 = { 0 };
	int ret, ret2;

	memset(res, 0, sizeof(*res));
	res->geo_seconds = -1;
	m->format_version = FORMAT_VERSION;
	m->started_ns = util_now_unix_ns();
	ret = catalog_new_id(m->started_ns / 1000000000LL, m->backup_id, err);
	if (ret)
		return ret;
	m->tool_version = strdup(SNAPSHIP_VERSION);
	m->host = strdup(host);
	m->partition = strdup(part->name);
	m->source = strdup(part->path);
	m->compression = strdup("zstd");
	m->encryption = strdup("none");
	m->data_key = region_key(&rs->v[0], m, "data.tar.zst");
	m->index_key = region_key(&rs->v[0], m, "index.jsonl.zst");
	mkey = region_key(&rs->v[0], m, "manifest.json");
	if (!m->tool_version || !m->host || !m->partition || !m->source ||
	    !m->compression || !m->encryption || !m->data_key || !m->index_key || !mkey) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	strcpy(gs->backup_id, m->backup_id);

	ret = cow_check_source(part->path, err);
	if (ret)
		goto out;
	/* secondaries: reachable now?  An agent region that is not is left
	 * out (at risk) rather than slowing the backup down; with require_geo
	 * any that is not fails the backup before anything is frozen.  (A
	 * server region may come back before its deadline: it is polled.) */
	for (size_t i = 1; i < rs->n; i++) {
		struct err pe = { 0 };
		struct geo_region_state *r = geo_state_region(gs, rs->v[i].name);

		r->replication = rs->v[i].replication;
		if (!cfg->require_geo && rs->v[i].replication != REPL_AGENT)
			continue;
		if (rs->v[i].down)
			err_set(&pe, -EIO, "%s", rs->v[i].down_why[0] ? rs->v[i].down_why :
				"it did not answer when asked to clean up");
		else if (!probe_region(&rs->v[i], host, &pe))
			continue;
		if (cfg->require_geo) {
			ret = err_set(err, pe.code ? pe.code : -EIO,
				      "require_geo = yes and region %s cannot take the backup: %s",
				      rs->v[i].name, region_strip(rs->v[i].name, pe.msg));
			goto out;
		}
		skip[i] = true;
		r->state = RS_AT_RISK;
		snprintf(r->detail, sizeof(r->detail), "unreachable during the backup: %.600s",
			 region_strip(rs->v[i].name, pe.msg));
		log_warn("region %s is unreachable (%s); backing up to the others, the backup will be at risk until snapship repair copies it there",
			 rs->v[i].name, region_strip(rs->v[i].name, pe.msg));
	}
	for (size_t i = 0; i < rs->n; i++) {
		if (i > 0 && (skip[i] || rs->v[i].replication != REPL_AGENT))
			continue;
		tkeys[0][nt] = region_key(&rs->v[i], m, "data.tar.zst");
		tkeys[1][nt] = region_key(&rs->v[i], m, "index.jsonl.zst");
		if (!tkeys[0][nt] || !tkeys[1][nt]) {
			nt++;
			ret = err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		dt[nt] = (struct sink_target){ rs->v[i].store, tkeys[0][nt], rs->v[i].name };
		it[nt] = (struct sink_target){ rs->v[i].store, tkeys[1][nt], rs->v[i].name };
		tgt[nt++] = i;
	}

	if (part->pre_snapshot) {
		pre_ran = true;
		hooks[0] = "pre_snapshot";
		ret = hook_run("pre_snapshot", part->pre_snapshot, part->hook_timeout,
			       part->name, part->path, err);
		if (ret)
			goto out_post;
	}
	snprintf(tag, sizeof(tag), "%s-%s", part->name, m->backup_id);
	ret = cow_freeze(part->path, part->snapshot_dir, cfg->state_dir, tag, &snap, err);
out_post:
	if (pre_ran && part->post_snapshot) {
		/* the post hook always runs once the pre hook did */
		hooks[1] = "post_snapshot";
		ret2 = hook_run("post_snapshot", part->post_snapshot, part->hook_timeout,
				part->name, part->path, ret ? &e2 : err);
		if (ret2 && !ret)
			ret = ret2;
		if (ret2 && e2.code)
			log_error("%s", e2.msg);
	}
	if (ret)
		goto out;
	strcpy(m->snap_uuid, snap->uuid);
	m->snap_generation = snap->generation;
	m->snap_time_ns = snap->time_ns;

	ret = sink_open_multi(&data, dt, nt, cfg->require_geo, err);
	if (ret)
		goto out;
	ret = sink_open_multi(&index, it, nt, cfg->require_geo, err);
	if (ret)
		goto out;
	log_debug("%s: frozen in %.3f s", part->name, util_now_mono() - t0);
	ret = stream_snapshot(cfg, snap->path, &data, &index, m, bo->progress,
			      part->name, err);
	if (ret)
		goto out;
	log_debug("%s: streamed in %.3f s", part->name, util_now_mono() - t0);
	m->data_size = data.bytes;
	m->index_size = index.bytes;
	m->stored_bytes = data.bytes + index.bytes;
	/* a commit that fails leaves no object (and frees the writer) */
	ret = sink_commit(&data, m->data_sha256, err);
	data_closed = true;
	for (size_t t = 0; t < nt; t++)
		if (data.committed[t])
			visible[tgt[t]] |= OBJ_DATA;
	if (ret)
		goto out;
	ret = sink_commit(&index, m->index_sha256, err);
	index_closed = true;
	for (size_t t = 0; t < nt; t++)
		if (index.committed[t])
			visible[tgt[t]] |= OBJ_INDEX;
	if (ret)
		goto out;
	snprintf(m->data_etag, sizeof(m->data_etag), "%s", data.info[0].etag);
	snprintf(m->index_etag, sizeof(m->index_etag), "%s", index.info[0].etag);
	for (size_t t = 1; t < nt; t++) {
		struct geo_region_state *r = geo_state_region(gs, rs->v[tgt[t]].name);

		if (data.failed[t] || index.failed[t]) {
			skip[tgt[t]] = true;
			r->state = RS_AT_RISK;
			snprintf(r->detail, sizeof(r->detail), "upload failed: %.600s",
				 data.failed[t] ? data.errs[t].msg : index.errs[t].msg);
		}
	}
	/* release before the commit point: a backup is only listed once its
	 * snapshot is gone, so a crash never leaves both */
	log_debug("%s: objects committed at %.3f s", part->name, util_now_mono() - t0);
	ret = cow_release(snap, err);
	snap = NULL;
	if (ret)
		goto out;
	log_debug("%s: snapshot released at %.3f s", part->name, util_now_mono() - t0);
	m->finished_ns = util_now_unix_ns();
	if (hooks[0]) {
		m->hooks = calloc(3, sizeof(char *));
		for (int i = 0; m->hooks && hooks[i]; i++)
			m->hooks[i] = strdup(hooks[i]);
	}
	ret = manifest_to_json(m, &json, err);
	if (ret)
		goto out;
	m->self_size = strlen(json);
	util_sha256_hex(json, m->self_size, m->self_sha256);
	for (size_t i = 1; i < rs->n; i++) {
		struct geo_region_state *r = geo_state_region(gs, rs->v[i].name);

		r->deadline_ns = m->finished_ns + rs->v[i].deadline * 1000000000LL;
	}
	if (cfg->require_geo) {
		/* server-replicated regions must hold the data before the
		 * backup exists anywhere */
		gs->committed_ns = m->finished_ns;
		if (geo_wait(rs, m, OBJ_DATA | OBJ_INDEX, false, gs)) {
			ret = err_set(err, -ETIMEDOUT, "require_geo = yes and %s",
				      "a secondary region did not receive the backup's data in time (see the warnings above)");
			goto out;
		}
	}
	if (fault_hit("backup.manifest", &ret)) {
		err_set(err, ret, "injected fault before the manifest");
		goto out;
	}
	/* a put that failed may still have happened (a lost answer): the
	 * rollback deletes the manifest either way */
	visible[0] |= OBJ_MANIFEST;
	ret = put_manifest(rs->v[0].store, mkey, json, err);
	if (ret)
		goto out;
	gs->committed_ns = util_now_unix_ns();
	res->seconds = util_now_mono() - t0;
	if (gs->n) {
		/* what is known now survives a kill during the wait */
		struct err se = { 0 };

		if (geo_state_save(cfg->state_dir, host, part->name, gs, &se))
			log_warn("cannot save the replication state: %s (snapship verify rebuilds it)", se.msg);
		else
			state_saved = true;
	}
	/* the same manifest, byte for byte, to the agent regions */
	for (size_t t = 1; t < nt; t++) {
		size_t i = tgt[t];
		struct geo_region_state *r = geo_state_region(gs, rs->v[i].name);
		struct err pe = { 0 };
		char *k;

		if (skip[i])
			continue;
		k = region_key(&rs->v[i], m, "manifest.json");
		visible[i] |= OBJ_MANIFEST;
		ret = k ? put_manifest(rs->v[i].store, k, json, &pe) : -ENOMEM;
		free(k);
		if (!ret)
			continue;
		skip[i] = true;
		r->state = RS_AT_RISK;
		snprintf(r->detail, sizeof(r->detail), "manifest upload failed: %.600s", pe.msg);
		if (cfg->require_geo) {
			ret = err_set(err, ret, "require_geo = yes and region %s could not take the manifest: %s",
				      rs->v[i].name, region_strip(rs->v[i].name, pe.msg));
			goto out;
		}
		log_warn("region %s: %s; the backup is at risk until snapship repair copies it", rs->v[i].name,
			 region_strip(rs->v[i].name, pe.msg));
		ret = 0;
	}
	/* every secondary not yet at risk is proven by HEADs now (agent) or
	 * when the store's replication delivers (server) */
	{
		bool once = bo->no_wait && !cfg->require_geo;

		if (geo_wait(rs, m, OBJ_ALL, once, gs) && cfg->require_geo) {
			ret = err_set(err, -ETIMEDOUT, "require_geo = yes and a secondary region does not hold the backup by its replication deadline (see the warnings above)");
			goto out;
		}
	}
	if (!strcmp(geo_summary(gs, util_now_unix_ns()), "geo-protected") && gs->n) {
		res->geo_seconds = 0;
		for (size_t i = 0; i < gs->n; i++)
			if (gs->r[i].lag_s > res->geo_seconds)
				res->geo_seconds = gs->r[i].lag_s;
	}
	if (gs->n) {
		struct err se = { 0 };

		if (geo_state_save(cfg->state_dir, host, part->name, gs, &se))
			log_warn("cannot save the replication state: %s (snapship verify rebuilds it)", se.msg);
	}

out:
	if (!data_closed)
		sink_abort(&data);
	if (!index_closed)
		sink_abort(&index);
	if (snap) {
		struct err re = { 0 };

		if (cow_release(snap, &re))
			log_error("%s (the snapshot stays in the journal; snapship clean or the next run removes it)",
				  re.msg);
	}
	if (ret) {
		/* objects without a manifest are not a backup: remove them */
		for (size_t i = 0; i < rs->n; i++) {
			int mask = visible[i];

			/* require_geo: what a server region received from the
			 * primary goes too, or it would hold (and repair would
			 * spread back) a backup that failed */
			if (cfg->require_geo && i > 0 && visible[0] &&
			    rs->v[i].replication == REPL_SERVER && !rs->v[i].down)
				mask = OBJ_ALL;
			if (mask)
				remove_objects(&rs->v[i], m, mask);
		}
		/* a backup rolled back after its commit has no state either */
		if (state_saved)
			geo_state_remove(cfg->state_dir, host, part->name, m->backup_id);
	}
	for (size_t t = 0; t < nt; t++) {
		free(tkeys[0][t]);
		free(tkeys[1][t]);
	}
	free(json);
	free(mkey);
	if (ret)
		manifest_clear(m);
	return ret;
}
