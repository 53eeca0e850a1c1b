// SPDX-License-Identifier: MIT
/*
 * What restore --at, ls --at and list --at print (report.h): which backup a time
 * picks, why, and the next newer one, so the bracket is visible.  Times
 * are RFC 3339 in UTC (when_format), as --at takes them back.
 */
#include "agent/report.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "agent/catalog.h"
#include "agent/geo.h"
#include "common/when.h"

/* the snapshot time of m, to the second, or NULL for no m */
static const char *snap(const struct manifest *m, char *buf, size_t len)
{
	return m ? when_format(m->snap_time_ns, 0, buf, len) : NULL;
}

const char *report_at_why(const struct catalog_at *a, const struct when *w,
			  char *buf, size_t len)
{
	char t1[48], t2[48], t3[48];

	if (!a->pick) {
		snprintf(buf, len, "no backup at or before %s", when_format(w->ns, w->digits, t1, sizeof(t1)));
		return buf;
	}
	if (a->next)
		snprintf(buf, len, "%s (snapshot %s), the newest at or before %s; the next one was taken at %s (%s)",
			 a->pick->backup_id, snap(a->pick, t1, sizeof(t1)),
			 when_format(w->ns, w->digits, t2, sizeof(t2)),
			 snap(a->next, t3, sizeof(t3)), a->next->backup_id);
	else
		snprintf(buf, len, "%s (snapshot %s), the newest at or before %s; it is the newest backup of %s",
			 a->pick->backup_id, snap(a->pick, t1, sizeof(t1)),
			 when_format(w->ns, w->digits, t2, sizeof(t2)), a->pick->partition);
	return buf;
}

void report_at_line(bool json, const char *verb, const struct catalog_at *a,
		    const struct when *w)
{
	char why[512];

	if (!json) {
		printf("%s %s\n", verb, report_at_why(a, w, why, sizeof(why)));
		fflush(stdout);
	}
}

/* The fields of a pick: at, snap_time(_ns), next_backup_id, next_snap_time. */
static void at_fields(json_t *o, const struct catalog_at *a, const struct when *w)
{
	char t1[48], t2[48], t3[48];

	json_object_set_new(o, "at", json_string(when_format(w->ns, w->digits, t1, sizeof(t1))));
	json_object_set_new(o, "snap_time", a->pick ?
			    json_string(snap(a->pick, t2, sizeof(t2))) : json_null());
	json_object_set_new(o, "snap_time_ns", a->pick ?
			    json_integer(a->pick->snap_time_ns) : json_null());
	json_object_set_new(o, "next_backup_id", a->next ?
			    json_string(a->next->backup_id) : json_null());
	json_object_set_new(o, "next_snap_time", a->next ?
			    json_string(snap(a->next, t3, sizeof(t3))) : json_null());
}

void report_at_fields(struct report *r, const struct catalog_at *a, const struct when *w)
{
	json_t *o = r->doc;
	char why[512];

	if (!r->json || !json_is_object(o))
		return;
	at_fields(o, a, w);
	json_object_set_new(o, "why", json_string(report_at_why(a, w, why, sizeof(why))));
}

/* list --at: one partition's row (text) or object (json) */
static void list_at_row(struct report *r, const char *host, const char *part,
			const struct catalog_at *a, const char *listed_from,
			const struct when *w)
{
	char t1[48], t2[48], t3[48];

	if (r->json) {
		json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "partition", part, "host", host,
				      "backups", (json_int_t)a->n, "oldest_snap_time",
				      snap(a->oldest, t1, sizeof(t1)));

		if (!o)
			return;
		json_object_set_new(o, "backup_id", a->pick ?
				    json_string(a->pick->backup_id) : json_null());
		json_object_set_new(o, "listed_from", a->pick ?
				    json_string(listed_from) : json_null());
		at_fields(o, a, w);
		json_array_append_new(r->doc, o);
		return;
	}
	printf("%-16s %-24s %-21s %-24s %s\n", part, a->pick ? a->pick->backup_id : "-",
	       a->pick ? snap(a->pick, t2, sizeof(t2)) : "-",
	       a->next ? a->next->backup_id : "-", a->next ? snap(a->next, t3, sizeof(t3)) : "-");
}

void report_list_at(struct report *r, const char *host, const struct catalog_list *list,
		    const struct regions *rs, size_t used, const struct when *w)
{
	size_t none = 0;
	char t[48];

	if (!r->json) {
		printf("at %s: the backup restore --at picks (the newest whose snapshot is at or before it) and the next one\n",
		       when_format(w->ns, w->digits, t, sizeof(t)));
		printf("%-16s %-24s %-21s %-24s %s\n", "PARTITION", "BACKUP ID", "SNAPSHOT (UTC)",
		       "NEXT BACKUP ID", "NEXT SNAPSHOT (UTC)");
	}
	for (size_t i = 0; i < list->n; i++) {
		const char *part = list->m[i].partition;
		struct catalog_at a;
		size_t j = 0, from = used;

		while (j < i && strcmp(list->m[j].partition, part))
			j++;
		if (j < i)
			continue;        /* this partition's row is out already */
		catalog_at(list, part, w->last_ns, &a);
		if (a.pick && list->region)
			from = list->region[a.pick - list->m];
		list_at_row(r, host, part, &a, rs->v[from].name, w);
		none += !a.pick;
	}
	if (!r->json && none)
		printf("%zu partition(s) have no backup at or before %s: restore --at fails for them (the next one is their oldest)\n",
		       none, t);
}
