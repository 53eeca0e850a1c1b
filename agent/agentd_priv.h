/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_AGENTD_PRIV_H
#define SNAPSHIP_AGENT_AGENTD_PRIV_H

/*
 * The agent's state shared by agent/agentd.c (the loop, the backups) and
 * agent/agentd_drill.c (the drills): not an interface for anything else.
 * The struct agent is agent_run's (on its stack); everything in it is the
 * main loop's except what a work thread is handed for its task.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/agentd.h"
#include "agent/discover.h"
#include "agent/prune.h"
#include "common/util.h"

/* What the agent remembers of a partition between rounds. */
struct part_state {
	char name[UTIL_NAME_MAX + 1];
	int64_t newest;           /* snapshot time of the newest committed backup; 0 none */
	int64_t next_due;         /* 0: not scheduled yet; after failures the
				   * backoff's (schedule_next_try) */
	bool seen;                /* a partition this round */
	int64_t drill_due;        /* the next drill; 0: none (schedule_drill_due) */
	int64_t drill_tried;      /* the agent's last drill attempt (a record or not) */
};

struct agent {
	struct config *cfg;
	const struct agent_opts *o;
	struct discover disc;
	struct part_state *ps;
	size_t nps;
	int64_t last_round;
	bool first, failed;       /* failed: a backup of this round failed */
	bool full;                /* the next round recovers fully (start, reload) */
	/* the round's listing of every region, for the newest backups and
	 * every prune of the round (during a round) */
	struct prune_round round;
	bool reload;              /* a SIGHUP taken, the reload still to do */
};

/* The clock in whole seconds (time(2)). */
int64_t agentd_now(void);
/* s as "3h12m", "4m", "45s" into buf (returned). */
const char *agentd_fmt_in(int64_t s, char *buf, size_t len);
/* name's state, made (zeroed) when new; NULL when out of memory.  Owned
 * by a (valid until the next new partition). */
struct part_state *agentd_state_of(struct agent *a, const char *name);
/* fn(ctx) in a thread while the main loop answers signals and pings the
 * watchdog, tick(ctx) (NULL: none) at every wake-up; 0, or -errno when no
 * thread could be started (fn not run). */
int agentd_task_run(void (*fn)(void *), void (*tick)(void *), void *ctx);

#endif
