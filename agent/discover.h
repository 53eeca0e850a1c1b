/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_DISCOVER_H
#define SNAPSHIP_AGENT_DISCOVER_H

/*
 * Partitions found by [agent] discover = GLOB (design §9): every btrfs
 * subvolume a glob matches is a partition named after its last path
 * element.  Run at every round of the agent: new matches are said once
 * (log_info), vanished ones once (log_warn), and a match that cannot be a
 * partition (a name outside the partition-name grammar, a name a
 * [partition] or an earlier match already has, not a btrfs subvolume) is
 * said once while it stays so — never an error storm.
 *
 * Ownership: struct discover owns its partitions and notes; cfg is only
 * read.  discover_free releases everything (a zeroed struct is empty).
 */

#include <stddef.h>

#include "agent/config.h"

struct err;

struct discover {
	struct cfg_partition *v;        /* this round's partitions (owned) */
	size_t n;
	char **said;                    /* problems already reported (owned) */
	size_t nsaid;
};

/*
 * Match cfg->discover into d->v (the previous round's replaced), skipping
 * names cfg has as [partition] sections; each new partition takes the
 * [agent] schedule and hook_timeout 300s.  0, or -ENOMEM (d unchanged).
 * A glob that fails to read is reported once and matches nothing.
 */
int discover_run(struct discover *d, const struct config *cfg, struct err *err);
void discover_free(struct discover *d);

#endif
