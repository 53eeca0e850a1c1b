// SPDX-License-Identifier: MIT
#include "agent/status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

void status_backup_geo(const char *state_dir, const struct regions *rs,
		       const char *host, const struct manifest *m,
		       struct geo_state *gs_ret)
{
	struct err e = { 0 };

	if (rs->n >= 2 && !rs->forced &&
	    !geo_state_load(state_dir, host, m->partition, m->backup_id, gs_ret, &e))
		return;
	memset(gs_ret, 0, sizeof(*gs_ret));
	if (rs->n < 2 || rs->forced)
		return;
	/* no local state (another host, a lost state dir): unknown until
	 * snapship verify looks */
	for (size_t i = 1; i < rs->n; i++) {
		struct geo_region_state *r = geo_state_region(gs_ret, rs->v[i].name);

		if (r) {
			r->replication = rs->v[i].replication;
			snprintf(r->detail, sizeof(r->detail), "not verified from this host; run snapship verify");
		}
	}
}

const char *status_geo_word(const struct regions *rs, const struct geo_state *gs)
{
	if (rs->n < 2 || rs->forced)
		return "-";
	for (size_t i = 0; i < gs->n; i++)
		if (gs->r[i].state == RS_PENDING && !gs->r[i].deadline_ns)
			return "unverified";
	return geo_summary(gs, util_now_unix_ns());
}

/* qsort order of manifests: partition, then id (oldest first) */
static int by_partition(const void *a, const void *b)
{
	const struct manifest *x = a, *y = b;
	int c = strcmp(x->partition, y->partition);

	return c ? c : strcmp(x->backup_id, y->backup_id);
}

/* The row of partition list->m[i..j). */
static void status_row(const char *state_dir, const struct regions *rs,
		       const char *host, const struct catalog_list *list,
		       size_t i, size_t j, int64_t now_ns, struct status_row *row)
{
	struct geo_state gs;

	row->partition = list->m[i].partition;
	row->backups = j - i;
	row->at_risk = 0;
	for (size_t k = i; k < j; k++) {
		status_backup_geo(state_dir, rs, host, &list->m[k], &gs);
		row->at_risk += !strcmp(status_geo_word(rs, &gs), "at risk");
	}
	row->latest = &list->m[j - 1];
	status_backup_geo(state_dir, rs, host, row->latest, &row->gs);
	row->geo = status_geo_word(rs, &row->gs);
	row->age_s = (double)(now_ns - row->latest->snap_time_ns) / 1e9;
}

int status_build(const char *state_dir, const struct regions *rs,
		 const char *host, struct catalog_list *list, int64_t now_ns,
		 struct status_result *res_ret)
{
	size_t nparts = 1;

	memset(res_ret, 0, sizeof(*res_ret));
	if (!list->n)
		return 0;
	qsort(list->m, list->n, sizeof(*list->m), by_partition);
	for (size_t i = 1; i < list->n; i++)
		nparts += !!strcmp(list->m[i].partition, list->m[i - 1].partition);
	res_ret->rows = calloc(nparts, sizeof(*res_ret->rows));
	if (!res_ret->rows)
		return -ENOMEM;
	for (size_t i = 0, j; i < list->n; i = j) {
		struct status_row *row = &res_ret->rows[res_ret->n++];

		for (j = i; j < list->n && !strcmp(list->m[j].partition, list->m[i].partition); j++)
			;
		status_row(state_dir, rs, host, list, i, j, now_ns, row);
		res_ret->at_risk += row->at_risk;
	}
	return 0;
}

void status_result_free(struct status_result *res)
{
	free(res->rows);
	memset(res, 0, sizeof(*res));
}
