// SPDX-License-Identifier: MIT
/*
 * Prune's pending-deletion records (agent/prune_priv.h): one file per
 * backup being deleted, <state_dir>/prune/<host>/<partition>/<id>.json,
 * written before anything is deleted and removed when all is done; and the
 * deletions they drive (manifest, then index; the data object is
 * prune.c's, once nothing references it).  prune.c lists and decides.
 */
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
#include "agent/failover.h"
#include "agent/prune_priv.h"
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
int prune_record_save(const char *state_dir, const char *host, const char *part,
		      const struct prune_record *rec, struct err *err)
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
int prune_record_load(const char *state_dir, const char *host, const char *part,
		      const char *id, struct prune_record *rec, struct err *err)
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
int prune_record_ids(const char *state_dir, const char *host, const char *part,
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

void prune_ids_free(char **ids, size_t n)
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
int prune_delete_objects(struct region *g, const char *host, const char *part,
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

void prune_act(struct prune_backup *b, const char *region, const char *action,
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
void prune_region_failed(struct region *g, const struct err *e)
{
	if (failover_unreachable(e) && !g->primary) {
		g->down = true;
		snprintf(g->down_why, sizeof(g->down_why), "%.500s",
			 err_strip_region(g->name, e->msg));
	}
}

/* Add region name to rec's data regions (once). */
static void record_add_data(struct prune_record *rec, const char *name)
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
size_t prune_record_apply(struct regions *rs, const char *state_dir, const char *host,
			  const char *part, struct prune_record *rec, bool dry,
			  struct prune_backup *b, struct prune_report *rep)
{
	bool manifest_gone[REGIONS_MAX] = { false };
	struct region *g[REGIONS_MAX];
	struct err e = { 0 };
	size_t left = 0;
	int ret;

	if (!rec->n)
		return 0;      /* only data left: prune_data's */
	for (size_t i = 0; i < rec->n; i++)      /* the report in rec's order */
		prune_act(b, rec->region[i], dry ? "would be pending" : "pending", NULL);
	for (size_t i = 0; i < rec->n; i++) {
		g[i] = region_named(rs, rec->region[i]);
		if (!g[i]) {
			log_warn("pending deletion of %s/%s/%s in region %s: no such region in the config any more; dropped",
				 host, part, rec->id, rec->region[i]);
			prune_act(b, rec->region[i], "dropped", "no such region in the config");
			continue;
		}
		if (!g[i]->store || g[i]->down) {
			prune_act(b, rec->region[i], dry ? "would be pending" : "pending", g[i]->down_why);
			continue;
		}
		if (dry) {
			prune_act(b, rec->region[i], "would delete", NULL);
			continue;
		}
		e = (struct err){ 0 };
		ret = prune_delete_objects(g[i], host, part, rec->id, 0, 1, &e);
		if (ret == -EBUSY) {
			/* Object Lock: nothing went; the backup stays listed
			 * and a prune after the lock's end deletes it */
			log_info("region %s: %s/%s/%s stays: %s", g[i]->name, host, part,
				 rec->id, err_strip_region(g[i]->name, e.msg));
			prune_act(b, rec->region[i], "locked",
				  err_strip_region(g[i]->name, e.msg));
			b->locked++;
			g[i] = NULL;   /* out of the record */
			continue;
		}
		if (ret) {
			prune_region_failed(g[i], &e);
			prune_act(b, rec->region[i], "pending", err_strip_region(g[i]->name, e.msg));
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
		ret = prune_delete_objects(g[i], host, part, rec->id, 2, 3, &e);
		if (ret) {
			prune_region_failed(g[i], &e);
			prune_act(b, rec->region[i], "pending",
				  err_strip_region(g[i]->name, e.msg));
			if (ret != -EBUSY)     /* locked: a later prune */
				rep->errors++;
			manifest_gone[i] = false;
			continue;
		}
		prune_act(b, rec->region[i], "deleted", NULL);
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
	if (prune_record_save(state_dir, host, part, rec, &e)) {
		log_error("%s", e.msg);
		rep->errors++;
	}
	return left;
}

/* Pending records of earlier runs for host/part, applied first. */
int prune_apply_pending(struct regions *rs, const char *state_dir, const char *host,
			const char *part, bool dry, struct prune_report *rep)
{
	char **ids;
	size_t n;
	int ret = prune_record_ids(state_dir, host, part, &ids, &n);

	if (ret) {
		log_warn("cannot read the pending deletions in %s/prune/%s/%s: %s",
			 state_dir, host, part, err_str(ret));
		return 0;
	}
	if (n) {
		rep->finished = calloc(n, sizeof(*rep->finished));
		if (!rep->finished) {
			prune_ids_free(ids, n);
			return -ENOMEM;
		}
	}
	for (size_t k = 0; k < n; k++) {
		struct prune_backup *b = &rep->finished[rep->nfinished];
		struct prune_record rec;
		struct err e = { 0 };

		if (prune_record_load(state_dir, host, part, ids[k], &rec, &e)) {
			log_warn("%s; move it away if it is not snapship's", e.msg);
			continue;
		}
		rep->nfinished++;
		snprintf(b->id, sizeof(b->id), "%s", rec.id);
		b->time = catalog_id_time(rec.id);
		b->rule = "pending";
		if (prune_record_apply(rs, state_dir, host, part, &rec, dry, b, rep) && !dry)
			rep->pending++;
	}
	prune_ids_free(ids, n);
	return 0;
}
