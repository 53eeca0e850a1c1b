// SPDX-License-Identifier: MIT
/*
 * snapship — backup agent for storage hosts.  Command-line dispatch.
 * Exit status: 0 ok, 1 failure, 2 usage or configuration error.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/backup.h"
#include "agent/catalog.h"
#include "agent/config.h"
#include "agent/geo.h"
#include "agent/lock.h"
#include "agent/restore.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "cow/cow.h"
#include "uploader/store.h"

#ifndef SNAPSHIP_VERSION
#define SNAPSHIP_VERSION "0.1.0"
#endif

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct global {
	const char *config_file;
	struct config cfg;
	bool have_config;
	bool json;
	const char *from;        /* --from/--to STORE in the zero-config form */
	const char *host;
	const char *state_dir;
	const char *region;      /* --region NAME: only that one, no failover */
};

static const char usage_text[] =
"usage: snapship [--config FILE] [-v|-q] COMMAND [ARGS]\n"
"\n"
"Zero-config form (first use, scripts):\n"
"  snapship backup PATH --to STORE [--name NAME]     freeze, stream, store one btrfs subvolume\n"
"  snapship list [PARTITION] --from STORE [--json]    committed backups\n"
"  snapship restore PARTITION --from STORE --to DIR [--id ID] [--path P]... [--force] [--devices]\n"
"  snapship verify [PARTITION] --from STORE [--deep]  check stored backups\n"
"\n"
"With a config file (default /etc/snapship/snapship.conf):\n"
"  snapship backup [PARTITION...] [--no-wait]  back up the configured partitions to\n"
"                                      every region (waits for server replication)\n"
"  snapship list [PARTITION] [--json]  backups and their geo state\n"
"  snapship status [--json]            per partition: latest backup, age, geo state\n"
"  snapship restore PARTITION --to DIR [--id ID] [--path P]...\n"
"  snapship verify [PARTITION] [--deep]  every backup in every region\n"
"  snapship repair [PARTITION] [--deep]  copy what a region lacks from a healthy one\n"
"  snapship clean [--from STORE]      remove snapshots and uploads left by a crash\n"
"  snapship config check               parse and check the config\n"
"\n"
"STORE is a directory (local or NFS) or s3://BUCKET/PREFIX (endpoint from\n"
"SNAPSHIP_S3_ENDPOINT or AWS_ENDPOINT_URL, region from AWS_REGION, keys from\n"
"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).  Reads (list, status, restore,\n"
"verify) use the primary region and fail over to the others; --region NAME\n"
"uses only that one.  Common options: --json, --host NAME, --state-dir DIR,\n"
"--help.  Exit status: 0 ok, 1 failure, 2 usage/config error.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "snapship: %s\nTry 'snapship --help'.\n", UTIL_ESC_CTL(msg));
	return EXIT_USAGE;
}

static int bad_partition(const char *part)
{
	return usage_error("\"%s\" is not a partition name (1 to %d letters, digits, '-', '_' or '.', not starting with '.')",
			   UTIL_ESC(part), UTIL_NAME_MAX);
}

/* The manifests a listing skipped, one line each, and how many there were
 * (region NULL: there is only one). */
static void report_broken(const struct catalog_list *list, const char *region)
{
	const char *r = region ? "region " : "", *rn = region ? region : "",
		   *sep = region ? ": " : "";

	for (size_t i = 0; i < list->nbroken_why; i++)
		log_warn("%s%s%sskipping %s", r, rn, sep, list->broken_why[i]);
	if (list->broken > list->nbroken_why)
		log_warn("%s%s%sand %zu more manifest(s) like these", r, rn, sep,
			 list->broken - list->nbroken_why);
}

static int fail(const struct err *err)
{
	log_error("%s", err->msg[0] ? err->msg : "failed");
	return err->code == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
}

static const char *host_name(const struct global *g, char *buf, size_t len)
{
	if (g->host)
		return g->host;
	if (g->have_config && g->cfg.host)
		return g->cfg.host;
	if (gethostname(buf, len))
		snprintf(buf, len, "localhost");
	buf[len - 1] = '\0';
	if (strlen(buf) > UTIL_NAME_MAX)
		buf[UTIL_NAME_MAX] = '\0';
	/* a key component (util_name_ok), not a hostname */
	for (char *p = buf; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", *p) ||
		    (p == buf && *p == '.'))
			*p = '_';
	if (!buf[0])
		snprintf(buf, len, "localhost");
	return buf;
}

/* The regions to use: --from/--to STORE, or the config's (primary first). */
static int open_regions(struct global *g, bool reads, struct regions *rs,
			struct err *err)
{
	if (!g->from && !g->have_config)
		return err_set(err, -EINVAL,
			       "no store given: pass --from/--to STORE, or configure a [region] in %s",
			       g->config_file);
	return geo_regions_open(g->from ? NULL : &g->cfg, g->from, g->region, reads, rs, err);
}

/* Did this error come from not reaching the store at all? */
static bool unreachable(const struct err *e)
{
	return e->code == -ECONNREFUSED || e->code == -ETIMEDOUT ||
	       e->code == -EHOSTUNREACH || e->code == -ENETUNREACH ||
	       e->code == -ECONNRESET || e->code == -EAGAIN || e->code == -EIO;
}

/*
 * The backups of host (partition NULL = all) from the first region that
 * answers: the primary, then the secondaries (read failover).  *used_ret
 * is the region listed.
 */
static int list_failover(struct regions *rs, const char *host, const char *part,
			 struct catalog_list *list, size_t *used_ret,
			 struct err *err)
{
	struct err e = { 0 };

	for (size_t i = 0; i < rs->n; i++) {
		struct region *g = &rs->v[i];

		if (g->down)
			continue;
		err_clear(&e);
		if (!catalog_list(g->store, g->prefix, host, part, list, &e)) {
			*used_ret = i;
			if (i > 0)
				log_warn("failed over: listing backups from region %s", g->name);
			return 0;
		}
		if (unreachable(&e))
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

static json_t *manifest_summary_json(const struct manifest *m, double seconds)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:I}",
			 "backup_id", m->backup_id, "host", m->host,
			 "partition", m->partition,
			 "files", (json_int_t)m->files, "entries", (json_int_t)m->entries,
			 "logical_bytes", (json_int_t)m->logical_bytes,
			 "stored_bytes", (json_int_t)m->stored_bytes,
			 "ratio", m->stored_bytes ? (double)m->logical_bytes / (double)m->stored_bytes : 0.0,
			 "seconds", seconds,
			 "time", (json_int_t)(m->snap_time_ns / 1000000000LL));
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2));

	if (s) {
		puts(s);
		free(s);
	}
	json_decref(j);
}

/* Remove this host's unfinished uploads (we hold the host lock). */
static unsigned clean_store(struct region *g, const char *host)
{
	struct store *store = g->store;
	const char *prefix = g->prefix, *region = g->name;
	struct err err = { 0 };
	unsigned n = 0;
	size_t orphans = 0;
	char *p;

	if (!store)
		return 0;
	if (asprintf(&p, "%s%s/", prefix, host) < 0)
		return 0;
	/* one warning at most: a store that cannot be cleaned usually cannot
	 * take the backup either, and that error follows */
	if (store_abort_incomplete(store, p, &n, &err) ||
	    catalog_remove_orphans(store, prefix, host, &orphans, &err)) {
		log_warn("region %s: could not clean up after interrupted runs: %s",
			 region, err_strip_region(region, err.msg));
		/* a secondary that does not answer is not asked again */
		if (!g->primary && unreachable(&err)) {
			g->down = true;
			snprintf(g->down_why, sizeof(g->down_why), "%.500s",
				 err_strip_region(region, err.msg));
		}
	}
	n += (unsigned)orphans;
	if (n)
		log_warn("region %s: removed %u unfinished upload(s) left behind by an interrupted run",
			 region, n);
	free(p);
	return n;
}

/* "geo": summary and "regions": [...] of a backup's replication state */
static void geo_json(json_t *o, const struct geo_state *gs)
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

/* " — geo-protected (west 0.42 s)" and a newline */
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

static int cmd_backup(struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "name", required_argument, NULL, 'n' },
		{ "snapshot-dir", required_argument, NULL, 's' },
		{ "level", required_argument, NULL, 'l' },
		{ "no-wait", no_argument, NULL, 'W' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct cfg_partition quick = { 0 };
	const char *name = NULL, *snapdir = NULL;
	struct regions rs;
	struct backup_opts bo = { 0 };
	struct err err = { 0 };
	char hbuf[256], pathbuf[PATH_MAX], namebuf[PATH_MAX];
	const char *host;
	json_t *out;
	int c, lockfd = -1, rc = EXIT_OK, failures = 0;
	unsigned removed = 0;

	bo.progress = isatty(2) && log_get_level() >= LOG_WARN;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't': g->from = optarg; break;
		case 'n': name = optarg; break;
		case 's': snapdir = optarg; break;
		case 'l': {
			char *end;
			long lv = strtol(optarg, &end, 10);

			if (*end || lv < 1 || lv > 19)
				return usage_error("--level %s: expected 1..19", optarg);
			g->cfg.compression_level = (int)lv;
			break;
		}
		case 'W': bo.no_wait = true; break;
		case 'j': g->json = true; break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (g->from && !g->have_config) {
		/* zero-config: one PATH */
		if (optind != argc - 1)
			return usage_error("backup --to STORE takes exactly one PATH");
		if (!realpath(argv[optind], pathbuf)) {
			err_set(&err, -errno, "%s: %s", argv[optind], strerror(errno));
			cow_check_source(argv[optind], &err);
			return fail(&err);
		}
		strcpy(namebuf, pathbuf);
		quick.name = (char *)(name ? name : basename(namebuf));
		quick.path = pathbuf;
		quick.snapshot_dir = (char *)snapdir;
		quick.hook_timeout = 300;
		if (!quick.name[0] || !strcmp(quick.name, "/"))
			return usage_error("cannot name a partition after /: pass --name NAME");
		/* the name goes into keys and paths: snapship's grammar only,
		 * the same as [partition NAME] in the config */
		if (!util_name_ok(quick.name))
			return usage_error("partition name \"%s\": use 1 to %d letters, digits, '-', '_' or '.', not starting with '.'; pass --name NAME",
					   UTIL_ESC(quick.name), UTIL_NAME_MAX);
	} else if (!g->have_config) {
		return usage_error("backup needs --to STORE, or a config file with [partition] and [region] sections");
	}
	if (g->state_dir) {
		free(g->cfg.state_dir);
		g->cfg.state_dir = strdup(g->state_dir);
	}
	host = host_name(g, hbuf, sizeof(hbuf));
	if (open_regions(g, false, &rs, &err))
		return fail(&err);
	lockfd = hostlock_acquire(g->cfg.state_dir, 0, &err);
	if (lockfd < 0) {
		geo_regions_free(&rs);
		return fail(&err);
	}
	out = json_array();
	if (cow_recover(g->cfg.state_dir, &removed, &err)) {
		log_warn("recovering leftover snapshots: %s", err.msg);
		err_clear(&err);
	} else if (removed) {
		log_warn("removed %u snapshot(s) left behind by an interrupted run", removed);
	}
	/* where we upload ourselves: the primary and agent regions */
	for (size_t i = 0; i < rs.n; i++)
		if (i == 0 || rs.v[i].replication == REPL_AGENT)
			clean_store(&rs.v[i], host);

	for (size_t i = 0;; i++) {
		const struct cfg_partition *part;
		struct backup_result res;
		char hb1[32], hb2[32];

		if (quick.path) {
			if (i > 0)
				break;
			part = &quick;
		} else if (optind < argc) {
			if (optind + (int)i >= argc)
				break;
			part = config_partition(&g->cfg, argv[optind + i]);
			if (!part) {
				log_error("no [partition %s] in %s", argv[optind + i], g->cfg.file);
				rc = EXIT_USAGE;
				failures++;
				continue;
			}
		} else {
			if (i >= g->cfg.nparts)
				break;
			part = &g->cfg.parts[i];
		}
		err_clear(&err);
		if (backup_partition(&g->cfg, part, &rs, host, &bo, &res, &err)) {
			log_error("backup of %s failed: %s", part->name, err.msg);
			failures++;
			if (rc == EXIT_OK)
				rc = EXIT_FAIL;
			continue;
		}
		if (g->json) {
			json_t *o = manifest_summary_json(&res.m, res.seconds);

			json_object_set_new(o, "region", json_string(rs.v[0].name));
			geo_json(o, &res.gs);
			if (res.geo_seconds >= 0)
				json_object_set_new(o, "geo_seconds", json_real(res.geo_seconds));
			json_array_append_new(out, o);
		} else {
			printf("%s %s: %llu files, %s -> %s (%.2fx) in %.1f s",
			       res.m.partition, res.m.backup_id,
			       (unsigned long long)res.m.files,
			       util_human_size(res.m.logical_bytes, hb1, sizeof(hb1)),
			       util_human_size(res.m.stored_bytes, hb2, sizeof(hb2)),
			       res.m.stored_bytes ? (double)res.m.logical_bytes / (double)res.m.stored_bytes : 0.0,
			       res.seconds);
			print_geo_line(&res.gs);
		}
		if (res.gs.n && strcmp(geo_summary(&res.gs, util_now_unix_ns()), "geo-protected") &&
		    !bo.no_wait)
			log_warn("%s %s is committed on region %s but %s; snapship repair copies it once the region is back",
				 res.m.partition, res.m.backup_id, rs.v[0].name,
				 geo_summary(&res.gs, util_now_unix_ns()));
		manifest_clear(&res.m);
	}
	if (!quick.path && g->cfg.nparts == 0 && optind >= argc) {
		log_error("%s has no [partition] sections: nothing to back up", g->cfg.file);
		rc = EXIT_USAGE;
	}
	if (g->json)
		print_json(out);
	else
		json_decref(out);
	hostlock_release(lockfd);
	geo_regions_free(&rs);
	return failures ? rc : EXIT_OK;
}

/* ------------------------------------------------------------------ list */

static void fmt_time(int64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000LL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
}

/* The replication state of a listed backup ("single region" with none). */
static void backup_geo(struct global *g, const struct regions *rs, const char *host,
		       const struct manifest *m, struct geo_state *gs)
{
	struct err e = { 0 };

	if (rs->n < 2 || rs->forced ||
	    geo_state_load(g->cfg.state_dir, host, m->partition, m->backup_id, gs, &e)) {
		memset(gs, 0, sizeof(*gs));
		if (rs->n >= 2 && !rs->forced) {
			/* no local state (another host, a lost state dir):
			 * unknown until snapship verify looks */
			for (size_t i = 1; i < rs->n; i++) {
				struct geo_region_state *r = geo_state_region(gs, rs->v[i].name);

				if (r) {
					r->replication = rs->v[i].replication;
					snprintf(r->detail, sizeof(r->detail), "not verified from this host; run snapship verify");
				}
			}
		}
	}
}

static const char *geo_word(const struct regions *rs, const struct geo_state *gs)
{
	if (rs->n < 2 || rs->forced)
		return "-";
	for (size_t i = 0; i < gs->n; i++)
		if (gs->r[i].state == RS_PENDING && !gs->r[i].deadline_ns)
			return "unverified";
	return geo_summary(gs, util_now_unix_ns());
}

static int cmd_list(struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "region", required_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct catalog_list list;
	struct regions rs;
	struct err err = { 0 };
	const char *host, *part = NULL;
	char hbuf[256];
	size_t used = 0;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': g->from = optarg; break;
		case 'R': g->region = optarg; break;
		case 'j': g->json = true; break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind < argc)
		part = argv[optind++];
	if (optind < argc)
		return usage_error("list takes at most one PARTITION");
	if (part && !util_name_ok(part))
		return bad_partition(part);
	host = host_name(g, hbuf, sizeof(hbuf));
	if (open_regions(g, true, &rs, &err))
		return fail(&err);
	if (list_failover(&rs, host, part, &list, &used, &err)) {
		geo_regions_free(&rs);
		return fail(&err);
	}
	if (g->json) {
		json_t *arr = json_array();

		for (size_t i = 0; i < list.n; i++) {
			const struct manifest *m = &list.m[i];
			json_t *o = manifest_summary_json(m, (double)(m->finished_ns - m->started_ns) / 1e9);
			struct geo_state gs;

			json_object_set_new(o, "state", json_string("committed"));
			json_object_set_new(o, "listed_from", json_string(rs.v[used].name));
			backup_geo(g, &rs, host, m, &gs);
			geo_json(o, &gs);
			json_object_set_new(o, "geo", json_string(rs.n < 2 || rs.forced ?
				"single region" : geo_word(&rs, &gs)));
			json_array_append_new(arr, o);
		}
		print_json(arr);
	} else if (list.n == 0) {
		printf("no backups of %s%s%s on %s\n", host, part ? "/" : "",
		       part ? part : "", store_describe(rs.v[used].store));
	} else {
		bool geo = rs.n > 1 && !rs.forced;

		printf("%-16s %-24s %-21s %9s %10s %10s %6s%s\n", "PARTITION", "BACKUP ID",
		       "TIME (UTC)", "FILES", "SIZE", "STORED", "RATIO", geo ? "  GEO" : "");
		for (size_t i = 0; i < list.n; i++) {
			const struct manifest *m = &list.m[i];
			char tb[32], s1[32], s2[32];
			struct geo_state gs;

			backup_geo(g, &rs, host, m, &gs);
			fmt_time(m->snap_time_ns, tb, sizeof(tb));
			printf("%-16s %-24s %-21s %9llu %10s %10s %5.2fx%s%s\n", m->partition,
			       m->backup_id, tb, (unsigned long long)m->files,
			       util_human_size(m->logical_bytes, s1, sizeof(s1)),
			       util_human_size(m->stored_bytes, s2, sizeof(s2)),
			       m->stored_bytes ? (double)m->logical_bytes / (double)m->stored_bytes : 0.0,
			       geo ? "  " : "", geo ? geo_word(&rs, &gs) : "");
		}
	}
	report_broken(&list, rs.n > 1 ? rs.v[used].name : NULL);
	if (list.broken)
		log_warn("%zu manifest(s) could not be used; run snapship verify", list.broken);
	catalog_list_free(&list);
	geo_regions_free(&rs);
	return EXIT_OK;
}

/* --------------------------------------------------------------- restore */

static int cmd_restore(struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "region", required_argument, NULL, 'R' },
		{ "to", required_argument, NULL, 't' },
		{ "id", required_argument, NULL, 'i' },
		{ "path", required_argument, NULL, 'p' },
		{ "force", no_argument, NULL, 'F' },
		{ "devices", no_argument, NULL, 'D' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct restore_opts ro = { .progress = isatty(2) && log_get_level() >= LOG_WARN };
	struct restore_result res;
	struct catalog_list list;
	const struct manifest *m;
	struct manifest mr;
	struct restore_source fb[REGIONS_MAX];
	struct regions rs;
	struct err err = { 0 };
	const char *host, *part, *id = NULL;
	const char **paths = NULL;
	char *keys[REGIONS_MAX][2] = { { 0 } };
	char hbuf[256], hb[32], why[2048] = "";
	size_t used = 0, src;
	int c, rc = EXIT_OK, chk_code = -EBADMSG;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': g->from = optarg; break;
		case 'R': g->region = optarg; break;
		case 't': ro.target = optarg; break;
		case 'i': id = optarg; break;
		case 'p': {
			const char **n = realloc(paths, (ro.npaths + 1) * sizeof(*n));

			if (!n)
				return EXIT_FAIL;
			paths = n;
			while (optarg[0] == '.' && optarg[1] == '/')
				optarg += 2;
			paths[ro.npaths++] = optarg;
			break;
		}
		case 'F': ro.force = true; break;
		case 'D': ro.devices = true; break;
		case 'j': g->json = true; break;
		case 'h': fputs(usage_text, stdout); free(paths); return EXIT_OK;
		default: free(paths); return EXIT_USAGE;
		}
	}
	ro.paths = paths;
	if (optind != argc - 1 || !ro.target) {
		free(paths);
		return usage_error("usage: snapship restore PARTITION --to DIR [--from STORE] [--id ID] [--path P]...");
	}
	part = argv[optind];
	if (!util_name_ok(part)) {
		free(paths);
		return bad_partition(part);
	}
	host = host_name(g, hbuf, sizeof(hbuf));
	if (open_regions(g, false, &rs, &err)) {
		free(paths);
		return fail(&err);
	}
	if (list_failover(&rs, host, part, &list, &used, &err)) {
		rc = fail(&err);
		goto out;
	}
	m = catalog_find(&list, part, id);
	if (!m) {
		if (id)
			err_set(&err, -ENOENT, "no backup %s of %s/%s on %s; snapship list shows the backups",
				id, host, part, store_describe(rs.v[used].store));
		else
			err_set(&err, -ENOENT, "no backups of %s/%s on %s", host, part,
				store_describe(rs.v[used].store));
		rc = fail(&err);
		goto out_list;
	}
	/* read from the first region whose copy is whole (primary first);
	 * the other whole copies take over if reading fails midway */
	for (size_t i = 0; i < rs.n; i++) {
		struct geo_check chk;
		size_t used_len = strlen(why);

		keys[i][0] = geo_region_key(&rs.v[i], m, "data.tar.zst");
		keys[i][1] = geo_region_key(&rs.v[i], m, "index.jsonl.zst");
		if (!keys[i][0] || !keys[i][1]) {
			err_set(&err, -ENOMEM, "out of memory");
			rc = fail(&err);
			goto out_list;
		}
		if (rs.v[i].down) {
			log_info("region %s: skipped (it did not answer)", rs.v[i].name);
			continue;
		}
		geo_check_copy(&rs.v[i], m, OBJ_DATA | OBJ_INDEX, &chk);
		if (chk.copy == COPY_OK) {
			fb[ro.nfallback++] = (struct restore_source){
				rs.v[i].store, keys[i][0], keys[i][1], rs.v[i].name };
			continue;
		}
		if (chk.copy == COPY_UNREACHABLE) {
			rs.v[i].down = true;
			chk_code = -EIO;
		}
		snprintf(why + used_len, sizeof(why) - used_len, "%sregion %s: %s: %s",
			 used_len ? "; " : "", rs.v[i].name, geo_copy_name(chk.copy), chk.detail);
		if (i + 1 < rs.n)
			log_warn("region %s: its copy of backup %s is %s (%s); failing over",
				 rs.v[i].name, m->backup_id, geo_copy_name(chk.copy), chk.detail);
	}
	if (!ro.nfallback) {
		err_set(&err, chk_code, "backup %s of %s/%s cannot be restored: %s%s",
			m->backup_id, host, part, why,
			rs.n > 1 ? " (no region holds a whole copy; snapship verify tells more)" : "");
		rc = fail(&err);
		goto out_list;
	}
	for (src = 0; src < rs.n && strcmp(rs.v[src].name, fb[0].region); src++)
		;
	if (src > 0)
		log_warn("failed over: restoring backup %s from region %s", m->backup_id,
			 rs.v[src].name);
	mr = *m;
	mr.data_key = keys[src][0];
	mr.index_key = keys[src][1];
	ro.region = rs.v[src].name;
	ro.fallback = fb + 1;
	ro.nfallback--;
	m = &mr;
	if (restore_backup(rs.v[src].store, m, &ro, &res, &err)) {
		rc = fail(&err);
		goto out_list;
	}
	if (g->json) {
		print_json(json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:f}",
				     "backup_id", m->backup_id, "partition", m->partition,
				     "region", ro.region,
				     "target", ro.target, "entries", (json_int_t)res.entries,
				     "files", (json_int_t)res.files, "bytes", (json_int_t)res.bytes,
				     "skipped_devices", (json_int_t)res.skipped_devices,
				     "frames_read", (json_int_t)res.frames_read,
				     "frames_total", (json_int_t)res.frames_total,
				     "subvolume", res.subvolume, "seconds", res.seconds));
	} else {
		printf("restored %s %s%s%s into %s%s: %llu entries, %s, verified, in %.1f s\n",
		       m->partition, m->backup_id, g->from ? "" : " from region ",
		       g->from ? "" : ro.region, ro.target,
		       res.subvolume ? " (new subvolume)" : "",
		       (unsigned long long)res.entries,
		       util_human_size(res.bytes, hb, sizeof(hb)), res.seconds);
	}
	if (res.skipped_devices)
		log_warn("skipped %llu device node(s); pass --devices to create them",
			 (unsigned long long)res.skipped_devices);
out_list:
	catalog_list_free(&list);
out:
	for (size_t i = 0; i < REGIONS_MAX; i++) {
		free(keys[i][0]);
		free(keys[i][1]);
	}
	geo_regions_free(&rs);
	free(paths);
	return rc;
}

/* ------------------------------------------------------- verify, repair */

/* Every backup of host in any reachable region, once (design §6: the
 * stores alone tell what exists where). */
struct union_list {
	struct catalog_list lists[REGIONS_MAX];
	bool ok[REGIONS_MAX];
	struct err errs[REGIONS_MAX];
	const struct manifest **v;     /* sorted by partition, then id */
	size_t n;
	size_t broken;
};

/* qsort order of manifests: partition, then id (oldest first) */
static int by_partition(const void *a, const void *b)
{
	const struct manifest *x = a, *y = b;
	int c = strcmp(x->partition, y->partition);

	return c ? c : strcmp(x->backup_id, y->backup_id);
}

/* Does another region list the same backup with other manifest bytes?
 * Then which copy is right cannot be told from the manifests alone.
 * (Each region's list is sorted by partition and id: a binary search.) */
static const char *manifest_conflict(const struct regions *rs,
				     const struct union_list *u,
				     const struct manifest *m)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct manifest *o;

		if (!u->ok[i] || !u->lists[i].n)
			continue;
		o = bsearch(m, u->lists[i].m, u->lists[i].n, sizeof(*o), by_partition);
		if (o && strcmp(o->self_sha256, m->self_sha256))
			return rs->v[i].name;
	}
	return NULL;
}

/* a backup as one region lists it */
struct uref {
	const struct manifest *m;
	size_t region;
};

static int uref_cmp(const void *a, const void *b)
{
	const struct uref *x = a, *y = b;
	int c = by_partition(x->m, y->m);

	return c ? c : x->region < y->region ? -1 : x->region > y->region;
}

static int union_list(struct regions *rs, const char *host, const char *part,
		      struct union_list *u, struct err *err)
{
	size_t total = 0, reached = 0, n = 0;
	struct uref *refs;

	memset(u, 0, sizeof(*u));
	for (size_t i = 0; i < rs->n; i++) {
		struct catalog_list *l = &u->lists[i];

		if (!rs->v[i].store) {
			err_set(&u->errs[i], -EIO, "%s", rs->v[i].down_why);
			continue;
		}
		if (catalog_list(rs->v[i].store, rs->v[i].prefix, host, part, l, &u->errs[i])) {
			log_warn("region %s cannot be listed: %s", rs->v[i].name,
				 err_strip_region(rs->v[i].name, u->errs[i].msg));
			if (unreachable(&u->errs[i]))
				rs->v[i].down = true;
			continue;
		}
		u->ok[i] = true;
		reached++;
		u->broken += l->broken;
		total += l->n;
	}
	if (!reached) {
		*err = u->errs[0];
		return err->code ? err->code : -EIO;
	}
	if (!total)
		return 0;
	/* all regions' backups sorted together, then each (partition, id)
	 * once, the first region's (primary first) kept: n log n, not n^2 */
	refs = malloc(total * sizeof(*refs));
	u->v = malloc(total * sizeof(*u->v));
	if (!refs || !u->v) {
		free(refs);
		return err_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < rs->n; i++)
		for (size_t j = 0; u->ok[i] && j < u->lists[i].n; j++)
			refs[n++] = (struct uref){ &u->lists[i].m[j], i };
	qsort(refs, n, sizeof(*refs), uref_cmp);
	for (size_t k = 0; k < n; k++)
		if (!u->n || by_partition(u->v[u->n - 1], refs[k].m))
			u->v[u->n++] = refs[k].m;
	free(refs);
	return 0;
}

static void union_free(struct union_list *u)
{
	for (size_t i = 0; i < REGIONS_MAX; i++)
		if (u->ok[i])
			catalog_list_free(&u->lists[i]);
	free(u->v);
}

/* A region's copy of m: HEADs, and with deep every byte. */
static void check_region(struct region *g, const struct union_list *u, size_t i,
			 const struct manifest *m, bool deep, struct geo_check *c)
{
	if (!u->ok[i] || g->down) {
		memset(c, 0, sizeof(*c));
		c->copy = COPY_UNREACHABLE;
		snprintf(c->detail, sizeof(c->detail), "%.590s", u->errs[i].msg[0] ?
			 err_strip_region(g->name, u->errs[i].msg) :
			 g->down_why[0] ? g->down_why : "did not answer");
		return;
	}
	geo_check_copy(g, m, OBJ_ALL, c);
	if (c->copy == COPY_UNREACHABLE)
		g->down = true;
	if (c->copy == COPY_OK && deep) {
		struct restore_opts ro = { 0 };
		struct restore_result res;
		struct manifest mr = *m;
		struct err e = { 0 };

		mr.data_key = geo_region_key(g, m, "data.tar.zst");
		mr.index_key = geo_region_key(g, m, "index.jsonl.zst");
		if (!mr.data_key || !mr.index_key ||
		    restore_backup(g->store, &mr, &ro, &res, &e)) {
			c->copy = e.code == -EBADMSG || !e.code ? COPY_BAD : COPY_UNREACHABLE;
			c->bad_mask = OBJ_DATA | OBJ_INDEX;
			snprintf(c->detail, sizeof(c->detail), "%.590s", e.msg[0] ? e.msg : "out of memory");
		}
		free(mr.data_key);
		free(mr.index_key);
	}
}

/* Record what was found in region i (> 0) in the backup's state. */
static void note_region(struct geo_state *gs, const struct region *g,
			const struct geo_check *c)
{
	struct geo_region_state *r = geo_state_region(gs, g->name);

	if (!r)
		return;
	r->replication = g->replication;
	if (c->copy == COPY_OK) {
		r->state = RS_VERIFIED;
		r->verified_ns = util_now_unix_ns();
		r->detail[0] = '\0';
	} else {
		r->state = RS_AT_RISK;
		snprintf(r->detail, sizeof(r->detail), "%s: %s", geo_copy_name(c->copy), c->detail);
	}
}

static void load_state(struct global *g, const char *host, const struct manifest *m,
		       struct geo_state *gs)
{
	struct err e = { 0 };

	if (geo_state_load(g->cfg.state_dir, host, m->partition, m->backup_id, gs, &e)) {
		memset(gs, 0, sizeof(*gs));
		strcpy(gs->backup_id, m->backup_id);
		gs->committed_ns = m->finished_ns;   /* rebuilt from the stores */
	}
}

static void save_state(struct global *g, const char *host, const struct manifest *m,
		       const struct geo_state *gs)
{
	struct err e = { 0 };

	if (geo_state_save(g->cfg.state_dir, host, m->partition, gs, &e))
		log_warn("cannot save the replication state: %s", e.msg);
}

static int cmd_verify_repair(struct global *g, int argc, char **argv, bool repair)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "region", required_argument, NULL, 'R' },
		{ "deep", no_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct union_list u;
	struct regions rs;
	struct err err = { 0 };
	const char *host, *part = NULL;
	char hbuf[256];
	bool deep = false, keep_state;
	size_t bad = 0, fixed = 0;
	json_t *arr;
	int c, lockfd = -1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': g->from = optarg; break;
		case 'R': g->region = optarg; break;
		case 'd': deep = true; break;
		case 'j': g->json = true; break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind < argc)
		part = argv[optind++];
	if (optind < argc)
		return usage_error("%s takes at most one PARTITION", repair ? "repair" : "verify");
	if (part && !util_name_ok(part))
		return bad_partition(part);
	if (g->state_dir) {
		free(g->cfg.state_dir);
		g->cfg.state_dir = strdup(g->state_dir);
	}
	if (repair && g->region)
		return usage_error("repair works across regions; --region does not apply");
	host = host_name(g, hbuf, sizeof(hbuf));
	if (open_regions(g, false, &rs, &err))
		return fail(&err);
	if (repair && rs.n < 2) {
		geo_regions_free(&rs);
		return usage_error("repair needs two or more regions in the config: it copies a backup from a region that has it to one that lacks it");
	}
	keep_state = rs.n >= 2 && !rs.forced;
	if (repair || keep_state) {
		/* the state dir is ours alone while we write it (and repair
		 * must not race a backup's uploads) */
		lockfd = hostlock_acquire(g->cfg.state_dir, 30, &err);
		if (lockfd < 0) {
			geo_regions_free(&rs);
			return fail(&err);
		}
	}
	if (union_list(&rs, host, part, &u, &err)) {
		union_free(&u);
		hostlock_release(lockfd);
		geo_regions_free(&rs);
		return fail(&err);
	}
	arr = json_array();
	if (!g->json && (u.n || u.broken))
		printf("%-16s %-24s %-10s %-12s %s\n", "PARTITION", "BACKUP ID", "REGION",
		       repair ? "REPAIR" : "COPY", "DETAIL");
	for (size_t b = 0; b < u.n; b++) {
		const struct manifest *m = u.v[b];
		struct geo_check chk[REGIONS_MAX];
		struct geo_state gs;
		json_t *regs = json_array();
		char first_bad[800] = "";

		const char *conflict = manifest_conflict(&rs, &u, m);

		load_state(g, host, m, &gs);
		for (size_t i = 0; i < rs.n; i++)
			check_region(&rs.v[i], &u, i, m, deep, &chk[i]);
		for (size_t i = 0; i < rs.n; i++) {
			struct geo_check *ci = &chk[i];
			const char *what = geo_copy_name(ci->copy);
			char detail[700];

			snprintf(detail, sizeof(detail), "%s", ci->detail);
			if (conflict && ci->copy != COPY_UNREACHABLE) {
				/* never repair from one of two disagreeing manifests */
				ci->copy = COPY_BAD;
				what = repair ? "failed" : "corrupt";
				snprintf(detail, sizeof(detail),
					 "the manifests in regions %s and %s differ; compare them (and verify --deep) before repairing by hand",
					 rs.v[0].name, conflict);
			} else if (repair && (ci->copy == COPY_MISSING || ci->copy == COPY_BAD)) {
				int ret = -ENOENT;
				struct err e = { 0 };

				/* from any region with a whole copy; the copy
				 * checks every byte against the manifest */
				for (size_t j = 0; j < rs.n && ret; j++) {
					if (j == i || chk[j].copy != COPY_OK)
						continue;
					err_clear(&e);
					ret = geo_copy(&rs.v[j], &rs.v[i], m, ci->bad_mask, &e);
					if (!ret) {
						geo_check_copy(&rs.v[i], m, OBJ_ALL, ci);
						snprintf(detail, sizeof(detail), "copied from %s%s%s",
							 rs.v[j].name, ci->copy ? "; still " : "",
							 ci->copy ? ci->detail : "");
						what = ci->copy ? "failed" : "repaired";
						fixed += !ci->copy;
					}
				}
				if (ret) {
					what = "failed";
					snprintf(detail, sizeof(detail), "%.690s",
						 e.code ? e.msg : "no region holds a whole copy to repair from");
				}
			}
			if (ci->copy != COPY_OK) {
				bad++;
				if (!first_bad[0])
					snprintf(first_bad, sizeof(first_bad), "region %s: %s: %.690s",
						 rs.v[i].name, what, detail);
			}
			if (i > 0 && keep_state)
				note_region(&gs, &rs.v[i], ci);
			if (g->json)
				json_array_append_new(regs, json_pack("{s:s, s:s, s:s}",
					"region", rs.v[i].name, "status", what, "detail", detail));
			else
				printf("%-16s %-24s %-10s %-12s %s\n", m->partition, m->backup_id,
				       rs.v[i].name, ci->copy == COPY_OK && !strcmp(what, "ok") && deep ? "ok (deep)" : what,
				       UTIL_ESC_CTL(detail));
		}
		if (keep_state)
			save_state(g, host, m, &gs);
		if (g->json) {
			json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:o}", "partition", m->partition,
					      "backup_id", m->backup_id,
					      "status", first_bad[0] ? "bad" : "ok",
					      "error", first_bad[0] ? first_bad : NULL,
					      "regions", regs);

			if (keep_state)
				json_object_set_new(o, "geo", json_string(geo_summary(&gs, util_now_unix_ns())));
			json_array_append_new(arr, o);
		} else {
			json_decref(regs);
		}
	}
	/* manifests that are not backups: each said once per region, skipped */
	for (size_t i = 0; i < rs.n; i++) {
		const struct catalog_list *l = &u.lists[i];

		for (size_t k = 0; u.ok[i] && k < l->nbroken_why; k++) {
			if (g->json)
				json_array_append_new(arr, json_pack("{s:s, s:s, s:s}",
					"status", "bad", "region", rs.v[i].name,
					"error", l->broken_why[k]));
			else
				printf("%-16s %-24s %-10s %-12s %s\n", "-", "-", rs.v[i].name,
				       "bad manifest", UTIL_ESC_CTL(l->broken_why[k]));
		}
		if (u.ok[i] && l->broken > l->nbroken_why && !g->json)
			printf("%-16s %-24s %-10s %-12s and %zu more like these\n", "-", "-",
			       rs.v[i].name, "bad manifest", l->broken - l->nbroken_why);
	}
	if (u.broken) {
		bad += u.broken;
		if (!g->json)
			printf("BAD %zu manifest(s) unreadable or not written by snapship, skipped: find out who wrote them, then remove them from the store\n",
			       u.broken);
	}
	if (g->json)
		print_json(arr);
	else
		json_decref(arr);
	if (!g->json && !u.n)
		printf("no backups of %s%s%s\n", host, part ? "/" : "", part ? part : "");
	if (!g->json && repair)
		printf("%zu cop%s repaired, %zu still missing or bad\n", fixed,
		       fixed == 1 ? "y" : "ies", bad);
	union_free(&u);
	hostlock_release(lockfd);
	geo_regions_free(&rs);
	return bad ? EXIT_FAIL : EXIT_OK;
}

static int cmd_verify(struct global *g, int argc, char **argv)
{
	return cmd_verify_repair(g, argc, argv, false);
}

static int cmd_repair(struct global *g, int argc, char **argv)
{
	return cmd_verify_repair(g, argc, argv, true);
}

/* ---------------------------------------------------------------- status */

static int cmd_status(struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "region", required_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct catalog_list list;
	struct regions rs;
	struct err err = { 0 };
	const char *host;
	char hbuf[256];
	size_t used = 0, at_risk_total = 0;
	json_t *parts = json_array();
	int64_t now = util_now_unix_ns();
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': g->from = optarg; break;
		case 'R': g->region = optarg; break;
		case 'j': g->json = true; break;
		case 'h': fputs(usage_text, stdout); json_decref(parts); return EXIT_OK;
		default: json_decref(parts); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		json_decref(parts);
		return usage_error("status takes no arguments");
	}
	host = host_name(g, hbuf, sizeof(hbuf));
	if (open_regions(g, true, &rs, &err)) {
		json_decref(parts);
		return fail(&err);
	}
	if (list_failover(&rs, host, NULL, &list, &used, &err)) {
		json_decref(parts);
		geo_regions_free(&rs);
		return fail(&err);
	}
	if (list.n)
		qsort(list.m, list.n, sizeof(*list.m), by_partition);
	if (!g->json) {
		printf("host %s, regions:", host);
		for (size_t i = 0; i < rs.n; i++)
			printf(" %s%s", rs.v[i].name, rs.v[i].primary ? " (primary)" :
			       rs.v[i].replication == REPL_AGENT ? " (agent)" : " (server)");
		printf("%s\n", used ? "; listed from a secondary: the primary failed" : "");
		printf("%-16s %7s %-24s %10s  %-14s %s\n", "PARTITION", "BACKUPS", "LATEST",
		       "AGE", "GEO", "AT RISK");
	}
	for (size_t i = 0; i < list.n;) {
		const char *p = list.m[i].partition;
		size_t j = i, at_risk = 0;
		const struct manifest *latest;
		struct geo_state gs;
		const char *word;
		double age;

		while (j < list.n && !strcmp(list.m[j].partition, p))
			j++;
		for (size_t k = i; k < j; k++) {
			backup_geo(g, &rs, host, &list.m[k], &gs);
			at_risk += !strcmp(geo_word(&rs, &gs), "at risk");
		}
		at_risk_total += at_risk;
		latest = &list.m[j - 1];
		backup_geo(g, &rs, host, latest, &gs);
		word = geo_word(&rs, &gs);
		age = (double)(now - latest->snap_time_ns) / 1e9;
		if (g->json) {
			json_t *o = json_pack("{s:s, s:I, s:s, s:f, s:I}", "partition", p,
					      "backups", (json_int_t)(j - i), "latest", latest->backup_id,
					      "age_seconds", age, "at_risk", (json_int_t)at_risk);

			geo_json(o, &gs);
			json_object_set_new(o, "geo", json_string(word));
			json_array_append_new(parts, o);
		} else {
			char ab[32];

			if (age < 3600)
				snprintf(ab, sizeof(ab), "%.0fm", age / 60);
			else if (age < 172800)
				snprintf(ab, sizeof(ab), "%.1fh", age / 3600);
			else
				snprintf(ab, sizeof(ab), "%.1fd", age / 86400);
			printf("%-16s %7zu %-24s %10s  %-14s %zu\n", p, j - i, latest->backup_id,
			       ab, word, at_risk);
		}
		i = j;
	}
	if (g->json) {
		print_json(json_pack("{s:s, s:s, s:b, s:o, s:I}", "host", host,
				     "listed_from", rs.v[used].name, "failed_over", used > 0,
				     "partitions", parts, "at_risk", (json_int_t)at_risk_total));
	} else {
		json_decref(parts);
		if (!list.n)
			printf("(no backups yet)\n");
	}
	report_broken(&list, rs.n > 1 ? rs.v[used].name : NULL);
	if (list.broken)
		log_warn("%zu manifest(s) could not be used; run snapship verify", list.broken);
	catalog_list_free(&list);
	geo_regions_free(&rs);
	return EXIT_OK;
}

/* ----------------------------------------------------------------- clean */

static int cmd_clean(struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct regions rs;
	struct err err = { 0 };
	unsigned removed = 0, uploads = 0;
	char hbuf[256];
	int c, lockfd, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': g->from = optarg; break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error("clean takes no arguments besides --from STORE");
	if (g->state_dir) {
		free(g->cfg.state_dir);
		g->cfg.state_dir = strdup(g->state_dir);
	}
	lockfd = hostlock_acquire(g->cfg.state_dir, 0, &err);
	if (lockfd < 0)
		return fail(&err);
	ret = cow_recover(g->cfg.state_dir, &removed, &err);
	if (!ret && (g->from || g->have_config)) {
		ret = open_regions(g, false, &rs, &err);
		/* only where we upload ourselves: in a server-replicated region a
		 * backup whose manifest has not arrived yet looks unfinished */
		for (size_t i = 0; !ret && i < rs.n; i++)
			if (i == 0 || rs.v[i].replication == REPL_AGENT)
				uploads += clean_store(&rs.v[i], host_name(g, hbuf, sizeof(hbuf)));
		if (!ret)
			geo_regions_free(&rs);
	}
	hostlock_release(lockfd);
	if (ret)
		return fail(&err);
	printf("removed %u leftover snapshot(s) and %u unfinished upload(s)\n",
	       removed, uploads);
	return EXIT_OK;
}

static int stop_at_first(void *ctx, const char *key, const struct store_obj_info *info)
{
	(void)ctx;
	(void)key;
	(void)info;
	return 1;
}

static int cmd_config(struct global *g, int argc, char **argv)
{
	unsigned bad_regions = 0;

	if (argc != 2 || strcmp(argv[1], "check"))
		return usage_error("usage: snapship [--config FILE] config check");
	if (!g->have_config)
		return usage_error("no config file: pass --config FILE");
	printf("%s: ok: %zu partition(s), %zu region(s)\n", g->cfg.file,
	       g->cfg.nparts, g->cfg.nregions);
	for (size_t i = 0; i < g->cfg.nparts; i++) {
		struct err err = { 0 };

		if (cow_check_source(g->cfg.parts[i].path, &err))
			printf("  partition %s: %s\n", g->cfg.parts[i].name, err.msg);
		else
			printf("  partition %s: %s ok\n", g->cfg.parts[i].name,
			       g->cfg.parts[i].path);
	}
	for (size_t i = 0; i < g->cfg.nregions; i++) {
		const struct cfg_region *r = &g->cfg.regions[i];
		struct store *s = NULL;
		struct err err = { 0 };
		int ret = geo_region_store_open(r, 0, 0, &s, &err);

		/* an S3 store says what is wrong (keys, bucket, clock, endpoint)
		 * only when asked something */
		if (!ret && r->store && !strcmp(r->store, "s3"))
			ret = store_list(s, r->prefix ? r->prefix : "", stop_at_first, NULL, &err);
		bad_regions += ret != 0;
		if (ret)
			/* an S3 server's words: escaped */
			printf("  region %s: %s\n", r->name,
			       UTIL_ESC_CTL(err_strip_region(r->name, err.msg)));
		else
			printf("  region %s: %s%s%s ok%s\n", r->name, store_describe(s),
			       r->endpoint ? " at " : "", r->endpoint ? r->endpoint : "",
			       r->primary ? " (primary)" :
			       r->replication == REPL_AGENT ? " (secondary, replication = agent)" :
			       " (secondary, replication = server)");
		store_free(s);
	}
	/* a region the agent cannot use fails the check */
	return bad_regions ? EXIT_FAIL : EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "host", required_argument, NULL, 'H' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct global g = { .config_file = "/etc/snapship/snapship.conf" };
	struct err err = { 0 };
	const char *cmd;
	bool explicit_config = false;
	int c, rc;

	/* frame-sized buffers come and go: map and unmap them, so freed ones
	 * never pile up in the heap (keeps the resident set flat) */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);

	while ((c = getopt_long(argc, argv, "+c:vqhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': g.config_file = optarg; explicit_config = true; break;
		case 'H': g.host = optarg; break;
		case 'S': g.state_dir = optarg; break;
		case 'v': log_set_level(log_get_level() == LOG_INFO ? LOG_DEBUG : LOG_INFO); break;
		case 'q': log_set_level(LOG_ERROR); break;
		case 'j': g.json = true; break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		case 'V': printf("snapship %s\n", SNAPSHIP_VERSION); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	if (g.host && !util_name_ok(g.host))
		return usage_error("--host %s: a host name is 1 to %d letters, digits, '-', '_' or '.', not starting with '.'",
				   UTIL_ESC(g.host), UTIL_NAME_MAX);
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	optind = 0;   /* re-initialise getopt for the command */

	/* the config file is used when named, or when the default exists */
	if (explicit_config || access(g.config_file, F_OK) == 0) {
		if (config_load(g.config_file, &g.cfg, &err)) {
			log_error("%s", err.msg);
			return EXIT_USAGE;
		}
		g.have_config = true;
	} else if (config_defaults(&g.cfg, &err)) {
		return fail(&err);
	}
	/* the zero-config form: --to/--from STORE overrides the config's regions */
	for (int i = 1; i < argc; i++)
		if ((!strcmp(argv[i], "--to") && strcmp(cmd, "restore")) ||
		    !strcmp(argv[i], "--from") || !strncmp(argv[i], "--from=", 7))
			g.have_config = g.have_config && explicit_config;

	if (!strcmp(cmd, "backup"))
		rc = cmd_backup(&g, argc, argv);
	else if (!strcmp(cmd, "list"))
		rc = cmd_list(&g, argc, argv);
	else if (!strcmp(cmd, "restore"))
		rc = cmd_restore(&g, argc, argv);
	else if (!strcmp(cmd, "verify"))
		rc = cmd_verify(&g, argc, argv);
	else if (!strcmp(cmd, "repair"))
		rc = cmd_repair(&g, argc, argv);
	else if (!strcmp(cmd, "status"))
		rc = cmd_status(&g, argc, argv);
	else if (!strcmp(cmd, "clean"))
		rc = cmd_clean(&g, argc, argv);
	else if (!strcmp(cmd, "config"))
		rc = cmd_config(&g, argc, argv);
	else
		rc = usage_error("unknown command \"%s\"", cmd);
	config_free(&g.cfg);
	return rc;
}
