// SPDX-License-Identifier: MIT
#include "agent/clean.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/catalog.h"
#include "agent/config.h"
#include "agent/failover.h"
#include "common/err.h"
#include "common/log.h"
#include "uploader/store.h"

/* Clean region g into *res; whole: orphans and empty directories too. */
static void clean_one(struct region *g, const char *host, bool whole,
		      struct clean_result *res)
{
	struct err err = { 0 };
	char *p;
	int ret;

	memset(res, 0, sizeof(*res));
	snprintf(res->region, sizeof(res->region), "%s", g->name);
	if (!g->store || g->down) {
		snprintf(res->why, sizeof(res->why), "%s", g->down_why);
		res->error = -EIO;
		return;
	}
	snprintf(res->store, sizeof(res->store), "%s", store_describe(g->store));
	res->looked = true;
	res->whole = whole;
	if (asprintf(&p, "%s%s/", g->prefix, host) < 0) {
		res->error = -ENOMEM;
		snprintf(res->why, sizeof(res->why), "out of memory");
		return;
	}
	ret = store_abort_incomplete(g->store, p, &res->uploads, &err);
	free(p);
	if (!ret && whole)
		ret = catalog_remove_orphans(g->store, g->prefix, host, &res->objects, &err);
	if (ret == -EBUSY) {
		/* Object Lock: those objects go once their lock ends (the
		 * others went); not an error */
		log_info("region %s: %s", g->name, err_strip_region(g->name, err.msg));
		snprintf(res->why, sizeof(res->why), "%s", err_strip_region(g->name, err.msg));
		err_clear(&err);
		ret = 0;
	}
	if (!ret && whole)
		ret = catalog_remove_empty_dirs(g->store, g->prefix, host, &res->dirs, &err);
	if (ret) {
		res->error = ret;
		snprintf(res->why, sizeof(res->why), "%s", err_strip_region(g->name, err.msg));
		/* a secondary that does not answer is not asked again */
		if (!g->primary && failover_unreachable(&err)) {
			g->down = true;
			snprintf(g->down_why, sizeof(g->down_why), "%.500s", res->why);
		}
	}
}

unsigned clean_region(struct region *g, const char *host)
{
	struct clean_result res;
	unsigned n;

	if (!g->store)
		return 0;
	clean_one(g, host, true, &res);
	/* one warning at most: a store that cannot be cleaned usually cannot
	 * take the backup either, and that error follows */
	if (res.error && res.error != -ECANCELED)   /* cancelled: a stop */
		log_warn("region %s: could not clean up after interrupted runs: %s",
			 g->name, res.why);
	n = res.uploads + (unsigned)res.objects;
	if (n)
		log_warn("region %s: removed %u unfinished upload(s) left behind by an interrupted run",
			 g->name, n);
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

size_t clean_every_region(struct regions *rs, const char *host,
			  struct clean_result res[REGIONS_MAX])
{
	size_t failed = 0;

	for (size_t i = 0; i < rs->n; i++) {
		bool whole = i == 0 || rs->v[i].replication == REPL_AGENT;

		clean_one(&rs->v[i], host, whole, &res[i]);
		if (res[i].error)
			failed++;
		else if (!whole)
			snprintf(res[i].why, sizeof(res[i].why),
				 "backups without a manifest not looked for: replication = server, and a backup whose manifest has not arrived yet looks the same");
	}
	return failed;
}
