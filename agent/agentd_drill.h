/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_AGENTD_DRILL_H
#define SNAPSHIP_AGENT_AGENTD_DRILL_H

/*
 * The agent's drills (agent/drill.h), after the due backups of a round:
 * each partition whose drill is due (schedule_drill_due) is drilled, one
 * at a time, in a work thread (agentd_task_run); the verdict logged, a
 * drill that could not run recorded as failed.  parts and rs are only
 * read (rs open for the round); every partition's part_state.drill_due is
 * set for the next round.
 */

#include <stddef.h>

struct agent;
struct regions;
struct cfg_partition;

void agentd_drills(struct agent *a, struct regions *rs, const struct cfg_partition **parts,
		   size_t n);

#endif
