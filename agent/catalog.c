// SPDX-License-Identifier: MIT
/*
 * Backups in a store (agent/catalog.h): ids and keys, loading and listing
 * manifests, finding a backup (catalog_find, catalog_at), who references
 * whom (catalog_refs), and the walks that clean up (orphans, empty
 * directories) or list hosts.  Lists, refs and hosts are owned by the
 * caller and freed by their *_free().  Manifests as JSON are in
 * catalog_manifest.c.
 */
#include "agent/catalog.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "uploader/store.h"

#define MANIFEST_MAX (1u << 20)

int catalog_new_id(int64_t t, char out[BACKUP_ID_LEN + 1], struct err *err)
{
	time_t tt = (time_t)t;
	struct tm tm;
	unsigned char rnd[3];
	char hex[7];
	int ret;

	if (!gmtime_r(&tt, &tm))
		return err_set(err, -EINVAL, "bad time");
	ret = util_random(rnd, sizeof(rnd));
	if (ret)
		return err_set(err, ret, "getrandom failed: %s", err_str(ret));
	util_hex(rnd, sizeof(rnd), hex);
	if (tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1970)
		return err_set(err, -EINVAL, "clock is out of range");
	strftime(out, BACKUP_ID_LEN + 1, "%Y%m%dT%H%M%SZ-", &tm);
	memcpy(out + 17, hex, 7);
	return 0;
}

int64_t catalog_id_time(const char *id)
{
	/* exactly "YYYYMMDDTHHMMSSZ-xxxxxx": digits where digits go (strptime
	 * alone would take spaces and signs), lower-case hex at the end */
	static const char shape[] = "ddddddddTddddddZ-hhhhhh";
	struct tm tm = { 0 };
	const char *end;

	if (!id || strlen(id) != BACKUP_ID_LEN)
		return -1;
	for (int i = 0; i < BACKUP_ID_LEN; i++) {
		char c = id[i];

		if (shape[i] == 'd' ? !(c >= '0' && c <= '9') :
		    shape[i] == 'h' ? !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) :
		    c != shape[i])
			return -1;
	}
	end = strptime(id, "%Y%m%dT%H%M%SZ", &tm);
	if (end != id + 16)
		return -1;
	return (int64_t)timegm(&tm);
}

char *catalog_key(const char *prefix, const char *host, const char *partition,
		  const char *id, const char *name)
{
	char *s;

	if (asprintf(&s, "%s%s/%s/%s/%s", prefix ? prefix : "", host, partition,
		     id, name) < 0)
		return NULL;
	return s;
}

/*
 * Read the manifest at key, which names backup host/partition/id (names
 * already checked): the manifest must say the same.
 */
static int load_key(struct store *store, const char *key, const char *host,
		    const char *partition, const char *id, struct manifest *m,
		    struct err *err)
{
	void *buf = NULL;
	size_t len = 0;
	int ret;

	ret = store_get_all(store, key, MANIFEST_MAX, &buf, &len, err);
	if (ret)
		return ret;
	ret = manifest_from_json(buf, len, m, err);
	free(buf);
	if (!ret && (strcmp(m->host, host) || strcmp(m->partition, partition) ||
		     strcmp(m->backup_id, id))) {
		ret = err_set(err, -EBADMSG,
			      "the manifest says host %s, partition %s, backup %s, but its key names %s/%s/%s; it was copied or forged",
			      m->host, m->partition, m->backup_id, host, partition, id);
		manifest_clear(m);
	}
	if (ret)
		return err_wrap(err, "%s", UTIL_ESC(key));
	return 0;
}

static int check_names(const char *host, const char *partition, const char *id,
		       struct err *err)
{
	if (!util_name_ok(host))
		return err_set(err, -EINVAL, "host \"%s\" is not a name snapship uses (1 to %d letters, digits, '-', '_' or '.', not starting with '.')",
			       UTIL_ESC(host), UTIL_NAME_MAX);
	if (partition && !util_name_ok(partition))
		return err_set(err, -EINVAL, "partition \"%s\" is not a name snapship uses (1 to %d letters, digits, '-', '_' or '.', not starting with '.')",
			       UTIL_ESC(partition), UTIL_NAME_MAX);
	if (id && catalog_id_time(id) < 0)
		return err_set(err, -EINVAL, "\"%s\" is not a backup id (YYYYMMDDTHHMMSSZ-xxxxxx)",
			       UTIL_ESC(id));
	return 0;
}

int catalog_load(struct store *store, const char *prefix, const char *host,
		 const char *partition, const char *id, struct manifest *m,
		 struct err *err)
{
	char *key;
	int ret;

	memset(m, 0, sizeof(*m));
	ret = check_names(host, partition, id, err);
	if (ret)
		return ret;
	key = catalog_key(prefix, host, partition, id, "manifest.json");
	if (!key)
		return err_set(err, -ENOMEM, "out of memory");
	ret = load_key(store, key, host, partition, id, m, err);
	free(key);
	return ret;
}

struct list_ctx {
	struct store *store;
	struct catalog_list *list;
	size_t cap;
	const char *host;
	const char *partition;
	size_t base_len;                /* of "<prefix><host>/" */
	struct err *err;
	int error;
};

/* Note a manifest that is not a backup: counted, the first
 * CATALOG_BROKEN_MAX kept with why (already escaped). */
static void list_broken(struct catalog_list *list, const char *why)
{
	list->broken++;
	if (list->nbroken_why < CATALOG_BROKEN_MAX) {
		char *s = strdup(why);

		if (s)
			list->broken_why[list->nbroken_why++] = s;
	}
}

/*
 * "<partition>/<id>/manifest.json" below the host: the partition and id
 * out of it, or false when the key is not where snapship puts a manifest.
 */
static bool split_manifest_key(const char *rest, char part[UTIL_NAME_MAX + 1],
			       char id[BACKUP_ID_LEN + 1])
{
	const char *s1 = strchr(rest, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
	size_t pl, il;

	if (!s2 || strcmp(s2 + 1, "manifest.json"))
		return false;
	pl = (size_t)(s1 - rest);
	il = (size_t)(s2 - s1 - 1);
	if (pl > UTIL_NAME_MAX || il != BACKUP_ID_LEN)
		return false;
	memcpy(part, rest, pl);
	part[pl] = '\0';
	memcpy(id, s1 + 1, il);
	id[il] = '\0';
	return util_name_ok(part) && catalog_id_time(id) >= 0;
}

static int list_cb(void *ctx, const char *key, const struct store_obj_info *info)
{
	struct list_ctx *lc = ctx;
	size_t klen = strlen(key), mlen = strlen("/manifest.json");
	char part[UTIL_NAME_MAX + 1], id[BACKUP_ID_LEN + 1];
	struct manifest m;
	struct err e = { 0 };

	(void)info;
	if (klen < mlen || strcmp(key + klen - mlen, "/manifest.json"))
		return 0;
	/* names from the store are checked before anything is read, built
	 * into a path or shown */
	if (klen <= lc->base_len ||
	    !split_manifest_key(key + lc->base_len, part, id)) {
		char why[ERR_MSG_MAX];

		snprintf(why, sizeof(why),
			 "%s: not a backup's manifest (snapship writes <host>/<partition>/<backup-id>/manifest.json with names of letters, digits, '-', '_' and '.')",
			 UTIL_ESC(key));
		list_broken(lc->list, why);
		return 0;
	}
	if (lc->partition && strcmp(part, lc->partition))
		return 0;
	if (load_key(lc->store, key, lc->host, part, id, &m, &e)) {
		if (e.code == -ENOENT)
			return 0;     /* deleted while listing */
		list_broken(lc->list, e.msg);
		return 0;
	}
	if (lc->list->n == lc->cap) {
		size_t cap = lc->cap ? lc->cap * 2 : 16;
		struct manifest *n = realloc(lc->list->m, cap * sizeof(*n));

		if (!n) {
			manifest_clear(&m);
			lc->error = err_set(lc->err, -ENOMEM, "out of memory");
			return 1;
		}
		lc->list->m = n;
		lc->cap = cap;
	}
	lc->list->m[lc->list->n++] = m;
	return 0;
}

static int cmp_manifest(const void *a, const void *b)
{
	const struct manifest *x = a, *y = b;
	int c = strcmp(x->partition, y->partition);

	return c ? c : strcmp(x->backup_id, y->backup_id);
}

int catalog_list(struct store *store, const char *prefix, const char *host,
		 const char *partition, struct catalog_list *list_ret,
		 struct err *err)
{
	struct list_ctx lc = { .store = store, .list = list_ret, .host = host,
			       .partition = partition, .err = err };
	char *p;
	int ret;

	memset(list_ret, 0, sizeof(*list_ret));
	ret = check_names(host, partition, NULL, err);
	if (ret)
		return ret;
	lc.base_len = strlen(prefix ? prefix : "") + strlen(host) + 1;
	if (asprintf(&p, "%s%s/%s%s", prefix ? prefix : "", host,
		     partition ? partition : "", partition ? "/" : "") < 0)
		return err_set(err, -ENOMEM, "out of memory");
	ret = store_list(store, p, list_cb, &lc, err);
	free(p);
	if (!ret)
		ret = lc.error;
	if (ret) {
		catalog_list_free(list_ret);
		return ret;
	}
	if (list_ret->n)
		qsort(list_ret->m, list_ret->n, sizeof(*list_ret->m), cmp_manifest);
	return 0;
}

void catalog_list_free(struct catalog_list *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->n; i++)
		manifest_clear(&list->m[i]);
	free(list->m);
	free(list->region);
	for (size_t i = 0; i < list->nbroken_why; i++)
		free(list->broken_why[i]);
	memset(list, 0, sizeof(*list));
}

int catalog_cmp_age(const struct manifest *a, const struct manifest *b)
{
	/* ids of one second differ only in their random tail: the snapshot
	 * time says which came first; the id keeps the order total */
	int64_t ta = catalog_id_time(a->backup_id), tb = catalog_id_time(b->backup_id);
	int c;

	if (ta != tb)
		return ta < tb ? -1 : 1;
	if (a->snap_time_ns != b->snap_time_ns)
		return a->snap_time_ns < b->snap_time_ns ? -1 : 1;
	c = strcmp(a->backup_id, b->backup_id);
	return (c > 0) - (c < 0);
}

const struct manifest *catalog_find(const struct catalog_list *list,
				    const char *partition, const char *id)
{
	const struct manifest *best = NULL;

	for (size_t i = 0; i < list->n; i++) {
		const struct manifest *m = &list->m[i];

		if (partition && strcmp(m->partition, partition))
			continue;
		if (id && !strcmp(m->backup_id, id))
			return m;
		if (!id && (!best || catalog_cmp_age(m, best) > 0))
			best = m;
	}
	return best;
}

/* Order by snapshot time, then as catalog_cmp_age (a total order). */
static int cmp_snap_time(const struct manifest *a, const struct manifest *b)
{
	if (a->snap_time_ns != b->snap_time_ns)
		return a->snap_time_ns < b->snap_time_ns ? -1 : 1;
	return catalog_cmp_age(a, b);
}

void catalog_at(const struct catalog_list *list, const char *partition,
		int64_t at_ns, struct catalog_at *at_ret)
{
	struct catalog_at *at = at_ret;

	memset(at, 0, sizeof(*at));
	for (size_t i = 0; i < list->n; i++) {
		const struct manifest *m = &list->m[i];

		if (partition && strcmp(m->partition, partition))
			continue;
		at->n++;
		if (!at->oldest || cmp_snap_time(m, at->oldest) < 0)
			at->oldest = m;
		if (!at->newest || cmp_snap_time(m, at->newest) > 0)
			at->newest = m;
		if (m->snap_time_ns <= at_ns) {
			if (!at->pick || cmp_snap_time(m, at->pick) > 0)
				at->pick = m;
		} else if (!at->next || cmp_snap_time(m, at->next) < 0) {
			at->next = m;
		}
	}
}

/* ---- references ---- */

static int cmp_ref_use(const void *a, const void *b)
{
	const struct catalog_ref_use *x = a, *y = b;
	int c = strcmp(x->partition, y->partition);

	if (!c)
		c = strcmp(x->id, y->id);
	return c ? c : strcmp(x->by, y->by);
}

int catalog_refs_add(struct catalog_refs *r, const struct manifest *m)
{
	if (r->n + m->nrefs > r->cap) {
		size_t cap = r->cap ? r->cap : 16;
		struct catalog_ref_use *v;

		while (cap < r->n + m->nrefs)
			cap *= 2;
		v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	for (size_t i = 0; i < m->nrefs; i++)
		r->v[r->n++] = (struct catalog_ref_use){
			.partition = m->partition, .id = m->refs[i].id, .by = m->backup_id,
		};
	r->sorted = false;
	return 0;
}

size_t catalog_refs_users(struct catalog_refs *r, const char *partition, const char *id,
			  size_t *first_ret)
{
	size_t lo = 0, hi = r->n, n = 0;

	if (!r->sorted && r->n > 1)
		qsort(r->v, r->n, sizeof(*r->v), cmp_ref_use);
	r->sorted = true;
	while (lo < hi) {              /* the first use not before (partition, id) */
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(r->v[mid].partition, partition);

		if (!c)
			c = strcmp(r->v[mid].id, id);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (first_ret)
		*first_ret = lo;
	while (lo + n < r->n && !strcmp(r->v[lo + n].partition, partition) &&
	       !strcmp(r->v[lo + n].id, id))
		n++;
	return n;
}

const char *catalog_refs_by(struct catalog_refs *r, const char *partition, const char *id,
			    char *buf, size_t len)
{
	size_t first, n = catalog_refs_users(r, partition, id, &first), used = 0;

	if (len)
		buf[0] = '\0';
	for (size_t k = 0; k < n && len; k++) {
		const char *by = r->v[first + k].by;

		if (k && !strcmp(by, r->v[first + k - 1].by))
			continue;       /* the same backup listed by two regions */
		if (used + strlen(by) + 2 + 4 >= len) {
			snprintf(buf + used, len - used, "%s...", k ? ", " : "");
			break;
		}
		used += (size_t)snprintf(buf + used, len - used, "%s%s", k ? ", " : "", by);
	}
	return buf;
}

void catalog_refs_free(struct catalog_refs *r)
{
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/*
 * Orphans are only what snapship itself writes before the commit: data and
 * index objects, at exactly <prefix><host>/<partition>/<backup-id>/<name>
 * with a well-formed backup id.  Temp files of unfinished puts are the
 * store's own (store_abort_incomplete); nothing else is ever deleted.
 */
struct orphan_ctx {
	char **keys;
	size_t n, cap;
	size_t base_len;         /* of "<prefix><host>/" */
	char dir[1024];          /* current backup directory ".../<id>/" */
	size_t dir_start;        /* first key of dir in keys */
	bool dir_committed;
	int error;
};

/* "YYYYMMDDTHHMMSSZ-xxxxxx" (lowercase hex), exactly, and a real time. */
static bool orphan_id_ok(const char *id, size_t len)
{
	char buf[BACKUP_ID_LEN + 1];

	if (len != BACKUP_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		bool ok;

		if (i == 8)
			ok = c == 'T';
		else if (i == 15)
			ok = c == 'Z';
		else if (i == 16)
			ok = c == '-';
		else if (i > 16)
			ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
		else
			ok = c >= '0' && c <= '9';
		if (!ok)
			return false;
	}
	memcpy(buf, id, len);
	buf[len] = '\0';
	return catalog_id_time(buf) >= 0;
}

static void orphan_close_dir(struct orphan_ctx *oc)
{
	/* keep only the keys of uncommitted backup directories */
	if (oc->dir_committed) {
		for (size_t i = oc->dir_start; i < oc->n; i++)
			free(oc->keys[i]);
		oc->n = oc->dir_start;
	}
	oc->dir_start = oc->n;
	oc->dir_committed = false;
}

static int orphan_cb(void *ctx, const char *key, const struct store_obj_info *info)
{
	struct orphan_ctx *oc = ctx;
	const char *part = key + oc->base_len, *id, *name;
	size_t dlen;

	(void)info;
	if (strlen(key) <= oc->base_len)
		return 0;
	id = strchr(part, '/');
	if (!id || id == part)
		return 0;
	id++;
	name = strchr(id, '/');
	if (!name || !orphan_id_ok(id, (size_t)(name - id)) ||
	    strchr(name + 1, '/'))
		return 0;
	name++;
	dlen = (size_t)(name - key);
	if (dlen >= sizeof(oc->dir))
		return 0;
	if (strncmp(oc->dir, key, dlen) || oc->dir[dlen] != '\0') {
		orphan_close_dir(oc);
		memcpy(oc->dir, key, dlen);
		oc->dir[dlen] = '\0';
	}
	if (!strcmp(name, "manifest.json"))
		oc->dir_committed = true;
	if (strcmp(name, "data.tar.zst") && strcmp(name, "index.jsonl.zst"))
		return 0;
	if (oc->n == oc->cap) {
		size_t cap = oc->cap ? oc->cap * 2 : 16;
		char **n = realloc(oc->keys, cap * sizeof(*n));

		if (!n) {
			oc->error = -ENOMEM;
			return 1;
		}
		oc->keys = n;
		oc->cap = cap;
	}
	oc->keys[oc->n] = strdup(key);
	if (!oc->keys[oc->n]) {
		oc->error = -ENOMEM;
		return 1;
	}
	oc->n++;
	return 0;
}

/* "<part>/<id>/data.tar.zst" after the host's base: the part and id of a
 * data object among the orphans (false: an index, or not a name). */
static bool orphan_data_of(const char *rest, char *part, size_t plen, char *id)
{
	const char *slash = strchr(rest, '/');

	if (!slash || (size_t)(slash - rest) >= plen ||
	    strcmp(slash + 1 + BACKUP_ID_LEN, "/data.tar.zst"))
		return false;
	memcpy(part, rest, (size_t)(slash - rest));
	part[slash - rest] = '\0';
	memcpy(id, slash + 1, BACKUP_ID_LEN);
	id[BACKUP_ID_LEN] = '\0';
	return true;
}

/*
 * Drop from oc the data objects some manifest of host references (a
 * pruned backup whose data a newer one still reads: not an orphan).  When
 * a manifest cannot be read, its references are unknown: every data
 * object stays (only indexes go).
 */
static int orphan_keep_referenced(struct store *store, const char *prefix, const char *host,
				  struct orphan_ctx *oc, struct err *err)
{
	struct catalog_list list = { 0 };
	struct catalog_refs refs = { 0 };
	char part[UTIL_NAME_MAX + 1], id[BACKUP_ID_LEN + 1];
	size_t left = 0, ndata = 0;
	int ret;

	for (size_t i = 0; i < oc->n; i++)
		ndata += orphan_data_of(oc->keys[i] + oc->base_len, part, sizeof(part), id);
	if (!ndata)
		return 0;
	ret = catalog_list(store, prefix, host, NULL, &list, err);
	if (ret)
		return ret;
	for (size_t i = 0; i < list.n && !ret; i++)
		ret = catalog_refs_add(&refs, &list.m[i]);
	if (ret) {
		ret = err_set(err, ret, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < oc->n; i++) {
		if (orphan_data_of(oc->keys[i] + oc->base_len, part, sizeof(part), id) &&
		    (list.broken || catalog_refs_users(&refs, part, id, NULL))) {
			free(oc->keys[i]);
			continue;
		}
		oc->keys[left++] = oc->keys[i];
	}
	oc->n = left;
out:
	catalog_refs_free(&refs);
	catalog_list_free(&list);
	return ret;
}

int catalog_remove_orphans(struct store *store, const char *prefix,
			   const char *host, size_t *removed_ret, struct err *err)
{
	struct orphan_ctx oc = { 0 };
	char *p;
	int ret;

	*removed_ret = 0;
	if (asprintf(&p, "%s%s/", prefix ? prefix : "", host) < 0)
		return err_set(err, -ENOMEM, "out of memory");
	oc.base_len = strlen(p);
	ret = store_list(store, p, orphan_cb, &oc, err);
	free(p);
	if (!ret && oc.error)
		ret = err_set(err, oc.error, "out of memory");
	if (!ret) {
		orphan_close_dir(&oc);
		ret = orphan_keep_referenced(store, prefix, host, &oc, err);
	}
	if (!ret) {
		if (oc.n)
			ret = store_delete(store, (const char *const *)oc.keys, oc.n, err);
		if (!ret)
			*removed_ret = oc.n;
	}
	for (size_t i = 0; i < oc.n; i++)
		free(oc.keys[i]);
	free(oc.keys);
	return ret;
}

/* Empty directories an interrupted run left: "<prefix><host>/<part>/<id>". */
struct empty_ctx {
	size_t base_len;         /* of "<prefix><host>/" */
};

static bool empty_dir_ok(void *ctx, const char *key)
{
	const struct empty_ctx *ec = ctx;
	const char *part = key + ec->base_len, *id;
	char name[UTIL_NAME_MAX + 1];

	if (strlen(key) <= ec->base_len)
		return false;
	id = strchr(part, '/');
	if (!id || (size_t)(id - part) > UTIL_NAME_MAX)
		return false;
	memcpy(name, part, (size_t)(id - part));
	name[id - part] = '\0';
	id++;
	return util_name_ok(name) && !strchr(id, '/') &&
	       orphan_id_ok(id, strlen(id));
}

int catalog_remove_empty_dirs(struct store *store, const char *prefix,
			      const char *host, unsigned *removed_ret,
			      struct err *err)
{
	struct empty_ctx ec;
	char *p;
	int ret;

	*removed_ret = 0;
	if (asprintf(&p, "%s%s/", prefix ? prefix : "", host) < 0)
		return err_set(err, -ENOMEM, "out of memory");
	ec.base_len = strlen(p);
	ret = store_remove_empty_dirs(store, p, empty_dir_ok, &ec, removed_ret, err);
	free(p);
	return ret;
}

/* ---- the hosts a store holds ---- */

struct hosts_ctx {
	struct catalog_hosts *h;
	size_t cap;
	size_t base_len;         /* of the prefix */
	char last_part[UTIL_NAME_MAX + 1];
	size_t last_host;        /* index of the host last_part belongs to */
	int error;
};

static struct catalog_host *hosts_find(struct hosts_ctx *hc, const char *name)
{
	struct catalog_hosts *h = hc->h;

	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->v[i].name, name))
			return &h->v[i];
	if (h->n == hc->cap) {
		size_t cap = hc->cap ? hc->cap * 2 : 8;
		struct catalog_host *n = realloc(h->v, cap * sizeof(*n));

		if (!n)
			return NULL;
		h->v = n;
		hc->cap = cap;
	}
	memset(&h->v[h->n], 0, sizeof(h->v[h->n]));
	strcpy(h->v[h->n].name, name);
	return &h->v[h->n++];
}

static int hosts_cb(void *ctx, const char *key, const struct store_obj_info *info)
{
	struct hosts_ctx *hc = ctx;
	const char *rest = key + hc->base_len, *slash;
	char host[UTIL_NAME_MAX + 1], part[UTIL_NAME_MAX + 1], id[BACKUP_ID_LEN + 1];
	struct catalog_host *e;

	(void)info;
	if (strlen(key) <= hc->base_len)
		return 0;
	slash = strchr(rest, '/');
	if (!slash || (size_t)(slash - rest) > UTIL_NAME_MAX)
		return 0;
	memcpy(host, rest, (size_t)(slash - rest));
	host[slash - rest] = '\0';
	/* only backups, where snapship puts them, under names it writes */
	if (!util_name_ok(host) || !split_manifest_key(slash + 1, part, id)) {
		size_t klen = strlen(key), mlen = strlen("/manifest.json");

		if (klen >= mlen && !strcmp(key + klen - mlen, "/manifest.json"))
			hc->h->other++;
		return 0;
	}
	e = hosts_find(hc, host);
	if (!e) {
		hc->error = -ENOMEM;
		return 1;
	}
	e->backups++;
	if ((size_t)(e - hc->h->v) != hc->last_host || strcmp(part, hc->last_part)) {
		e->partitions++;
		hc->last_host = (size_t)(e - hc->h->v);
		strcpy(hc->last_part, part);
	}
	if (strcmp(id, e->latest) > 0)
		strcpy(e->latest, id);
	return 0;
}

static int cmp_host(const void *a, const void *b)
{
	return strcmp(((const struct catalog_host *)a)->name,
		      ((const struct catalog_host *)b)->name);
}

_Static_assert(sizeof(((struct catalog_host *)0)->name) == UTIL_NAME_MAX + 1,
	       "a host name is a util_name_ok() name");

int catalog_hosts(struct store *store, const char *prefix,
		  struct catalog_hosts *hosts_ret, struct err *err)
{
	struct hosts_ctx hc = { .h = hosts_ret, .last_host = SIZE_MAX };
	int ret;

	memset(hosts_ret, 0, sizeof(*hosts_ret));
	hc.base_len = strlen(prefix ? prefix : "");
	ret = store_list(store, prefix ? prefix : "", hosts_cb, &hc, err);
	if (!ret && hc.error)
		ret = err_set(err, hc.error, "out of memory");
	if (ret) {
		catalog_hosts_free(hosts_ret);
		return ret;
	}
	if (hosts_ret->n)
		qsort(hosts_ret->v, hosts_ret->n, sizeof(*hosts_ret->v), cmp_host);
	return 0;
}

void catalog_hosts_free(struct catalog_hosts *hosts)
{
	if (!hosts)
		return;
	free(hosts->v);
	memset(hosts, 0, sizeof(*hosts));
}

const char *catalog_other_hosts(struct store *store, const char *prefix,
				const char *host, char *buf, size_t len)
{
	struct catalog_hosts h;
	struct err e = { 0 };
	size_t used = 0;

	buf[0] = '\0';
	if (catalog_hosts(store, prefix, &h, &e))
		return buf;
	for (size_t i = 0; i < h.n && used + 1 < len; i++) {
		if (!strcmp(h.v[i].name, host))
			continue;
		snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
			 UTIL_ESC(h.v[i].name));
		used = strlen(buf);
	}
	catalog_hosts_free(&h);
	return buf;
}
