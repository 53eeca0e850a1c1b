// SPDX-License-Identifier: MIT
#include "agent/agentd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/backup.h"
#include "agent/catalog.h"
#include "agent/clean.h"
#include "agent/config.h"
#include "agent/discover.h"
#include "agent/agentd_drill.h"
#include "agent/agentd_priv.h"
#include "agent/failover.h"
#include "agent/geo.h"
#include "agent/lock.h"
#include "agent/metrics.h"
#include "agent/notify.h"
#include "agent/prune.h"
#include "agent/runrec.h"
#include "agent/schedule.h"
#include "agent/signals.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "cow/cow.h"

#define SCAN_MAX_S 60        /* discovery and the idle wake-up, at most this apart */
#define AGENT_LINGER_S 120   /* a worker with its next round nearer stays */

int64_t agentd_now(void)
{
	return (int64_t)time(NULL);
}

/* "3h12m", "45s" */
const char *agentd_fmt_in(int64_t s, char *buf, size_t len)
{
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, len, "%llds", (long long)s);
	else if (s < 7200)
		snprintf(buf, len, "%lldm", (long long)(s / 60));
	else
		snprintf(buf, len, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
	return buf;
}

struct part_state *agentd_state_of(struct agent *a, const char *name)
{
	struct part_state *n;

	for (size_t i = 0; i < a->nps; i++)
		if (!strcmp(a->ps[i].name, name))
			return &a->ps[i];
	n = realloc(a->ps, (a->nps + 1) * sizeof(*n));
	if (!n)
		return NULL;
	a->ps = n;
	n = &n[a->nps++];
	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", name);
	return n;
}

/* The partitions of this round: the config's, then discovered ones
 * (pointers valid until the next discover_run); malloc'd array. */
static const struct cfg_partition **round_parts(struct agent *a, size_t *n_ret)
{
	size_t n = a->cfg->nparts + a->disc.n, k = 0;
	const struct cfg_partition **v = calloc(n ? n : 1, sizeof(*v));

	if (!v)
		return NULL;
	for (size_t i = 0; i < a->cfg->nparts; i++)
		v[k++] = &a->cfg->parts[i];
	for (size_t i = 0; i < a->disc.n; i++)
		v[k++] = &a->disc.v[i];
	*n_ret = k;
	return v;
}

/* Wait for a signal or timeout_ms, pinging the watchdog; drains the
 * signal pipe.  extra: another descriptor to wake on (-1: none). */
static void wait_events(int timeout_ms, int extra)
{
	struct pollfd p[2] = { { .fd = signals_fd(), .events = POLLIN },
			       { .fd = extra, .events = POLLIN } };

	if (poll(p, extra >= 0 ? 2 : 1, timeout_ms) < 0 && errno != EINTR)
		log_debug("poll: %s", strerror(errno));
	signals_drain();
	notify_watchdog();
}

/* The longest the main loop may sleep: half the watchdog interval. */
static int tick_ms(int cap_ms)
{
	uint64_t wd = notify_watchdog_usec() / 2000;

	return wd && wd < (uint64_t)cap_ms ? (int)wd : cap_ms;
}

/* The host lock, waiting while another run holds it (said once); -1 when a
 * stop was asked meanwhile or the lock cannot be had. */
static int take_host_lock(struct agent *a)
{
	bool said = false;

	for (;;) {
		struct err err = { 0 };
		int fd = hostlock_acquire_as(a->cfg->state_dir, 0, "the agent", &err);

		if (fd >= 0)
			return fd;
		if (fd != -EBUSY) {
			log_error("%s", err.msg);
			return -1;
		}
		if (!said)
			log_warn("waiting: %s", err.msg);
		said = true;
		notify_status("waiting for the host lock");
		wait_events(tick_ms(1000), -1);
		if (signals_stop())
			return -1;
	}
}

/* Recovery, the host lock held: our leftover snapshots; the round's
 * listing (one per region: pr); pending prunes (a half-done one finished
 * and said as such) and the policy of every partition, decided on that
 * listing; then, in a full recovery (at start, after a reload or a failed
 * round), unfinished uploads and manifest-less objects (after the prunes:
 * else a backup whose prune was cut short after its manifest would be
 * swept and said as an unfinished upload).  -1 (said) without a listing. */
static int recover(struct agent *a, struct regions *rs, const struct cfg_partition **parts,
		   size_t n, bool full, struct prune_round *pr)
{
	const char *host = a->o->host;
	struct err err = { 0 };
	unsigned removed = 0;

	if (cow_recover(a->cfg->state_dir, &removed, &err))
		log_warn("recovering leftover snapshots: %s", err.msg);
	else if (removed)
		log_warn("recovery: removed %u snapshot(s) left behind by an interrupted run", removed);
	if (signals_stop())
		return -1;
	err_clear(&err);
	if (prune_round_list(pr, rs, host, &err)) {
		if (!signals_stop())
			log_error("cannot list the backups of %s: %s; retrying next round",
				  host, err.msg);
		return -1;
	}
	for (size_t i = 0; i < n && !signals_stop(); i++) {
		struct prune_opts po = { .dry_run = false };
		struct prune_report rep;

		if (prune_partition_round(a->cfg, host, parts[i], &po, pr, &rep, &err)) {
			if (!signals_stop())   /* a stop cancels its listing */
				log_warn("prune of %s: %s", parts[i]->name, err.msg);
			continue;
		}
		if (rep.nfinished)
			log_warn("recovery: prune of %s finished %zu deletion(s) an earlier run left half-done",
				 parts[i]->name, rep.nfinished);
		if (rep.deleted || rep.pending)
			log_info("recovery: prune of %s deleted %zu backup(s), %zu deletion(s) pending",
				 parts[i]->name, rep.deleted, rep.pending);
		prune_report_clear(&rep);
	}
	if (full && !signals_stop())
		clean_regions(rs, host);   /* says what it removed */
	return signals_stop() ? -1 : 0;
}

/* The newest committed backup of every partition from the store. */
static void load_newest(struct agent *a, const struct cfg_partition **parts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct part_state *st = agentd_state_of(a, parts[i]->name);

		if (!st)
			continue;
		st->newest = 0;
		st->seen = true;
		/* the round's listing: every region listed (their union) */
		for (size_t r = 0; r < REGIONS_MAX; r++) {
			const struct catalog_list *l = &a->round.lists[r];

			for (size_t k = 0; a->round.listed[r] && k < l->n; k++)
				if (!strcmp(l->m[k].partition, parts[i]->name) &&
				    l->m[k].snap_time_ns / 1000000000 > st->newest)
					st->newest = l->m[k].snap_time_ns / 1000000000;
		}
	}
}

/* p's run record into *run_ret; false (and nothing to free) without one */
static bool load_run(const struct agent *a, const char *name, struct runrec *run_ret)
{
	struct err err = { 0 };

	/* an unreadable record: no backoff (the next attempt rewrites it) */
	return !runrec_load(a->cfg->state_dir, a->o->host, name, run_ret, &err);
}

/* When p is due: schedule_next_try, held back after failures by the run
 * record's backoff (status and the metrics say the same time); --once runs
 * what is due, a backoff aside. */
static int64_t next_due(struct agent *a, const struct cfg_partition *p,
			struct part_state *st, int64_t now)
{
	struct runrec run;
	bool have = load_run(a, p->name, &run);

	st->next_due = schedule_next_try(a->cfg, p, a->o->host, st->newest,
					 have ? &run : NULL, now);
	if (have)
		runrec_clear(&run);
	return a->o->once ? schedule_next_due(a->cfg, p, a->o->host, st->newest, now) :
			    st->next_due;
}

/* A failed backup of p (its run record written): said with the retry. */
static void say_failed(const struct agent *a, const struct cfg_partition *p,
		       const struct err *e)
{
	struct runrec run;
	bool have = load_run(a, p->name, &run);
	unsigned fails = have ? run.failures_in_row : 1;

	log_error("backup of %s failed (%u in a row): %s; retrying in %llds", p->name,
		  fails, e->msg,
		  (long long)schedule_backoff(fails ? fails : 1, config_interval(a->cfg, p)));
	if (have)
		runrec_clear(&run);
}

/* The metrics file: from the round's listing of the first region listed
 * (rs open), else with a listing of its own. */
static void write_metrics(struct agent *a, const struct regions *rs,
			  const struct cfg_partition **parts, size_t n)
{
	struct metrics_due *due = calloc(n ? n : 1, sizeof(*due));
	struct catalog_list *listed = NULL;
	struct err err = { 0 };

	if (!due)
		return;
	for (size_t i = 0; i < n; i++) {
		struct part_state *st = agentd_state_of(a, parts[i]->name);

		due[i].partition = parts[i]->name;
		due[i].next_due = st ? st->next_due : 0;
	}
	for (size_t r = 0; rs && r < rs->n; r++)
		if (a->round.listed[r]) {
			listed = &a->round.lists[r];
			break;
		}
	if (listed ? metrics_write_listed(a->cfg, a->o->host, rs, listed, due, n, &err) :
		     metrics_write(a->cfg, a->o->host, due, n, &err))
		log_warn("metrics: %s", err.msg);
	free(due);
}

struct round_ctx {
	struct agent *a;
	struct regions *rs;
	const struct cfg_partition **parts;
	size_t n;
	bool full;                /* a full recovery */
	int ret;
};

static void metrics_task(void *arg)
{
	struct round_ctx *r = arg;

	write_metrics(r->a, r->rs, r->parts, r->n);
}

/* ------------------------------------------ work off the main loop */

/*
 * Store work (listings, prunes, uploads) can take minutes when a region is
 * slow; the main loop must keep pinging the watchdog and answering signals
 * meanwhile.  agentd_task_run runs fn(ctx) in a thread (SIGINT/SIGTERM/SIGHUP
 * blocked there: they go to the main loop, which cancels through the
 * cancel hooks) and waits for it in the main loop, calling tick(ctx) at
 * every wake-up (at least once a second).  Returns 0, or -errno when the
 * thread could not be started (fn not run).
 */
struct task {
	void (*fn)(void *ctx);
	void *ctx;
	int done[2];              /* written when fn is over */
};

static void *task_main(void *arg)
{
	struct task *t = arg;
	sigset_t set;
	char c = 1;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	t->fn(t->ctx);
	if (write(t->done[1], &c, 1) < 0)
		log_debug("cannot wake the main loop: %s", strerror(errno));
	return NULL;
}

int agentd_task_run(void (*fn)(void *), void (*tick)(void *), void *ctx)
{
	struct task t = { .fn = fn, .ctx = ctx };
	pthread_t th;
	int ret;

	if (pipe2(t.done, O_CLOEXEC))
		return -errno;
	ret = pthread_create(&th, NULL, task_main, &t);
	if (ret)
		goto out_close;
	for (;;) {
		struct pollfd p = { .fd = t.done[0], .events = POLLIN };

		if (poll(&p, 1, 0) == 1)
			break;
		if (tick)
			tick(ctx);
		wait_events(tick_ms(1000), t.done[0]);
	}
	pthread_join(th, NULL);
out_close:
	close(t.done[0]);
	close(t.done[1]);
	return -ret;
}

/* ---------------------------------------------------- one backup */

struct job {
	_Atomic(const char *) phase;  /* the backup's phase, a static string */
	const struct config *cfg;
	const struct cfg_partition *p;
	struct regions *rs;
	const char *host;
	struct backup_opts bo;
	struct backup_result res;
	struct err err;
	int ret;
	double t0;                /* monotonic start */
	bool told;                /* the stop's cancellation said */
};

static void job_phase(void *ctx, const char *name)
{
	struct job *j = ctx;

	atomic_store(&j->phase, name);
}

static void job_main(void *arg)
{
	struct job *j = arg;

	j->bo.phase_ctx = j;
	j->ret = backup_partition(j->cfg, j->p, j->rs, j->host, &j->bo, &j->res, &j->err);
}

static void job_tick(void *arg)
{
	struct job *j = arg;
	char b[32];

	if (signals_stop() && !j->told) {
		log_info("stop requested: cancelling the backup of %s (in its %s phase)",
			 j->p->name, atomic_load(&j->phase));
		j->told = true;
	}
	notify_status("backing up %s (%s, %s)", j->p->name, atomic_load(&j->phase),
		      agentd_fmt_in((int64_t)(util_now_mono() - j->t0), b, sizeof(b)));
}

/* Run j's backup in a thread while the main loop answers signals and the
 * watchdog; j->ret as backup_partition's. */
static void job_run(struct job *j)
{
	int ret;

	j->t0 = util_now_mono();
	ret = agentd_task_run(job_main, job_tick, j);
	if (ret)
		j->ret = err_set(&j->err, ret, "cannot start the backup thread: %s",
				 strerror(-ret));
}

/* fn(ctx) off the main loop (agentd_task_run) with STATUS=status; run here when
 * no thread can be started (the watchdog then waits). */
static void off_loop(void (*fn)(void *), void *ctx, const char *status)
{
	int ret;

	notify_status("%s", status);
	ret = agentd_task_run(fn, NULL, ctx);
	if (ret) {
		log_debug("cannot start a thread (%s): %s in the main loop", strerror(-ret), status);
		fn(ctx);
	}
}

struct part_ctx {
	struct agent *a;
	const struct cfg_partition *p;
};

/* After a successful backup: the retention policy (host lock held), on
 * the round's listing. */
static void prune_after(struct agent *a, const struct cfg_partition *p)
{
	struct prune_opts po = { .dry_run = false };
	struct prune_report rep;
	struct err err = { 0 };

	if (prune_partition_round(a->cfg, a->o->host, p, &po, &a->round, &rep, &err)) {
		if (!signals_stop())
			log_warn("prune of %s after its backup: %s (retried next round)",
				 p->name, err.msg);
		return;
	}
	if (rep.deleted || rep.pending)
		log_info("prune of %s: %zu kept, %zu deleted, %zu deletion(s) pending",
			 p->name, rep.kept, rep.deleted, rep.pending);
	prune_report_clear(&rep);
}

static void prune_after_task(void *arg)
{
	struct part_ctx *c = arg;

	prune_after(c->a, c->p);
}

static void job_init(struct job *j, struct agent *a, struct regions *rs,
		     const struct cfg_partition *p)
{
	*j = (struct job){ .phase = "start", .cfg = a->cfg, .p = p, .rs = rs,
			   .host = a->o->host,
			   .bo = { .cancelled = signals_cancelled, .phase = job_phase } };
	j->t0 = util_now_mono();
	log_info("backing up %s (%s)", p->name, p->path);
}

/* After j's backup, the host lock held: the result said, a success
 * pruned, the run record written; updates st. */
static void job_finish(struct agent *a, struct job *j, struct part_state *st)
{
	const struct cfg_partition *p = j->p;
	struct err err = { 0 };

	if (j->ret == -ECANCELED && signals_stop()) {
		log_info("the backup of %s was cancelled by the stop: nothing of it is committed", p->name);
		return;
	}
	if (j->ret) {
		a->failed = true;
	} else {
		log_info("backup %s of %s committed in %.1fs", j->res.m.backup_id, p->name,
			 util_now_mono() - j->t0);
		st->newest = j->res.m.snap_time_ns / 1000000000;
		/* the round's listing with the new backup (in the primary) */
		if (prune_round_add(&a->round, 0, &j->res.m, &err))
			log_warn("prune of %s after its backup: %s (retried next round)", p->name,
				 err.msg);
		else
			off_loop(prune_after_task, &(struct part_ctx){ .a = a, .p = p }, "pruning");
	}
	if (runrec_note(a->cfg->state_dir, a->o->host, p->name, j->ret,
			j->ret ? j->err.msg : NULL, j->ret ? NULL : &j->res,
			util_now_mono() - j->t0, &err))
		log_warn("run record of %s: %s", p->name, err.msg);
	if (j->ret)
		say_failed(a, p, &j->err);   /* the backoff from the record */
	else
		manifest_clear(&j->res.m);
}

/* One due backup of p, under the host lock; updates st. */
static void backup_one(struct agent *a, struct regions *rs, const struct cfg_partition *p,
		       struct part_state *st)
{
	struct job j;
	int lockfd = take_host_lock(a);

	if (lockfd < 0) {
		if (!signals_stop())
			a->failed = true;
		return;
	}
	job_init(&j, a, rs, p);
	job_run(&j);
	job_finish(a, &j, st);
	hostlock_release(lockfd);
}

/* ------------------------------------ max_concurrent: backups at once */

/* A backup running in a thread of its own (task_main) beside others. */
struct slot {
	struct job j;
	struct task t;            /* fn = slot_job, ctx = the slot; t.done */
	struct regions own;       /* the backup's own regions (no state shared
				   * with the other backups but the stores') */
	struct part_state *st;
	pthread_t th;
	bool busy;
};

/* A slot's backup, on its own regions (what it marks down stays its own). */
static void slot_job(void *arg)
{
	struct slot *s = arg;
	struct err err = { 0 };

	if (geo_regions_open(s->j.cfg, NULL, NULL, NULL, false, &s->own, &err)) {
		s->j.err = err;
		s->j.ret = err.code ? err.code : -EIO;
		return;
	}
	s->j.rs = &s->own;
	job_main(&s->j);
	geo_regions_free(&s->own);
}

/* Start p's backup in a free slot s; -errno when no thread could be
 * started (then it is run here, in the main loop). */
static int slot_start(struct agent *a, struct regions *rs, struct slot *s,
		      const struct cfg_partition *p, struct part_state *st)
{
	int ret;

	job_init(&s->j, a, rs, p);
	s->st = st;
	s->t = (struct task){ .fn = slot_job, .ctx = s };
	if (pipe2(s->t.done, O_CLOEXEC))
		return -errno;
	ret = pthread_create(&s->th, NULL, task_main, &s->t);
	if (ret) {
		close(s->t.done[0]);
		close(s->t.done[1]);
		return -ret;
	}
	s->busy = true;
	return 0;
}

/* Wait for a slot's backup to end, a signal, or a tick; says the state. */
static void slots_wait(struct slot *s, unsigned max)
{
	struct pollfd p[1 + 64];
	unsigned np = 1, running = 0;
	char status[512] = "", b[32];

	p[0] = (struct pollfd){ .fd = signals_fd(), .events = POLLIN };
	for (unsigned i = 0; i < max && np < sizeof(p) / sizeof(p[0]); i++) {
		size_t used = strlen(status);

		if (!s[i].busy)
			continue;
		p[np++] = (struct pollfd){ .fd = s[i].t.done[0], .events = POLLIN };
		running++;
		if (signals_stop() && !s[i].j.told) {
			log_info("stop requested: cancelling the backup of %s (in its %s phase)",
				 s[i].j.p->name, atomic_load(&s[i].j.phase));
			s[i].j.told = true;
		}
		snprintf(status + used, sizeof(status) - used, "%s%s (%s, %s)", used ? ", " : "",
			 s[i].j.p->name, atomic_load(&s[i].j.phase),
			 agentd_fmt_in((int64_t)(util_now_mono() - s[i].j.t0), b, sizeof(b)));
	}
	notify_status("backing up %u partitions: %s", running, status);
	if (poll(p, np, tick_ms(1000)) < 0 && errno != EINTR)
		log_debug("poll: %s", strerror(errno));
	signals_drain();
	notify_watchdog();
}

/* The slots whose backup ended: joined, finished (prune, run record,
 * metrics); how many. */
static unsigned slots_reap(struct agent *a, struct regions *rs, struct slot *s, unsigned max,
			   const struct cfg_partition **parts, size_t n)
{
	unsigned reaped = 0;

	for (unsigned i = 0; i < max; i++) {
		struct pollfd p = { .fd = s[i].t.done[0], .events = POLLIN };

		if (!s[i].busy || poll(&p, 1, 0) != 1)
			continue;
		pthread_join(s[i].th, NULL);
		close(s[i].t.done[0]);
		close(s[i].t.done[1]);
		s[i].busy = false;
		reaped++;
		job_finish(a, &s[i].j, s[i].st);
		next_due(a, s[i].j.p, s[i].st, agentd_now());
		if (!signals_stop())
			off_loop(metrics_task, &(struct round_ctx){ .a = a, .rs = rs, .parts = parts,
							       .n = n }, "writing the metrics");
	}
	return reaped;
}

/*
 * The due backups of parts, up to max_concurrent at once, each in a thread
 * of its own, all under one hold of the host lock; never two of one
 * partition (each is started once a round).  Each backup has its own
 * reader, low-impact controller (they all follow the host's pressure),
 * upload threads and regions (slot_job); prunes (the round's listing), run
 * records and the metrics file are done here, in the main loop, one at a
 * time.
 */
static void backups_concurrent(struct agent *a, struct regions *rs,
			       const struct cfg_partition **parts, size_t n)
{
	unsigned max = a->cfg->max_concurrent, running = 0;
	struct slot *s = calloc(max, sizeof(*s));
	size_t next = 0;
	int lockfd;

	if (!s) {
		log_error("out of memory");
		a->failed = true;
		return;
	}
	lockfd = take_host_lock(a);
	if (lockfd < 0) {
		if (!signals_stop())
			a->failed = true;
		free(s);
		return;
	}
	for (;;) {
		while (running < max && next < n && !signals_stop()) {
			const struct cfg_partition *p = parts[next++];
			struct part_state *st = agentd_state_of(a, p->name);
			unsigned k = 0;

			if (!st || next_due(a, p, st, agentd_now()) > agentd_now())
				continue;
			while (s[k].busy)
				k++;
			if (!slot_start(a, rs, &s[k], p, st)) {
				running++;
				continue;
			}
			log_debug("cannot start a thread: the backup of %s in the main loop", p->name);
			job_main(&s[k].j);
			job_finish(a, &s[k].j, st);
		}
		if (!running)
			break;
		slots_wait(s, max);
		running -= slots_reap(a, rs, s, max, parts, n);
	}
	hostlock_release(lockfd);
	free(s);
}

/* ---------------------------------------------------- the loop */

/* The regions, recovery and the newest backups (off the main loop). */
static void round_task(void *arg)
{
	struct round_ctx *r = arg;
	struct err err = { 0 };

	if (geo_regions_open(r->a->cfg, NULL, NULL, NULL, false, r->rs, &err)) {
		log_error("%s; retrying next round", err.msg);
		r->ret = -1;
		return;
	}
	r->ret = recover(r->a, r->rs, r->parts, r->n, r->full, &r->a->round);
	if (r->ret) {
		prune_round_free(&r->a->round);
		geo_regions_free(r->rs);
		return;
	}
	load_newest(r->a, r->parts, r->n);
}

/* Recovery and the newest backups, under the host lock: 0 (*rs open, the
 * round's listing in a->round), or -1 (said, the round ends). */
static int round_start(struct agent *a, struct regions *rs,
		       const struct cfg_partition **parts, size_t n, bool full)
{
	struct round_ctx r = { .a = a, .rs = rs, .parts = parts, .n = n, .full = full };
	int lockfd = take_host_lock(a);

	if (lockfd < 0)
		return -1;
	off_loop(round_task, &r, "recovering and listing backups");
	hostlock_release(lockfd);
	return r.ret;
}

/* One round: discovery, recovery, the schedule, the due backups. */
static void agent_round(struct agent *a)
{
	const struct cfg_partition **parts;
	struct regions rs;
	struct err err = { 0 };
	size_t n = 0;

	/* a full recovery at start, after a reload, after a failed round;
	 * else the round's listing (one per region) serves it all */
	bool full = a->full || a->failed;

	a->last_round = agentd_now();
	a->full = false;
	a->failed = false;
	if (a->cfg->ndiscover && discover_run(&a->disc, a->cfg, &err))
		log_error("%s", err.msg);
	parts = round_parts(a, &n);
	if (!parts) {
		log_error("out of memory");
		a->failed = true;
		return;
	}
	for (size_t i = 0; i < a->nps; i++)
		a->ps[i].seen = false;
	if (round_start(a, &rs, parts, n, full)) {
		a->failed = true;
		free(parts);
		return;
	}
	if (a->cfg->max_concurrent > 1)
		backups_concurrent(a, &rs, parts, n);
	for (size_t i = 0; a->cfg->max_concurrent <= 1 && i < n && !signals_stop(); i++) {
		struct part_state *st = agentd_state_of(a, parts[i]->name);

		if (!st || next_due(a, parts[i], st, agentd_now()) > agentd_now())
			continue;
		backup_one(a, &rs, parts[i], st);
		next_due(a, parts[i], st, agentd_now());
		if (!signals_stop())
			off_loop(metrics_task, &(struct round_ctx){ .a = a, .rs = &rs, .parts = parts,
							       .n = n }, "writing the metrics");
	}
	agentd_drills(a, &rs, parts, n);
	for (size_t i = 0; i < n; i++) {
		struct part_state *st = agentd_state_of(a, parts[i]->name);

		if (st)
			next_due(a, parts[i], st, agentd_now());
	}
	/* after a stop: the file of the last round stays (the listing the
	 * metrics need would be cancelled) */
	if (!signals_stop())
		off_loop(metrics_task, &(struct round_ctx){ .a = a, .rs = &rs, .parts = parts,
						       .n = n }, "writing the metrics");
	prune_round_free(&a->round);
	geo_regions_free(&rs);
	free(parts);
}

/* When the next round is: the earliest due time of a partition seen in
 * the last round, or the next discovery scan; *name_ret the partition. */
static int64_t next_round(const struct agent *a, const char **name_ret)
{
	int64_t next = 0;

	*name_ret = NULL;
	for (size_t i = 0; i < a->nps; i++) {
		const struct part_state *st = &a->ps[i];

		if (st->seen && st->next_due && (!next || st->next_due < next)) {
			next = st->next_due;
			*name_ret = st->name;
		}
		if (st->seen && st->drill_due && (!next || st->drill_due < next)) {
			next = st->drill_due;
			*name_ret = st->name;
		}
	}
	if (a->cfg->ndiscover || !next || a->failed) {
		int64_t scan = a->last_round + (a->cfg->interval < SCAN_MAX_S ?
						a->cfg->interval : SCAN_MAX_S);

		if (!next || scan < next) {
			next = scan;
			*name_ret = NULL;
		}
	}
	return next;
}

/* SIGHUP: the config file again; a bad one is said and the old kept. */
static void agent_reload(struct agent *a)
{
	struct config n;
	struct err err = { 0 };

	notify_reloading();
	log_info("SIGHUP: reloading %s", a->o->config_file);
	if (a->o->worker ? config_load_copy(a->o->config_file, a->o->config_fd, &n, &err) :
			   config_load(a->o->config_file, &n, &err)) {
		log_error("reload: %s; keeping the configuration loaded before", err.msg);
		notify_ready();
		return;
	}
	/* the lock and the keys stay where the agent started */
	if (a->o->state_dir || strcmp(n.state_dir, a->cfg->state_dir)) {
		if (!a->o->state_dir)
			log_warn("reload: state_dir changed to %s; the agent keeps %s until it is restarted",
				 n.state_dir, a->cfg->state_dir);
		free(n.state_dir);
		n.state_dir = strdup(a->cfg->state_dir);
	}
	if (!n.state_dir) {
		log_error("reload: out of memory; keeping the configuration loaded before");
		config_free(&n);
		notify_ready();
		return;
	}
	config_free(a->cfg);
	*a->cfg = n;
	log_info("reloaded %s: %zu partition(s), %zu discover glob(s), %zu region(s)",
		 a->o->config_file, a->cfg->nparts, a->cfg->ndiscover, a->cfg->nregions);
	notify_ready();
}

/* Whether the next event, at next, is name's drill (not its backup). */
static bool drill_is_next(struct agent *a, const char *name, int64_t next)
{
	const struct part_state *st = agentd_state_of(a, name);

	return st && st->drill_due == next && st->next_due != next;
}

/* Sleep until the next round, a signal or a reload. */
static void agent_sleep(struct agent *a)
{
	const char *name;
	int64_t next = next_round(a, &name), left = next - agentd_now();
	char b[32];

	if (signals_take_reload())
		a->reload = true;
	if (left <= 0 || a->reload)
		return;
	if (name)
		notify_status("idle, next: %s%s in %s", drill_is_next(a, name, next) ? "drill of " : "",
			      name, agentd_fmt_in(left, b, sizeof(b)));
	else
		notify_status("idle, next round in %s", agentd_fmt_in(left, b, sizeof(b)));
	wait_events(tick_ms(left > 3600 ? 3600 * 1000 : (int)left * 1000), -1);
	if (signals_take_reload())
		a->reload = true;
}

void agent_say_start(const struct config *cfg, const struct agent_opts *o)
{
	if (!cfg->nparts && !cfg->ndiscover)
		log_warn("%s has no [partition] and no [agent] discover: nothing to back up until a reload brings some",
			 o->config_file);
	log_info("agent started (pid %ld): %zu partition(s), %zu discover glob(s), interval %llds, state in %s",
		 (long)getpid(), cfg->nparts, cfg->ndiscover,
		 (long long)cfg->interval, cfg->state_dir);
}

/* AGENT_LINGER_S, or SNAPSHIP_AGENT_LINGER_S (tests: workers that hand
 * over between 10 s rounds) */
static int64_t linger_s(void)
{
	const char *e = getenv("SNAPSHIP_AGENT_LINGER_S");

	return e && *e ? atoll(e) : AGENT_LINGER_S;
}

/* The worker, after a round: when the next round is AGENT_LINGER_S or
 * more away (and no reload waits), its status and time go to the
 * supervisor and the worker is done (true). */
static bool hand_over(struct agent *a)
{
	const char *name;
	int64_t next = next_round(a, &name), left = next - agentd_now();
	char b[32];

	if (signals_take_reload())
		a->reload = true;
	if (left < linger_s() || a->reload || signals_stop())
		return false;
	if (name)
		notify_status("idle, next: %s%s in %s", drill_is_next(a, name, next) ? "drill of " : "",
			      name, agentd_fmt_in(left, b, sizeof(b)));
	else
		notify_status("idle, next round in %s", agentd_fmt_in(left, b, sizeof(b)));
	notify_next(next);
	log_debug("worker (pid %ld): idle for %s, handing over to the supervisor", (long)getpid(),
		  agentd_fmt_in(left, b, sizeof(b)));
	return true;
}

int agent_run(struct config *cfg, const struct agent_opts *o)
{
	struct agent a = { .cfg = cfg, .o = o, .first = true, .full = !o->resume,
			   .reload = o->reload_first };
	struct err err = { 0 };
	int lockfd = -1, sig, rc = 0;

	/* a worker: the supervisor holds the agent lock */
	if (!o->worker)
		lockfd = agentlock_acquire(cfg->state_dir, &err);
	if (lockfd < 0 && !o->worker) {
		log_error("%s", err.msg);
		return 1;
	}
	if (signals_install()) {
		log_error("cannot catch signals");
		hostlock_release(lockfd);
		return 1;
	}
	signals_hup_reloads(!o->once);
	/* a stop ends listings and HEADs too: recovery, the newest backups,
	 * prunes and the metrics are all redone by the next start, and the
	 * cleanup of a cancelled backup only deletes and aborts */
	signals_reads_stop(true);
	if (!o->worker) {
		agent_say_start(cfg, o);
		notify_ready();
	}
	while (!signals_stop()) {
		if (a.reload || signals_take_reload()) {
			a.reload = false;
			agent_reload(&a);
			a.first = true;
			a.full = true;
		}
		if (a.first || next_round(&a, &(const char *){ NULL }) <= agentd_now()) {
			a.first = false;
			agent_round(&a);
			if (o->once || (o->worker && hand_over(&a)))
				break;
		}
		if (!signals_stop())
			agent_sleep(&a);
	}
	sig = signals_stop();
	notify_stopping();
	if (sig && o->worker) {
		log_debug("worker (pid %ld): %s received, stopped", (long)getpid(), strsignal(sig));
	} else if (sig) {
		log_info("stopping: %s received; %s", strsignal(sig),
			 sig == SIGTERM ? "a stop asked by the service manager (or kill): a clean stop" :
			 "a clean stop");
		rc = o->once ? 128 + sig : 0;
	} else if (o->once) {
		rc = a.failed ? 1 : 0;
	}
	discover_free(&a.disc);
	free(a.ps);
	hostlock_release(lockfd);
	return rc;
}
