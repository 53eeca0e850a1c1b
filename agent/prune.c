// SPDX-License-Identifier: MIT
/*
 * Prune (agent/prune.h): list every region, decide on the union of the
 * listings (retention.h), delete what goes, then the data objects nothing
 * references any more; and the agent's round, whose one listing per region
 * serves every partition.  The pending-deletion records and the deletions
 * they drive are prune_record.c's (prune_priv.h).
 */
#include "agent/prune.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/catalog.h"
#include "agent/config.h"
#include "agent/failover.h"
#include "agent/lock.h"
#include "agent/prune_priv.h"
#include "agent/retention.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

/* ---- listing and deciding ---- */

enum { L_LISTED, L_FAILED, L_PARTIAL };

/* Does list (sorted by id) lack a backup this host committed (known,
 * "<part>/<id>" strings) that is older than its newest one? */
static bool lacks_known(const struct catalog_list *list, char **known, size_t nknown,
			const char *part, char *first, size_t len)
{
	const char *newest = list->n ? list->m[list->n - 1].backup_id : NULL;
	size_t pl = strlen(part);

	for (size_t k = 0; k < nknown; k++) {
		const char *id = known[k] + pl + 1;

		if (strncmp(known[k], part, pl) || known[k][pl] != '/')
			continue;
		if (newest && strcmp(id, newest) >= 0)
			continue;        /* newer: not replicated yet, not a hole */
		if (!catalog_find(list, part, id)) {
			snprintf(first, len, "%s", id);
			return true;
		}
	}
	return false;
}

/* List part in every region of rs into lists[], each one's state into
 * rep->regions and state[]. */
static void list_regions(struct regions *rs, const char *state_dir, const char *host,
			 const char *part, struct catalog_list *lists, int *state,
			 struct prune_report *rep)
{
	char **known = NULL, first[BACKUP_ID_LEN + 1];
	size_t nknown = 0;

	if (geo_state_ids(state_dir, host, part, &known, &nknown))
		nknown = 0;
	for (size_t i = 0; i < rs->n; i++) {
		struct region *g = &rs->v[i];
		struct prune_listing *l = &rep->regions[rep->nregions++];
		struct err e = { 0 };

		snprintf(l->region, sizeof(l->region), "%s", g->name);
		memset(&lists[i], 0, sizeof(lists[i]));
		state[i] = L_FAILED;
		l->status = "failed";
		if (!g->store || g->down) {
			snprintf(l->detail, sizeof(l->detail), "%s", g->down_why);
			rep->errors++;
			continue;
		}
		if (catalog_list(g->store, g->prefix, host, part, &lists[i], &e)) {
			if (e.code == -ECANCELED) {
				/* a stop: nothing is decided (prune_partition) */
				rep->cancelled = true;
				break;
			}
			snprintf(l->detail, sizeof(l->detail), "%s", err_strip_region(g->name, e.msg));
			rep->errors++;
			/* nothing is deleted where the listing failed: its
			 * deletions wait in the records for the next run */
			g->down = true;
			snprintf(g->down_why, sizeof(g->down_why), "its listing failed: %.480s",
				 l->detail);
			continue;
		}
		l->backups = lists[i].n;
		state[i] = L_LISTED;
		l->status = "listed";
		if (lists[i].broken) {
			state[i] = L_PARTIAL;
			snprintf(l->detail, sizeof(l->detail),
				 "%zu manifest(s) could not be read (%.400s); nothing deleted here: run snapship verify and repair",
				 lists[i].broken, lists[i].nbroken_why ? lists[i].broken_why[0] : "");
		} else if (lacks_known(&lists[i], known, nknown, part, first, sizeof(first))) {
			state[i] = L_PARTIAL;
			snprintf(l->detail, sizeof(l->detail),
				 "it does not list %s, which this host committed (%s/geo keeps its state): the listing looks partial, nothing deleted here; snapship verify and repair bring the region back in line",
				 first, state_dir);
		}
		if (state[i] == L_PARTIAL)
			l->status = "partial";
	}
	geo_state_ids_free(known, nknown);
}

/* Is id a pending deletion apply_pending just worked on? (Listed before
 * it ran, a round's listing still shows it: not decided again.) */
static bool finished_id(const struct prune_report *rep, const char *id)
{
	for (size_t k = 0; k < rep->nfinished; k++)
		if (!strcmp(rep->finished[k].id, id))
			return true;
	return false;
}

/* The union of the listings: one prune_backup per id, oldest first, with
 * a bit per region that lists it (in[]). */
static int union_backups(const struct regions *rs, const struct catalog_list *lists,
			 struct prune_report *rep, unsigned **in_ret)
{
	size_t total = 0;
	unsigned *in;

	for (size_t i = 0; i < rs->n; i++)
		total += lists[i].n;
	rep->b = total ? calloc(total, sizeof(*rep->b)) : NULL;
	in = total ? calloc(total, sizeof(*in)) : NULL;
	if (total && (!rep->b || !in)) {
		free(in);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rs->n; i++)
		for (size_t k = 0; k < lists[i].n; k++) {
			const struct manifest *m = &lists[i].m[k];
			size_t j = 0;

			if (finished_id(rep, m->backup_id))
				continue;
			while (j < rep->nb && strcmp(rep->b[j].id, m->backup_id))
				j++;
			if (j == rep->nb) {
				snprintf(rep->b[j].id, sizeof(rep->b[j].id), "%s", m->backup_id);
				rep->b[j].time = m->snap_time_ns > 0 ?
					m->snap_time_ns / 1000000000LL : catalog_id_time(m->backup_id);
				rep->nb++;
			}
			in[j] |= 1u << i;
		}
	*in_ret = in;
	return 0;
}

/* Sort b oldest first, in[] along. */
static void sort_backups(struct prune_report *rep, unsigned *in)
{
	for (size_t a = 1; a < rep->nb; a++)
		for (size_t j = a; j > 0 && strcmp(rep->b[j - 1].id, rep->b[j].id) > 0; j--) {
			struct prune_backup t = rep->b[j];
			unsigned ti = in[j];

			rep->b[j] = rep->b[j - 1];
			rep->b[j - 1] = t;
			in[j] = in[j - 1];
			in[j - 1] = ti;
		}
}

static int decide(const struct config *cfg, const struct cfg_partition *p,
		  struct prune_report *rep)
{
	struct ret_item *items = rep->nb ? calloc(rep->nb, sizeof(*items)) : NULL;
	struct ret_policy pol;

	if (rep->nb && !items)
		return -ENOMEM;
	ret_policy_of(cfg, p, &pol);
	for (size_t j = 0; j < rep->nb; j++)
		items[j] = (struct ret_item){ .id = rep->b[j].id, .time = rep->b[j].time };
	ret_decide(&pol, items, rep->nb, util_now_unix_ns() / 1000000000LL);
	for (size_t j = 0; j < rep->nb; j++) {
		rep->b[j].keep = items[j].keep;
		rep->b[j].rule = items[j].rule;
	}
	free(items);
	return 0;
}

/* Delete backup b (listed by the regions of bits in) where it can. */
static void prune_one(struct regions *rs, const char *state_dir, const char *host,
		      const char *part, const int *state, unsigned in, bool dry,
		      struct prune_backup *b, struct prune_report *rep)
{
	struct prune_record rec = { .decided = util_now_unix_ns() / 1000000000LL };
	struct err e = { 0 };
	size_t n0;
	int lockfd;

	lockfd = readlock_exclusive(state_dir, host, part, b->id, &e);
	if (lockfd == -EBUSY) {
		snprintf(b->note, sizeof(b->note), "skipped: %.280s", e.msg);
		b->keep = true;
		rep->skipped++;
		log_warn("%s/%s: not deleting %s now: %s", host, part, b->id, e.msg);
		return;
	}
	/* a state dir without reading locks (not writable): no restore here
	 * can hold one either */
	snprintf(rec.id, sizeof(rec.id), "%s", b->id);
	snprintf(rec.rule, sizeof(rec.rule), "%s", b->rule);
	for (size_t i = 0; i < rs->n; i++) {
		if (state[i] == L_PARTIAL && (in & (1u << i)))
			prune_act(b, rs->v[i].name, "kept", "the region's listing looks partial");
		else if (state[i] == L_FAILED || (in & (1u << i))) {
			snprintf(rec.region[rec.n++], sizeof(rec.region[0]), "%s", rs->v[i].name);
			prune_act(b, rs->v[i].name, "pending", NULL);  /* in rs's order */
		}
	}
	if (!rec.n) {
		/* only partial listings hold it: the next run decides again */
		snprintf(b->note, sizeof(b->note),
			 "skipped: only regions whose listing looks partial hold it");
		b->keep = true;
		rep->skipped++;
		readlock_release(lockfd, state_dir, host, part, b->id, false);
		return;
	}
	if (!dry) {
		e = (struct err){ 0 };
		if (prune_record_save(state_dir, host, part, &rec, &e)) {
			/* without the record a crash could leave it half done
			 * and unknown: delete nothing */
			snprintf(b->note, sizeof(b->note), "not deleted: %.280s", e.msg);
			b->keep = true;
			rep->errors++;
			readlock_release(lockfd, state_dir, host, part, b->id, false);
			return;
		}
		geo_state_remove(state_dir, host, part, b->id);
	}
	n0 = rec.n;
	if (prune_record_apply(rs, state_dir, host, part, &rec, dry, b, rep) && !dry)
		rep->pending++;
	if (b->locked)
		rep->locked++;
	if (b->locked < n0)     /* some region deleted it (or will) */
		rep->deleted++;
	readlock_release(lockfd, state_dir, host, part, b->id, !dry);
}

/* ---- data objects and references ---- */

/* The backup of id this prune deleted (or would) or finished, if any. */
static struct prune_backup *gone_backup(struct prune_report *rep, const char *id)
{
	for (size_t j = 0; j < rep->nb; j++)
		if (!rep->b[j].keep && !strcmp(rep->b[j].id, id))
			return &rep->b[j];
	for (size_t k = 0; k < rep->nfinished; k++)
		if (!strcmp(rep->finished[k].id, id))
			return &rep->finished[k];
	return NULL;
}

/* The references of every manifest listed (in any region) that stays. */
static int refs_of_listings(const struct regions *rs, const struct catalog_list *lists,
			    const int *state, struct prune_report *rep,
			    struct catalog_refs *refs)
{
	for (size_t i = 0; i < rs->n; i++)
		for (size_t k = 0; state[i] != L_FAILED && k < lists[i].n; k++) {
			const struct manifest *m = &lists[i].m[k];

			if (m->nrefs && !gone_backup(rep, m->backup_id) &&
			    catalog_refs_add(refs, m))
				return -ENOMEM;
		}
	return 0;
}

static const char *action_of(const struct prune_backup *b, const char *region)
{
	for (size_t i = 0; b && i < b->nr; i++)
		if (!strcmp(b->r[i].region, region))
			return b->r[i].action;
	return NULL;
}

/*
 * The data object of id in the region named, whose manifest and index are
 * gone: deleted (dry run: would be) when the region was listed whole and no
 * manifest listed in any region references it.  b (may be NULL) says what
 * happened.  true when it is gone (or would be) or the region is no longer
 * configured.
 */
static bool data_one(struct regions *rs, const int *state, struct catalog_refs *refs,
		     const char *host, const char *part, const char *id, const char *name,
		     bool dry, struct prune_backup *b, struct prune_report *rep)
{
	const char *cur = action_of(b, name);
	char by[300], detail[400];
	struct err e = { 0 };
	size_t i = 0;

	while (i < rs->n && strcmp(rs->v[i].name, name))
		i++;
	if (i == rs->n) {
		if (b)
			prune_act(b, name, "dropped", "no such region in the config");
		return true;
	}
	detail[0] = '\0';
	if (!rs->v[i].store || rs->v[i].down)
		snprintf(detail, sizeof(detail), "data kept: %.380s", rs->v[i].down_why);
	else if (state[i] != L_LISTED)
		snprintf(detail, sizeof(detail),
			 "data kept: the region's listing looks partial, its references are not known");
	else if (catalog_refs_users(refs, part, id, NULL))
		snprintf(detail, sizeof(detail), "data kept: referenced by %s",
			 catalog_refs_by(refs, part, id, by, sizeof(by)));
	else if (!dry && prune_delete_objects(&rs->v[i], host, part, id, 1, 2, &e) == -EBUSY)
		snprintf(detail, sizeof(detail), "data kept: %.380s",   /* Object Lock */
			 err_strip_region(rs->v[i].name, e.msg));
	else if (e.code) {
		prune_region_failed(&rs->v[i], &e);
		snprintf(detail, sizeof(detail), "data: %.390s",
			 err_strip_region(rs->v[i].name, e.msg));
		rep->errors++;
		if (b)
			prune_act(b, name, "pending", detail);
		return false;
	}
	if (detail[0]) {
		/* "deleted (data kept: why)"; only the data left: "data kept (why)" */
		if (b)
			prune_act(b, name, cur ? cur : "data kept",
				  cur ? detail : detail + strlen("data kept: "));
		return false;
	}
	if (b)
		prune_act(b, name, cur ? cur : dry ? "would delete" : "deleted", NULL);
	return true;
}

/*
 * The second half of every deletion: the data objects of deleted backups
 * (the records' data regions; dry run, also what would be deleted now),
 * each deleted once no manifest listed references it.  A record whose
 * data regions are all done goes.
 */
static void prune_data(struct regions *rs, const char *state_dir, const char *host,
		       const char *part, const struct catalog_list *lists, const int *state,
		       bool dry, struct prune_report *rep)
{
	struct catalog_refs refs = { 0 };
	char **ids = NULL;
	size_t n = 0;

	if (refs_of_listings(rs, lists, state, rep, &refs)) {
		log_error("%s/%s: out of memory; the data of deleted backups stays for the next prune",
			  host, part);
		goto out;
	}
	if (prune_record_ids(state_dir, host, part, &ids, &n))
		n = 0;
	for (size_t k = 0; k < n; k++) {
		struct prune_backup *b = gone_backup(rep, ids[k]);
		struct prune_record rec;
		struct err e = { 0 };
		size_t left = 0;

		if (prune_record_load(state_dir, host, part, ids[k], &rec, &e) || !rec.ndata)
			continue;
		for (size_t d = 0; d < rec.ndata; d++)
			if (!data_one(rs, state, &refs, host, part, rec.id, rec.data[d], dry, b, rep))
				memmove(rec.data[left++], rec.data[d], sizeof(rec.data[0]));
		if (dry || left == rec.ndata)
			continue;
		rec.ndata = left;
		if (prune_record_save(state_dir, host, part, &rec, &e)) {
			log_error("%s", e.msg);
			rep->errors++;
		}
	}
	for (size_t j = 0; dry && j < rep->nb + rep->nfinished; j++) {
		struct prune_backup *b = j < rep->nb ? &rep->b[j] : &rep->finished[j - rep->nb];

		for (size_t i = 0; !(j < rep->nb && b->keep) && i < b->nr; i++)
			if (!strcmp(b->r[i].action, "would delete"))
				data_one(rs, state, &refs, host, part, b->id, b->r[i].region, dry,
					 b, rep);
	}
out:
	prune_ids_free(ids, n);
	catalog_refs_free(&refs);
}

/* The backup directories the deletions emptied (directory stores). */
static void remove_empty_dirs(struct regions *rs, const char *host)
{
	for (size_t i = 0; i < rs->n; i++) {
		struct err e = { 0 };
		unsigned n = 0;

		if (!rs->v[i].store || rs->v[i].down)
			continue;
		if (catalog_remove_empty_dirs(rs->v[i].store, rs->v[i].prefix, host, &n, &e))
			log_warn("region %s: %s", rs->v[i].name,
				 err_strip_region(rs->v[i].name, e.msg));
	}
}

/* Decide and delete from the listings (state[] of each region of rs; a
 * failed one is down in rs): the second half of a prune. */
static int decide_and_delete(const struct config *cfg, const char *host,
			     const struct cfg_partition *p, const struct prune_opts *o,
			     struct regions *rs, const struct catalog_list *lists,
			     const int *state, struct prune_report *rep, struct err *err)
{
	unsigned *in = NULL;
	size_t listed = 0;
	int ret;

	for (size_t i = 0; i < rs->n; i++)
		listed += state[i] != L_FAILED;
	if (!listed)
		return err_set(err, -EIO, "%s/%s: no region could be listed (%s: %s); nothing pruned",
			       host, p->name, rep->regions[0].region, rep->regions[0].detail);
	ret = union_backups(rs, lists, rep, &in);
	if (!ret) {
		sort_backups(rep, in);
		ret = decide(cfg, p, rep);
	}
	if (ret) {
		free(in);
		return err_set(err, ret, "out of memory");
	}
	for (size_t j = 0; j < rep->nb; j++) {
		if (rep->b[j].keep) {
			rep->kept++;
			continue;
		}
		prune_one(rs, cfg->state_dir, host, p->name, state, in[j], o->dry_run,
			  &rep->b[j], rep);
		if (rep->b[j].keep)
			rep->kept++;
	}
	prune_data(rs, cfg->state_dir, host, p->name, lists, state, o->dry_run, rep);
	if (!o->dry_run && (rep->deleted || rep->nfinished))
		remove_empty_dirs(rs, host);
	free(in);
	return 0;
}

int prune_partition(const struct config *cfg, const char *host, const struct cfg_partition *p,
		    const struct prune_opts *o, struct prune_report *rep_ret, struct err *err)
{
	struct catalog_list lists[REGIONS_MAX];
	int state[REGIONS_MAX];
	struct prune_report *rep = rep_ret;
	struct regions rs;
	int ret;

	memset(rep, 0, sizeof(*rep));
	memset(lists, 0, sizeof(lists));   /* a cancelled listing leaves some unfilled */
	snprintf(rep->partition, sizeof(rep->partition), "%s", p->name);
	rep->dry_run = o->dry_run;
	ret = geo_regions_open(cfg, NULL, NULL, NULL, false, &rs, err);
	if (ret)
		return ret;
	ret = prune_apply_pending(&rs, cfg->state_dir, host, p->name, o->dry_run, rep);
	if (ret) {
		err_set(err, ret, "out of memory");
		goto out_regions;
	}
	list_regions(&rs, cfg->state_dir, host, p->name, lists, state, rep);
	if (rep->cancelled)
		ret = err_set(err, -ECANCELED, "%s/%s: a listing was cancelled; nothing pruned",
			      host, p->name);
	else
		ret = decide_and_delete(cfg, host, p, o, &rs, lists, state, rep, err);
	for (size_t i = 0; i < rs.n; i++)
		catalog_list_free(&lists[i]);
out_regions:
	geo_regions_free(&rs);
	return ret;
}

/* ---- a round's listings (the agent) ---- */

/* catalog_list's order: partition, then id */
static int cmp_part_id(const void *a, const void *b)
{
	const struct manifest *x = a, *y = b;
	int c = strcmp(x->partition, y->partition);

	return c ? c : strcmp(x->backup_id, y->backup_id);
}

int prune_round_list(struct prune_round *pr, struct regions *rs, const char *host,
		     struct err *err)
{
	size_t listed = 0;
	struct err first = { 0 };

	memset(pr, 0, sizeof(*pr));
	pr->rs = rs;
	for (size_t i = 0; i < rs->n; i++) {
		struct region *g = &rs->v[i];
		struct err e = { 0 };

		if (!g->store || g->down) {
			snprintf(pr->why[i], sizeof(pr->why[i]), "%s", g->down_why);
			continue;
		}
		if (catalog_list(g->store, g->prefix, host, NULL, &pr->lists[i], &e)) {
			if (e.code == -ECANCELED) {
				prune_round_free(pr);
				return err_set(err, -ECANCELED, "listing the backups of %s: cancelled",
					       host);
			}
			snprintf(pr->why[i], sizeof(pr->why[i]), "%s", err_strip_region(g->name, e.msg));
			if (!first.code)
				first = e;
			/* a secondary that does not answer is not asked again */
			if (!g->primary && failover_unreachable(&e)) {
				g->down = true;
				snprintf(g->down_why, sizeof(g->down_why), "%.500s", pr->why[i]);
			}
			continue;
		}
		pr->listed[i] = true;
		listed++;
	}
	if (!listed) {
		prune_round_free(pr);
		if (first.code) {
			*err = first;
			return first.code;
		}
		return err_set(err, -EIO, "no region could be listed");
	}
	return 0;
}

void prune_round_free(struct prune_round *pr)
{
	for (size_t i = 0; i < REGIONS_MAX; i++)
		catalog_list_free(&pr->lists[i]);
	memset(pr->listed, 0, sizeof(pr->listed));
}

int prune_round_add(struct prune_round *pr, size_t region, const struct manifest *m,
		    struct err *err)
{
	struct catalog_list *l = &pr->lists[region];
	struct manifest *n;
	char *json = NULL;
	int ret;

	if (region >= REGIONS_MAX || !pr->listed[region])
		return 0;
	n = realloc(l->m, (l->n + 1) * sizeof(*n));
	if (!n)
		return err_set(err, -ENOMEM, "out of memory");
	l->m = n;
	/* a deep copy through its JSON */
	ret = manifest_to_json(m, &json, err);
	if (!ret)
		ret = manifest_from_json(json, strlen(json), &l->m[l->n], err);
	free(json);
	if (ret)
		return ret;
	l->n++;
	qsort(l->m, l->n, sizeof(*l->m), cmp_part_id);
	return 0;
}

/* Drop id of part from every listing of the round (it was deleted). */
static void round_forget(struct prune_round *pr, const char *part, const char *id)
{
	for (size_t i = 0; i < REGIONS_MAX; i++) {
		struct catalog_list *l = &pr->lists[i];

		for (size_t k = 0; k < l->n; k++) {
			if (strcmp(l->m[k].partition, part) || strcmp(l->m[k].backup_id, id))
				continue;
			manifest_clear(&l->m[k]);
			memmove(&l->m[k], &l->m[k + 1], (l->n - k - 1) * sizeof(*l->m));
			l->n--;
			break;
		}
	}
}

/* Region i's listing of part in pr as a view (no copy: never freed) and
 * its state, said in rep. */
static void round_view(struct prune_round *pr, size_t i, const char *state_dir,
		       const char *part, char **known, size_t nknown,
		       struct catalog_list *view, int *state, struct prune_report *rep)
{
	const struct catalog_list *l = &pr->lists[i];
	struct prune_listing *pl = &rep->regions[rep->nregions++];
	char first[BACKUP_ID_LEN + 1];
	size_t k = 0;

	memset(view, 0, sizeof(*view));
	snprintf(pl->region, sizeof(pl->region), "%s", pr->rs->v[i].name);
	if (!pr->listed[i]) {
		*state = L_FAILED;
		pl->status = "failed";
		snprintf(pl->detail, sizeof(pl->detail), "%s", pr->why[i]);
		rep->errors++;
		return;
	}
	while (k < l->n && strcmp(l->m[k].partition, part) < 0)
		k++;
	view->m = l->m + k;
	while (k < l->n && !strcmp(l->m[k].partition, part)) {
		k++;
		view->n++;
	}
	pl->backups = view->n;
	*state = L_LISTED;
	pl->status = "listed";
	if (l->broken) {
		/* the host's listing: any broken manifest holds every partition */
		*state = L_PARTIAL;
		snprintf(pl->detail, sizeof(pl->detail),
			 "%zu manifest(s) could not be read (%.400s); nothing deleted here: run snapship verify and repair",
			 l->broken, l->nbroken_why ? l->broken_why[0] : "");
	} else if (lacks_known(view, known, nknown, part, first, sizeof(first))) {
		*state = L_PARTIAL;
		snprintf(pl->detail, sizeof(pl->detail),
			 "it does not list %s, which this host committed (%s/geo keeps its state): the listing looks partial, nothing deleted here; snapship verify and repair bring the region back in line",
			 first, state_dir);
	}
	if (*state == L_PARTIAL)
		pl->status = "partial";
}

int prune_partition_round(const struct config *cfg, const char *host,
			  const struct cfg_partition *p, const struct prune_opts *o,
			  struct prune_round *pr, struct prune_report *rep_ret, struct err *err)
{
	struct catalog_list views[REGIONS_MAX];
	int state[REGIONS_MAX];
	struct prune_report *rep = rep_ret;
	/* the round's regions, with this prune's marks (a failed listing, a
	 * failed deletion: down) kept here */
	struct regions rs = *pr->rs;
	char **known = NULL;
	size_t nknown = 0;
	int ret;

	memset(rep, 0, sizeof(*rep));
	snprintf(rep->partition, sizeof(rep->partition), "%s", p->name);
	rep->dry_run = o->dry_run;
	ret = prune_apply_pending(&rs, cfg->state_dir, host, p->name, o->dry_run, rep);
	if (ret)
		return err_set(err, ret, "out of memory");
	if (geo_state_ids(cfg->state_dir, host, p->name, &known, &nknown))
		nknown = 0;
	for (size_t i = 0; i < rs.n; i++) {
		round_view(pr, i, cfg->state_dir, p->name, known, nknown, &views[i],
			   &state[i], rep);
		if (state[i] == L_FAILED && !rs.v[i].down) {
			/* nothing is deleted where the listing failed */
			rs.v[i].down = true;
			snprintf(rs.v[i].down_why, sizeof(rs.v[i].down_why),
				 "its listing failed: %.480s", pr->why[i]);
		}
	}
	geo_state_ids_free(known, nknown);
	ret = decide_and_delete(cfg, host, p, o, &rs, views, state, rep, err);
	/* what went (or is pending) is not in the round's listings any more */
	for (size_t j = 0; !ret && !o->dry_run && j < rep->nb; j++)
		if (!rep->b[j].keep)
			round_forget(pr, p->name, rep->b[j].id);
	for (size_t k = 0; !o->dry_run && k < rep->nfinished; k++)
		round_forget(pr, p->name, rep->finished[k].id);
	return ret;
}

void prune_report_clear(struct prune_report *rep)
{
	if (!rep)
		return;
	free(rep->b);
	free(rep->finished);
	memset(rep, 0, sizeof(*rep));
}
