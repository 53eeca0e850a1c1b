// SPDX-License-Identifier: MIT
/*
 * snapship — backup agent for storage hosts.  The commands: a table of
 * them (name, function, the options of cli.c's table it takes); cli_parse
 * fills struct cli_opts, then the command's function calls the agent
 * (backup.c, failover.c, verify.c, status.c, clean.c) and hands the
 * results to report.c.  A new command is a table entry and a function.
 * Exit status: 0 ok, 1 failure, 2 usage or configuration error; status
 * 3, 4, 5 for a partition at risk, stale, never backed up (status.h).
 * With --json a failed run prints its errors as JSON (report_exit).
 * SIGINT, SIGTERM and SIGHUP (signals.h) stop a command at its next safe
 * point: it unwinds as on a failure, prints one "interrupted (SIG...)"
 * line and exits 128 + the signal (130, 143, 129).
 */
#include <errno.h>
#include <getopt.h>   /* optind */
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "agent/agentd.h"
#include "agent/backup.h"
#include "agent/cat.h"
#include "agent/catalog.h"
#include "agent/cli.h"
#include "agent/clean.h"
#include "agent/cmd_config.h"
#include "agent/config.h"
#include "agent/drill_cmd.h"
#include "agent/failover.h"
#include "agent/geo.h"
#include "agent/keyring.h"
#include "agent/lock.h"
#include "agent/ls.h"
#include "agent/metrics.h"
#include "agent/prune.h"
#include "agent/report.h"
#include "agent/restore.h"
#include "agent/runrec.h"
#include "agent/signals.h"
#include "agent/status.h"
#include "agent/verify.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/when.h"
#include "cow/cow.h"
#include "uploader/store.h"

/* ------------------------------------------------------------ commands */

static bool interrupt_said;   /* a command printed its "interrupted" line */
static char last_interrupt[ERR_MSG_MAX + 64];   /* that line */
/* the command's exit status already says a stop: the agent, whose SIGTERM
 * is its clean stop (exit 0; 128 + sig for --once) */
static bool stop_is_own;

/* A command stopped by a signal: one line saying what it undid or left
 * (err), the exit status 128 + the signal. */
static int say_interrupted(const struct err *err)
{
	int sig = signals_stop();

	snprintf(last_interrupt, sizeof(last_interrupt), "interrupted (%s): %s",
		 signals_name(sig), err && err->msg[0] ? err->msg : "stopped");
	log_error("%s", last_interrupt);
	interrupt_said = true;
	return 128 + sig;
}

/* Failed: interrupted when a stop is pending, else cli_fail. */
static int fail_or_interrupted(const struct err *err)
{
	return signals_stop() ? say_interrupted(err) : cli_fail(err);
}

/* backup PATH --to STORE: the partition named on the command line */
static int quick_partition(struct cli *c, int argc, char **argv,
			   struct cfg_partition *q, char *path, char *name)
{
	struct err err = { 0 };

	if (argc != 1)
		return cli_usage_error("backup --to STORE takes exactly one PATH");
	if (!realpath(argv[0], path)) {
		err_set(&err, -errno, "%s: %s", argv[0], strerror(errno));
		cow_check_source(argv[0], &err);
		return cli_fail(&err);
	}
	strcpy(name, path);
	q->name = (char *)(c->o.name ? c->o.name : basename(name));
	q->path = path;
	q->snapshot_dir = (char *)c->o.snapshot_dir;
	q->hook_timeout = 300;
	if (!q->name[0] || !strcmp(q->name, "/"))
		return cli_usage_error("cannot name a partition after /: pass --name NAME");
	/* the name goes into keys and paths: snapship's grammar only, the
	 * same as [partition NAME] in the config */
	if (!util_name_ok(q->name))
		return cli_usage_error("partition name \"%s\": use 1 to %d letters, digits, '-', '_' or '.', not starting with '.'; pass --name NAME",
				       UTIL_ESC(q->name), UTIL_NAME_MAX);
	return CLI_GO_ON;
}

/* The run record of one attempt (status and the metrics read it); a
 * record that cannot be written is a warning, not a failed backup. */
static void note_attempt(const struct config *cfg, const char *host, const char *part,
			 int rc, const char *msg, const struct backup_result *res,
			 double seconds)
{
	struct err err = { 0 };

	if (runrec_note(cfg->state_dir, host, part, rc, msg, res, seconds, &err))
		log_warn("%s", err.msg);
}

/* Back up each partition (quick, the ones named, or all configured). */
static int backup_each(struct cli *c, const struct cfg_partition *quick, int argc,
		       char **argv, struct regions *rs, const char *host,
		       struct report *r)
{
	struct backup_opts bo = { .progress = isatty(2) && log_get_level() >= LOG_WARN,
				  .no_wait = c->o.no_wait, .full = c->o.full,
				  .cancelled = signals_cancelled };
	size_t n = quick ? 1 : argc ? (size_t)argc : c->cfg.nparts, i, done;
	int rc = EXIT_OK, failures = 0;

	for (i = 0; i < n && !signals_stop(); i++) {
		const struct cfg_partition *part = quick ? quick : argc ?
			config_partition(&c->cfg, argv[i]) : &c->cfg.parts[i];
		struct backup_result res;
		struct err err = { 0 };
		double t0 = util_now_mono();
		int ret;

		if (part)
			log_set_context(part->name, NULL);
		if (!part) {
			log_error("no [partition %s] in %s", argv[i], c->cfg.file);
			report_backup_failed(r, argv[i], "no such [partition] in the config");
			rc = EXIT_USAGE;
			failures++;
		} else if ((ret = backup_partition(&c->cfg, part, rs, host, &bo, &res, &err)) &&
			   signals_stop()) {
			/* the rest is not started: one line, 128 + sig */
			rc = say_interrupted(&err);
			report_backup_failed(r, part->name, last_interrupt);
			note_attempt(&c->cfg, host, part->name, err.code ? err.code : -ECANCELED,
				     last_interrupt, NULL, util_now_mono() - t0);
			return rc;
		} else if (ret) {
			log_error("backup of %s failed: %s", part->name, err.msg);
			report_backup_failed(r, part->name, err.msg);
			note_attempt(&c->cfg, host, part->name, err.code ? err.code : -EIO, err.msg,
				     NULL, util_now_mono() - t0);
			failures++;
			rc = rc == EXIT_OK ? EXIT_FAIL : rc;
		} else {
			report_backup(r, &res, rs->v[0].name, bo.no_wait);
			note_attempt(&c->cfg, host, part->name, 0, NULL, &res, util_now_mono() - t0);
			manifest_clear(&res.m);
		}
		log_set_context(NULL, NULL);
	}
	done = i;
	if (signals_stop()) {
		/* stopped between partitions, or while waiting for replication
		 * after a commit: what is committed stays */
		struct err e = { 0 };

		err_set(&e, -ECANCELED, "backup stopped after %zu of %zu partition%s (%d failed); what was committed stays, snapship status shows its replication",
			done, n, n == 1 ? "" : "s", failures);
		return say_interrupted(&e);
	}
	if (!quick && c->cfg.nparts == 0 && !argc) {
		log_error("%s has no [partition] sections: nothing to back up", c->cfg.file);
		report_free(r);   /* --json: the failure (report_exit), not [] */
		return EXIT_USAGE;
	}
	return failures ? rc : EXIT_OK;
}

static int cmd_backup(struct cli *c, int argc, char **argv)
{
	struct cfg_partition quick = { 0 };
	char hbuf[256], path[PATH_MAX], name[PATH_MAX];
	struct regions rs;
	struct report r;
	struct err err = { 0 }, merr = { 0 };
	const char *host;
	unsigned removed = 0;
	int lockfd, rc;

	if (c->o.level)
		c->cfg.compression_level = c->o.level;
	if (c->o.from && !c->have_config) {
		rc = quick_partition(c, argc, argv, &quick, path, name);
		if (rc != CLI_GO_ON)
			return rc;
	} else if (!c->have_config) {
		return cli_usage_error("backup needs --to STORE, or a config file with [partition] and [region] sections");
	}
	cli_use_state_dir(c);
	host = cli_host(c, hbuf, sizeof(hbuf));
	if (cli_open_regions(c, false, &rs, &err))
		return cli_fail(&err);
	lockfd = hostlock_acquire_as(c->cfg.state_dir, c->o.wait_s, "snapship backup", &err);
	if (lockfd < 0) {
		geo_regions_free(&rs);
		return cli_fail(&err);
	}
	report_init(&r, c->o.json);
	if (cow_recover(c->cfg.state_dir, &removed, &err))
		log_warn("recovering leftover snapshots: %s", err.msg);
	else if (removed)
		log_warn("removed %u snapshot(s) left behind by an interrupted run", removed);
	/* where we upload ourselves: the primary and agent regions */
	clean_regions(&rs, host);
	rc = backup_each(c, quick.path ? &quick : NULL, argc, argv, &rs, host, &r);
	report_end(&r);
	hostlock_release(lockfd);
	geo_regions_free(&rs);
	/* cron users get the metrics file too */
	if (c->cfg.metrics_file && metrics_write(&c->cfg, host, NULL, 0, &merr))
		log_warn("%s", merr.msg);
	return rc;
}

/* --at TIME (NULL: none) into *w; CLI_GO_ON or the exit status (said) */
static int parse_at(const struct cli *c, struct when *w)
{
	struct err err = { 0 };

	if (!c->o.at)
		return CLI_GO_ON;
	if (c->o.id)
		return cli_usage_error("--id and --at both choose the backup: pass one of them");
	if (when_parse("--at", c->o.at, util_now_unix_ns(), w, &err))
		return cli_usage_error("%s", err.msg);
	return CLI_GO_ON;
}

static int cmd_list(struct cli *c, int argc, char **argv)
{
	const char *part = argc ? argv[0] : NULL, *host;
	struct catalog_list list;
	struct regions rs;
	struct report r;
	struct when w;
	char hbuf[256];
	size_t used = 0;
	bool geo;
	int rc;

	if (argc > 1)
		return cli_usage_error("list takes at most one PARTITION");
	if (part && !util_name_ok(part))
		return cli_bad_partition(part);
	rc = parse_at(c, &w);
	if (rc != CLI_GO_ON)
		return rc;
	cli_use_state_dir(c);
	host = cli_host(c, hbuf, sizeof(hbuf));
	rc = cli_open_list(c, host, part, true, &rs, &list, &used);
	if (rc != CLI_GO_ON)
		return rc;
	geo = rs.n > 1 && !rs.forced;
	report_init(&r, c->o.json);
	if (list.n && c->o.at) {
		/* what restore --at picks, per partition */
		report_list_at(&r, host, &list, &rs, used, &w);
	} else if (!list.n) {
		char others[512];

		report_list_none(&r, host, part, rs.v[used].store);
		report_list_other_hosts(&r, catalog_other_hosts(rs.v[used].store,
				rs.v[used].prefix, host, others, sizeof(others)));
	} else {
		report_list_header(&r, geo);
	}
	for (size_t i = 0; i < (c->o.at ? 0 : list.n); i++) {
		struct geo_state gs;

		status_backup_geo(c->cfg.state_dir, &rs, host, &list.m[i], &gs);
		report_list_row(&r, &list.m[i], rs.v[list.region ? list.region[i] : used].name,
				&gs, status_geo_word(&rs, &gs), geo);
	}
	report_end(&r);
	report_list_broken(&list, rs.n > 1 ? rs.v[used].name : NULL);
	catalog_list_free(&list);
	geo_regions_free(&rs);
	return EXIT_OK;
}

/* --at: the backup it picks, or the exit status (said) when none is at or
 * before it but the partition has backups (none at all: find_backup says) */
static int find_at(const struct catalog_list *list, const struct regions *rs, size_t used,
		   const char *host, const char *part, const struct when *w,
		   struct catalog_at *at, const struct manifest **m_ret)
{
	struct err err = { 0 };
	char t1[48], t2[48];

	catalog_at(list, part, w->last_ns, at);
	*m_ret = at->pick;
	if (at->pick || !at->n)
		return CLI_GO_ON;
	/* an older backup may be there with a manifest that cannot be used */
	report_list_broken(list, rs->n > 1 ? rs->v[used].name : NULL);
	err_set(&err, -ENOENT, "no backup of %s/%s on %s was taken at or before %s: the oldest, %s, was taken at %s; pass a later --at (snapship list --at TIME shows what a time picks)",
		host, part, store_describe(rs->v[used].store),
		when_format(w->ns, w->digits, t1, sizeof(t1)), at->oldest->backup_id,
		when_format(at->oldest->snap_time_ns, 0, t2, sizeof(t2)));
	return cli_fail(&err);
}

/* The backup to restore: id's, the one --at picks (at non-NULL), or the
 * latest (an exit status if none). */
static int find_backup(const struct catalog_list *list, const struct regions *rs,
		       size_t used, const char *host, const char *part, const char *id,
		       const struct when *at, struct catalog_at *at_ret,
		       const struct manifest **m_ret)
{
	struct err err = { 0 };
	char others[512] = "";
	int rc;

	if (at) {
		rc = find_at(list, rs, used, host, part, at, at_ret, m_ret);
		if (rc != CLI_GO_ON || *m_ret)
			return rc;
	} else {
		*m_ret = catalog_find(list, part, id);
	}
	if (*m_ret)
		return CLI_GO_ON;
	if (!id)
		catalog_other_hosts(rs->v[used].store, rs->v[used].prefix, host,
				    others, sizeof(others));
	/* a backup may be there with a manifest that cannot be used */
	report_list_broken(list, rs->n > 1 ? rs->v[used].name : NULL);
	if (id)
		err_set(&err, -ENOENT, "no backup %s of %s/%s on %s; snapship list shows the backups",
			id, host, part, store_describe(rs->v[used].store));
	else
		err_set(&err, -ENOENT, "no backups of %s/%s on %s%s%s%s", host, part,
			store_describe(rs->v[used].store),
			others[0] ? "; it holds backups of other hosts: " : "", others,
			others[0] ? "; pass --host NAME (snapship hosts lists them)" : "");
	return cli_fail(&err);
}

/* Hold backup m while reading it, so prune leaves it alone (without a
 * writable state dir the read goes on: no prune here can run either). */
static int reading_lock(struct cli *c, const char *host, const struct manifest *m)
{
	struct err err = { 0 };
	int fd = readlock_acquire(c->cfg.state_dir, host, m->partition, m->backup_id, &err);

	if (fd < 0)
		log_info("reading %s without a reading lock: %s", m->backup_id, err.msg);
	return fd;
}

/* One backup a reading command reads (restore, export, cat, ls), held by a
 * reading lock while it is read, with the whole copies to read it from. */
struct pick {
	struct catalog_list list;
	struct regions rs;
	size_t used;
	struct catalog_at at;
	struct when w;
	const struct manifest *m;     /* the catalog's record */
	struct failover_sources src;  /* src.m: the copy read; the rest take over */
	const char *host;
	char hbuf[256];
	int readfd;
	bool listed, locked, sourced;
};

/*
 * The backup of part that --id, --at (its line said with at_verb, unless
 * NULL) or else the latest names; listing as cli_open_list's.  CLI_GO_ON,
 * else the exit status (said).  pick_release(p) either way.
 */
static int pick_backup(struct cli *c, const char *part, bool listing, const char *at_verb,
		       struct pick *p)
{
	struct err err = { 0 };
	int rc;

	memset(p, 0, sizeof(*p));
	rc = parse_at(c, &p->w);
	if (rc != CLI_GO_ON)
		return rc;
	cli_use_state_dir(c);
	p->host = cli_host(c, p->hbuf, sizeof(p->hbuf));
	rc = cli_open_list(c, p->host, part, listing, &p->rs, &p->list, &p->used);
	if (rc != CLI_GO_ON)
		return rc;
	p->listed = true;
	rc = find_backup(&p->list, &p->rs, p->used, p->host, part, c->o.id,
			 c->o.at ? &p->w : NULL, &p->at, &p->m);
	if (rc != CLI_GO_ON)
		return rc;
	if (c->o.at && at_verb)
		report_at_line(c->o.json, at_verb, &p->at, &p->w);
	p->readfd = reading_lock(c, p->host, p->m);
	p->locked = true;
	/* read from the first region whose copy is whole (primary first);
	 * the other whole copies take over if reading fails midway */
	p->sourced = true;
	if (failover_sources(&p->rs, p->host, part, p->m, &p->src, &err))
		return fail_or_interrupted(&err);
	return CLI_GO_ON;
}

/* The store holding the copy to read. */
static struct store *pick_store(const struct pick *p)
{
	return p->rs.v[p->src.used].store;
}

/* ro reads p's copy, the other whole copies taking over. */
static void pick_sources(const struct pick *p, struct restore_opts *ro)
{
	ro->region = p->src.v[0].region;
	ro->fallback = p->src.v + 1;
	ro->nfallback = p->src.n - 1;
}

static void pick_release(struct pick *p)
{
	if (p->sourced)
		failover_sources_free(&p->src);
	if (p->locked)
		readlock_release(p->readfd, NULL, NULL, NULL, NULL, false);
	if (p->listed) {
		catalog_list_free(&p->list);
		geo_regions_free(&p->rs);
	}
}

/* A restore --to-lv that failed: unmount, and say what the volume holds. */
static void lv_target_failed(const char *to_lv, const char *mount)
{
	struct err e = { 0 };

	if (cow_lv_target_close(mount, &e))
		log_error("%s", e.msg);
	log_error("the new logical volume %s holds a partial restore: do not use it; remove it (lvremove %s) and restore again",
		  to_lv, to_lv);
}

static int cmd_restore(struct cli *c, int argc, char **argv)
{
	struct restore_opts ro = { .progress = isatty(2) && log_get_level() >= LOG_WARN,
				   .target = c->o.target, .force = c->o.force,
				   .devices = c->o.devices,
				   .keep_privileges = c->o.keep_privileges, .paths = c->o.paths,
				   .npaths = c->o.npaths, .cancelled = signals_cancelled };
	struct restore_result res;
	struct report r;
	struct pick p;
	struct err err = { 0 };
	char *lv_mount = NULL;
	int rc;

	if (argc != 1 || !ro.target == !c->o.to_lv)
		return cli_usage_error("usage: snapship restore PARTITION --to DIR | --to-lv VG/NAME --size S [--from STORE] [--id ID | --at TIME] [--path P]...");
	if (!c->o.to_lv != !c->o.lv_size)
		return cli_usage_error("restore: --to-lv VG/NAME and --size S go together");
	if (!util_name_ok(argv[0]))
		return cli_bad_partition(argv[0]);
	rc = cli_keys(c, &ro.keys);
	if (rc)
		return rc;
	rc = pick_backup(c, argv[0], false, "restoring", &p);
	if (rc != CLI_GO_ON)
		goto out;
	rc = EXIT_FAIL;
	if (c->o.to_lv) {
		/* a new volume with a new filesystem of the backup's type */
		if (cow_lv_target_open(c->o.to_lv, c->o.lv_size,
				       p.m->fstype[0] ? p.m->fstype : "ext4",
				       c->cfg.state_dir, &lv_mount, &err))
			goto out_fail;
		ro.target = lv_mount;
		ro.force = true;   /* a new filesystem: lost+found is not data */
	}
	pick_sources(&p, &ro);
	if (restore_backup(pick_store(&p), &p.src.m, &ro, &res, &err))
		goto out_fail;
	if (lv_mount && cow_lv_target_close(lv_mount, &err))
		goto out_fail;
	report_init(&r, c->o.json);
	report_restore(&r, &p.src.m, ro.region, c->o.to_lv ? c->o.to_lv : ro.target,
		       &res, c->o.from);
	if (c->o.at)
		report_at_fields(&r, &p.at, &p.w);
	report_end(&r);
	rc = EXIT_OK;
out_fail:
	if (rc && lv_mount)
		lv_target_failed(c->o.to_lv, lv_mount);
	free(lv_mount);
	if (rc)
		rc = fail_or_interrupted(&err);
out:
	pick_release(&p);
	return rc;
}

/*
 * export PARTITION: one backup's tree as one plain pax stream on stdout
 * (restore's read path, every file checked; `| tar -x` gives the tree).
 * Nothing else goes to stdout; the summary is logged (-v).
 */
static int cmd_export(struct cli *c, int argc, char **argv)
{
	struct restore_opts ro = { .devices = true, .keep_privileges = true, .export = true,
				   .export_fd = STDOUT_FILENO, .cancelled = signals_cancelled };
	struct restore_result res;
	struct pick p;
	struct err err = { 0 };
	int rc;

	if (argc != 1)
		return cli_usage_error("usage: snapship export PARTITION [--from STORE] [--id ID | --at TIME] > FILE.tar (or | tar -x)");
	if (!util_name_ok(argv[0]))
		return cli_bad_partition(argv[0]);
	if (isatty(STDOUT_FILENO))
		return cli_usage_error("snapship export writes a tar stream to stdout: redirect it to a file or pipe it (| tar -x -C DIR)");
	rc = cli_keys(c, &ro.keys);
	if (rc)
		return rc;
	rc = pick_backup(c, argv[0], false, NULL, &p);
	if (rc != CLI_GO_ON)
		goto out;
	pick_sources(&p, &ro);
	if (restore_backup(pick_store(&p), &p.src.m, &ro, &res, &err)) {
		rc = fail_or_interrupted(&err);
		goto out;
	}
	log_info("exported %s %s: %llu entries, %llu bytes of files, every file checked",
		 p.src.m.partition, p.src.m.backup_id, (unsigned long long)res.entries,
		 (unsigned long long)res.bytes);
	rc = EXIT_OK;
out:
	pick_release(&p);
	return rc;
}

/*
 * cat PARTITION: one backup's data stream, opened when encrypted, as stock
 * zstd reads it, on stdout (agent/cat.h); the same backup choice as
 * restore and export.
 */
static int cmd_cat(struct cli *c, int argc, char **argv)
{
	const struct keyring *kr = NULL;
	struct pick p;
	struct err err = { 0 };
	uint64_t out = 0;
	int rc;

	if (argc != 1)
		return cli_usage_error("usage: snapship cat PARTITION [--from STORE] [--id ID | --at TIME] | zstd -d | tar -x");
	if (!util_name_ok(argv[0]))
		return cli_bad_partition(argv[0]);
	if (isatty(STDOUT_FILENO))
		return cli_usage_error("snapship cat writes a zstd stream to stdout: redirect it to a file or pipe it (| zstd -d | tar -x -C DIR)");
	rc = cli_keys(c, &kr);
	if (rc)
		return rc;
	rc = pick_backup(c, argv[0], false, NULL, &p);
	if (rc != CLI_GO_ON)
		goto out;
	if (cat_backup(pick_store(&p), &p.src.m, kr, STDOUT_FILENO, &out, &err)) {
		rc = fail_or_interrupted(&err);
		goto out;
	}
	log_info("wrote %s %s: %llu bytes of zstd stream", p.m->partition, p.m->backup_id,
		 (unsigned long long)out);
	rc = EXIT_OK;
out:
	pick_release(&p);
	return rc;
}

/* ls PARTITION [PATH]: a directory of a backup, from its index */
static int cmd_ls(struct cli *c, int argc, char **argv)
{
	struct restore_opts ro = { .cancelled = signals_cancelled };
	struct ls_listing ls;
	struct report r;
	struct pick p;
	struct err err = { 0 };
	int rc;

	if (argc < 1 || argc > 2)
		return cli_usage_error("usage: snapship ls PARTITION [--from STORE] [--id ID | --at TIME] [PATH]");
	if (!util_name_ok(argv[0]))
		return cli_bad_partition(argv[0]);
	rc = cli_keys(c, &ro.keys);
	if (rc)
		return rc;
	/* the index from the first whole copy, the others if it fails */
	rc = pick_backup(c, argv[0], true, "listing", &p);
	if (rc != CLI_GO_ON)
		goto out;
	pick_sources(&p, &ro);
	if (ls_backup(pick_store(&p), &p.src.m, &ro, argc > 1 ? argv[1] : NULL, &ls, &err)) {
		rc = fail_or_interrupted(&err);
		goto out;
	}
	report_init(&r, c->o.json);
	report_ls(&r, &p.src.m, ro.region, &ls, c->o.from);
	if (c->o.at)
		report_at_fields(&r, &p.at, &p.w);
	report_end(&r);
	ls_free(&ls);
	rc = EXIT_OK;
out:
	pick_release(&p);
	return rc;
}

static int verify_repair(struct cli *c, int argc, char **argv, bool repair)
{
	struct verify_opts vo = { .partition = argc ? argv[0] : NULL,
				  .deep = c->o.deep, .repair = repair,
				  .cancelled = signals_cancelled };
	struct report r;
	struct report_verify rv = { &r, repair, c->o.deep };
	struct verify_sink sink = report_verify_sink(&rv);
	struct verify_result res;
	struct regions rs;
	struct err err = { 0 };
	char hbuf[256];
	int ret;

	if (argc > 1)
		return cli_usage_error("%s takes at most one PARTITION", repair ? "repair" : "verify");
	if (vo.partition && !util_name_ok(vo.partition))
		return cli_bad_partition(vo.partition);
	cli_use_state_dir(c);
	if (repair && c->o.region)
		return cli_usage_error("repair works across regions; --region does not apply");
	vo.host = cli_host(c, hbuf, sizeof(hbuf));
	vo.state_dir = c->cfg.state_dir;
	if (c->o.deep && (ret = cli_keys(c, &vo.keys)))
		return ret;
	if (cli_open_regions(c, false, &rs, &err))
		return cli_fail(&err);
	if (repair && rs.n < 2) {
		geo_regions_free(&rs);
		return cli_usage_error("repair needs two or more regions in the config: it copies a backup from a region that has it to one that lacks it");
	}
	report_init(&r, c->o.json);
	ret = verify_run(&rs, &vo, &sink, &res, &err);
	if (ret) {
		report_free(&r);
		geo_regions_free(&rs);
		return fail_or_interrupted(&err);
	}
	report_verify_end(&rv, &res, vo.host, vo.partition);
	report_end(&r);
	ret = res.bad ? EXIT_FAIL : EXIT_OK;
	verify_result_free(&res);
	geo_regions_free(&rs);
	return ret;
}

static int cmd_verify(struct cli *c, int argc, char **argv)
{
	return verify_repair(c, argc, argv, false);
}

static int cmd_repair(struct cli *c, int argc, char **argv)
{
	return verify_repair(c, argc, argv, true);
}

static int cmd_status(struct cli *c, int argc, char **argv)
{
	struct status_in in = { .cfg = &c->cfg, .configured = c->have_config,
				.now_ns = util_now_unix_ns() };
	struct status_result res;
	struct catalog_list list;
	struct regions rs;
	struct report r;
	char hbuf[256];
	size_t used = 0;
	int rc;

	(void)argv;
	if (argc)
		return cli_usage_error("status takes no arguments");
	cli_use_state_dir(c);
	in.state_dir = c->cfg.state_dir;
	in.host = cli_host(c, hbuf, sizeof(hbuf));
	in.rs = &rs;
	rc = cli_open_list(c, in.host, NULL, true, &rs, &list, &used);
	if (rc != CLI_GO_ON)
		return rc;
	if (status_build(&in, &list, &res)) {
		log_error("out of memory");
		rc = EXIT_FAIL;
	} else {
		report_init(&r, c->o.json);
		report_status(&r, in.host, &rs, used, &res, list.n > 0);
		report_end(&r);
		report_list_broken(&list, rs.n > 1 ? rs.v[used].name : NULL);
		rc = status_exit(res.worst);
		status_result_free(&res);
	}
	catalog_list_free(&list);
	geo_regions_free(&rs);
	return rc;
}

/* Snapshots from the journal, then every region's leftovers (if any store
 * is given): exit 1 when a region could not be cleaned. */
static int cmd_clean(struct cli *c, int argc, char **argv)
{
	struct clean_result res[REGIONS_MAX];
	struct regions rs = { 0 };
	struct err err = { 0 };
	unsigned removed = 0, uploads = 0;
	bool have_store = c->o.from || c->have_config;
	size_t failed = 0;
	char hbuf[256];
	int lockfd, ret;

	(void)argv;
	if (argc)
		return cli_usage_error("clean takes no arguments besides --from STORE");
	cli_use_state_dir(c);
	lockfd = hostlock_acquire_as(c->cfg.state_dir, 0, "snapship clean", &err);
	if (lockfd < 0)
		return cli_fail(&err);
	ret = cow_recover(c->cfg.state_dir, &removed, &err);
	if (!ret && have_store)
		ret = cli_open_regions(c, false, &rs, &err);
	if (!ret)
		failed = clean_every_region(&rs, cli_host(c, hbuf, sizeof(hbuf)), res);
	hostlock_release(lockfd);
	if (ret)
		return cli_fail(&err);
	for (size_t i = 0; i < rs.n; i++)
		uploads += res[i].uploads + (unsigned)res[i].objects;
	report_clean(removed, uploads);
	report_clean_regions(res, rs.n, have_store);
	geo_regions_free(&rs);
	return failed ? EXIT_FAIL : EXIT_OK;
}

/* prune [PARTITION]: the retention policy in every region, each
 * partition's decisions and deletions reported */
static int cmd_prune(struct cli *c, int argc, char **argv)
{
	struct prune_opts po = { .dry_run = c->o.dry_run };
	const struct cfg_partition *only = NULL;
	struct report r;
	struct err err = { 0 };
	const char *host;
	char hbuf[256];
	int lockfd, rc = EXIT_OK;

	if (argc > 1)
		return cli_usage_error("prune takes at most one PARTITION");
	if (!c->have_config)
		return cli_usage_error("prune needs a config file: the policy is its [retention], the backups its [partition] sections in its [region]s; pass --config FILE");
	if (argc && !util_name_ok(argv[0]))
		return cli_bad_partition(argv[0]);
	if (argc && !(only = config_partition(&c->cfg, argv[0])))
		return cli_usage_error("no [partition %s] in %s", argv[0], c->cfg.file);
	cli_use_state_dir(c);
	host = cli_host(c, hbuf, sizeof(hbuf));
	lockfd = hostlock_acquire(c->cfg.state_dir, 0, &err);
	if (lockfd < 0)
		return cli_fail(&err);
	report_init(&r, c->o.json);
	for (size_t i = 0; i < (only ? 1 : c->cfg.nparts); i++) {
		const struct cfg_partition *p = only ? only : &c->cfg.parts[i];
		struct prune_report rep;

		err = (struct err){ 0 };
		if (prune_partition(&c->cfg, host, p, &po, &rep, &err)) {
			log_error("%s", err.msg);
			report_prune_failed(&r, p->name, err.msg);
			rc = EXIT_FAIL;
		} else {
			report_prune(&r, host, &rep);
			if (rep.errors || rep.pending)
				rc = EXIT_FAIL;
		}
		prune_report_clear(&rep);
	}
	report_end(&r);
	hostlock_release(lockfd);
	return rc;
}

/* hosts: the hosts a store holds backups of (a replacement host's way to
 * its predecessor's) */
static int cmd_hosts(struct cli *c, int argc, char **argv)
{
	struct catalog_hosts h;
	struct regions rs;
	struct report r;
	struct err err = { 0 };
	size_t used = 0;

	(void)argv;
	if (argc)
		return cli_usage_error("hosts takes no arguments besides --from STORE");
	if (cli_open_regions(c, true, &rs, &err))
		return cli_fail(&err);
	if (failover_hosts(&rs, &h, &used, &err)) {
		geo_regions_free(&rs);
		return cli_fail(&err);
	}
	report_init(&r, c->o.json);
	report_hosts(&r, &h, rs.v[used].store);
	report_end(&r);
	catalog_hosts_free(&h);
	geo_regions_free(&rs);
	return EXIT_OK;
}

/* agent [--once]: the daemon (agentd.c) */
static int cmd_agent(struct cli *c, int argc, char **argv)
{
	struct agent_opts ao = { .config_file = c->o.config_file, .state_dir = c->o.state_dir,
				 .once = c->o.once, .resume = c->o.worker_resume,
				 .reload_first = c->o.worker_reload };
	char hbuf[256], host[256];
	struct err err = { 0 };
	int ret;

	(void)argv;
	if (argc)
		return cli_usage_error("agent takes no arguments besides --once");
	if (!c->have_config)
		return cli_usage_error("agent needs a config file (%s does not exist): pass --config FILE with [partition] (or [agent] discover) and [region] sections",
				       c->o.config_file);
	if (!c->cfg.nregions)
		return cli_usage_error("%s has no [region]: the agent has nowhere to put backups",
				       c->o.config_file);
	cli_use_state_dir(c);
	/* a copy: a reload frees the config's host */
	snprintf(host, sizeof(host), "%s", cli_host(c, hbuf, sizeof(hbuf)));
	ao.host = host;
	/* the daemon's log says what it does */
	if (log_get_level() == LOG_WARN)
		log_set_level(LOG_INFO);
	stop_is_own = true;
	if (c->o.worker) {
		if (agent_worker_prepare(c->o.worker, &c->cfg, &ao, &err)) {
			log_error("%s", err.msg);
			return EXIT_USAGE;
		}
	} else if (!ao.once) {
		/* the small supervisor stays, this binary runs as its worker */
		ret = agent_exec_supervisor(&c->cfg, &ao, &err);
		if (ret != -ENOENT) {
			log_error("%s", err.msg);
			return 1;
		}
		log_warn("%s", err.msg);
	}
	return agent_run(&c->cfg, &ao);
}

/* ------------------------------------------------------- the table */

struct command {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv);  /* the arguments left */
	const enum cli_opt *opts;    /* NULL: run gets argv whole, parses it */
};

#define OPTS(...) (const enum cli_opt[]){ __VA_ARGS__, OPT_END }

static const struct command commands[] = {
	{ "backup", cmd_backup, OPTS(OPT_TO_STORE, OPT_NAME, OPT_SNAPSHOT_DIR, OPT_LEVEL, OPT_FULL,
				      OPT_NO_WAIT, OPT_WAIT, OPT_JSON, OPT_HELP) },
	{ "list", cmd_list, OPTS(OPT_FROM, OPT_REGION, OPT_AT, OPT_JSON, OPT_HELP) },
	{ "restore", cmd_restore, OPTS(OPT_FROM, OPT_REGION, OPT_TO_DIR, OPT_TO_LV, OPT_SIZE, OPT_ID,
					OPT_AT, OPT_PATH,
					OPT_FORCE, OPT_DEVICES, OPT_KEEP_PRIVILEGES, OPT_JSON, OPT_HELP) },
	{ "ls", cmd_ls, OPTS(OPT_FROM, OPT_REGION, OPT_ID, OPT_AT, OPT_JSON, OPT_HELP) },
	{ "export", cmd_export, OPTS(OPT_FROM, OPT_REGION, OPT_ID, OPT_AT, OPT_HELP) },
	{ "cat", cmd_cat, OPTS(OPT_FROM, OPT_REGION, OPT_ID, OPT_AT, OPT_HELP) },
	{ "verify", cmd_verify, OPTS(OPT_FROM, OPT_REGION, OPT_DEEP, OPT_JSON, OPT_HELP) },
	{ "repair", cmd_repair, OPTS(OPT_FROM, OPT_REGION, OPT_DEEP, OPT_JSON, OPT_HELP) },
	{ "status", cmd_status, OPTS(OPT_FROM, OPT_REGION, OPT_JSON, OPT_HELP) },
	{ "prune", cmd_prune, OPTS(OPT_DRY_RUN, OPT_JSON, OPT_HELP) },
	{ "clean", cmd_clean, OPTS(OPT_FROM, OPT_HELP) },
	{ "hosts", cmd_hosts, OPTS(OPT_FROM, OPT_REGION, OPT_JSON, OPT_HELP) },
	{ "drill", cmd_drill, OPTS(OPT_FROM, OPT_REGION, OPT_PARTITION, OPT_SCRATCH,
				    OPT_REPORT_JSON, OPT_REPORT_JUNIT, OPT_KEEP, OPT_SAMPLE,
				    OPT_JSON, OPT_HELP) },
	{ "agent", cmd_agent, OPTS(OPT_ONCE, OPT_WORKER, OPT_WORKER_RESUME, OPT_WORKER_RELOAD,
				   OPT_HELP) },
	{ "config", cmd_config, NULL },
	{ "key", cmd_key, NULL },
	{ 0 },
};

static const enum cli_opt global_opts[] = {
	OPT_CONFIG, OPT_HOST, OPT_STATE_DIR, OPT_VERBOSE, OPT_QUIET, OPT_JSON,
	OPT_LOG_FORMAT, OPT_HELP, OPT_VERSION, OPT_END,
};

static int run_command(struct cli *c, const char *name, int argc, char **argv)
{
	const struct command *cmd = commands;
	int rc;

	while (cmd->name && strcmp(cmd->name, name))
		cmd++;
	if (!cmd->name)
		return cli_usage_error("unknown command \"%s\"", name);
	if (!cmd->opts)
		return cmd->run(c, argc, argv);
	rc = cli_parse(&c->o, cmd->opts, "h", argc, argv);
	if (rc != CLI_GO_ON)
		return rc;
	return cmd->run(c, argc - optind, argv + optind);
}

int main(int argc, char **argv)
{
	struct cli c = { .o.config_file = "/etc/snapship/snapship.conf",
			 .o.wait_s = HOSTLOCK_WAIT_FOREVER };
	const char *cmd;
	int rc;

	/* frame-sized buffers come and go: map and unmap them, so freed ones
	 * never pile up in the heap (keeps the resident set flat) */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);

	/* nearly every command reads S3 credentials (and, later, keys): a core
	 * dump of this root process, or a ptrace by another user, must not
	 * be a way to them (issue 15, secrets hygiene) */
	if (prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L))
		log_warn("cannot make the process non-dumpable (%s): a core dump could hold credentials",
			 strerror(errno));
	/* under systemd: each line's priority for the journal */
	log_detect_journal();
	report_collect_errors();
	rc = signals_install();
	if (rc)
		log_warn("cannot catch SIGINT/SIGTERM (%s): a signal ends snapship at once; snapship clean removes what it leaves",
			 strerror(-rc));
	rc = cli_parse(&c.o, global_opts, "+c:vqhV", argc, argv);
	if (rc != CLI_GO_ON)
		return report_exit(c.o.json, rc);
	if (optind >= argc)
		return report_exit(c.o.json, cli_usage_error("no command given"));
	if (c.o.host && !util_name_ok(c.o.host))
		return report_exit(c.o.json, cli_usage_error("--host %s: a host name is 1 to %d letters, digits, '-', '_' or '.', not starting with '.'",
				       UTIL_ESC(c.o.host), UTIL_NAME_MAX));
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	optind = 0;   /* re-initialise getopt for the command */
	rc = cli_load_config(&c, cmd, argc, argv);
	if (rc == CLI_GO_ON)
		rc = run_command(&c, cmd, argc, argv);
	/* stopped at a safe point that had nothing to say, or finished
	 * anyway: still the signal's exit status */
	if (stop_is_own) {
		/* rc as the command decided */
	} else if (signals_stop() && !interrupt_said) {
		struct err e = { 0 };

		err_set(&e, -ECANCELED, "%s stopped%s", cmd,
			rc ? "" : " after it finished its work");
		rc = say_interrupted(&e);
	} else if (signals_stop()) {
		rc = 128 + signals_stop();
	}
	keyring_free(c.keys);
	config_free(&c.cfg);
	free(c.o.paths);
	free(c.o.partitions);
	return report_exit(c.o.json, rc);
}
