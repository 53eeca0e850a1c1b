// SPDX-License-Identifier: MIT
#include "agent/clean.h"

#include <stdio.h>
#include <stdlib.h>

#include "agent/catalog.h"
#include "agent/config.h"
#include "agent/failover.h"
#include "common/err.h"
#include "common/log.h"
#include "uploader/store.h"

unsigned clean_region(struct region *g, const char *host)
{
	struct store *store = g->store;
	const char *prefix = g->prefix, *region = g->name;
	struct err err = { 0 };
	unsigned n = 0;
	size_t orphans = 0;
	char *p;

	if (!store)
		return 0;
	if (asprintf(&p, "%s%s/", prefix, host) < 0)
		return 0;
	/* one warning at most: a store that cannot be cleaned usually cannot
	 * take the backup either, and that error follows */
	if (store_abort_incomplete(store, p, &n, &err) ||
	    catalog_remove_orphans(store, prefix, host, &orphans, &err)) {
		log_warn("region %s: could not clean up after interrupted runs: %s",
			 region, err_strip_region(region, err.msg));
		/* a secondary that does not answer is not asked again */
		if (!g->primary && failover_unreachable(&err)) {
			g->down = true;
			snprintf(g->down_why, sizeof(g->down_why), "%.500s",
				 err_strip_region(region, err.msg));
		}
	}
	n += (unsigned)orphans;
	if (n)
		log_warn("region %s: removed %u unfinished upload(s) left behind by an interrupted run",
			 region, n);
	free(p);
	return n;
}

unsigned clean_regions(struct regions *rs, const char *host)
{
	unsigned n = 0;

	for (size_t i = 0; i < rs->n; i++)
		if (i == 0 || rs->v[i].replication == REPL_AGENT)
			n += clean_region(&rs->v[i], host);
	return n;
}
