// SPDX-License-Identifier: MIT
#include "agent/failover.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

bool failover_unreachable(const struct err *e)
{
	return e->code == -ECONNREFUSED || e->code == -ETIMEDOUT ||
	       e->code == -EHOSTUNREACH || e->code == -ENETUNREACH ||
	       e->code == -ECONNRESET || e->code == -EAGAIN || e->code == -EIO;
}

/* ---- a region that lists less than this host committed ---- */

/* One backup of a union of listings, and the regions that list it. */
struct union_ent {
	struct manifest m;
	size_t region;                  /* the first region it was listed from */
	unsigned in;                    /* bit i: region i lists it */
};

struct union_list {
	struct union_ent *v;
	size_t n, cap;
};

static int union_cmp(const void *a, const void *b)
{
	const struct union_ent *x = a, *y = b;
	int c = strcmp(x->m.partition, y->m.partition);

	return c ? c : strcmp(x->m.backup_id, y->m.backup_id);
}

/* part/id in u, whose entries are sorted (union_cmp). */
static struct union_ent *union_find(const struct union_list *u, const char *part,
				    const char *id)
{
	struct union_ent key = { 0 };

	key.m.partition = (char *)part;
	snprintf(key.m.backup_id, sizeof(key.m.backup_id), "%s", id);
	return u->n ? bsearch(&key, u->v, u->n, sizeof(*u->v), union_cmp) : NULL;
}

/* Move region ri's listing into u, keeping u sorted (t is left empty,
 * to be freed). */
static int union_add(struct union_list *u, struct catalog_list *t, size_t ri)
{
	struct union_list sorted = *u;  /* what bsearch looks in */
	int ret = 0;

	for (size_t k = 0; k < t->n; k++) {
		struct union_ent *e = union_find(&sorted, t->m[k].partition,
						 t->m[k].backup_id);

		if (e) {
			e->in |= 1u << ri;
			manifest_clear(&t->m[k]);
			continue;
		}
		if (u->n == u->cap) {
			size_t cap = u->cap ? u->cap * 2 : 16;
			struct union_ent *n = realloc(u->v, cap * sizeof(*n));

			if (!n) {
				manifest_clear(&t->m[k]);
				ret = -ENOMEM;
				continue;
			}
			u->v = n;
			u->cap = cap;
			sorted.v = n;
		}
		u->v[u->n++] = (struct union_ent){ t->m[k], ri, 1u << ri };
	}
	t->n = 0;
	qsort(u->v, u->n, sizeof(*u->v), union_cmp);
	return ret;
}

/* How many of the known "<partition>/<id>" u lacks; the first into first. */
static size_t union_lacks(const struct union_list *u, char **known, size_t nknown,
			  char *first, size_t firstlen)
{
	char part[UTIL_NAME_MAX + 1];
	size_t missing = 0;

	first[0] = '\0';
	for (size_t k = 0; k < nknown; k++) {
		const char *slash = strchr(known[k], '/');

		assert(slash && (size_t)(slash - known[k]) <= UTIL_NAME_MAX);
		memcpy(part, known[k], (size_t)(slash - known[k]));
		part[slash - known[k]] = '\0';
		if (!union_find(u, part, slash + 1) && !missing++)
			snprintf(first, firstlen, "%s", known[k]);
	}
	return missing;
}

/* Say, for each region read (bits of read), which backups of u it lacks. */
static void union_say_missing(const struct regions *rs, const struct union_list *u,
			      unsigned read)
{
	for (size_t i = 0; i < rs->n; i++) {
		char ids[256] = "";
		size_t missing = 0;

		if (!(read & (1u << i)))
			continue;
		for (size_t j = 0; j < u->n; j++) {
			size_t used = strlen(ids);

			if (u->v[j].in & (1u << i))
				continue;
			if (missing++ < 3)
				snprintf(ids + used, sizeof(ids) - used, "%s%s/%s",
					 used ? ", " : "", u->v[j].m.partition, u->v[j].m.backup_id);
		}
		if (missing)
			log_warn("region %s lacks %zu of the %zu backup(s) the regions list: %s%s",
				 rs->v[i].name, missing, u->n, ids, missing > 3 ? ", ..." : "");
	}
}

/* Replace list's manifests with u's (sorted), noting each one's region. */
static int union_into(struct union_list *u, struct catalog_list *list)
{
	struct manifest *m = u->n ? malloc(u->n * sizeof(*m)) : NULL;
	size_t *region = u->n ? malloc(u->n * sizeof(*region)) : NULL;

	if (u->n && (!m || !region)) {
		free(m);
		free(region);
		return -ENOMEM;
	}
	for (size_t k = 0; k < u->n; k++) {        /* u is sorted */
		m[k] = u->v[k].m;
		region[k] = u->v[k].region;
	}
	free(list->m);
	free(list->region);
	list->m = m;
	list->region = region;
	list->n = u->n;
	u->n = 0;
	return 0;
}

static void union_free(struct union_list *u)
{
	for (size_t k = 0; k < u->n; k++)
		manifest_clear(&u->v[k].m);
	free(u->v);
}

/*
 * Region used listed list; if it lacks backups this host committed (the
 * state dir knows them), it is suspect (an unmounted share looks empty):
 * warn, list the other regions too and make list their union, saying which
 * region lacks what.
 */
static void suspect_check(struct regions *rs, const char *state_dir,
			  const char *host, const char *part,
			  struct catalog_list *list, size_t used)
{
	struct union_list u = { 0 };
	char **known = NULL, first[160];
	size_t nknown = 0, missing, n0 = list->n;
	unsigned read = 1u << used;

	if (geo_state_ids(state_dir, host, part, &known, &nknown) || !nknown)
		return;
	u.cap = list->n ? list->n : 1;
	u.v = malloc(u.cap * sizeof(*u.v));
	if (!u.v)
		goto out;
	for (size_t k = 0; k < list->n; k++)
		u.v[u.n++] = (struct union_ent){ list->m[k], used, 1u << used };
	list->n = 0;            /* its manifests are u's now */
	missing = union_lacks(&u, known, nknown, first, sizeof(first));
	if (!missing)
		goto out_put_back;
	log_warn("region %s does not list %zu backup(s) this host committed (%s/geo/%s keeps their state; %s is one): its store may be unmounted or emptied; reading the other regions too",
		 rs->v[used].name, missing, state_dir, host, first);
	for (size_t i = 0; i < rs->n; i++) {
		struct catalog_list t;
		struct err e = { 0 };

		if (i == used || rs->v[i].down)
			continue;
		if (catalog_list(rs->v[i].store, rs->v[i].prefix, host, part, &t, &e)) {
			if (failover_unreachable(&e))
				rs->v[i].down = true;
			log_warn("region %s: %s", rs->v[i].name, err_strip_region(rs->v[i].name, e.msg));
			continue;
		}
		read |= 1u << i;
		union_add(&u, &t, i);
		catalog_list_free(&t);
	}
	union_say_missing(rs, &u, read);
	missing = union_lacks(&u, known, nknown, first, sizeof(first));
	if (missing)
		log_warn("%zu backup(s) this host committed are listed by no region (%s is one)",
			 missing, first);
	if (!union_into(&u, list))
		goto out;
	log_warn("out of memory merging the regions' listings: listing region %s alone",
		 rs->v[used].name);
out_put_back:
	/* list's own manifests back, in order (u is sorted as list was) */
	list->n = 0;
	for (size_t k = 0; k < u.n; k++)
		if (u.v[k].region == used && list->n < n0)
			list->m[list->n++] = u.v[k].m;
		else
			manifest_clear(&u.v[k].m);
	u.n = 0;
out:
	union_free(&u);
	geo_state_ids_free(known, nknown);
}

int failover_list(struct regions *rs, const char *state_dir, const char *host,
		  const char *part, struct catalog_list *list_ret,
		  size_t *used_ret, struct err *err)
{
	struct err e = { 0 };

	for (size_t i = 0; i < rs->n; i++) {
		struct region *g = &rs->v[i];

		if (g->down)
			continue;
		err_clear(&e);
		if (!catalog_list(g->store, g->prefix, host, part, list_ret, &e)) {
			*used_ret = i;
			if (i > 0)
				log_warn("failed over: listing backups from region %s", g->name);
			if (state_dir && rs->n >= 2 && !rs->forced)
				suspect_check(rs, state_dir, host, part, list_ret, i);
			return 0;
		}
		if (e.code == -ECANCELED)
			break;      /* a stop, not the region's fault: no failover */
		if (failover_unreachable(&e))
			g->down = true;
		for (size_t j = i + 1; j < rs->n; j++) {
			if (rs->v[j].down)
				continue;
			log_warn("region %s failed (%s); failing over to region %s",
				 g->name, err_strip_region(g->name, e.msg), rs->v[j].name);
			break;
		}
	}
	*err = e;
	return e.code ? e.code : -EIO;
}

int failover_hosts(struct regions *rs, struct catalog_hosts *hosts_ret,
		   size_t *used_ret, struct err *err)
{
	struct err e = { 0 };

	for (size_t i = 0; i < rs->n; i++) {
		struct region *g = &rs->v[i];

		if (g->down)
			continue;
		err_clear(&e);
		if (!catalog_hosts(g->store, g->prefix, hosts_ret, &e)) {
			*used_ret = i;
			if (i > 0)
				log_warn("failed over: listing hosts from region %s", g->name);
			return 0;
		}
		if (failover_unreachable(&e))
			g->down = true;
		log_warn("region %s failed (%s)", g->name, err_strip_region(g->name, e.msg));
	}
	*err = e;
	return e.code ? e.code : -EIO;
}

/* Is region i's copy whole?  If not, say why (appended to why) and warn. */
static bool source_whole(struct regions *rs, size_t i, const struct manifest *m,
			 char *why, size_t whylen, int *code)
{
	struct geo_check chk;
	size_t used_len = strlen(why);

	geo_check_copy(&rs->v[i], m, OBJ_DATA | OBJ_INDEX, &chk);
	if (chk.copy == COPY_OK)
		return true;
	if (chk.copy == COPY_UNREACHABLE) {
		rs->v[i].down = true;
		*code = -EIO;
	}
	snprintf(why + used_len, whylen - used_len, "%sregion %s: %s: %s",
		 used_len ? "; " : "", rs->v[i].name, geo_copy_name(chk.copy), chk.detail);
	if (i + 1 < rs->n)
		log_warn("region %s: its copy of backup %s is %s (%s); failing over",
			 rs->v[i].name, m->backup_id, geo_copy_name(chk.copy), chk.detail);
	return false;
}

int failover_sources(struct regions *rs, const char *host, const char *part,
		     const struct manifest *m, struct failover_sources *src_ret,
		     struct err *err)
{
	struct failover_sources *s = src_ret;
	char why[2048] = "";
	int code = -EBADMSG;

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < rs->n; i++) {
		s->keys[i][0] = geo_region_key(&rs->v[i], m, "data.tar.zst");
		s->keys[i][1] = geo_region_key(&rs->v[i], m, "index.jsonl.zst");
		if (!s->keys[i][0] || !s->keys[i][1])
			return err_set(err, -ENOMEM, "out of memory");
		if (rs->v[i].down) {
			log_info("region %s: skipped (it did not answer)", rs->v[i].name);
			continue;
		}
		if (source_whole(rs, i, m, why, sizeof(why), &code))
			s->v[s->n++] = (struct restore_source){
				rs->v[i].store, s->keys[i][0], s->keys[i][1], rs->v[i].name };
	}
	if (!s->n)
		return err_set(err, code, "backup %s of %s/%s cannot be restored: %s%s",
			       m->backup_id, host, part, why,
			       rs->n > 1 ? " (no region holds a whole copy; snapship verify tells more)" : "");
	while (s->used < rs->n && strcmp(rs->v[s->used].name, s->v[0].region))
		s->used++;
	if (s->used > 0)
		log_warn("failed over: restoring backup %s from region %s", m->backup_id,
			 rs->v[s->used].name);
	s->m = *m;
	s->m.data_key = s->keys[s->used][0];
	s->m.index_key = s->keys[s->used][1];
	return 0;
}

void failover_sources_free(struct failover_sources *src)
{
	for (size_t i = 0; i < REGIONS_MAX; i++) {
		free(src->keys[i][0]);
		free(src->keys[i][1]);
	}
	memset(src, 0, sizeof(*src));
}
