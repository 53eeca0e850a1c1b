// SPDX-License-Identifier: MIT
/*
 * What snapship status prints (report.h): the table of partitions with
 * their age, geo state, failed attempts, slowed rounds and last drill, and
 * why each one not ok is so; or (json) one object for the whole host.
 * Every pointer argument is only read; the document goes to struct report.
 */
#include "agent/report.h"
#include "agent/report_priv.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <time.h>

#include "agent/drill.h"
#include "agent/geo.h"
#include "agent/status.h"
#include "common/util.h"

/* "42m", "3.5h", "2.1d" */
static void fmt_age(double age, char *buf, size_t len)
{
	if (age < 3600)
		snprintf(buf, len, "%.0fm", age / 60);
	else if (age < 172800)
		snprintf(buf, len, "%.1fh", age / 3600);
	else
		snprintf(buf, len, "%.1fd", age / 86400);
}

/* "stale: the latest is 3.1d old, rpo_max 8.0h" and the like */
static void status_why(const struct status_row *row, char *buf, size_t len)
{
	char a[32], b[32];

	switch (row->state) {
	case STATUS_NEVER:
		snprintf(buf, len, "never backed up");
		break;
	case STATUS_STALE:
		fmt_age(row->age_s, a, sizeof(a));
		fmt_age((double)row->rpo_max, b, sizeof(b));
		snprintf(buf, len, "stale: the latest backup is %s old, rpo_max %s", a, b);
		break;
	case STATUS_AT_RISK:
		snprintf(buf, len, "%zu backup(s) at risk: snapship verify names the copies, snapship repair copies them",
			 row->at_risk);
		break;
	default:
		snprintf(buf, len, "ok");
	}
}

/* The partitions whose last attempt failed (from the run records): the
 * backups listed may still be fine, the next one is not coming. */
static void status_failed_attempts(const struct status_result *res)
{
	for (size_t i = 0; i < res->n; i++) {
		const struct runrec *run = &res->rows[i].run;
		char when[32] = "?";
		time_t t = (time_t)run->last_attempt;
		struct tm tm;

		if (!run->last_attempt || !run->last_rc)
			continue;
		if (localtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
		printf("%s: the last backup attempt failed (%s, %" PRIu64 " failure(s) so far): %s\n",
		       res->rows[i].partition, when, run->failures_total,
		       run->last_error ? UTIL_ESC_CTL(run->last_error) : "no message");
	}
}

/* The partitions whose last backup the low-impact mode held back. */
static void status_slowed(const struct status_result *res)
{
	for (size_t i = 0; i < res->n; i++) {
		const struct runrec *run = &res->rows[i].run;

		if (run->last_rc || run->slowed_s < 1)
			continue;
		printf("%s: the last backup was held back %.0f s of %.0f s by the low-impact mode (the host or its pressure_cgroup was under pressure)\n",
		       res->rows[i].partition, run->slowed_s, run->duration_s);
	}
}

/* fmt_age, with seconds under two minutes ("45s") */
static void fmt_secs(double s, char *buf, size_t len)
{
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, len, "%.0fs", s);
	else
		fmt_age(s, buf, len);
}

/* "RPO 2.1h, RTO 4.52s" of a drill record (a part not measured left out) */
static void drill_measures(const struct drillrec *d, char *buf, size_t len)
{
	char a[32];
	int k = 0;

	buf[0] = '\0';
	if (d->rpo_s >= 0) {
		fmt_secs(d->rpo_s, a, sizeof(a));
		k = snprintf(buf, len, "RPO %s", a);
	}
	if (d->rto_s >= 0 && k >= 0 && (size_t)k < len)
		snprintf(buf + k, len - (size_t)k, "%sRTO %.2fs", k ? ", " : "", d->rto_s);
}

/* Each partition's last drill (the drill records): when, from where, the
 * verdict. */
static void status_drills(const struct status_result *res)
{
	for (size_t i = 0; i < res->n; i++) {
		const struct status_row *row = &res->rows[i];
		const struct drillrec *d = &row->drill;
		char age[32], m[64];

		if (!d->last_drill)
			continue;
		fmt_secs(row->drill_age_s, age, sizeof(age));
		drill_measures(d, m, sizeof(m));
		if (d->passed)
			printf("%s: last drill %s ago from %s: passed (backup %s%s%s)\n", row->partition,
			       age, d->region, d->backup_id, m[0] ? ", " : "", m);
		else
			printf("%s: last drill %s ago from %s: FAILED (%s%s%s): %s\n", row->partition,
			       age, d->region, d->failure, m[0] ? ", " : "", m, d->message);
	}
}

static void status_text(const char *host, const struct regions *rs, size_t used,
			const struct status_result *res, bool any)
{
	char why[256];

	printf("host %s, regions:", host);
	for (size_t i = 0; i < rs->n; i++)
		printf(" %s%s", rs->v[i].name, rs->v[i].primary ? " (primary)" :
		       rs->v[i].replication == REPL_AGENT ? " (agent)" : " (server)");
	printf("%s\n", used ? "; listed from a secondary: the primary failed" : "");
	printf("%-16s %7s %-24s %10s  %-14s %7s  %s\n", "PARTITION", "BACKUPS", "LATEST",
	       "AGE", "GEO", "AT RISK", "STATE");
	for (size_t i = 0; i < res->n; i++) {
		const struct status_row *row = &res->rows[i];
		char ab[32] = "-";

		if (row->latest)
			fmt_age(row->age_s, ab, sizeof(ab));
		printf("%-16s %7zu %-24s %10s  %-14s %7zu  %s\n", row->partition, row->backups,
		       row->latest ? row->latest->backup_id : "-", ab, row->geo, row->at_risk,
		       status_state_name(row->state));
	}
	if (!any)
		printf("(no backups yet)\n");
	status_failed_attempts(res);
	status_slowed(res);
	status_drills(res);
	if (!res->not_ok) {
		printf("all %zu partition(s) ok\n", res->n);
		return;
	}
	printf("%zu of %zu partition(s) not ok (exit status %d):\n", res->not_ok, res->n,
	       status_exit(res->worst));
	for (size_t i = 0; i < res->n; i++) {
		if (res->rows[i].state == STATUS_OK)
			continue;
		status_why(&res->rows[i], why, sizeof(why));
		printf("  %s: %s\n", res->rows[i].partition, why);
	}
}

/* The run record's facts: null where there is none (never attempted). */
static void status_run_json(json_t *o, const struct runrec *run)
{
	bool any = run->last_attempt != 0;

	json_object_set_new(o, "last_attempt", any ? json_integer(run->last_attempt) : json_null());
	json_object_set_new(o, "last_success",
			    run->last_success ? json_integer(run->last_success) : json_null());
	json_object_set_new(o, "last_result", !any ? json_null() :
			    json_string(run->last_rc ? "failed" : "ok"));
	json_object_set_new(o, "last_error", run->last_error ?
			    json_string(run->last_error) : json_null());
	json_object_set_new(o, "last_duration_seconds", any ? json_real(run->duration_s) : json_null());
	json_object_set_new(o, "last_slowed_seconds", any ? json_real(run->slowed_s) : json_null());
	json_object_set_new(o, "failures_total", json_integer((json_int_t)run->failures_total));
}

/* The last drill (drill record), null when none is recorded. */
static json_t *status_drill_json(const struct status_row *row)
{
	const struct drillrec *d = &row->drill;
	json_t *o;

	if (!d->last_drill)
		return json_null();
	o = json_pack("{s:I, s:f, s:s, s:b, s:I, s:s}", "time", (json_int_t)d->last_drill,
		      "age_seconds", row->drill_age_s, "region", d->region, "passed", d->passed,
		      "bytes", (json_int_t)d->bytes, "message", d->message);
	json_object_set_new(o, "backup_id", d->backup_id[0] ? json_string(d->backup_id) : json_null());
	json_object_set_new(o, "failure", d->passed ? json_null() : json_string(d->failure));
	json_object_set_new(o, "rpo_seconds", d->rpo_s >= 0 ? json_real(d->rpo_s) : json_null());
	json_object_set_new(o, "rto_seconds", d->rto_s >= 0 ? json_real(d->rto_s) : json_null());
	json_object_set_new(o, "last_pass", d->last_pass ? json_integer(d->last_pass) : json_null());
	return o;
}

static json_t *status_row_json(const struct status_row *row)
{
	char why[256];
	json_t *o;

	status_why(row, why, sizeof(why));
	o = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I}", "partition", row->partition,
		      "state", status_state_name(row->state), "why", why,
		      "configured", row->configured, "backups", (json_int_t)row->backups,
		      "at_risk", (json_int_t)row->at_risk);
	json_object_set_new(o, "rpo_max_seconds",
			    row->rpo_max ? json_integer(row->rpo_max) : json_null());
	json_object_set_new(o, "next_due",
			    row->next_due ? json_integer(row->next_due) : json_null());
	if (row->latest) {
		json_object_set_new(o, "latest", json_string(row->latest->backup_id));
		json_object_set_new(o, "age_seconds", json_real(row->age_s));
		report_geo_json(o, &row->gs);
	} else {
		json_object_set_new(o, "latest", json_null());
		json_object_set_new(o, "age_seconds", json_null());
		json_object_set_new(o, "regions", json_array());
	}
	json_object_set_new(o, "geo", json_string(row->geo));
	status_run_json(o, &row->run);
	json_object_set_new(o, "drill", status_drill_json(row));
	return o;
}

void report_status(struct report *r, const char *host, const struct regions *rs,
		   size_t used, const struct status_result *res, bool any)
{
	json_t *parts;

	if (!r->json) {
		status_text(host, rs, used, res, any);
		return;
	}
	parts = json_array();
	for (size_t i = 0; i < res->n; i++)
		json_array_append_new(parts, status_row_json(&res->rows[i]));
	report_set_doc(r, json_pack("{s:s, s:s, s:b, s:o, s:I, s:s, s:I, s:i}", "host", host,
			     "listed_from", rs->v[used].name, "failed_over", used > 0,
			     "partitions", parts, "at_risk", (json_int_t)res->at_risk,
			     "state", status_state_name(res->worst),
			     "not_ok", (json_int_t)res->not_ok,
			     "exit_status", status_exit(res->worst)));
}
