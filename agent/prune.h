/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_PRUNE_H
#define SNAPSHIP_AGENT_PRUNE_H

/* TEMP stub of branch R's agent/prune.h (interfaces.md); dropped at merge. */

#include <stdbool.h>
#include <stddef.h>

struct config;
struct cfg_partition;
struct err;

struct prune_opts { bool dry_run; };
struct prune_report { size_t kept, deleted, pending, skipped; };
int prune_partition(const struct config *cfg, const char *host, const struct cfg_partition *p,
		    const struct prune_opts *o, struct prune_report *rep_ret, struct err *err);
void prune_report_clear(struct prune_report *rep);

#endif
