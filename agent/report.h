/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_REPORT_H
#define SNAPSHIP_AGENT_REPORT_H

/*
 * Everything the commands print on stdout: text tables and lines as they
 * come, or (json) one JSON document printed by report_end.  Warnings go to
 * stderr through the log.  Names from a store are escaped in text.
 *
 * Ownership: every pointer argument is only read and not kept; struct
 * report owns its document until report_end or report_free.
 */

#include <stdbool.h>
#include <stddef.h>

#include "agent/verify.h"

struct backup_result;
struct catalog_hosts;
struct catalog_list;
struct clean_result;
struct cfg_region;
struct config;
struct err;
struct geo_state;
struct ls_listing;
struct manifest;
struct regions;
struct restore_result;
struct status_result;
struct store;

struct report {
	bool json;
	void *doc;                   /* json_t *: the document being built */
};

/* Start a command's output (json: an empty array, which report_status
 * and report_restore replace with their object). */
void report_init(struct report *r, bool json);
/* Print the JSON document (json only) and free it. */
void report_end(struct report *r);
/* Free the document without printing it (the command failed). */
void report_free(struct report *r);

/*
 * The JSON of a failed run (design: a script reads the failure where it
 * reads the data).  report_collect_errors keeps every error logged from
 * then on; report_exit(json, rc) returns rc and, when json, rc != 0 and
 * no command printed its document, prints {"status": "failed", "error":
 * the last message, "errors": all of them, "exit_status": rc}.
 * report_note_error keeps an error said without the log (usage errors).
 */
void report_collect_errors(void);
void report_note_error(const char *msg);
int report_exit(bool json, int rc);

/* One partition backed up (region: the primary's name); with the wait for
 * replication done (!no_wait), a warning when the backup is not (yet)
 * geo-protected. */
void report_backup(struct report *r, const struct backup_result *res,
		   const char *region, bool no_wait);

/* One partition whose backup failed (json: an entry with its message). */
void report_backup_failed(struct report *r, const char *partition, const char *msg);

/* list: nothing found (text only), the header, one backup per row. */
void report_list_none(struct report *r, const char *host, const char *part,
		      const struct store *store);
void report_list_header(struct report *r, bool geo);
void report_list_row(struct report *r, const struct manifest *m,
		     const char *listed_from, const struct geo_state *gs,
		     const char *geo_word, bool geo);
/* Warn about the manifests a listing skipped (region NULL: only one). */
void report_list_broken(const struct catalog_list *list, const char *region);

void report_status(struct report *r, const char *host, const struct regions *rs,
		   size_t used, const struct status_result *res, bool any);

/* region: the one read from; named in text unless from_store. */
void report_restore(struct report *r, const struct manifest *m, const char *region,
		    const char *target, const struct restore_result *res,
		    bool from_store);

/* ls: the listing of backup m read from region (named in text unless
 * from_store); names escaped in text, not UTF-8 ones as *_hex in JSON. */
void report_ls(struct report *r, const struct manifest *m, const char *region,
	       const struct ls_listing *ls, bool from_store);

/* verify and repair: a sink for verify_run (ctx must outlive the run),
 * then the bad manifests and totals. */
struct report_verify {
	struct report *r;
	bool repair, deep;
};
struct verify_sink report_verify_sink(struct report_verify *ctx);
void report_verify_end(struct report_verify *ctx, const struct verify_result *res,
		       const char *host, const char *part);

void report_clean(unsigned snapshots, unsigned uploads);
/* clean: what was done, and not, in each region (n of them); have_store
 * false: no store was given, so none was looked at. */
void report_clean_regions(const struct clean_result *res, size_t n,
			  bool have_store);

/*
 * restore --at, ls --at and list --at (report_at.c): a is catalog_at's
 * answer for the time w.  report_at_why: the sentence saying which backup
 * a picks and why ("ID (snapshot T), the newest at or before W; the next
 * one was taken at ..."), into buf (returned).  report_at_line: text only,
 * that sentence after verb ("restoring", "listing") before the command's
 * work starts; report_at_fields: json only, the pick's fields (at,
 * snap_time, snap_time_ns, next_backup_id, next_snap_time, why) added to
 * the command's document (an object: after report_restore or report_ls).
 * report_list_at: per partition of list, the pick and the next newer
 * backup (listed from rs->v[used], or list->region's).
 */
struct catalog_at;
struct when;
const char *report_at_why(const struct catalog_at *a, const struct when *w,
			  char *buf, size_t len);
void report_at_line(bool json, const char *verb, const struct catalog_at *a,
		    const struct when *w);
void report_at_fields(struct report *r, const struct catalog_at *a, const struct when *w);
void report_list_at(struct report *r, const char *host, const struct catalog_list *list,
		    const struct regions *rs, size_t used, const struct when *w);

/* list: the other hosts the store holds (text only; "" none). */
void report_list_other_hosts(struct report *r, const char *others);
/* hosts: the hosts a store holds backups of. */
void report_hosts(struct report *r, const struct catalog_hosts *h,
		  const struct store *store);

/*
 * config check: the file, each partition and region (err NULL: fine),
 * config_review's notes (report_config_note is its say, ctx the struct
 * report_config), then the summary: report_config_end returns the exit
 * status, 1 with any error (warnings do not count), else 0.
 */
struct report_config {
	struct report *r;
	unsigned errors, warnings;
};
void report_config(struct report_config *rc, const struct config *cfg);
void report_config_partition(struct report_config *rc, const char *name,
			     const char *path, const struct err *err);
void report_config_region(struct report_config *rc, const struct cfg_region *g,
			  const struct store *s, const struct err *err);
void report_config_note(void *ctx, bool error, const char *msg);
int report_config_end(struct report_config *rc, const struct config *cfg);

/* prune: one partition's decisions and what was done in each region
 * (report_prune), or why it could not be pruned (report_prune_failed). */
struct prune_report;
void report_prune(struct report *r, const char *host, const struct prune_report *rep);
void report_prune_failed(struct report *r, const char *partition, const char *msg);

#endif
