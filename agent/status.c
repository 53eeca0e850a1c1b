// SPDX-License-Identifier: MIT
#include "agent/status.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/schedule.h"
#include "common/err.h"
#include "common/log.h"
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

/* qsort order of manifests: partition, then age (oldest first) */
static int by_partition(const void *a, const void *b)
{
	const struct manifest *x = a, *y = b;
	int c = strcmp(x->partition, y->partition);

	return c ? c : catalog_cmp_age(x, y);
}

const char *status_state_name(enum status_state st)
{
	static const char *const names[] = {
		[STATUS_OK] = "ok", [STATUS_AT_RISK] = "at risk",
		[STATUS_STALE] = "stale", [STATUS_NEVER] = "never",
	};

	return names[st];
}

int status_exit(enum status_state st)
{
	return st == STATUS_OK ? 0 : 2 + (int)st;
}

/* The row of partition list->m[i..j). */
static void status_row(const struct status_in *in, const struct catalog_list *list,
		       size_t i, size_t j, struct status_row *row)
{
	struct geo_state gs;

	row->partition = list->m[i].partition;
	row->backups = j - i;
	row->at_risk = 0;
	for (size_t k = i; k < j; k++) {
		status_backup_geo(in->state_dir, in->rs, in->host, &list->m[k], &gs);
		row->at_risk += !strcmp(status_geo_word(in->rs, &gs), "at risk");
	}
	row->latest = &list->m[j - 1];
	status_backup_geo(in->state_dir, in->rs, in->host, row->latest, &row->gs);
	row->geo = status_geo_word(in->rs, &row->gs);
	row->age_s = (double)(in->now_ns - row->latest->snap_time_ns) / 1e9;
}

/* Its threshold and state: never, stale, at risk, ok (the first that fits). */
static void status_judge(const struct status_in *in, struct status_row *row)
{
	const struct cfg_partition *p = config_partition(in->cfg, row->partition);

	row->configured = in->configured && p;
	row->rpo_max = in->configured && !p ? 0 : config_rpo_max(in->cfg, p);
	/* the agent's: after failures, its backoff (the run record's) */
	if (row->configured)
		row->next_due = schedule_next_try(in->cfg, p, in->host,
						  row->latest ? row->latest->snap_time_ns / 1000000000 : 0,
						  &row->run, in->now_ns / 1000000000);
	if (!row->latest)
		row->state = STATUS_NEVER;
	else if (row->rpo_max && row->age_s > (double)row->rpo_max)
		row->state = STATUS_STALE;
	else if (row->at_risk)
		row->state = STATUS_AT_RISK;
	else
		row->state = STATUS_OK;
}

/* The row's run record (what the last attempt did) and drill record. */
static void status_runrec(const struct status_in *in, struct status_row *row)
{
	struct err err = { 0 };

	row->drill.rpo_s = row->drill.rto_s = -1;
	if (!in->state_dir || !in->host)
		return;
	if (runrec_load(in->state_dir, in->host, row->partition, &row->run, &err))
		log_warn("%s", err.msg);
	err_clear(&err);
	if (drillrec_load(in->state_dir, in->host, row->partition, &row->drill, &err))
		log_warn("%s", err.msg);
	if (row->drill.last_drill)
		row->drill_age_s = (double)in->now_ns / 1e9 - (double)row->drill.last_drill;
}

static int by_name(const void *a, const void *b)
{
	const struct status_row *x = a, *y = b;

	return strcmp(x->partition, y->partition);
}

/* How many partitions: those listed, and the configured ones not listed. */
static size_t count_rows(const struct status_in *in, const struct catalog_list *list)
{
	size_t n = list->n ? 1 : 0;

	for (size_t i = 1; i < list->n; i++)
		n += !!strcmp(list->m[i].partition, list->m[i - 1].partition);
	for (size_t i = 0; in->configured && i < in->cfg->nparts; i++)
		n += !catalog_find(list, in->cfg->parts[i].name, NULL);
	return n;
}

int status_build(const struct status_in *in, struct catalog_list *list,
		 struct status_result *res_ret)
{
	size_t nrows;

	memset(res_ret, 0, sizeof(*res_ret));
	if (list->n)
		qsort(list->m, list->n, sizeof(*list->m), by_partition);
	nrows = count_rows(in, list);
	if (!nrows)
		return 0;
	res_ret->rows = calloc(nrows, sizeof(*res_ret->rows));
	if (!res_ret->rows)
		return -ENOMEM;
	for (size_t i = 0, j; i < list->n; i = j) {
		for (j = i; j < list->n && !strcmp(list->m[j].partition, list->m[i].partition); j++)
			;
		status_row(in, list, i, j, &res_ret->rows[res_ret->n++]);
	}
	for (size_t i = 0; in->configured && i < in->cfg->nparts; i++) {
		struct status_row *row;

		if (catalog_find(list, in->cfg->parts[i].name, NULL))
			continue;
		row = &res_ret->rows[res_ret->n++];
		row->partition = in->cfg->parts[i].name;
		row->geo = "-";
	}
	assert(res_ret->n == nrows);
	qsort(res_ret->rows, res_ret->n, sizeof(*res_ret->rows), by_name);
	for (size_t i = 0; i < res_ret->n; i++) {
		struct status_row *row = &res_ret->rows[i];

		status_runrec(in, row);
		status_judge(in, row);
		res_ret->at_risk += row->at_risk;
		res_ret->not_ok += row->state != STATUS_OK;
		if (row->state > res_ret->worst)
			res_ret->worst = row->state;
	}
	return 0;
}

void status_result_free(struct status_result *res)
{
	for (size_t i = 0; i < res->n; i++)
		runrec_clear(&res->rows[i].run);
	free(res->rows);
	memset(res, 0, sizeof(*res));
}
