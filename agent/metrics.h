/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_METRICS_H
#define SNAPSHIP_AGENT_METRICS_H

/* TEMP stub of branch M's agent/metrics.h (interfaces.md); dropped at merge. */

#include <stddef.h>
#include <stdint.h>

struct config;
struct err;

struct metrics_due { const char *partition; int64_t next_due; };
int metrics_write(const struct config *cfg, const char *host,
		  const struct metrics_due *due, size_t ndue, struct err *err);

#endif
