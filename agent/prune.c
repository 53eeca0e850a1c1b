// SPDX-License-Identifier: MIT
#include "agent/prune.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/catalog.h"
#include "agent/config.h"
#include "agent/failover.h"
#include "agent/lock.h"
#include "agent/retention.h"
#include "common/err.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "uploader/store.h"

/* The objects of a backup: the manifest goes first, then the index, the
 * data object last, once no listed manifest references it (prune_data). */
static const char *const obj_names[3] = {
	"manifest.json", "data.tar.zst", "index.jsonl.zst",
};

/* ---- pending-deletion records ---- */

/* One backup's deletions still to do, per region: region[] its manifest
 * and index (then its data), data[] only its data object, which stays
 * while a listed manifest references it. */
struct record {
	char id[BACKUP_ID_LEN + 1];
	char rule[32];
	int64_t decided;                /* unix s */
	char region[REGIONS_MAX][65];
	size_t n;
	char data[REGIONS_MAX][65];
	size_t ndata;
};

static int record_dir(const char *state_dir, const char *host, const char *part,
		      char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/prune/%s/%s", state_dir, host, part) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static int record_path(const char *state_dir, const char *host, const char *part,
		       const char *id, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/prune/%s/%s/%s.json", state_dir, host, part,
			     id) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Write rec atomically (tmp, fsync, rename); no regions left: remove it. */
static int record_save(const char *state_dir, const char *host, const char *part,
		       const struct record *rec, struct err *err)
{
	char dir[4096], path[4200], tmp[4300];
	json_t *o, *regions, *data;
	char *s = NULL;
	int fd = -1, ret;

	ret = record_dir(state_dir, host, part, dir, sizeof(dir));
	if (!ret)
		ret = record_path(state_dir, host, part, rec->id, path, sizeof(path));
	if (ret)
		return err_set(err, ret, "state directory path too long: %s", state_dir);
	if (!rec->n && !rec->ndata) {
		if (unlink(path) && errno != ENOENT)
			return err_set(err, -errno, "cannot remove %s: %s", path, strerror(errno));
		return 0;
	}
	ret = util_mkdir_p(dir, 0700);
	if (ret)
		return err_set(err, ret, "cannot create %s: %s", dir, err_str(ret));
	regions = json_array();
	for (size_t i = 0; i < rec->n; i++)
		json_array_append_new(regions, json_string(rec->region[i]));
	data = json_array();
	for (size_t i = 0; i < rec->ndata; i++)
		json_array_append_new(data, json_string(rec->data[i]));
	o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:o}", "host", host, "partition", part,
		      "backup_id", rec->id, "rule", rec->rule, "decided",
		      (json_int_t)rec->decided, "regions", regions, "data", data);
	s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (!s)
		return err_set(err, -ENOMEM, "out of memory");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || util_write_all(fd, s, strlen(s)) || fsync(fd) || rename(tmp, path)) {
		ret = err_set(err, -errno, "cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
	}
	if (fd >= 0)
		close(fd);
	free(s);
	return ret;
}

/* Region names of a record's array a (NULL: none) into v[], *n. */
static bool record_names(json_t *a, char (*v)[65], size_t *n)
{
	if (!a)
		return true;
	if (!json_is_array(a) || json_array_size(a) > REGIONS_MAX)
		return false;
	for (size_t i = 0; i < json_array_size(a); i++) {
		const char *name = json_string_value(json_array_get(a, i));

		if (!name || !util_name_ok(name))
			return false;
		snprintf(v[(*n)++], sizeof(v[0]), "%s", name);
	}
	return true;
}

/* Read the record of id (a backup id, as a file name told). */
static int record_load(const char *state_dir, const char *host, const char *part,
		       const char *id, struct record *rec, struct err *err)
{
	char path[4200];
	json_error_t je;
	json_t *o, *regions, *data = NULL;
	const char *rule = NULL;
	json_int_t decided = 0;
	int ret;

	memset(rec, 0, sizeof(*rec));
	ret = record_path(state_dir, host, part, id, path, sizeof(path));
	if (ret)
		return err_set(err, ret, "state directory path too long: %s", state_dir);
	o = json_load_file(path, 0, &je);
	if (!o)
		return err_set(err, -EBADMSG, "%s: %s", path, je.text);
	/* "data" is optional: records of earlier releases have none */
	if (json_unpack_ex(o, &je, 0, "{s:s, s:I, s:o, s?o}", "rule", &rule, "decided",
			   &decided, "regions", &regions, "data", &data) ||
	    !json_is_array(regions)) {
		json_decref(o);
		return err_set(err, -EBADMSG, "%s: not a pending-deletion record", path);
	}
	snprintf(rec->id, sizeof(rec->id), "%s", id);
	snprintf(rec->rule, sizeof(rec->rule), "%s", rule);
	rec->decided = decided;
	if (!record_names(regions, rec->region, &rec->n) ||
	    !record_names(data, rec->data, &rec->ndata)) {
		json_decref(o);
		return err_set(err, -EBADMSG, "%s: a region that is not a name", path);
	}
	json_decref(o);
	return 0;
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ids of the records of host/part, sorted, into *ids_ret (free each
 * and the array); 0 when there are none. */
static int record_ids(const char *state_dir, const char *host, const char *part,
		      char ***ids_ret, size_t *n_ret)
{
	char dir[4096];
	struct dirent *de;
	char **ids = NULL;
	size_t n = 0;
	DIR *d;

	*ids_ret = NULL;
	*n_ret = 0;
	if (record_dir(state_dir, host, part, dir, sizeof(dir)))
		return -ENAMETOOLONG;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char id[BACKUP_ID_LEN + 1], **nv;

		if (len != BACKUP_ID_LEN + 5 || strcmp(de->d_name + BACKUP_ID_LEN, ".json"))
			continue;
		memcpy(id, de->d_name, BACKUP_ID_LEN);
		id[BACKUP_ID_LEN] = '\0';
		if (catalog_id_time(id) < 0)
			continue;
		nv = realloc(ids, (n + 1) * sizeof(*nv));
		if (!nv || !(nv[n] = strdup(id))) {
			ids = nv ? nv : ids;
			break;
		}
		ids = nv;
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(ids, n, sizeof(*ids), cmp_str_ptr);
	*ids_ret = ids;
	*n_ret = n;
	return 0;
}

static void ids_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

/* ---- deleting ---- */

static struct region *region_named(struct regions *rs, const char *name)
{
	for (size_t i = 0; i < rs->n; i++)
		if (!strcmp(rs->v[i].name, name))
			return &rs->v[i];
	return NULL;
}

/* Delete objects [from, to) of obj_names of host/part/id in g. */
static int delete_objects(struct region *g, const char *host, const char *part,
			  const char *id, int from, int to, struct err *err)
{
	char *keys[3] = { NULL, NULL, NULL };
	int ret = 0;

	for (int k = from; k < to && !ret; k++) {
		keys[k] = catalog_key(g->prefix, host, part, id, obj_names[k]);
		if (!keys[k])
			ret = err_set(err, -ENOMEM, "out of memory");
	}
	if (!ret)
		ret = store_delete(g->store, (const char *const *)keys + from,
				   (size_t)(to - from), err);
	for (int k = 0; k < 3; k++)
		free(keys[k]);
	return ret;
}

static void act(struct prune_backup *b, const char *region, const char *action,
		const char *detail)
{
	struct prune_action *a = NULL;

	for (size_t i = 0; i < b->nr && !a; i++)
		if (!strcmp(b->r[i].region, region))
			a = &b->r[i];
	if (!a && b->nr < REGIONS_MAX) {
		a = &b->r[b->nr++];
		snprintf(a->region, sizeof(a->region), "%s", region);
	}
	if (!a)
		return;
	a->action = action;
	snprintf(a->detail, sizeof(a->detail), "%s", detail ? detail : "");
}

/* A region's store failed: unreachable ones are down for the rest of run. */
static void region_failed(struct region *g, const struct err *e)
{
	if (failover_unreachable(e) && !g->primary) {
		g->down = true;
		snprintf(g->down_why, sizeof(g->down_why), "%.500s",
			 err_strip_region(g->name, e->msg));
	}
}

/* Add region name to rec's data regions (once). */
static void record_add_data(struct record *rec, const char *name)
{
	for (size_t i = 0; i < rec->ndata; i++)
		if (!strcmp(rec->data[i], name))
			return;
	if (rec->ndata < REGIONS_MAX)
		snprintf(rec->data[rec->ndata++], sizeof(rec->data[0]), "%s", name);
}

/*
 * Do what rec says: in each of its regions the manifest, then (where that
 * went) the index; a region done leaves rec's regions for its data regions
 * (prune_data deletes the data object once nothing references it); the
 * record is saved.  Actions into b.  Returns the regions left.
 */
static size_t record_apply(struct regions *rs, const char *state_dir, const char *host,
			   const char *part, struct record *rec, bool dry,
			   struct prune_backup *b, struct prune_report *rep)
{
	bool manifest_gone[REGIONS_MAX] = { false };
	struct region *g[REGIONS_MAX];
	struct err e = { 0 };
	size_t left = 0;

	if (!rec->n)
		return 0;      /* only data left: prune_data's */
	for (size_t i = 0; i < rec->n; i++)      /* the report in rec's order */
		act(b, rec->region[i], dry ? "would be pending" : "pending", NULL);
	for (size_t i = 0; i < rec->n; i++) {
		g[i] = region_named(rs, rec->region[i]);
		if (!g[i]) {
			log_warn("pending deletion of %s/%s/%s in region %s: no such region in the config any more; dropped",
				 host, part, rec->id, rec->region[i]);
			act(b, rec->region[i], "dropped", "no such region in the config");
			continue;
		}
		if (!g[i]->store || g[i]->down) {
			act(b, rec->region[i], dry ? "would be pending" : "pending", g[i]->down_why);
			continue;
		}
		if (dry) {
			act(b, rec->region[i], "would delete", NULL);
			continue;
		}
		e = (struct err){ 0 };
		if (delete_objects(g[i], host, part, rec->id, 0, 1, &e)) {
			region_failed(g[i], &e);
			act(b, rec->region[i], "pending", err_strip_region(g[i]->name, e.msg));
			rep->errors++;
			continue;
		}
		manifest_gone[i] = true;
	}
	/* tests: a crash (kill -9) between the manifests and the objects */
	if (!dry && fault_hit("prune.crash", NULL))
		raise(SIGKILL);
	/* every manifest first: the backup is gone from list before any of
	 * its objects is */
	for (size_t i = 0; i < rec->n && !dry; i++) {
		if (!manifest_gone[i])
			continue;
		e = (struct err){ 0 };
		if (delete_objects(g[i], host, part, rec->id, 2, 3, &e)) {
			region_failed(g[i], &e);
			act(b, rec->region[i], "pending",
			    err_strip_region(g[i]->name, e.msg));
			rep->errors++;
			manifest_gone[i] = false;
			continue;
		}
		act(b, rec->region[i], "deleted", NULL);
		record_add_data(rec, rec->region[i]);
		g[i] = NULL;           /* done */
	}
	if (dry)
		return rec->n;
	for (size_t i = 0; i < rec->n; i++)
		if (g[i])
			memmove(rec->region[left++], rec->region[i], sizeof(rec->region[0]));
	rec->n = left;
	e = (struct err){ 0 };
	if (record_save(state_dir, host, part, rec, &e)) {
		log_error("%s", e.msg);
		rep->errors++;
	}
	return left;
}

/* Pending records of earlier runs for host/part, applied first. */
static int apply_pending(struct regions *rs, const char *state_dir, const char *host,
			 const char *part, bool dry, struct prune_report *rep)
{
	char **ids;
	size_t n;
	int ret = record_ids(state_dir, host, part, &ids, &n);

	if (ret) {
		log_warn("cannot read the pending deletions in %s/prune/%s/%s: %s",
			 state_dir, host, part, err_str(ret));
		return 0;
	}
	if (n) {
		rep->finished = calloc(n, sizeof(*rep->finished));
		if (!rep->finished) {
			ids_free(ids, n);
			return -ENOMEM;
		}
	}
	for (size_t k = 0; k < n; k++) {
		struct prune_backup *b = &rep->finished[rep->nfinished];
		struct record rec;
		struct err e = { 0 };

		if (record_load(state_dir, host, part, ids[k], &rec, &e)) {
			log_warn("%s; move it away if it is not snapship's", e.msg);
			continue;
		}
		rep->nfinished++;
		snprintf(b->id, sizeof(b->id), "%s", rec.id);
		b->time = catalog_id_time(rec.id);
		b->rule = "pending";
		if (record_apply(rs, state_dir, host, part, &rec, dry, b, rep) && !dry)
			rep->pending++;
	}
	ids_free(ids, n);
	return 0;
}

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
	struct record rec = { .decided = util_now_unix_ns() / 1000000000LL };
	struct err e = { 0 };
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
			act(b, rs->v[i].name, "kept", "the region's listing looks partial");
		else if (state[i] == L_FAILED || (in & (1u << i))) {
			snprintf(rec.region[rec.n++], sizeof(rec.region[0]), "%s", rs->v[i].name);
			act(b, rs->v[i].name, "pending", NULL);  /* in rs's order */
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
		if (record_save(state_dir, host, part, &rec, &e)) {
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
	if (record_apply(rs, state_dir, host, part, &rec, dry, b, rep) && !dry)
		rep->pending++;
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
			act(b, name, "dropped", "no such region in the config");
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
	else if (!dry && delete_objects(&rs->v[i], host, part, id, 1, 2, &e)) {
		region_failed(&rs->v[i], &e);
		snprintf(detail, sizeof(detail), "data: %.390s",
			 err_strip_region(rs->v[i].name, e.msg));
		rep->errors++;
		if (b)
			act(b, name, "pending", detail);
		return false;
	}
	if (detail[0]) {
		/* "deleted (data kept: why)"; only the data left: "data kept (why)" */
		if (b)
			act(b, name, cur ? cur : "data kept",
			    cur ? detail : detail + strlen("data kept: "));
		return false;
	}
	if (b)
		act(b, name, cur ? cur : dry ? "would delete" : "deleted", NULL);
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
	if (record_ids(state_dir, host, part, &ids, &n))
		n = 0;
	for (size_t k = 0; k < n; k++) {
		struct prune_backup *b = gone_backup(rep, ids[k]);
		struct record rec;
		struct err e = { 0 };
		size_t left = 0;

		if (record_load(state_dir, host, part, ids[k], &rec, &e) || !rec.ndata)
			continue;
		for (size_t d = 0; d < rec.ndata; d++)
			if (!data_one(rs, state, &refs, host, part, rec.id, rec.data[d], dry, b, rep))
				memmove(rec.data[left++], rec.data[d], sizeof(rec.data[0]));
		if (dry || left == rec.ndata)
			continue;
		rec.ndata = left;
		if (record_save(state_dir, host, part, &rec, &e)) {
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
	ids_free(ids, n);
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
	ret = apply_pending(&rs, cfg->state_dir, host, p->name, o->dry_run, rep);
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
	ret = apply_pending(&rs, cfg->state_dir, host, p->name, o->dry_run, rep);
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
