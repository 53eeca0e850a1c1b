// SPDX-License-Identifier: MIT
#include "agent/report.h"
#include "agent/report_priv.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "agent/backup.h"
#include "agent/catalog.h"
#include "agent/clean.h"
#include "agent/config.h"
#include "agent/geo.h"
#include "agent/index.h"
#include "agent/ls.h"
#include "agent/prune.h"
#include "agent/restore.h"
#include "agent/status.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "uploader/store.h"

/* The run's error messages (json_t * array), for the JSON of a failed
 * run; and whether a command printed its document. */
static json_t *run_errors;
static bool run_printed;

static void collect_error(enum log_level level, const char *line)
{
	if (level != LOG_ERROR)
		return;
	if (!run_errors)
		run_errors = json_array();
	json_array_append_new(run_errors, json_string(line));
}

void report_collect_errors(void)
{
	log_set_hook(collect_error);
}

void report_note_error(const char *msg)
{
	collect_error(LOG_ERROR, msg);
}

int report_exit(bool json, int rc)
{
	size_t n = json_array_size(run_errors);
	json_t *o;
	char *s;

	if (json && rc && !run_printed) {
		o = json_pack("{s:s, s:o, s:o, s:i}", "status", "failed",
			      "error", n ? json_incref(json_array_get(run_errors, n - 1)) :
			      json_string(rc == 2 ? "usage error; snapship --help shows the usage" :
					  "failed (no message)"),
			      "errors", run_errors ? json_incref(run_errors) : json_array(),
			      "exit_status", rc);
		s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
		if (s)
			puts(s);
		free(s);
		json_decref(o);
	}
	log_set_hook(NULL);
	json_decref(run_errors);
	run_errors = NULL;
	return rc;
}

void report_init(struct report *r, bool json)
{
	r->json = json;
	r->doc = json ? json_array() : NULL;
}

/* The document is now o (the array made by report_init goes). */
void report_set_doc(struct report *r, json_t *o)
{
	json_decref(r->doc);
	r->doc = o;
}

static void append(struct report *r, json_t *o)
{
	json_array_append_new(r->doc, o);
}

void report_end(struct report *r)
{
	char *s = r->doc ? json_dumps(r->doc, JSON_INDENT(2)) : NULL;

	if (s) {
		puts(s);
		free(s);
		run_printed = true;
	}
	report_free(r);
}

void report_free(struct report *r)
{
	json_decref(r->doc);
	r->doc = NULL;
}

static double ratio(const struct manifest *m)
{
	return m->stored_bytes ? (double)m->logical_bytes / (double)m->stored_bytes : 0.0;
}

static json_t *manifest_summary_json(const struct manifest *m, double seconds)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:I}",
			 "backup_id", m->backup_id, "host", m->host,
			 "partition", m->partition,
			 "files", (json_int_t)m->files, "entries", (json_int_t)m->entries,
			 "logical_bytes", (json_int_t)m->logical_bytes,
			 "stored_bytes", (json_int_t)m->stored_bytes,
			 "ratio", ratio(m), "seconds", seconds,
			 "time", (json_int_t)(m->snap_time_ns / 1000000000LL));
}

/* "geo": summary and "regions": [...] of a backup's replication state */
void report_geo_json(json_t *o, const struct geo_state *gs)
{
	json_t *arr = json_array();

	json_object_set_new(o, "geo", json_string(geo_summary(gs, util_now_unix_ns())));
	for (size_t i = 0; i < gs->n; i++) {
		const struct geo_region_state *r = &gs->r[i];
		json_t *e = json_pack("{s:s, s:s, s:s}", "region", r->name,
				      "replication", r->replication == REPL_AGENT ? "agent" : "server",
				      "state", geo_rstate_name(r->state));

		if (r->state == RS_PENDING && r->deadline_ns && util_now_unix_ns() > r->deadline_ns)
			json_object_set_new(e, "state", json_string("at-risk"));
		if (r->lag_s >= 0)
			json_object_set_new(e, "lag_s", json_real(r->lag_s));
		if (r->verified_ns)
			json_object_set_new(e, "verified", json_integer(r->verified_ns / 1000000000LL));
		if (r->detail[0])
			json_object_set_new(e, "detail", json_string(r->detail));
		json_array_append_new(arr, e);
	}
	json_object_set_new(o, "regions", arr);
}

/* " - geo-protected (west 0.42 s)" and a newline */
static void print_geo_line(const struct geo_state *gs)
{
	const char *sum = geo_summary(gs, util_now_unix_ns());

	if (!gs->n) {
		putchar('\n');
		return;
	}
	printf(" - %s", sum);
	for (size_t i = 0; i < gs->n; i++) {
		const struct geo_region_state *r = &gs->r[i];

		if (r->state == RS_VERIFIED && r->lag_s >= 0)
			printf("%s%s %.2f s", i ? ", " : " (", r->name, r->lag_s);
		else
			printf("%s%s %s", i ? ", " : " (", r->name,
			       r->state == RS_AT_RISK ? "at risk" : geo_rstate_name(r->state));
	}
	printf(")\n");
}

/* ---------------------------------------------------------------- backup */

/* An incremental's or a full's change fields (doc/snapship.8 JSON OUTPUT). */
static void incremental_json(json_t *o, const struct backup_result *res)
{
	const struct manifest *m = &res->m;
	bool incr = m->format_version >= 2 && m->parent[0];

	json_object_set_new(o, "parent", incr ? json_string(m->parent) : json_null());
	json_object_set_new(o, "full_reason", incr ? json_null() : json_string(res->why_full));
	json_object_set_new(o, "chain", json_integer((json_int_t)m->chain));
	json_object_set_new(o, "changed", json_integer((json_int_t)m->n_changed));
	json_object_set_new(o, "new", json_integer((json_int_t)(incr ? m->n_new : m->entries)));
	json_object_set_new(o, "deleted", json_integer((json_int_t)m->n_deleted));
	json_object_set_new(o, "meta_only", json_integer((json_int_t)m->n_meta_only));
	json_object_set_new(o, "renamed", json_integer((json_int_t)m->n_renamed));
	json_object_set_new(o, "unchanged", json_integer((json_int_t)m->n_unchanged));
	json_object_set_new(o, "new_bytes",
			    json_integer((json_int_t)(incr ? m->new_bytes : m->logical_bytes)));
	json_object_set_new(o, "referenced_bytes", json_integer((json_int_t)m->referenced_bytes));
}

/* "; incremental from P: 3 changed, 2 new, 1 deleted, ... 1.2 MiB new",
 * or "; full: why" */
static void print_incremental(const struct backup_result *res)
{
	const struct manifest *m = &res->m;
	char hb[32];

	if (m->format_version < 2 || !m->parent[0]) {
		if (res->why_full[0])
			printf("; full: %s", res->why_full);
		return;
	}
	printf("; incremental from %s: %llu changed, %llu new, %llu deleted, %llu metadata-only, %llu renamed, %llu unchanged, %s new",
	       m->parent, (unsigned long long)m->n_changed, (unsigned long long)m->n_new,
	       (unsigned long long)m->n_deleted, (unsigned long long)m->n_meta_only,
	       (unsigned long long)m->n_renamed, (unsigned long long)m->n_unchanged,
	       util_human_size(m->new_bytes, hb, sizeof(hb)));
}

void report_backup(struct report *r, const struct backup_result *res,
		   const char *region, bool no_wait)
{
	const struct manifest *m = &res->m;
	char hb1[32], hb2[32];

	if (r->json) {
		json_t *o = manifest_summary_json(m, res->seconds);

		json_object_set_new(o, "status", json_string("ok"));
		json_object_set_new(o, "region", json_string(region));
		incremental_json(o, res);
		report_geo_json(o, &res->gs);
		if (res->geo_seconds >= 0)
			json_object_set_new(o, "geo_seconds", json_real(res->geo_seconds));
		append(r, o);
	} else {
		printf("%s %s: %llu files, %s -> %s (%.2fx) in %.1f s",
		       m->partition, m->backup_id, (unsigned long long)m->files,
		       util_human_size(m->logical_bytes, hb1, sizeof(hb1)),
		       util_human_size(m->stored_bytes, hb2, sizeof(hb2)),
		       ratio(m), res->seconds);
		print_incremental(res);
		print_geo_line(&res->gs);
	}
	if (res->gs.n && strcmp(geo_summary(&res->gs, util_now_unix_ns()), "geo-protected") &&
	    !no_wait)
		log_warn("%s %s is committed on region %s but %s; snapship repair copies it once the region is back",
			 m->partition, m->backup_id, region,
			 geo_summary(&res->gs, util_now_unix_ns()));
}

void report_backup_failed(struct report *r, const char *partition, const char *msg)
{
	if (r->json)
		append(r, json_pack("{s:s, s:s, s:s}", "partition", partition,
				    "status", "failed", "error", UTIL_ESC_CTL(msg)));
}

/* ------------------------------------------------------------------ list */

void report_list_none(struct report *r, const char *host, const char *part,
		      const struct store *store)
{
	if (!r->json)
		printf("no backups of %s%s%s on %s\n", host, part ? "/" : "",
		       part ? part : "", store_describe(store));
}

void report_list_header(struct report *r, bool geo)
{
	if (!r->json)
		printf("%-16s %-24s %-21s %9s %10s %10s %6s%s\n", "PARTITION", "BACKUP ID",
		       "TIME (UTC)", "FILES", "SIZE", "STORED", "RATIO", geo ? "  GEO" : "");
}

static void fmt_time(int64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000LL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
}

void report_list_row(struct report *r, const struct manifest *m,
		     const char *listed_from, const struct geo_state *gs,
		     const char *geo_word, bool geo)
{
	char tb[32], s1[32], s2[32];

	if (r->json) {
		json_t *o = manifest_summary_json(m, (double)(m->finished_ns - m->started_ns) / 1e9);

		json_object_set_new(o, "state", json_string("committed"));
		json_object_set_new(o, "listed_from", json_string(listed_from));
		report_geo_json(o, gs);
		json_object_set_new(o, "geo", json_string(geo ? geo_word : "single region"));
		append(r, o);
		return;
	}
	fmt_time(m->snap_time_ns, tb, sizeof(tb));
	printf("%-16s %-24s %-21s %9llu %10s %10s %5.2fx%s%s\n", m->partition,
	       m->backup_id, tb, (unsigned long long)m->files,
	       util_human_size(m->logical_bytes, s1, sizeof(s1)),
	       util_human_size(m->stored_bytes, s2, sizeof(s2)),
	       ratio(m), geo ? "  " : "", geo ? geo_word : "");
}

void report_list_broken(const struct catalog_list *list, const char *region)
{
	const char *rp = region ? "region " : "", *rn = region ? region : "",
		   *sep = region ? ": " : "";

	for (size_t i = 0; i < list->nbroken_why; i++)
		log_warn("%s%s%sskipping %s", rp, rn, sep, list->broken_why[i]);
	if (list->broken > list->nbroken_why)
		log_warn("%s%s%sand %zu more manifest(s) like these", rp, rn, sep,
			 list->broken - list->nbroken_why);
	if (list->broken)
		log_warn("%zu manifest(s) could not be used; run snapship verify", list->broken);
}

/* --------------------------------------------------------------- restore */

void report_restore(struct report *r, const struct manifest *m, const char *region,
		    const char *target, const struct restore_result *res,
		    bool from_store)
{
	char hb[32], rb[32];

	if (r->json)
		report_set_doc(r, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:f}",
				     "backup_id", m->backup_id, "partition", m->partition,
				     "region", region,
				     "target", target, "entries", (json_int_t)res->entries,
				     "files", (json_int_t)res->files, "bytes", (json_int_t)res->bytes,
				     "skipped_devices", (json_int_t)res->skipped_devices,
				     "stripped_privileges", (json_int_t)res->stripped_privileges,
				     "frames_read", (json_int_t)res->frames_read,
				     "frames_total", (json_int_t)res->frames_total,
				     "bytes_read", (json_int_t)res->bytes_read,
				     "subvolume", res->subvolume, "seconds", res->seconds));
	else
		printf("restored %s %s%s%s into %s%s: %llu entries, %s, verified, in %.1f s (read %llu of %llu frames, %s downloaded)\n",
		       m->partition, m->backup_id, from_store ? "" : " from region ",
		       from_store ? "" : region, target,
		       res->subvolume ? " (new subvolume)" : "",
		       (unsigned long long)res->entries,
		       util_human_size(res->bytes, hb, sizeof(hb)), res->seconds,
		       (unsigned long long)res->frames_read,
		       (unsigned long long)res->frames_total,
		       util_human_size(res->bytes_read, rb, sizeof(rb)));
	if (res->skipped_devices)
		log_warn("skipped %llu device node(s); pass --devices to create them",
			 (unsigned long long)res->skipped_devices);
	if (res->stripped_privileges)
		log_warn("%llu setuid/setgid/capability bits not restored; --keep-privileges restores them",
			 (unsigned long long)res->stripped_privileges);
}

/* -------------------------------------------------------------------- ls */

static const char *ls_type_name(char type)
{
	switch (type) {
	case PACK_FILE: return "file";
	case PACK_DIR: return "dir";
	case PACK_SYMLINK: return "symlink";
	case PACK_HARDLINK: return "hardlink";
	case PACK_CHAR: return "char";
	case PACK_BLOCK: return "block";
	case PACK_FIFO: return "fifo";
	default: return "?";
	}
}

/* "drwxr-xr-x" (a hard link shows as the file it is) */
static void ls_mode(const struct index_entry *e, char out[11])
{
	static const char rwx[] = "rwxrwxrwx";
	uint32_t m = e->mode;

	out[0] = e->type == PACK_DIR ? 'd' : e->type == PACK_SYMLINK ? 'l' :
		 e->type == PACK_CHAR ? 'c' : e->type == PACK_BLOCK ? 'b' :
		 e->type == PACK_FIFO ? 'p' : '-';
	for (int i = 0; i < 9; i++)
		out[1 + i] = m & (0400u >> i) ? rwx[i] : '-';
	if (m & 04000)
		out[3] = m & 0100 ? 's' : 'S';
	if (m & 02000)
		out[6] = m & 0010 ? 's' : 'S';
	if (m & 01000)
		out[9] = m & 0001 ? 't' : 'T';
	out[10] = '\0';
}

/* key: s as a JSON string, or key_hex: its bytes in hex when s is not UTF-8 */
static void json_set_name(json_t *o, const char *key, const char *s)
{
	json_t *v = json_string(s);
	size_t n = strlen(s);
	char k[32], *hex;

	if (v) {
		json_object_set_new(o, key, v);
		return;
	}
	hex = malloc(2 * n + 1);
	if (!hex)
		return;
	util_hex((const unsigned char *)s, n, hex);
	snprintf(k, sizeof(k), "%s_hex", key);
	json_object_set_new(o, k, json_string(hex));
	free(hex);
}

static json_t *ls_entry_json(const struct index_entry *e)
{
	char mode[8];
	json_t *o;

	snprintf(mode, sizeof(mode), "%04o", (unsigned)e->mode);
	o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "type", ls_type_name(e->type),
		      "mode", mode, "uid", (json_int_t)e->uid, "gid", (json_int_t)e->gid,
		      "size", (json_int_t)e->size,
		      "mtime", (json_int_t)(e->mtime_ns / 1000000000LL),
		      "mtime_ns", (json_int_t)e->mtime_ns);
	if (!o)
		return NULL;
	json_set_name(o, "name", ls_name(e));
	json_set_name(o, "path", e->path);
	if (e->link)
		json_set_name(o, "link", e->link);
	else if (e->link_legacy)
		json_object_set_new(o, "link_unknown", json_true());
	if (e->has_rdev && (e->type == PACK_CHAR || e->type == PACK_BLOCK)) {
		json_object_set_new(o, "major", json_integer(major((dev_t)e->rdev)));
		json_object_set_new(o, "minor", json_integer(minor((dev_t)e->rdev)));
	}
	return o;
}

static void ls_json(struct report *r, const struct manifest *m, const char *region,
		    const struct ls_listing *ls)
{
	json_t *arr = json_array(), *o;

	for (size_t i = 0; i < ls->n; i++) {
		json_t *e = ls_entry_json(ls->e[i]);

		if (e)
			json_array_append_new(arr, e);
	}
	o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:o}", "backup_id", m->backup_id,
		      "host", m->host, "partition", m->partition, "region", region,
		      "time", (json_int_t)(m->snap_time_ns / 1000000000LL),
		      "type", ls->dir ? "dir" : ls_type_name(ls->e[0]->type), "entries", arr);
	if (o)
		json_set_name(o, "path", ls->path);
	report_set_doc(r, o);
}

/* One line of ls: mode, owner, size (or device numbers), time, name. */
static void ls_row(const struct index_entry *e, const char *name)
{
	char mode[11], size[32], tb[32];

	ls_mode(e, mode);
	if ((e->type == PACK_CHAR || e->type == PACK_BLOCK) && e->has_rdev)
		snprintf(size, sizeof(size), "%u, %u", major((dev_t)e->rdev),
			 minor((dev_t)e->rdev));
	else if (e->type == PACK_FILE || e->type == PACK_HARDLINK)
		snprintf(size, sizeof(size), "%llu", (unsigned long long)e->size);
	else
		snprintf(size, sizeof(size), "-");
	fmt_time(e->mtime_ns, tb, sizeof(tb));
	printf("%s %6lld %6lld %14s %s  %s", mode, (long long)e->uid, (long long)e->gid,
	       size, tb, UTIL_ESC(name));
	if (e->type == PACK_SYMLINK || e->type == PACK_HARDLINK)
		printf(" %s %s", e->type == PACK_SYMLINK ? "->" : "link to",
		       e->link ? UTIL_ESC(e->link) : "(a name that was not UTF-8)");
	putchar('\n');
}

void report_ls(struct report *r, const struct manifest *m, const char *region,
	       const struct ls_listing *ls, bool from_store)
{
	char tb[32];

	if (r->json) {
		ls_json(r, m, region, ls);
		return;
	}
	fmt_time(m->snap_time_ns, tb, sizeof(tb));
	printf("%s %s (%s)%s%s", m->partition, m->backup_id, tb,
	       from_store ? "" : " from region ", from_store ? "" : region);
	if (ls->dir)
		printf(": %zu entr%s in %s\n", ls->n, ls->n == 1 ? "y" : "ies",
		       strcmp(ls->path, ".") ? UTIL_ESC(ls->path) : "the top directory");
	else
		printf(":\n");
	for (size_t i = 0; i < ls->n; i++)
		ls_row(ls->e[i], ls->dir ? ls_name(ls->e[i]) : ls->e[i]->path);
}

/* ------------------------------------------------------- verify, repair */

#define VERIFY_ROW "%-16s %-24s %-10s %-12s "

/* What a verify looked at (the "checked" of its JSON). */
static const char *verify_checked(bool deep)
{
	return deep ? "every byte" : "sizes and ETags";
}

static void verify_begin(void *ctx, size_t backups, size_t broken)
{
	const struct report_verify *v = ctx;

	if (!v->r->json && (backups || broken))
		printf(VERIFY_ROW "%s\n", "PARTITION", "BACKUP ID", "REGION",
		       v->repair ? "REPAIR" : "COPY", "DETAIL");
}

static void verify_backup(void *ctx, const struct verify_backup *b)
{
	const struct report_verify *v = ctx;
	const struct manifest *m = b->m;
	json_t *regs, *o;

	if (!v->r->json) {
		for (size_t i = 0; i < b->n; i++) {
			const struct verify_copy *c = &b->r[i];

			printf(VERIFY_ROW "%s\n", m->partition, m->backup_id, c->region,
			       c->copy == COPY_OK && !strcmp(c->status, "ok") && v->deep ?
			       "ok (deep)" : c->status, UTIL_ESC_CTL(c->detail));
		}
		return;
	}
	regs = json_array();
	for (size_t i = 0; i < b->n; i++)
		json_array_append_new(regs, json_pack("{s:s, s:s, s:s}", "region", b->r[i].region,
						      "status", b->r[i].status,
						      "detail", b->r[i].detail));
	o = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s, s:o}", "partition", m->partition,
		      "backup_id", m->backup_id, "status", b->first_bad[0] ? "bad" : "ok",
		      "error", b->first_bad[0] ? b->first_bad : NULL,
		      "checked", verify_checked(v->deep),
		      "geo", b->geo ? b->geo : "single region", "regions", regs);
	append(v->r, o);
}

struct verify_sink report_verify_sink(struct report_verify *ctx)
{
	return (struct verify_sink){ verify_begin, verify_backup, ctx };
}

void report_verify_end(struct report_verify *ctx, const struct verify_result *res,
		       const char *host, const char *part)
{
	struct report *r = ctx->r;

	/* manifests that are not backups: each said once per region, skipped */
	for (size_t i = 0; i < res->nbm; i++) {
		const struct verify_bad_manifests *b = &res->bm[i];

		for (size_t k = 0; k < b->nwhy; k++) {
			if (r->json)
				append(r, json_pack("{s:s, s:s, s:s}", "status", "bad",
						    "region", b->region, "error", b->why[k]));
			else
				printf(VERIFY_ROW "%s\n", "-", "-", b->region, "bad manifest",
				       UTIL_ESC_CTL(b->why[k]));
		}
		if (b->more && !r->json)
			printf(VERIFY_ROW "and %zu more like these\n", "-", "-", b->region,
			       "bad manifest", b->more);
	}
	if (r->json)
		return;
	if (res->backups)
		printf(ctx->deep ? "checked every byte (--deep): every frame decompressed, each object's SHA-256 and every file's checksum\n" :
		       "checked sizes and ETags (where the store keeps them), not the bytes; --deep reads every byte\n");
	if (res->broken)
		printf("BAD %zu manifest(s) unreadable or not written by snapship, skipped: find out who wrote them, then remove them from the store\n",
		       res->broken);
	if (!res->backups)
		printf("no backups of %s%s%s\n", host, part ? "/" : "", part ? part : "");
	if (ctx->repair)
		printf("%zu cop%s repaired, %zu still missing or bad\n", res->fixed,
		       res->fixed == 1 ? "y" : "ies", res->bad);
}

/* ------------------------------------------------------- clean, config */

void report_clean(unsigned snapshots, unsigned uploads)
{
	printf("removed %u leftover snapshot(s) and %u unfinished upload(s)\n",
	       snapshots, uploads);
}

void report_clean_regions(const struct clean_result *res, size_t n,
			  bool have_store)
{
	if (!have_store)
		printf("no store given: unfinished uploads were not looked for; pass --from STORE (or configure a [region])\n");
	for (size_t i = 0; i < n; i++) {
		const struct clean_result *c = &res[i];

		if (!c->looked) {
			printf("region %s: not looked at: %s\n", c->region, UTIL_ESC_CTL(c->why));
			continue;
		}
		printf("region %s (%s): removed %u unfinished upload(s)", c->region, c->store,
		       c->uploads);
		if (c->whole)
			printf(", %zu object(s) of backups without a manifest, %u empty backup director%s",
			       c->objects, c->dirs, c->dirs == 1 ? "y" : "ies");
		if (c->error)
			printf("; then stopped: %s\n", UTIL_ESC_CTL(c->why));
		else if (c->why[0])
			printf("; %s\n", c->why);
		else
			putchar('\n');
	}
}

void report_list_other_hosts(struct report *r, const char *others)
{
	if (!r->json && others[0])
		printf("the store holds backups of other hosts: %s; pass --host NAME (snapship hosts lists them)\n",
		       others);
}

void report_hosts(struct report *r, const struct catalog_hosts *h,
		  const struct store *store)
{
	if (r->json) {
		for (size_t i = 0; i < h->n; i++)
			append(r, json_pack("{s:s, s:I, s:I, s:s}", "host", h->v[i].name,
					    "partitions", (json_int_t)h->v[i].partitions,
					    "backups", (json_int_t)h->v[i].backups,
					    "latest", h->v[i].latest));
		return;
	}
	if (!h->n) {
		printf("no backups of any host on %s\n", store_describe(store));
		return;
	}
	printf("%-24s %10s %8s  %s\n", "HOST", "PARTITIONS", "BACKUPS", "LATEST BACKUP");
	for (size_t i = 0; i < h->n; i++)
		printf("%-24s %10zu %8zu  %s\n", UTIL_ESC(h->v[i].name), h->v[i].partitions,
		       h->v[i].backups, h->v[i].latest);
	if (h->other)
		log_warn("%zu manifest(s) not where snapship puts them (<host>/<partition>/<backup-id>/manifest.json); not counted",
			 h->other);
}

void report_config(struct report_config *rc, const struct config *cfg)
{
	rc->errors = rc->warnings = 0;
	if (rc->r->json)
		report_set_doc(rc->r, json_pack("{s:s, s:[], s:[], s:[], s:[]}", "file", cfg->file,
					 "partitions", "regions", "errors", "warnings"));
	else
		printf("%s: %zu partition(s), %zu region(s)\n", cfg->file, cfg->nparts,
		       cfg->nregions);
}

/* msg (escaped) into the doc's errors or warnings, counted */
static void config_msg(struct report_config *rc, bool error, const char *msg)
{
	*(error ? &rc->errors : &rc->warnings) += 1;
	if (rc->r->json)
		json_array_append_new(json_object_get(rc->r->doc, error ? "errors" : "warnings"),
				      json_string(msg));
}

void report_config_partition(struct report_config *rc, const char *name,
			     const char *path, const struct err *err)
{
	const char *msg = err ? UTIL_ESC_CTL(err->msg) : NULL;

	if (msg)
		config_msg(rc, true, msg);
	if (rc->r->json)
		json_array_append_new(json_object_get(rc->r->doc, "partitions"),
				      json_pack("{s:s, s:s, s:s, s:s?}", "partition", name,
						"path", path, "status", err ? "error" : "ok",
						"error", msg));
	else if (err)
		printf("  partition %s: error: %s\n", name, msg);
	else
		printf("  partition %s: %s ok\n", name, path);
}

/*
 * How an S3 region's connections are protected: the JSON word (NULL for a
 * file store), a sentence into buf, and into warn what is weak ("" if
 * nothing).
 */
static const char *region_tls(const struct cfg_region *g, char *buf, size_t len,
			      char *warn, size_t wlen)
{
	const char *ep = g->endpoint;

	warn[0] = '\0';
	if (!g->store || strcmp(g->store, "s3"))
		return NULL;
	if (ep && !strncmp(ep, "http://", 7)) {
		if (g->allow_http)
			snprintf(warn, wlen, "[region %s]: plain HTTP to %s (allow_http = yes): anyone on the network path can read and alter backups; use https://",
				 g->name, ep);
		snprintf(buf, len, "plain HTTP, not encrypted%s", g->allow_http ?
			 " (allow_http = yes)" : " (loopback: it does not leave this host)");
		return "http";
	}
	if (g->insecure_tls) {
		snprintf(warn, wlen, "[region %s]: insecure_tls = yes: the server's TLS certificate is NOT verified, anyone on the network path can read and alter backups; for tests only: set ca_file instead",
			 g->name);
		snprintf(buf, len, "TLS, certificate NOT verified (insecure_tls = yes)");
		return "off";
	}
	if (g->ca_file) {
		snprintf(buf, len, "TLS, certificate verified against ca_file %s", g->ca_file);
		return "ca_file";
	}
	snprintf(buf, len, "TLS, certificate verified against the system's CA store");
	return "system";
}

void report_config_region(struct report_config *rc, const struct cfg_region *g,
			  const struct store *s, const struct err *err)
{
	/* an S3 server's words: escaped */
	const char *msg = err ? UTIL_ESC_CTL(err_strip_region(g->name, err->msg)) : NULL;
	const char *role = g->primary ? "primary" : g->replication == REPL_AGENT ?
		"secondary, replication = agent" : "secondary, replication = server";
	char tls_text[400], warn[512];
	const char *tls = region_tls(g, tls_text, sizeof(tls_text), warn, sizeof(warn));

	if (msg)
		config_msg(rc, true, UTIL_ESC_CTL(err->msg));
	if (rc->r->json)
		json_array_append_new(json_object_get(rc->r->doc, "regions"),
				      json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?}", "region", g->name,
						"location", config_region_location(g),
						"role", role, "status", err ? "error" : "ok",
						"error", msg, "tls", tls));
	else if (err)
		printf("  region %s: error: %s\n", g->name, msg);
	else
		printf("  region %s: %s%s%s ok (%s)\n", g->name, store_describe(s),
		       g->endpoint ? " at " : "", g->endpoint ? g->endpoint : "", role);
	if (!rc->r->json && tls)
		printf("  region %s: %s\n", g->name, UTIL_ESC_CTL(tls_text));
	if (warn[0])
		report_config_note(rc, false, warn);
}

void report_config_note(void *ctx, bool error, const char *msg)
{
	struct report_config *rc = ctx;

	config_msg(rc, error, UTIL_ESC_CTL(msg));
	if (!rc->r->json)
		printf("  %s: %s\n", error ? "error" : "warning", UTIL_ESC_CTL(msg));
}

int report_config_end(struct report_config *rc, const struct config *cfg)
{
	int exit_status = rc->errors ? 1 : 0;

	if (rc->r->json) {
		json_object_set_new(rc->r->doc, "status", json_string(rc->errors ? "error" : "ok"));
		json_object_set_new(rc->r->doc, "exit_status", json_integer(exit_status));
	} else if (rc->errors) {
		printf("%s: %u error(s), %u warning(s): the agent cannot work until the errors are fixed\n",
		       cfg->file, rc->errors, rc->warnings);
	} else {
		printf("%s: ok%s", cfg->file, rc->warnings ? ", " : "\n");
		if (rc->warnings)
			printf("%u warning(s)\n", rc->warnings);
	}
	return exit_status;
}

/* ---- prune ---- */

static const char *prune_status(const struct prune_report *rep)
{
	return rep->errors || rep->pending ? "incomplete" : "ok";
}

static json_t *prune_actions_json(const struct prune_backup *b)
{
	json_t *a = json_array();

	for (size_t i = 0; i < b->nr; i++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "region", b->r[i].region,
						   "action", b->r[i].action,
						   "detail", b->r[i].detail));
	return a;
}

static json_t *prune_backup_json(const struct prune_backup *b)
{
	return json_pack("{s:s, s:I, s:b, s:s, s:s, s:o}", "backup_id", b->id,
			 "time", (json_int_t)b->time, "keep", b->keep, "rule", b->rule,
			 "note", b->note, "regions", prune_actions_json(b));
}

static void prune_json(struct report *r, const char *host, const struct prune_report *rep)
{
	json_t *regions = json_array(), *backups = json_array(), *fin = json_array();

	for (size_t i = 0; i < rep->nregions; i++)
		json_array_append_new(regions, json_pack("{s:s, s:s, s:I, s:s}",
				"region", rep->regions[i].region, "listing", rep->regions[i].status,
				"backups", (json_int_t)rep->regions[i].backups,
				"detail", rep->regions[i].detail));
	for (size_t j = 0; j < rep->nb; j++)
		json_array_append_new(backups, prune_backup_json(&rep->b[j]));
	for (size_t j = 0; j < rep->nfinished; j++)
		json_array_append_new(fin, json_pack("{s:s, s:o}", "backup_id",
				rep->finished[j].id, "regions", prune_actions_json(&rep->finished[j])));
	append(r, json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}",
			    "partition", rep->partition, "host", host, "status", prune_status(rep),
			    "dry_run", rep->dry_run, "kept", (json_int_t)rep->kept,
			    "deleted", (json_int_t)rep->deleted,
			    "pending", (json_int_t)rep->pending,
			    "skipped", (json_int_t)rep->skipped,
			    "locked", (json_int_t)rep->locked, "listings", regions,
			    "backups", backups, "earlier", fin));
}

/* "east: deleted; west: pending (why)" */
static void prune_actions_text(const struct prune_backup *b)
{
	for (size_t i = 0; i < b->nr; i++)
		printf("%s%s: %s%s%s%s", i ? "; " : "  ", b->r[i].region, b->r[i].action,
		       b->r[i].detail[0] ? " (" : "", UTIL_ESC_CTL(b->r[i].detail),
		       b->r[i].detail[0] ? ")" : "");
}

void report_prune(struct report *r, const char *host, const struct prune_report *rep)
{
	char tb[32];

	if (r->json) {
		prune_json(r, host, rep);
		return;
	}
	printf("%s/%s: %zu backup(s): keep %zu, %s %zu%s", host, rep->partition, rep->nb,
	       rep->kept, rep->dry_run ? "would delete" : "delete", rep->deleted,
	       rep->dry_run ? " (dry run: nothing deleted)" : "");
	if (rep->skipped)
		printf(", %zu of them skipped for now", rep->skipped);
	if (rep->pending)
		printf(", %zu with deletions pending", rep->pending);
	if (rep->locked)
		printf(", %zu under Object Lock for now", rep->locked);
	putchar('\n');
	for (size_t i = 0; i < rep->nregions; i++)
		if (strcmp(rep->regions[i].status, "listed") || rep->regions[i].detail[0])
			printf("  region %s: listing %s: %s\n", rep->regions[i].region,
			       rep->regions[i].status, UTIL_ESC_CTL(rep->regions[i].detail));
	for (size_t j = 0; j < rep->nfinished; j++) {
		printf("  %-23s earlier deletion:", rep->finished[j].id);
		prune_actions_text(&rep->finished[j]);
		putchar('\n');
	}
	for (size_t j = 0; j < rep->nb; j++) {
		const struct prune_backup *b = &rep->b[j];

		fmt_time(b->time * 1000000000LL, tb, sizeof(tb));
		printf("  %-23s %-21s %-6s %-*s", b->id, tb, b->keep ? "keep" : "delete",
		       b->note[0] || b->nr ? 12 : 0, b->rule);
		if (b->note[0])
			printf("  %s", UTIL_ESC_CTL(b->note));
		prune_actions_text(b);
		putchar('\n');
	}
}

void report_prune_failed(struct report *r, const char *partition, const char *msg)
{
	if (r->json)
		append(r, json_pack("{s:s, s:s, s:s}", "partition", partition,
				    "status", "failed", "error", msg));
}
