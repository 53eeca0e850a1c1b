/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_HOOKS_H
#define SNAPSHIP_AGENT_HOOKS_H

/*
 * The pre_snapshot/post_snapshot hooks of a [partition]: a command for
 * /bin/sh in its own process group, with SNAPSHIP_PARTITION,
 * SNAPSHIP_SOURCE and SNAPSHIP_HOOK in its environment.
 */

#include <stdint.h>

struct err;

/*
 * Run cmd as the `what` hook of partition (source its path) and wait for
 * it, killing its process group after timeout_s seconds.  Every string is
 * only read.  0 if it exited 0; -ETIMEDOUT if killed for the timeout,
 * -ECANCELED if it failed or died, other -errno if it could not be run;
 * err says which.
 */
int hook_run(const char *what, const char *cmd, int64_t timeout_s,
	     const char *partition, const char *source, struct err *err);

#endif
