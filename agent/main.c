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
"  snapship backup [PARTITION...]      back up the configured partitions\n"
"  snapship list [PARTITION] [--json]\n"
"  snapship restore PARTITION --to DIR [--id ID] [--path P]...\n"
"  snapship verify [PARTITION] [--deep]\n"
"  snapship clean [--from STORE]      remove snapshots and uploads left by a crash\n"
"  snapship config check               parse and check the config\n"
"\n"
"STORE is a directory (local or NFS) or s3://BUCKET/PREFIX (endpoint from\n"
"SNAPSHIP_S3_ENDPOINT or AWS_ENDPOINT_URL, region from AWS_REGION, keys from\n"
"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).  Common options: --json,\n"
"--host NAME, --state-dir DIR, --help.  Exit status: 0 ok, 1 failure, 2 usage/config\n"
"error.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "snapship: %s\nTry 'snapship --help'.\n", msg);
	return EXIT_USAGE;
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
	for (char *p = buf; *p; p++)   /* a key component, not a hostname */
		if (*p == '/' || *p == ' ')
			*p = '_';
	return buf;
}

/* The store of a configured region. */
static int open_region(const struct cfg_region *r, struct store **store_ret,
		       struct err *err)
{
	struct store_opts o = { 0 };
	char *endpoint = NULL;
	int ret;

	if (!r->store || strcmp(r->store, "s3"))
		return store_open(config_region_location(r), store_ret, err);
	o.name = r->name;
	o.region = r->sigv4_region ? r->sigv4_region : "us-east-1";
	o.endpoint = r->endpoint;
	if (!o.endpoint) {
		/* the config says where; the environment does not */
		if (asprintf(&endpoint, "https://s3.%s.amazonaws.com", o.region) < 0)
			return err_set(err, -ENOMEM, "out of memory");
		o.endpoint = endpoint;
	}
	o.addressing = r->virtual_hosted ? STORE_ADDR_VIRTUAL : STORE_ADDR_PATH;
	o.access_key_id = r->access_key_id;
	o.secret_access_key_file = r->secret_access_key_file;
	o.ca_file = r->ca_file;
	o.insecure_tls = r->insecure_tls;
	o.part_size = r->part_size;
	o.parts_in_flight = r->parts_in_flight;
	ret = store_open_opts(config_region_location(r), &o, store_ret, err);
	free(endpoint);
	return ret;
}

/* Open the store: --from/--to STORE, or the config's primary region. */
static int open_store(struct global *g, struct store **store_ret,
		      const char **prefix_ret, struct err *err)
{
	const struct cfg_region *r;

	*prefix_ret = "";
	if (g->from)
		return store_open(g->from, store_ret, err);
	if (!g->have_config)
		return err_set(err, -EINVAL,
			       "no store given: pass --from/--to STORE, or configure a [region] in %s",
			       g->config_file);
	r = config_primary(&g->cfg);
	if (!r)
		return err_set(err, -EINVAL, "%s: no [region] configured; add one with store = file and path = DIR, or store = s3 and bucket = NAME",
			       g->cfg.file);
	*prefix_ret = r->prefix ? r->prefix : "";
	return open_region(r, store_ret, err);
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
static unsigned clean_store(struct store *store, const char *prefix,
			    const char *host)
{
	struct err err = { 0 };
	unsigned n = 0;
	size_t orphans = 0;
	char *p;

	if (asprintf(&p, "%s%s/", prefix, host) < 0)
		return 0;
	/* one warning at most: a store that cannot be cleaned usually cannot
	 * take the backup either, and that error follows */
	if (store_abort_incomplete(store, p, &n, &err) ||
	    catalog_remove_orphans(store, prefix, host, &orphans, &err))
		log_warn("could not clean up after interrupted runs: %s", err.msg);
	n += (unsigned)orphans;
	if (n)
		log_warn("removed %u unfinished upload(s) left behind by an interrupted run", n);
	free(p);
	return n;
}

/* ---------------------------------------------------------------- backup */

static int cmd_backup(struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "name", required_argument, NULL, 'n' },
		{ "snapshot-dir", required_argument, NULL, 's' },
		{ "level", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct cfg_partition quick = { 0 };
	const char *name = NULL, *snapdir = NULL, *prefix;
	struct store *store = NULL;
	struct err err = { 0 };
	char hbuf[256], pathbuf[PATH_MAX], namebuf[PATH_MAX];
	const char *host;
	json_t *out;
	int c, lockfd = -1, rc = EXIT_OK, failures = 0;
	unsigned removed = 0;
	bool progress = isatty(2) && log_get_level() >= LOG_WARN;

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
	} else if (!g->have_config) {
		return usage_error("backup needs --to STORE, or a config file with [partition] and [region] sections");
	}
	if (g->state_dir) {
		free(g->cfg.state_dir);
		g->cfg.state_dir = strdup(g->state_dir);
	}
	host = host_name(g, hbuf, sizeof(hbuf));
	if (open_store(g, &store, &prefix, &err))
		return fail(&err);
	lockfd = lock_acquire(g->cfg.state_dir, 0, &err);
	if (lockfd < 0) {
		store_free(store);
		return fail(&err);
	}
	out = json_array();
	if (cow_recover(g->cfg.state_dir, &removed, &err)) {
		log_warn("recovering leftover snapshots: %s", err.msg);
		err_clear(&err);
	} else if (removed) {
		log_warn("removed %u snapshot(s) left behind by an interrupted run", removed);
	}
	clean_store(store, prefix, host);

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
		if (backup_partition(&g->cfg, part, store, prefix, host, progress, &res, &err)) {
			log_error("backup of %s failed: %s", part->name, err.msg);
			failures++;
			if (rc == EXIT_OK)
				rc = EXIT_FAIL;
			continue;
		}
		if (g->json) {
			json_array_append_new(out, manifest_summary_json(&res.m, res.seconds));
		} else {
			printf("%s %s: %llu files, %s -> %s (%.2fx) in %.1f s\n",
			       res.m.partition, res.m.backup_id,
			       (unsigned long long)res.m.files,
			       util_human_size(res.m.logical_bytes, hb1, sizeof(hb1)),
			       util_human_size(res.m.stored_bytes, hb2, sizeof(hb2)),
			       res.m.stored_bytes ? (double)res.m.logical_bytes / (double)res.m.stored_bytes : 0.0,
			       res.seconds);
		}
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
	lock_release(lockfd);
	store_free(store);
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

static int cmd_list(struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct catalog_list list;
	struct store *store = NULL;
	struct err err = { 0 };
	const char *prefix, *host, *part = NULL;
	char hbuf[256];
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': g->from = optarg; break;
		case 'j': g->json = true; break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind < argc)
		part = argv[optind++];
	if (optind < argc)
		return usage_error("list takes at most one PARTITION");
	host = host_name(g, hbuf, sizeof(hbuf));
	if (open_store(g, &store, &prefix, &err))
		return fail(&err);
	if (catalog_list(store, prefix, host, part, &list, &err)) {
		store_free(store);
		return fail(&err);
	}
	if (g->json) {
		json_t *arr = json_array();

		for (size_t i = 0; i < list.n; i++) {
			const struct manifest *m = &list.m[i];
			json_t *o = manifest_summary_json(m, (double)(m->finished_ns - m->started_ns) / 1e9);

			json_object_set_new(o, "state", json_string("committed"));
			json_array_append_new(arr, o);
		}
		print_json(arr);
	} else if (list.n == 0) {
		printf("no backups of %s%s%s on %s\n", host, part ? "/" : "",
		       part ? part : "", store_describe(store));
	} else {
		printf("%-16s %-24s %-21s %9s %10s %10s %6s\n", "PARTITION", "BACKUP ID",
		       "TIME (UTC)", "FILES", "SIZE", "STORED", "RATIO");
		for (size_t i = 0; i < list.n; i++) {
			const struct manifest *m = &list.m[i];
			char tb[32], s1[32], s2[32];

			fmt_time(m->snap_time_ns, tb, sizeof(tb));
			printf("%-16s %-24s %-21s %9llu %10s %10s %5.2fx\n", m->partition,
			       m->backup_id, tb, (unsigned long long)m->files,
			       util_human_size(m->logical_bytes, s1, sizeof(s1)),
			       util_human_size(m->stored_bytes, s2, sizeof(s2)),
			       m->stored_bytes ? (double)m->logical_bytes / (double)m->stored_bytes : 0.0);
		}
	}
	if (list.broken)
		log_warn("%zu manifest(s) could not be read; run snapship verify", list.broken);
	catalog_list_free(&list);
	store_free(store);
	return EXIT_OK;
}

/* --------------------------------------------------------------- restore */

static int cmd_restore(struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
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
	struct store *store = NULL;
	struct err err = { 0 };
	const char *prefix, *host, *part, *id = NULL;
	const char **paths = NULL;
	char hbuf[256], hb[32];
	int c, rc = EXIT_OK;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': g->from = optarg; break;
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
	host = host_name(g, hbuf, sizeof(hbuf));
	if (open_store(g, &store, &prefix, &err)) {
		free(paths);
		return fail(&err);
	}
	if (catalog_list(store, prefix, host, part, &list, &err)) {
		rc = fail(&err);
		goto out;
	}
	m = catalog_find(&list, part, id);
	if (!m) {
		if (id)
			err_set(&err, -ENOENT, "no backup %s of %s/%s on %s; snapship list shows the backups",
				id, host, part, store_describe(store));
		else
			err_set(&err, -ENOENT, "no backups of %s/%s on %s", host, part,
				store_describe(store));
		rc = fail(&err);
		goto out_list;
	}
	if (restore_backup(store, m, &ro, &res, &err)) {
		rc = fail(&err);
		goto out_list;
	}
	if (g->json) {
		print_json(json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:f}",
				     "backup_id", m->backup_id, "partition", m->partition,
				     "target", ro.target, "entries", (json_int_t)res.entries,
				     "files", (json_int_t)res.files, "bytes", (json_int_t)res.bytes,
				     "skipped_devices", (json_int_t)res.skipped_devices,
				     "frames_read", (json_int_t)res.frames_read,
				     "frames_total", (json_int_t)res.frames_total,
				     "subvolume", res.subvolume, "seconds", res.seconds));
	} else {
		printf("restored %s %s into %s%s: %llu entries, %s, verified, in %.1f s\n",
		       m->partition, m->backup_id, ro.target,
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
	store_free(store);
	free(paths);
	return rc;
}

/* ---------------------------------------------------------------- verify */

static int cmd_verify(struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "deep", no_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct catalog_list list;
	struct store *store = NULL;
	struct err err = { 0 };
	const char *prefix, *host, *part = NULL;
	char hbuf[256];
	bool deep = false;
	size_t bad = 0;
	json_t *arr = json_array();
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': g->from = optarg; break;
		case 'd': deep = true; break;
		case 'j': g->json = true; break;
		case 'h': fputs(usage_text, stdout); json_decref(arr); return EXIT_OK;
		default: json_decref(arr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		part = argv[optind++];
	host = host_name(g, hbuf, sizeof(hbuf));
	if (open_store(g, &store, &prefix, &err)) {
		json_decref(arr);
		return fail(&err);
	}
	if (catalog_list(store, prefix, host, part, &list, &err)) {
		json_decref(arr);
		store_free(store);
		return fail(&err);
	}
	for (size_t i = 0; i < list.n; i++) {
		const struct manifest *m = &list.m[i];
		struct restore_opts ro = { 0 };
		struct restore_result res;
		int ret;

		err_clear(&err);
		ret = verify_objects(store, m, &err);
		if (!ret && deep)
			ret = restore_backup(store, m, &ro, &res, &err);
		if (ret)
			bad++;
		if (g->json)
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s?}",
				"partition", m->partition, "backup_id", m->backup_id,
				"status", ret ? "bad" : "ok", "error", ret ? err.msg : NULL));
		else if (ret)
			printf("BAD %s %s: %s\n", m->partition, m->backup_id, err.msg);
		else
			printf("ok  %s %s%s\n", m->partition, m->backup_id,
			       deep ? " (every frame and file checksum)" : "");
	}
	if (list.broken) {
		bad += list.broken;
		if (!g->json)
			printf("BAD %zu manifest(s) unreadable\n", list.broken);
	}
	if (g->json)
		print_json(arr);
	else
		json_decref(arr);
	catalog_list_free(&list);
	store_free(store);
	return bad ? EXIT_FAIL : EXIT_OK;
}

/* ----------------------------------------------------------------- clean */

static int cmd_clean(struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct store *store = NULL;
	struct err err = { 0 };
	unsigned removed = 0, uploads = 0;
	const char *prefix;
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
	lockfd = lock_acquire(g->cfg.state_dir, 0, &err);
	if (lockfd < 0)
		return fail(&err);
	ret = cow_recover(g->cfg.state_dir, &removed, &err);
	if (!ret && (g->from || g->have_config)) {
		ret = open_store(g, &store, &prefix, &err);
		if (!ret)
			uploads = clean_store(store, prefix, host_name(g, hbuf, sizeof(hbuf)));
		store_free(store);
	}
	lock_release(lockfd);
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
		int ret = open_region(r, &s, &err);

		/* an S3 store says what is wrong (keys, bucket, clock, endpoint)
		 * only when asked something */
		if (!ret && r->store && !strcmp(r->store, "s3"))
			ret = store_list(s, r->prefix ? r->prefix : "", stop_at_first, NULL, &err);
		bad_regions += ret != 0;
		if (ret && !strncmp(err.msg, "region ", 7) &&
		    !strncmp(err.msg + 7, r->name, strlen(r->name)) &&
		    err.msg[7 + strlen(r->name)] == ':')
			printf("  %s\n", err.msg);     /* it names the region already */
		else if (ret)
			printf("  region %s: %s\n", r->name, err.msg);
		else
			printf("  region %s: %s%s%s ok%s\n", r->name, store_describe(s),
			       r->endpoint ? " at " : "", r->endpoint ? r->endpoint : "",
			       r->primary ? " (primary)" : "");
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
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		case 'V': printf("snapship %s\n", SNAPSHIP_VERSION); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
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
	else if (!strcmp(cmd, "clean"))
		rc = cmd_clean(&g, argc, argv);
	else if (!strcmp(cmd, "config"))
		rc = cmd_config(&g, argc, argv);
	else
		rc = usage_error("unknown command \"%s\"", cmd);
	config_free(&g.cfg);
	return rc;
}
