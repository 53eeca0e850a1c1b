// SPDX-License-Identifier: MIT
#include "agent/agentd_drill.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/agentd_priv.h"
#include "agent/config.h"
#include "agent/drill.h"
#include "agent/geo.h"
#include "agent/notify.h"
#include "agent/schedule.h"
#include "agent/signals.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

/*
 * After the due backups of a round, the agent drills (agent/drill.h) each
 * partition whose drill is due (schedule_drill_due: its last drill, by the
 * agent or by hand, older than drill_interval, and a committed backup),
 * one at a time, from drill_default_region into the default scratch, in
 * the work thread.  The drill holds the backup's reading lock (a prune
 * keeps it) and no host lock: a manual backup is not held up by it.  A
 * failed drill is a report, said at error level and not retried before
 * drill_interval; a stop cancels it (the scratch copy removed).
 */
struct drill_job {
	const struct config *cfg;
	const struct cfg_partition *p;
	struct regions *rs;
	size_t ri;                /* the region drilled */
	struct drill_opts o;
	struct drill_result res;
	struct err err;
	int ret;
	double t0;                /* monotonic start */
	bool told;                /* the stop's cancellation said */
};

static void drill_main(void *arg)
{
	struct drill_job *j = arg;

	j->ret = drill_partition(j->rs, j->ri, j->cfg, j->p, &j->o, &j->res, &j->err);
}

static void drill_tick(void *arg)
{
	struct drill_job *j = arg;
	char b[32];

	if (signals_stop() && !j->told) {
		log_info("stop requested: cancelling the drill of %s", j->p->name);
		j->told = true;
	}
	notify_status("drilling %s from %s (%s)", j->p->name, j->rs->v[j->ri].name,
		      agentd_fmt_in((int64_t)(util_now_mono() - j->t0), b, sizeof(b)));
}

/* A drill that could not run at all (no verdict): recorded as failed
 * (error) so status and the metrics show it, the last pass kept. */
static void drill_record_error(struct agent *a, struct drill_job *j)
{
	struct drill_result *res = &j->res;
	struct drillrec old, rec;
	struct err err = { 0 };

	snprintf(res->partition, sizeof(res->partition), "%s", j->p->name);
	snprintf(res->region, sizeof(res->region), "%s", j->rs->v[j->ri].name);
	res->started = j->o.now;
	res->failure = DRILL_ERROR;
	res->rpo_s = res->rto_s = -1;
	snprintf(res->message, sizeof(res->message), "partition %s, region %s: the drill could not run: %s",
		 j->p->name, res->region, UTIL_ESC_CTL(j->err.msg));
	if (drillrec_load(a->cfg->state_dir, a->o->host, j->p->name, &old, &err))
		err_clear(&err);
	drillrec_from_result(res, &rec);
	rec.last_pass = old.last_pass;
	if (drillrec_save(a->cfg->state_dir, a->o->host, j->p->name, &rec, &err))
		log_warn("%s; status and the metrics do not show this drill", err.msg);
}

/* The verdict in one log line: info when passed, error when not. */
static void drill_say(const struct drill_job *j, int64_t every)
{
	const struct drill_result *r = &j->res;
	char rpo[32] = "-", rto[32] = "-", next[32];

	if (r->rpo_s >= 0)
		snprintf(rpo, sizeof(rpo), "%.0fs", r->rpo_s);
	if (r->rto_s >= 0)
		snprintf(rto, sizeof(rto), "%.2fs", r->rto_s);
	agentd_fmt_in(every, next, sizeof(next));
	if (r->failure == DRILL_OK)
		log_info("drill of %s from %s passed: backup %s restored and checked (%llu files, %llu bytes), RPO %s, RTO %s; next drill in %s",
			 j->p->name, r->region, r->backup_id, (unsigned long long)r->files,
			 (unsigned long long)r->bytes, rpo, rto, next);
	else
		log_error("drill of %s from %s failed (%s): %s; RPO %s, RTO %s; next drill in %s (a drill is a report: run snapship drill --partition %s by hand after fixing it)",
			  j->p->name, r->region, drill_failure_name(r->failure), r->message,
			  rpo, rto, next, j->p->name);
}

/* One due drill of p; updates st. */
static void drill_one(struct agent *a, struct regions *rs, const struct cfg_partition *p,
		      struct part_state *st)
{
	struct drill_job j = { .cfg = a->cfg, .p = p, .rs = rs, .ri = drill_default_region(rs),
			       .o = { .state_dir = a->cfg->state_dir, .host = a->o->host,
				      .now = agentd_now(), .cancelled = signals_cancelled } };
	int ret;

	st->drill_tried = j.o.now;
	log_info("drilling %s from region %s%s", p->name, rs->v[j.ri].name,
		 rs->v[j.ri].primary ? " (the primary: the only region)" : "");
	notify_status("drilling %s from %s", p->name, rs->v[j.ri].name);
	j.t0 = util_now_mono();
	ret = agentd_task_run(drill_main, drill_tick, &j);
	if (ret)
		j.ret = err_set(&j.err, ret, "cannot start the drill thread: %s", strerror(-ret));
	if (j.ret == -ECANCELED) {
		log_info("the drill of %s was cancelled by the stop: its scratch copy is removed, nothing recorded",
			 p->name);
		return;
	}
	if (j.ret)
		drill_record_error(a, &j);
	drill_say(&j, config_drill_interval(a->cfg, p));
}

/* When p's next drill is due (st->drill_due; 0: none), from its drill
 * record and the agent's last attempt. */
static int64_t drill_next(struct agent *a, const struct cfg_partition *p,
			  struct part_state *st, int64_t now)
{
	struct drillrec rec;
	struct err err = { 0 };
	int64_t last;

	if (config_drill_interval(a->cfg, p) <= 0) {
		st->drill_due = 0;
		return 0;
	}
	if (drillrec_load(a->cfg->state_dir, a->o->host, p->name, &rec, &err))
		log_warn("%s", err.msg);
	last = rec.last_drill > st->drill_tried ? rec.last_drill : st->drill_tried;
	st->drill_due = schedule_drill_due(a->cfg, p, a->o->host, last, st->newest > 0, now);
	return st->drill_due;
}

/* The due drills of the round, one at a time; every partition's next
 * drill time set. */
void agentd_drills(struct agent *a, struct regions *rs, const struct cfg_partition **parts,
		   size_t n)
{
	for (size_t i = 0; i < n && !signals_stop(); i++) {
		struct part_state *st = agentd_state_of(a, parts[i]->name);
		int64_t due = st ? drill_next(a, parts[i], st, agentd_now()) : 0;

		if (!due || due > agentd_now())
			continue;
		drill_one(a, rs, parts[i], st);
		drill_next(a, parts[i], st, agentd_now());
	}
}
