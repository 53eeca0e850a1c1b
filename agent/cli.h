/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_CLI_H
#define SNAPSHIP_AGENT_CLI_H

/*
 * The command line's options: one table (cli.c) of every option, each
 * naming the field of struct cli_opts it sets (or the function that takes
 * it), and one parser for the global options and every command's.
 *
 * Ownership: the strings in cli_opts point into argv; paths and partitions
 * are malloc'd (the caller frees them).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/catalog.h"
#include "agent/config.h"
#include "agent/geo.h"

struct err;

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };
enum { CLI_GO_ON = -1 };        /* not an exit status: carry on */

/* Every option of every command lands here. */
struct cli_opts {
	const char *config_file;
	bool explicit_config;   /* --config given */
	const char *host;
	const char *state_dir;
	bool json;
	const char *from;       /* --from/--to STORE in the zero-config form */
	const char *from_flag;  /* which of them was typed: "--from", "--to" */
	const char *region;     /* --region NAME: only that one, no failover */
	const char *target;     /* restore --to DIR */
	const char *to_lv;      /* restore --to-lv VG/NAME */
	const char *lv_size;    /* restore --size S (with --to-lv) */
	const char *name;       /* backup --name */
	const char *snapshot_dir;
	const char *id;
	const char *at;         /* restore/list --at TIME (when.h), as typed */
	const char **paths;     /* restore --path, malloc'd (the strings are argv's) */
	size_t npaths;
	int level;              /* backup --level, 0: the config's */
	bool no_wait, force, devices, keep_privileges, deep;
	bool full;                /* backup --full */
	bool dry_run;           /* prune --dry-run */
	int wait_s;             /* backup --wait SECONDS for the host lock; -1: for ever */
	bool once;              /* agent --once */
	/* agent --worker FD (hidden: the supervisor's worker, FD its pipe),
	 * --worker-resume, --worker-reload (agent_opts) */
	const char *worker;
	bool worker_resume, worker_reload;
	/* drill */
	const char **partitions; /* --partition P..., malloc'd (argv's strings) */
	size_t npartitions;
	const char *scratch, *report_json, *report_junit;
	bool keep;
	uint64_t sample;        /* --sample N, 0: a whole restore */
};

/* Every option there is; a command lists the ones it takes. */
enum cli_opt {
	OPT_CONFIG, OPT_HOST, OPT_STATE_DIR, OPT_VERBOSE, OPT_QUIET, OPT_JSON,
	OPT_HELP, OPT_VERSION, OPT_FROM, OPT_TO_STORE, OPT_TO_DIR, OPT_REGION,
	OPT_NAME, OPT_SNAPSHOT_DIR, OPT_LEVEL, OPT_NO_WAIT, OPT_ID, OPT_PATH,
	OPT_FORCE, OPT_DEVICES, OPT_KEEP_PRIVILEGES, OPT_DEEP, OPT_DRY_RUN, OPT_LOG_FORMAT,
	OPT_WAIT, OPT_ONCE, OPT_PARTITION, OPT_SCRATCH, OPT_REPORT_JSON,
	OPT_REPORT_JUNIT, OPT_KEEP, OPT_SAMPLE, OPT_AT, OPT_FULL,
	OPT_WORKER, OPT_WORKER_RESUME, OPT_WORKER_RELOAD, OPT_TO_LV, OPT_SIZE,
	OPT_END,
};

/* The --help text (static). */
extern const char cli_usage_text[];

/* "snapship: MSG" and the hint to --help on stderr; returns EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Parse argv (from getopt's optind on) with the options ids, OPT_END
 * ending them, in the order getopt_long is given them (which decides what
 * an abbreviation means); each is applied to *o as it comes.  Returns
 * CLI_GO_ON, or the exit status to end with (help, version, a usage
 * error, already said).  shortopts as getopt_long's.
 */
int cli_parse(struct cli_opts *o, const enum cli_opt *ids, const char *shortopts,
	      int argc, char **argv);

/* What every command starts from: its options and the config. */
struct cli {
	struct cli_opts o;
	struct config cfg;
	bool have_config;
	struct keyring *keys;        /* cli_keys(); freed with the config */
};

/* The config's key files (read once): 0 with *kr_ret (may hold no key),
 * or an exit status (said). */
struct keyring;
int cli_keys(struct cli *c, const struct keyring **kr_ret);

/* Say err (log_error); EXIT_USAGE for -EINVAL, else EXIT_FAIL. */
int cli_fail(const struct err *err);
/* The usage error for a partition name that is not one. */
int cli_bad_partition(const char *part);
/* --host, the config's host, or this machine's name made a key component
 * (into buf, which the result may point to). */
const char *cli_host(const struct cli *c, char *buf, size_t len);
/* --state-dir over the config's (for the commands that write it). */
void cli_use_state_dir(struct cli *c);
/* The regions to use: --from/--to STORE, or the config's (primary first);
 * *rs_ret as geo_regions_open's. */
int cli_open_regions(struct cli *c, bool reads, struct regions *rs_ret,
		     struct err *err);
/* Open the regions and list host's backups (failing over): CLI_GO_ON with
 * *rs_ret and *list_ret the caller's, or an exit status (said) with neither. */
int cli_open_list(struct cli *c, const char *host, const char *part, bool reads,
		  struct regions *rs_ret, struct catalog_list *list_ret,
		  size_t *used_ret);
/* Load the config file (named, or the default if it exists) into c->cfg,
 * and tell the zero-config form (--from/--to STORE) from the configured
 * one; cmd and argv: the command's.  CLI_GO_ON or an exit status (said). */
int cli_load_config(struct cli *c, const char *cmd, int argc, char **argv);

#endif
