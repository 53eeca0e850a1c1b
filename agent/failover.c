// SPDX-License-Identifier: MIT
#include "agent/failover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

bool failover_unreachable(const struct err *e)
{
	return e->code == -ECONNREFUSED || e->code == -ETIMEDOUT ||
	       e->code == -EHOSTUNREACH || e->code == -ENETUNREACH ||
	       e->code == -ECONNRESET || e->code == -EAGAIN || e->code == -EIO;
}

int failover_list(struct regions *rs, const char *host, const char *part,
		  struct catalog_list *list_ret, size_t *used_ret,
		  struct err *err)
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
			return 0;
		}
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
