// SPDX-License-Identifier: MIT
/* TEMP stub of branch R's agent/prune.c: prunes nothing. */
#include "agent/prune.h"

#include <string.h>

int prune_partition(const struct config *cfg, const char *host, const struct cfg_partition *p,
		    const struct prune_opts *o, struct prune_report *rep_ret, struct err *err)
{
	(void)cfg; (void)host; (void)p; (void)o; (void)err;
	memset(rep_ret, 0, sizeof(*rep_ret));
	return 0;
}

void prune_report_clear(struct prune_report *rep)
{
	(void)rep;
}
