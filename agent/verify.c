// SPDX-License-Identifier: MIT
#include "agent/verify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/failover.h"
#include "agent/lock.h"
#include "agent/restore.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "uploader/store.h"

/* Every backup of host in any reachable region, once (design §6: the
 * stores alone tell what exists where). */
struct verify_union {
	struct catalog_list lists[REGIONS_MAX];
	bool ok[REGIONS_MAX];
	struct err errs[REGIONS_MAX];
	const struct manifest **v;     /* sorted by partition, then id */
	size_t n;
	size_t broken;
};

/* qsort order of manifests: partition, then id (oldest first) */
static int by_partition(const void *a, const void *b)
{
	const struct manifest *x = a, *y = b;
	int c = strcmp(x->partition, y->partition);

	return c ? c : strcmp(x->backup_id, y->backup_id);
}

/* Does another region list the same backup with other manifest bytes?
 * Then which copy is right cannot be told from the manifests alone.
 * (Each region's list is sorted by partition and id: a binary search.) */
static const char *manifest_conflict(const struct regions *rs,
				     const struct verify_union *u,
				     const struct manifest *m)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct manifest *o;

		if (!u->ok[i] || !u->lists[i].n)
			continue;
		o = bsearch(m, u->lists[i].m, u->lists[i].n, sizeof(*o), by_partition);
		if (o && strcmp(o->self_sha256, m->self_sha256))
			return rs->v[i].name;
	}
	return NULL;
}

/* a backup as one region lists it */
struct uref {
	const struct manifest *m;
	size_t region;
};

static int uref_cmp(const void *a, const void *b)
{
	const struct uref *x = a, *y = b;
	int c = by_partition(x->m, y->m);

	return c ? c : x->region < y->region ? -1 : x->region > y->region;
}

/* List every region; how many backups they list in all (0 with none). */
static int union_lists(struct regions *rs, const char *host, const char *part,
		       struct verify_union *u, size_t *total_ret, struct err *err)
{
	size_t reached = 0;

	*total_ret = 0;
	for (size_t i = 0; i < rs->n; i++) {
		struct catalog_list *l = &u->lists[i];

		if (!rs->v[i].store) {
			err_set(&u->errs[i], -EIO, "%s", rs->v[i].down_why);
			continue;
		}
		if (catalog_list(rs->v[i].store, rs->v[i].prefix, host, part, l, &u->errs[i])) {
			log_warn("region %s cannot be listed: %s", rs->v[i].name,
				 err_strip_region(rs->v[i].name, u->errs[i].msg));
			if (failover_unreachable(&u->errs[i]))
				rs->v[i].down = true;
			continue;
		}
		u->ok[i] = true;
		reached++;
		u->broken += l->broken;
		*total_ret += l->n;
	}
	if (!reached) {
		*err = u->errs[0];
		return err->code ? err->code : -EIO;
	}
	return 0;
}

static int union_list(struct regions *rs, const char *host, const char *part,
		      struct verify_union *u, struct err *err)
{
	size_t total, n = 0;
	struct uref *refs;
	int ret = union_lists(rs, host, part, u, &total, err);

	if (ret || !total)
		return ret;
	/* all regions' backups sorted together, then each (partition, id)
	 * once, the first region's (primary first) kept: n log n, not n^2 */
	refs = malloc(total * sizeof(*refs));
	u->v = malloc(total * sizeof(*u->v));
	if (!refs || !u->v) {
		free(refs);
		return err_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < rs->n; i++)
		for (size_t j = 0; u->ok[i] && j < u->lists[i].n; j++)
			refs[n++] = (struct uref){ &u->lists[i].m[j], i };
	qsort(refs, n, sizeof(*refs), uref_cmp);
	for (size_t k = 0; k < n; k++)
		if (!u->n || by_partition(u->v[u->n - 1], refs[k].m))
			u->v[u->n++] = refs[k].m;
	free(refs);
	return 0;
}

static void union_free(struct verify_union *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < REGIONS_MAX; i++)
		if (u->ok[i])
			catalog_list_free(&u->lists[i]);
	free(u->v);
	free(u);
}

/* Decode every byte of region g's copy of m; a failure goes into c. */
static void check_deep(struct region *g, const struct manifest *m,
		       const struct verify_opts *o, struct geo_check *c)
{
	struct restore_opts ro = { .cancelled = o->cancelled, .cancel_ctx = o->cancel_ctx,
				   .keys = o->keys };
	struct restore_result res;
	struct manifest mr = *m;
	struct err e = { 0 };

	mr.data_key = geo_region_key(g, m, "data.tar.zst");
	mr.index_key = geo_region_key(g, m, "index.jsonl.zst");
	if (!mr.data_key || !mr.index_key ||
	    restore_backup(g->store, &mr, &ro, &res, &e)) {
		c->copy = e.code == -EBADMSG || !e.code ? COPY_BAD : COPY_UNREACHABLE;
		c->bad_mask = OBJ_DATA | OBJ_INDEX;
		snprintf(c->detail, sizeof(c->detail), "%.590s", e.msg[0] ? e.msg : "out of memory");
	}
	free(mr.data_key);
	free(mr.index_key);
}

/* A region's copy of m: HEADs, and with deep every byte. */
static void check_region(struct region *g, const struct verify_union *u, size_t i,
			 const struct manifest *m, const struct verify_opts *o,
			 struct geo_check *c)
{
	if (!u->ok[i] || g->down) {
		memset(c, 0, sizeof(*c));
		c->copy = COPY_UNREACHABLE;
		snprintf(c->detail, sizeof(c->detail), "%.590s", u->errs[i].msg[0] ?
			 err_strip_region(g->name, u->errs[i].msg) :
			 g->down_why[0] ? g->down_why : "did not answer");
		return;
	}
	geo_check_copy(g, m, OBJ_ALL, c);
	if (c->copy != COPY_UNREACHABLE)
		geo_check_refs(g, m, c);
	if (c->copy == COPY_UNREACHABLE)
		g->down = true;
	if (c->copy == COPY_OK && o->deep)
		check_deep(g, m, o, c);
}

/* Record what was found in region g (a secondary) in the backup's state. */
static void note_region(struct geo_state *gs, const struct region *g,
			const struct geo_check *c)
{
	struct geo_region_state *r = geo_state_region(gs, g->name);

	if (!r)
		return;
	r->replication = g->replication;
	if (c->copy == COPY_OK) {
		r->state = RS_VERIFIED;
		r->verified_ns = util_now_unix_ns();
		r->detail[0] = '\0';
	} else {
		r->state = RS_AT_RISK;
		snprintf(r->detail, sizeof(r->detail), "%s: %s", geo_copy_name(c->copy), c->detail);
	}
}

static void load_state(const struct verify_opts *o, const struct manifest *m,
		       struct geo_state *gs)
{
	struct err e = { 0 };

	if (geo_state_load(o->state_dir, o->host, m->partition, m->backup_id, gs, &e)) {
		memset(gs, 0, sizeof(*gs));
		strcpy(gs->backup_id, m->backup_id);
		gs->committed_ns = m->finished_ns;   /* rebuilt from the stores */
	}
}

static void save_state(const struct verify_opts *o, const struct manifest *m,
		       const struct geo_state *gs)
{
	struct err e = { 0 };

	if (geo_state_save(o->state_dir, o->host, m->partition, gs, &e))
		log_warn("cannot save the replication state: %s", e.msg);
}

/* Object Lock: the latest lock date in region g of the backups in u that
 * read m's data (incrementals referencing it); 0 when none. */
static int64_t readers_lock(const struct region *g, const struct verify_union *u,
			    const struct manifest *m)
{
	int64_t latest = 0;

	for (size_t b = 0; g->object_lock && b < u->n; b++) {
		const struct manifest *r = u->v[b];

		for (size_t k = 0; k < r->nrefs; k++) {
			int64_t t;

			if (strcmp(r->refs[k].id, m->backup_id))
				continue;
			t = geo_lock_until(g, r);
			if (t > latest)
				latest = t;
			break;
		}
	}
	return latest;
}

/* Copy region i's missing or bad copy of m from any region with a whole
 * one (chk: every region's check); the copy checks every byte against the
 * manifest, and is locked as long as the newest backup reading it.  The
 * verdict goes to vc; true if repaired. */
static bool repair_copy(struct regions *rs, const struct verify_union *u,
			struct geo_check *chk, size_t i, const struct manifest *m,
			struct verify_copy *vc)
{
	struct geo_check *ci = &chk[i];
	int64_t floor = readers_lock(&rs->v[i], u, m);
	struct err e = { 0 };
	int ret = -ENOENT;

	for (size_t j = 0; j < rs->n && ret; j++) {
		if (j == i || chk[j].copy != COPY_OK)
			continue;
		err_clear(&e);
		ret = geo_copy(&rs->v[j], &rs->v[i], m, ci->bad_mask, floor, &e);
		if (!ret) {
			geo_check_copy(&rs->v[i], m, OBJ_ALL, ci);
			if (ci->copy != COPY_UNREACHABLE)
				geo_check_refs(&rs->v[i], m, ci);
			snprintf(vc->detail, sizeof(vc->detail), "copied from %s%s%s",
				 rs->v[j].name, ci->copy ? "; still " : "",
				 ci->copy ? ci->detail : "");
			vc->status = ci->copy ? "failed" : "repaired";
		}
	}
	if (ret) {
		vc->status = "failed";
		snprintf(vc->detail, sizeof(vc->detail), "%.690s",
			 e.code ? e.msg : "no region holds a whole copy to repair from");
	}
	vc->copy = ci->copy;
	return !ret && !ci->copy;
}

/* Region i's verdict on m (chk[i] checked; conflict: the region whose
 * manifest differs, or NULL), repairing it when asked. */
static void verdict(struct regions *rs, const struct verify_union *u,
		    struct geo_check *chk, size_t i,
		    const struct manifest *m, const char *conflict, bool repair,
		    struct verify_copy *vc, size_t *fixed)
{
	struct geo_check *ci = &chk[i];

	vc->region = rs->v[i].name;
	vc->status = geo_copy_name(ci->copy);
	snprintf(vc->detail, sizeof(vc->detail), "%s", ci->detail);
	if (conflict && ci->copy != COPY_UNREACHABLE) {
		/* never repair from one of two disagreeing manifests */
		ci->copy = COPY_BAD;
		vc->status = repair ? "failed" : "corrupt";
		snprintf(vc->detail, sizeof(vc->detail),
			 "the manifests in regions %s and %s differ; compare them (and verify --deep) before repairing by hand",
			 rs->v[0].name, conflict);
	} else if (repair && (ci->copy == COPY_MISSING || ci->copy == COPY_BAD)) {
		*fixed += repair_copy(rs, u, chk, i, m, vc);
	}
	vc->copy = ci->copy;
}

/* Check (and repair) every region's copy of m into *vb. */
static bool verify_cancelled(const struct verify_opts *o)
{
	return o->cancelled && o->cancelled(o->cancel_ctx);
}

/* Check (and repair) m everywhere; false when cancelled before a verdict
 * (a deep check cut short proves nothing: nothing is recorded). */
static bool verify_backup(struct regions *rs, const struct verify_union *u,
			  const struct verify_opts *o, bool keep_state,
			  const struct manifest *m, struct verify_backup *vb,
			  struct verify_result *res)
{
	struct geo_check chk[REGIONS_MAX];
	struct geo_state gs;
	const char *conflict = manifest_conflict(rs, u, m);

	memset(vb, 0, sizeof(*vb));
	vb->m = m;
	vb->n = rs->n;
	load_state(o, m, &gs);
	for (size_t i = 0; i < rs->n; i++)
		check_region(&rs->v[i], u, i, m, o, &chk[i]);
	if (verify_cancelled(o))
		return false;
	for (size_t i = 0; i < rs->n; i++) {
		struct verify_copy *vc = &vb->r[i];

		verdict(rs, u, chk, i, m, conflict, o->repair, vc, &res->fixed);
		if (vc->copy != COPY_OK) {
			res->bad++;
			if (!vb->first_bad[0])
				snprintf(vb->first_bad, sizeof(vb->first_bad), "region %s: %s: %.690s",
					 vc->region, vc->status, vc->detail);
		}
		if (i > 0 && keep_state)
			note_region(&gs, &rs->v[i], &chk[i]);
	}
	if (keep_state) {
		save_state(o, m, &gs);
		vb->geo = geo_summary(&gs, util_now_unix_ns());
	}
	return true;
}

/* The manifests that are not backups, per region that answered. */
static void bad_manifests(const struct regions *rs, const struct verify_union *u,
			  struct verify_result *res)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct catalog_list *l = &u->lists[i];
		struct verify_bad_manifests *b = &res->bm[res->nbm];

		if (!u->ok[i])
			continue;
		res->nbm++;
		b->region = rs->v[i].name;
		b->why = l->broken_why;
		b->nwhy = l->nbroken_why;
		b->more = l->broken > l->nbroken_why ? l->broken - l->nbroken_why : 0;
	}
	res->broken = u->broken;
	res->bad += u->broken;
}

/* A backup hidden behind a delete marker (Object Lock regions). */
struct hidden_ctx {
	const struct region *g;
	struct verify_result *res;
};

static int hidden_one(void *ctx, const char *key, enum store_hidden_kind kind,
		      const char *ids)
{
	struct hidden_ctx *hc = ctx;
	size_t n = strlen(key);
	bool many = strchr(ids, ' ') != NULL;

	if (n < 14 || strcmp(key + n - 14, "/manifest.json"))
		return 0;       /* data, index: their bytes are checked by the manifest */
	hc->res->bad++;
	if (kind == STORE_HIDDEN_VERSIONS) {
		log_warn("region %s: %s has more than one version (newest first: %s): a PUT over it added the newest, which list, restore and prune read instead of the locked one; unless snapship rewrote it (a repair, a retried upload), the backup key was used to replace the backup: compare the versions and delete the newer ones (DELETE of each version, with the prune credentials)",
			 hc->g->name, UTIL_ESC_CTL(key), UTIL_ESC_CTL(ids));
		return 0;
	}
	log_warn("region %s: %s is hidden behind %s: its locked version is still there, but list, restore and prune do not see that backup; delete %s (DELETE of version %s, with the prune credentials) to bring it back",
		 hc->g->name, UTIL_ESC_CTL(key),
		 many ? "delete markers" : "a delete marker",
		 many ? "every marker" : "the marker", UTIL_ESC_CTL(ids));
	return 0;
}

/*
 * Object Lock regions: a key allowed to delete can hide a locked backup
 * behind a delete marker (the version stays, listings no longer show it),
 * a key allowed to put can put a newer version over it: each such manifest
 * is a warning and counts as bad; so is a region that could not be checked
 * (ListObjectVersions refused or failed).
 */
static void hidden_manifests(struct regions *rs, const struct verify_opts *o,
			     struct verify_result *res)
{
	for (size_t i = 0; i < rs->n; i++) {
		struct hidden_ctx hc = { &rs->v[i], res };
		struct err e = { 0 };
		char *p;

		if (!rs->v[i].object_lock || !rs->v[i].store || rs->v[i].down)
			continue;
		if (asprintf(&p, "%s%s/%s%s", rs->v[i].prefix, o->host,
			     o->partition ? o->partition : "", o->partition ? "/" : "") < 0)
			continue;
		if (store_list_hidden(rs->v[i].store, p, hidden_one, &hc, &e)) {
			res->bad++;     /* unchecked is not good */
			log_warn("region %s: could not check for backups hidden behind delete markers: %s",
				 rs->v[i].name, err_strip_region(rs->v[i].name, e.msg));
		}
		free(p);
	}
}

int verify_run(struct regions *rs, const struct verify_opts *o,
	       const struct verify_sink *sink, struct verify_result *res_ret,
	       struct err *err)
{
	bool keep_state = rs->n >= 2 && !rs->forced;
	struct verify_backup *vb;
	int lockfd = -1, ret;

	memset(res_ret, 0, sizeof(*res_ret));
	res_ret->u = calloc(1, sizeof(*res_ret->u));
	vb = malloc(sizeof(*vb));
	if (!res_ret->u || !vb) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out_free;
	}
	if (o->repair || keep_state) {
		/* the state dir is ours alone while we write it (and repair
		 * must not race a backup's uploads) */
		lockfd = hostlock_acquire(o->state_dir, 30, err);
		if (lockfd < 0) {
			ret = lockfd;
			goto out_free;
		}
	}
	ret = union_list(rs, o->host, o->partition, res_ret->u, err);
	if (ret)
		goto out_unlock;
	res_ret->backups = res_ret->u->n;
	sink->begin(sink->ctx, res_ret->u->n, res_ret->u->broken);
	for (size_t b = 0; b < res_ret->u->n; b++) {
		if (verify_cancelled(o) ||
		    !verify_backup(rs, res_ret->u, o, keep_state, res_ret->u->v[b], vb, res_ret)) {
			ret = err_set(err, -ECANCELED, "%s cancelled after %zu of %zu backups; the others were not checked%s",
				      o->repair ? "repair" : "verify", b, res_ret->u->n,
				      o->repair ? " nor repaired (no copy was left half-made)" : "");
			goto out_unlock;
		}
		sink->backup(sink->ctx, vb);
	}
	bad_manifests(rs, res_ret->u, res_ret);
	hidden_manifests(rs, o, res_ret);
out_unlock:
	hostlock_release(lockfd);
out_free:
	free(vb);
	if (ret)
		verify_result_free(res_ret);
	return ret;
}

void verify_result_free(struct verify_result *res)
{
	union_free(res->u);
	memset(res, 0, sizeof(*res));
}
