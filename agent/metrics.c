// SPDX-License-Identifier: MIT
#include "agent/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/catalog.h"
#include "agent/config.h"
#include "agent/failover.h"
#include "agent/status.h"
#include "common/afile.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

/* ------------------------------------------------------------ rendering */

/* A label value as the text format wants it: \\, \" and \n escaped. */
static void put_label(FILE *f, const char *name, const char *v)
{
	fprintf(f, "%s=\"", name);
	for (; *v; v++) {
		if (*v == '\\')
			fputs("\\\\", f);
		else if (*v == '"')
			fputs("\\\"", f);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
	fputc('"', f);
}

/* Integral values whole (timestamps, bytes), others with 9 digits. */
static void put_value(FILE *f, double v)
{
	if (v == floor(v) && fabs(v) < 9e15)
		fprintf(f, " %.0f\n", v);
	else
		fprintf(f, " %.9g\n", v);
}

static void put_sample(FILE *f, const char *metric, const char *host, const char *part,
		       const char *region, double v)
{
	fprintf(f, "%s{", metric);
	put_label(f, "host", host);
	if (part) {
		fputc(',', f);
		put_label(f, "partition", part);
	}
	if (region) {
		fputc(',', f);
		put_label(f, "region", region);
	}
	fputc('}', f);
	put_value(f, v);
}

/* A per-partition metric: its value for p, false when unknown (omitted). */
typedef bool part_value_fn(const struct metrics_part *p, double *v_ret);

static bool v_last_success(const struct metrics_part *p, double *v)
{
	*v = p->run ? (double)p->run->last_success : 0;
	return true;
}

static bool v_last_attempt(const struct metrics_part *p, double *v)
{
	*v = p->run ? (double)p->run->last_attempt : 0;
	return true;
}

static bool v_attempt_ok(const struct metrics_part *p, double *v)
{
	*v = p->run && p->run->last_attempt && !p->run->last_rc;
	return p->run && p->run->last_attempt;
}

static bool v_duration(const struct metrics_part *p, double *v)
{
	*v = p->run ? p->run->duration_s : 0;
	return p->run && p->run->last_attempt;
}

static bool v_logical(const struct metrics_part *p, double *v)
{
	*v = p->run ? (double)p->run->logical_bytes : 0;
	return p->run && p->run->last_success;
}

static bool v_stored(const struct metrics_part *p, double *v)
{
	*v = p->run ? (double)p->run->stored_bytes : 0;
	return p->run && p->run->last_success;
}

static bool v_retained(const struct metrics_part *p, double *v)
{
	*v = (double)p->retained;
	return p->retained >= 0;
}

static bool v_failures(const struct metrics_part *p, double *v)
{
	*v = p->run ? (double)p->run->failures_total : 0;
	return true;
}

static bool v_held(const struct metrics_part *p, double *v)
{
	*v = p->run ? p->run->snapshot_held_s : 0;
	return p->run && p->run->last_success;
}

static bool v_next_due(const struct metrics_part *p, double *v)
{
	*v = (double)p->next_due;
	return p->next_due > 0;
}

static bool v_slowed(const struct metrics_part *p, double *v)
{
	*v = p->run ? p->run->slowed_s : 0;
	return p->run && p->run->last_attempt;
}

/* The last drill's facts: only for a partition drilled. */
static bool drilled(const struct metrics_part *p)
{
	return p->drill && p->drill->last_drill > 0;
}

static bool v_drill_last(const struct metrics_part *p, double *v)
{
	*v = drilled(p) ? (double)p->drill->last_drill : 0;
	return drilled(p);
}

static bool v_drill_success(const struct metrics_part *p, double *v)
{
	*v = drilled(p) ? (double)p->drill->last_pass : 0;
	return drilled(p);
}

static bool v_drill_rpo(const struct metrics_part *p, double *v)
{
	*v = drilled(p) ? p->drill->rpo_s : -1;
	return *v >= 0;
}

static bool v_drill_rto(const struct metrics_part *p, double *v)
{
	*v = drilled(p) ? p->drill->rto_s : -1;
	return *v >= 0;
}

static bool v_drill_bytes(const struct metrics_part *p, double *v)
{
	*v = drilled(p) ? (double)p->drill->bytes : 0;
	return drilled(p);
}

static const struct part_metric {
	const char *name, *type, *help;
	part_value_fn *value;
} part_metrics[] = {
	{ "snapship_last_success_timestamp_seconds", "gauge",
	  "Unix time of the last successful backup of the partition (0: none recorded).",
	  v_last_success },
	{ "snapship_last_attempt_timestamp_seconds", "gauge",
	  "Unix time of the last backup attempt of the partition (0: none recorded).",
	  v_last_attempt },
	{ "snapship_last_attempt_success", "gauge",
	  "1 if the last backup attempt of the partition succeeded, else 0.", v_attempt_ok },
	{ "snapship_backup_duration_seconds", "gauge",
	  "Wall time of the last backup attempt of the partition.", v_duration },
	{ "snapship_backup_logical_bytes", "gauge",
	  "Bytes of file data in the last successful backup.", v_logical },
	{ "snapship_backup_stored_bytes", "gauge",
	  "Bytes stored (compressed data and index) by the last successful backup.", v_stored },
	{ "snapship_backups_retained", "gauge",
	  "Committed backups of the partition in the store listing.", v_retained },
	{ "snapship_failures_total", "counter",
	  "Failed backup attempts of the partition recorded in this state dir.", v_failures },
	{ "snapship_snapshot_held_seconds", "gauge",
	  "Seconds the last successful backup held its btrfs snapshot.", v_held },
	{ "snapship_next_due_timestamp_seconds", "gauge",
	  "Unix time the next backup of the partition is due.", v_next_due },
	{ "snapship_backup_slowed_seconds", "gauge",
	  "Seconds the low-impact mode held the last backup attempt back.", v_slowed },
	{ "snapship_drill_last_timestamp_seconds", "gauge",
	  "Unix time of the last DR drill of the partition, passed or failed.", v_drill_last },
	{ "snapship_drill_last_success_timestamp_seconds", "gauge",
	  "Unix time of the last DR drill of the partition that passed (0: none recorded).",
	  v_drill_success },
	{ "snapship_drill_rpo_seconds", "gauge",
	  "RPO the last DR drill measured: its start minus the drilled backup's snapshot time.",
	  v_drill_rpo },
	{ "snapship_drill_rto_seconds", "gauge",
	  "RTO the last DR drill measured: the wall time of its restore.", v_drill_rto },
	{ "snapship_drill_bytes", "gauge",
	  "Bytes of file data the last DR drill restored and checked.", v_drill_bytes },
};

static void put_help(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The failures a drill record can name (drill_failure_name), for the
 * state set snapship_drill_failure: one sample per kind, 1 for the last
 * drill's (none when it passed), so the series stay the same. */
static const enum drill_failure drill_kinds[] = {
	DRILL_MISSING, DRILL_UNREACHABLE, DRILL_CORRUPT, DRILL_CHECKSUM,
	DRILL_RPO, DRILL_RTO, DRILL_ERROR,
};

/* snapship_drill_passed{region} and snapship_drill_failure{region,failure} */
static void put_drills(FILE *f, const char *host, const struct metrics_part *parts,
		       size_t n, bool failure)
{
	for (size_t i = 0; i < n; i++) {
		const struct drillrec *d = parts[i].drill;

		if (!drilled(&parts[i]))
			continue;
		if (!failure) {
			put_sample(f, "snapship_drill_passed", host, parts[i].partition,
				   d->region, d->passed);
			continue;
		}
		for (size_t k = 0; k < sizeof(drill_kinds) / sizeof(*drill_kinds); k++) {
			const char *kind = drill_failure_name(drill_kinds[k]);

			fputs("snapship_drill_failure{", f);
			put_label(f, "host", host);
			fputc(',', f);
			put_label(f, "partition", parts[i].partition);
			fputc(',', f);
			put_label(f, "region", d->region);
			fputc(',', f);
			put_label(f, "failure", kind);
			fputc('}', f);
			put_value(f, !d->passed && !strcmp(d->failure, kind));
		}
	}
}

/* snapship_geo_protected and snapship_replication_lag_seconds */
static void put_regions(FILE *f, const char *host, const struct metrics_part *parts,
			size_t n, int64_t now_ns, bool lag)
{
	for (size_t i = 0; i < n; i++) {
		const struct geo_state *gs = parts[i].gs;

		for (size_t k = 0; gs && k < gs->n; k++) {
			const struct geo_region_state *r = &gs->r[k];
			bool ok = r->state == RS_VERIFIED;
			double v;

			if (!lag) {
				put_sample(f, "snapship_geo_protected", host, parts[i].partition,
					   r->name, ok);
				continue;
			}
			if (ok && r->lag_s >= 0)
				v = r->lag_s;
			else if (!ok && gs->committed_ns > 0 && now_ns > gs->committed_ns)
				v = (double)(now_ns - gs->committed_ns) / 1e9;
			else
				continue;
			put_sample(f, "snapship_replication_lag_seconds", host, parts[i].partition,
				   r->name, v);
		}
	}
}

int metrics_render(const char *host, const struct metrics_part *parts, size_t n,
		   int64_t now_ns, char **text_ret)
{
	size_t len = 0;
	FILE *f;

	*text_ret = NULL;
	f = open_memstream(text_ret, &len);
	if (!f)
		return -ENOMEM;
	for (size_t m = 0; m < sizeof(part_metrics) / sizeof(*part_metrics); m++) {
		const struct part_metric *pm = &part_metrics[m];

		put_help(f, pm->name, pm->type, pm->help);
		for (size_t i = 0; i < n; i++) {
			double v;

			if (pm->value(&parts[i], &v))
				put_sample(f, pm->name, host, parts[i].partition, NULL, v);
		}
	}
	put_help(f, "snapship_geo_protected", "gauge",
		 "1 if the latest backup of the partition is verified in the (secondary) region, else 0.");
	put_regions(f, host, parts, n, now_ns, false);
	put_help(f, "snapship_replication_lag_seconds", "gauge",
		 "Seconds from the commit of the latest backup to its verified copy in the region; while not verified, seconds since the commit.");
	put_regions(f, host, parts, n, now_ns, true);
	put_help(f, "snapship_drill_passed", "gauge",
		 "1 if the last DR drill of the partition (from the region) passed, else 0.");
	put_drills(f, host, parts, n, false);
	put_help(f, "snapship_drill_failure", "gauge",
		 "Why the last DR drill of the partition failed: 1 for that failure kind, 0 for the others (all 0: it passed).");
	put_drills(f, host, parts, n, true);
	put_help(f, "snapship_metrics_timestamp_seconds", "gauge",
		 "Unix time this file was written.");
	put_sample(f, "snapship_metrics_timestamp_seconds", host, NULL, NULL,
		   (double)(now_ns / 1000000000LL));
	if (fclose(f) || !*text_ret) {
		free(*text_ret);
		*text_ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------- gathering */

/* A listing of host's backups (empty when the regions cannot be listed:
 * said, and retained then unknown). */
static void gather(const struct config *cfg, const char *host, struct regions *rs,
		   struct catalog_list *list, bool *listed_ret)
{
	struct err le = { 0 };
	size_t used = 0;

	*listed_ret = false;
	memset(list, 0, sizeof(*list));
	memset(rs, 0, sizeof(*rs));
	if (!geo_regions_open(cfg, NULL, NULL, NULL, true, rs, &le) &&
	    !failover_list(rs, cfg->state_dir, host, NULL, list, &used, &le))
		*listed_ret = true;
	else
		log_warn("metrics: cannot list the backups of %s (%s); the metrics file leaves out the retained backups and the geo state",
			 host, le.msg);
}

/* What a partition only due names (not in the status rows) has on record. */
struct extra_recs {
	struct runrec run;
	struct drillrec drill;
};

/* A partition only due names: its records (one that cannot be read: said,
 * and left empty). */
static void extra_load(const struct config *cfg, const char *host, const char *part,
		       struct extra_recs *x)
{
	struct err le = { 0 };

	if (runrec_load(cfg->state_dir, host, part, &x->run, &le))
		log_warn("%s", le.msg);
	err_clear(&le);
	if (drillrec_load(cfg->state_dir, host, part, &x->drill, &le))
		log_warn("%s", le.msg);
}

/* The parts: status rows first, then partitions only due names. */
static int make_parts(const struct config *cfg, const char *host,
		      const struct status_result *res, bool listed,
		      const struct metrics_due *due, size_t ndue,
		      struct metrics_part **parts_ret, struct extra_recs **extra_ret, size_t *n_ret)
{
	struct metrics_part *parts = calloc(res->n + ndue + 1, sizeof(*parts));
	struct extra_recs *extra = calloc(ndue + 1, sizeof(*extra));
	size_t n = 0, nextra = 0;

	if (!parts || !extra) {
		free(parts);
		free(extra);
		return -ENOMEM;
	}
	for (size_t i = 0; i < res->n; i++, n++) {
		const struct status_row *row = &res->rows[i];

		parts[n] = (struct metrics_part){ .partition = row->partition, .run = &row->run,
			.retained = listed ? (int64_t)row->backups : -1,
			.gs = row->latest ? &row->gs : NULL,
			/* status's (with the backoff), unless due says */
			.next_due = listed ? row->next_due : 0 };
	}
	for (size_t d = 0; d < ndue; d++) {
		size_t i;

		for (i = 0; i < n && strcmp(parts[i].partition, due[d].partition); i++)
			;
		if (i == n) {
			struct extra_recs *x = &extra[nextra++];

			extra_load(cfg, host, due[d].partition, x);
			parts[n++] = (struct metrics_part){ .partition = due[d].partition,
				.run = &x->run, .retained = listed ? 0 : -1, .drill = &x->drill };
		}
		parts[i].next_due = due[d].next_due;
	}
	for (size_t i = 0; i < res->n; i++)
		parts[i].drill = &res->rows[i].drill;    /* the rows' parts come first */
	*parts_ret = parts;
	*extra_ret = extra;
	*n_ret = n;
	return 0;
}

/* The file from status_build over list (listed: it is a listing). */
static int write_from(const struct config *cfg, const char *host, const struct regions *rs,
		      struct catalog_list *list, bool listed, const struct metrics_due *due,
		      size_t ndue, struct err *err)
{
	int64_t now_ns = util_now_unix_ns();
	struct status_in in = { .state_dir = cfg->state_dir, .rs = rs, .host = host,
				.cfg = cfg, .configured = true, .now_ns = now_ns };
	struct metrics_part *parts = NULL;
	struct extra_recs *extra = NULL;
	struct status_result res;
	char *text = NULL;
	size_t n = 0;
	int ret;

	ret = status_build(&in, list, &res);
	if (!ret)
		ret = make_parts(cfg, host, &res, listed, due, ndue, &parts, &extra, &n);
	if (!ret)
		ret = metrics_render(host, parts, n, now_ns, &text);
	if (ret)
		err_set(err, ret, "metrics file %s: out of memory", cfg->metrics_file);
	else
		ret = afile_write(cfg->metrics_file, text, strlen(text), 0644, 0, err);
	if (ret)
		err_wrap(err, "metrics file not written");
	for (size_t i = 0; extra && i < ndue; i++)
		runrec_clear(&extra[i].run);
	free(extra);
	free(parts);
	free(text);
	status_result_free(&res);
	return ret;
}

int metrics_write(const struct config *cfg, const char *host,
		  const struct metrics_due *due, size_t ndue, struct err *err)
{
	struct catalog_list list;
	struct regions rs;
	bool listed;
	int ret;

	if (!cfg->metrics_file)
		return 0;
	gather(cfg, host, &rs, &list, &listed);
	ret = write_from(cfg, host, &rs, &list, listed, due, ndue, err);
	catalog_list_free(&list);
	geo_regions_free(&rs);
	return ret;
}

int metrics_write_listed(const struct config *cfg, const char *host,
			 const struct regions *rs, struct catalog_list *list,
			 const struct metrics_due *due, size_t ndue, struct err *err)
{
	if (!cfg->metrics_file)
		return 0;
	return write_from(cfg, host, rs, list, true, due, ndue, err);
}
