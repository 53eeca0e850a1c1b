// SPDX-License-Identifier: MIT
#include "agent/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/failover.h"
#include "agent/keyring.h"
#include "agent/report.h"
#include "agent/signals.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#ifndef SNAPSHIP_VERSION
#define SNAPSHIP_VERSION "0.1.0"
#endif

const char cli_usage_text[] =
"usage: snapship [--config FILE] [-v|-q] COMMAND [ARGS]\n"
"\n"
"Zero-config form (first use, scripts):\n"
"  snapship backup PATH --to STORE [--name NAME] [--full]  freeze, stream, store one btrfs\n"
"                                      subvolume (an incremental of the last backup unless\n"
"                                      --full or the chain is long: full_every, max_chain)\n"
"  snapship list [PARTITION] --from STORE [--at TIME] [--json]  committed backups (--at: the\n"
"                                      one restore --at TIME picks, and the next)\n"
"  snapship restore PARTITION --from STORE --to DIR [--id ID | --at TIME] [--path P]...\n"
"                   [--force] [--devices] [--keep-privileges]\n"
"  snapship ls PARTITION --from STORE [--id ID | --at TIME] [PATH]  files of a backup\n"
"  snapship export PARTITION --from STORE [--id ID | --at TIME] | tar -x  one backup's\n"
"                                      tree as one plain pax stream on stdout\n"
"  snapship verify [PARTITION] --from STORE [--deep]  check stored backups\n"
"  snapship status --from STORE [--json]              per partition: latest, age, state\n"
"  snapship drill --from STORE [--partition P]...     restore the newest backups into a\n"
"                                                     scratch copy, check, time, remove\n"
"\n"
"With a config file (default /etc/snapship/snapship.conf):\n"
"  snapship backup [PARTITION...] [--full] [--no-wait] [--wait SECONDS]  back up the configured\n"
"                                      partitions to every region (waits for server\n"
"                                      replication, and for the host lock: --wait bounds it)\n"
"  snapship agent [--once]             the daemon: backs up every partition on its\n"
"                                      schedule (--once: the due ones, then exit)\n"
"  snapship list [PARTITION] [--at TIME] [--json]  backups and their geo state\n"
"  snapship status [--json]            per partition: latest backup, age, geo state, and\n"
"                                      ok, at risk, stale or never (exit 0, 3, 4, 5)\n"
"  snapship restore PARTITION --to DIR [--id ID | --at TIME] [--path P]...\n"
"  snapship restore PARTITION --to-lv VG/NAME --size S [--id ID | --at TIME]  into a new\n"
"                                      LVM volume with a new filesystem of the backup's type\n"
"  snapship ls PARTITION [--id ID | --at TIME] [PATH]  a directory of a backup, from\n"
"                                      its index\n"
"  snapship export PARTITION [--id ID | --at TIME]  the tree as one pax stream on stdout\n"
"  snapship cat PARTITION [--id ID | --at TIME] | zstd -d | tar -x  the data stream\n"
"                                      (an encrypted backup's decrypted) on stdout\n"
"  snapship verify [PARTITION] [--deep]  every backup in every region\n"
"  snapship repair [PARTITION] [--deep]  copy what a region lacks from a healthy one\n"
"  snapship prune [PARTITION] [--dry-run] [--json]  apply [retention] in every region:\n"
"                                      each backup kept or deleted, and the rule\n"
"  snapship clean [--from STORE]      remove snapshots, uploads and empty backup\n"
"                                      directories left by a crash (every region)\n"
"  snapship hosts [--from STORE] [--json]  the hosts a store holds backups of\n"
"  snapship drill [--region R] [--partition P]... [--scratch DIR] [--keep] [--sample N]\n"
"                 [--report-json F] [--report-junit F] [--json]\n"
"                                      DR drill: restore each partition's newest backup\n"
"                                      from one region (default: the first secondary),\n"
"                                      check RPO/RTO (exit 0 only when all pass)\n"
"  snapship config check               parse and check the config\n"
"  snapship key generate FILE          a new encryption key ([agent] key_file)\n"
"\n"
"STORE is a directory (local or NFS) or s3://BUCKET/PREFIX (endpoint from\n"
"SNAPSHIP_S3_ENDPOINT or AWS_ENDPOINT_URL, region from AWS_REGION, keys from\n"
"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).  Reads (list, status, restore,\n"
"verify) use the primary region and fail over to the others; --region NAME\n"
"uses only that one.  Common options: --json, --host NAME, --state-dir DIR,\n"
"--log-format text|json, --help.  TIME: RFC 3339 (2026-12-03T08:00:00Z,\n"
"+02:00 offsets), a date (its midnight UTC), now, or a duration ago (2h ago):\n"
"--at picks the newest backup whose snapshot is at or before it.  Exit status: 0 ok, 1 failure, 2 usage/config\n"
"error; status: 3 at risk, 4 stale, 5 never backed up.\n";

int cli_usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* --log-format json: a log line like every other (the log hook
	 * keeps it for --json) */
	if (log_get_format() == LOG_FORMAT_JSON) {
		log_error("%s; try 'snapship --help'", msg);
		return EXIT_USAGE;
	}
	fprintf(stderr, "snapship: %s\nTry 'snapship --help'.\n", UTIL_ESC_CTL(msg));
	report_note_error(UTIL_ESC_CTL(msg));
	return EXIT_USAGE;
}


/* ------------------------------------------------------------- options */

static int set_config(struct cli_opts *o, char *arg)
{
	o->config_file = arg;
	o->explicit_config = true;
	return CLI_GO_ON;
}

static int set_verbose(struct cli_opts *o, char *arg)
{
	(void)o, (void)arg;
	log_set_level(log_get_level() == LOG_INFO ? LOG_DEBUG : LOG_INFO);
	return CLI_GO_ON;
}

static int set_quiet(struct cli_opts *o, char *arg)
{
	(void)o, (void)arg;
	log_set_level(LOG_ERROR);
	return CLI_GO_ON;
}

static int set_log_format(struct cli_opts *o, char *arg)
{
	enum log_format f;

	(void)o;
	if (log_parse_format(arg, &f))
		return cli_usage_error("--log-format %s: expected text or json", UTIL_ESC(arg));
	log_set_format(f);
	return CLI_GO_ON;
}

static int show_help(struct cli_opts *o, char *arg)
{
	(void)o, (void)arg;
	fputs(cli_usage_text, stdout);
	return EXIT_OK;
}

static int show_version(struct cli_opts *o, char *arg)
{
	(void)o, (void)arg;
	printf("snapship %s\n", SNAPSHIP_VERSION);
	return EXIT_OK;
}

static int set_level(struct cli_opts *o, char *arg)
{
	char *end;
	long lv = strtol(arg, &end, 10);

	if (*end || lv < 1 || lv > 19)
		return cli_usage_error("--level %s: expected 1..19", arg);
	o->level = (int)lv;
	return CLI_GO_ON;
}

static int set_wait(struct cli_opts *o, char *arg)
{
	int64_t n;

	if (util_parse_duration(arg, &n) || n < 0 || n > 7 * 86400)
		return cli_usage_error("--wait %s: expected seconds (or a duration such as 10m), at most 7d",
				       UTIL_ESC(arg));
	o->wait_s = (int)n;
	return CLI_GO_ON;
}

/* --from STORE and backup's --to STORE: the store, and how it was typed */
static int set_from(struct cli_opts *o, char *arg)
{
	o->from = arg;
	o->from_flag = "--from";
	return CLI_GO_ON;
}

static int set_to_store(struct cli_opts *o, char *arg)
{
	o->from = arg;
	o->from_flag = "--to";
	return CLI_GO_ON;
}

static int add_path(struct cli_opts *o, char *arg)
{
	const char **n = realloc(o->paths, (o->npaths + 1) * sizeof(*n));

	if (!n)
		return EXIT_FAIL;
	o->paths = n;
	while (arg[0] == '.' && arg[1] == '/')
		arg += 2;
	o->paths[o->npaths++] = arg;
	return CLI_GO_ON;
}

static int add_partition(struct cli_opts *o, char *arg)
{
	const char **n = realloc(o->partitions, (o->npartitions + 1) * sizeof(*n));

	if (!n)
		return EXIT_FAIL;
	o->partitions = n;
	o->partitions[o->npartitions++] = arg;
	return CLI_GO_ON;
}

static int set_sample(struct cli_opts *o, char *arg)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(arg, &end, 10);
	if (errno || *end || !n || arg[0] == '-' || n > 1000000)
		return cli_usage_error("--sample %s: expected a number of files from 1 to 1000000",
				       UTIL_ESC(arg));
	o->sample = n;
	return CLI_GO_ON;
}

/* what an option does with its argument */
enum opt_kind { KIND_STRING, KIND_FLAG, KIND_CALL };

struct opt_def {
	const char *name;
	int has_arg;
	int short_name;                 /* 0: none */
	enum opt_kind kind;
	size_t field;                   /* STRING, FLAG: its offset in cli_opts */
	int (*call)(struct cli_opts *o, char *arg);   /* CALL: CLI_GO_ON or an exit */
};

#define STRING(n, f) { n, required_argument, 0, KIND_STRING, offsetof(struct cli_opts, f), NULL }
#define FLAG(n, f) { n, no_argument, 0, KIND_FLAG, offsetof(struct cli_opts, f), NULL }

static const struct opt_def opt_defs[OPT_END] = {
	[OPT_CONFIG] = { "config", required_argument, 'c', KIND_CALL, 0, set_config },
	[OPT_HOST] = STRING("host", host),
	[OPT_STATE_DIR] = STRING("state-dir", state_dir),
	[OPT_VERBOSE] = { "verbose", no_argument, 'v', KIND_CALL, 0, set_verbose },
	[OPT_QUIET] = { "quiet", no_argument, 'q', KIND_CALL, 0, set_quiet },
	[OPT_JSON] = FLAG("json", json),
	[OPT_HELP] = { "help", no_argument, 'h', KIND_CALL, 0, show_help },
	[OPT_VERSION] = { "version", no_argument, 'V', KIND_CALL, 0, show_version },
	[OPT_FROM] = { "from", required_argument, 0, KIND_CALL, 0, set_from },
	[OPT_TO_STORE] = { "to", required_argument, 0, KIND_CALL, 0, set_to_store },
	[OPT_TO_DIR] = STRING("to", target),
	[OPT_TO_LV] = STRING("to-lv", to_lv),
	[OPT_SIZE] = STRING("size", lv_size),
	[OPT_REGION] = STRING("region", region),
	[OPT_NAME] = STRING("name", name),
	[OPT_SNAPSHOT_DIR] = STRING("snapshot-dir", snapshot_dir),
	[OPT_LEVEL] = { "level", required_argument, 0, KIND_CALL, 0, set_level },
	[OPT_NO_WAIT] = FLAG("no-wait", no_wait),
	[OPT_FULL] = FLAG("full", full),
	[OPT_ID] = STRING("id", id),
	[OPT_PATH] = { "path", required_argument, 0, KIND_CALL, 0, add_path },
	[OPT_FORCE] = FLAG("force", force),
	[OPT_DEVICES] = FLAG("devices", devices),
	[OPT_KEEP_PRIVILEGES] = FLAG("keep-privileges", keep_privileges),
	[OPT_DEEP] = FLAG("deep", deep),
	[OPT_DRY_RUN] = FLAG("dry-run", dry_run),
	[OPT_LOG_FORMAT] = { "log-format", required_argument, 0, KIND_CALL, 0, set_log_format },
	[OPT_WAIT] = { "wait", required_argument, 0, KIND_CALL, 0, set_wait },
	[OPT_ONCE] = FLAG("once", once),
	[OPT_PARTITION] = { "partition", required_argument, 0, KIND_CALL, 0, add_partition },
	[OPT_SCRATCH] = STRING("scratch", scratch),
	[OPT_REPORT_JSON] = STRING("report-json", report_json),
	[OPT_REPORT_JUNIT] = STRING("report-junit", report_junit),
	[OPT_KEEP] = FLAG("keep", keep),
	[OPT_SAMPLE] = { "sample", required_argument, 0, KIND_CALL, 0, set_sample },
	[OPT_AT] = STRING("at", at),
	[OPT_WORKER] = STRING("worker", worker),
	[OPT_WORKER_RESUME] = FLAG("worker-resume", worker_resume),
	[OPT_WORKER_RELOAD] = FLAG("worker-reload", worker_reload),
};

static int opt_apply(struct cli_opts *o, const struct opt_def *d, char *arg)
{
	void *field = (char *)o + d->field;

	switch (d->kind) {
	case KIND_STRING:
		*(const char **)field = arg;
		return CLI_GO_ON;
	case KIND_FLAG:
		*(bool *)field = true;
		return CLI_GO_ON;
	default:
		return d->call(o, arg);
	}
}

int cli_parse(struct cli_opts *o, const enum cli_opt *ids,
	      const char *shortopts, int argc, char **argv)
{
	struct option lo[OPT_END + 1];
	size_t n = 0;
	int c, ret;

	for (; ids[n] != OPT_END; n++) {
		const struct opt_def *d = &opt_defs[ids[n]];

		lo[n] = (struct option){ d->name, d->has_arg, NULL,
					 d->short_name ? d->short_name : 256 + (int)n };
	}
	lo[n] = (struct option){ 0 };
	while ((c = getopt_long(argc, argv, shortopts, lo, NULL)) != -1) {
		const struct opt_def *d = NULL;

		for (size_t i = 0; i < n && !d; i++)
			if (lo[i].val == c)
				d = &opt_defs[ids[i]];
		if (!d)
			return EXIT_USAGE;
		ret = opt_apply(o, d, optarg);
		if (ret != CLI_GO_ON)
			return ret;
	}
	return CLI_GO_ON;
}

/* ------------------------------------------------- a command's context */

int cli_fail(const struct err *err)
{
	log_error("%s", err->msg[0] ? err->msg : "failed");
	return err->code == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
}

int cli_keys(struct cli *c, const struct keyring **kr_ret)
{
	struct err err = { 0 };

	if (!c->keys && keyring_load(&c->cfg, &c->keys, &err))
		return cli_fail(&err);
	*kr_ret = c->keys;
	return 0;
}

int cli_bad_partition(const char *part)
{
	return cli_usage_error("\"%s\" is not a partition name (1 to %d letters, digits, '-', '_' or '.', not starting with '.')",
			       UTIL_ESC(part), UTIL_NAME_MAX);
}

const char *cli_host(const struct cli *c, char *buf, size_t len)
{
	if (c->o.host)
		return c->o.host;
	if (c->have_config && c->cfg.host)
		return c->cfg.host;
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

void cli_use_state_dir(struct cli *c)
{
	if (c->o.state_dir) {
		free(c->cfg.state_dir);
		c->cfg.state_dir = strdup(c->o.state_dir);
	}
}

int cli_open_regions(struct cli *c, bool reads, struct regions *rs_ret,
		     struct err *err)
{
	if (!c->o.from && !c->have_config)
		return err_set(err, -EINVAL,
			       "no store given: pass --from/--to STORE, or configure a [region] in %s",
			       c->o.config_file);
	return geo_regions_open(c->o.from ? NULL : &c->cfg, c->o.from,
				c->o.from_flag, c->o.region, reads, rs_ret, err);
}

int cli_open_list(struct cli *c, const char *host, const char *part, bool reads,
		  struct regions *rs_ret, struct catalog_list *list_ret,
		  size_t *used_ret)
{
	struct err err = { 0 };

	if (cli_open_regions(c, reads, rs_ret, &err))
		return cli_fail(&err);
	/* nothing after a stop needs a listing: ^C ends a stalled one */
	signals_reads_stop(true);
	if (failover_list(rs_ret, c->cfg.state_dir, host, part, list_ret, used_ret, &err)) {
		geo_regions_free(rs_ret);
		/* stopped: main says so (128 + the signal) */
		return signals_stop() ? EXIT_FAIL : cli_fail(&err);
	}
	return CLI_GO_ON;
}

int cli_load_config(struct cli *c, const char *cmd, int argc, char **argv)
{
	struct err err = { 0 };

	const char *cfd = !strcmp(cmd, "agent") ? getenv("SNAPSHIP_AGENT_CONFIG_FD") : NULL;

	/* the supervised agent's worker: the supervisor's copy of the last
	 * good config (a memfd), named as the file */
	if (cfd) {
		if (config_load_fd(atoi(cfd), c->o.config_file, &c->cfg, &err)) {
			log_error("%s", err.msg);
			return EXIT_USAGE;
		}
		c->have_config = true;
	} else if (c->o.explicit_config || access(c->o.config_file, F_OK) == 0) {
		if (config_load(c->o.config_file, &c->cfg, &err)) {
			log_error("%s", err.msg);
			return EXIT_USAGE;
		}
		c->have_config = true;
	} else if (config_defaults(&c->cfg, &err)) {
		return cli_fail(&err);
	}
	/* the zero-config form: --to/--from STORE overrides the config's regions */
	for (int i = 1; i < argc; i++)
		if (((!strcmp(argv[i], "--to") || !strncmp(argv[i], "--to=", 5)) &&
		     strcmp(cmd, "restore")) ||
		    !strcmp(argv[i], "--from") || !strncmp(argv[i], "--from=", 7))
			c->have_config = c->have_config && c->o.explicit_config;
	return CLI_GO_ON;
}
