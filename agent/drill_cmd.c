// SPDX-License-Identifier: MIT
/*
 * `snapship drill` (agent/drill_cmd.h): which region and partitions, a
 * drill of each (drill.c), the outputs (drill_report.c) and the exit
 * status: 0 when every partition passed, 1 when one failed, 2 for a usage
 * error, 128 + the signal when stopped (the scratch copy removed first).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/catalog.h"
#include "agent/cli.h"
#include "agent/drill.h"
#include "agent/drill_cmd.h"
#include "agent/drill_report.h"
#include "agent/failover.h"
#include "agent/geo.h"
#include "agent/metrics.h"
#include "agent/report.h"
#include "agent/signals.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "uploader/store.h"

/* The partitions to drill: named ones (configured ones in the configured
 * form), all configured ones, or (zero-config) all the store lists. */
struct drill_parts {
	struct cfg_partition *v;        /* names borrowed (config, argv, list) */
	size_t n;
	struct catalog_list list;       /* zero-config: where the names are */
};

static int add_part(struct drill_parts *dp, const struct cfg_partition *p, const char *name)
{
	struct cfg_partition *v;

	for (size_t i = 0; i < dp->n; i++)
		if (!strcmp(dp->v[i].name, name))
			return 0;
	v = realloc(dp->v, (dp->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	dp->v = v;
	if (p)
		v[dp->n] = *p;
	else
		v[dp->n] = (struct cfg_partition){ .name = (char *)name };
	dp->n++;
	return 0;
}

static int parts_choose(struct cli *c, struct region *rg, const char *host,
			struct drill_parts *dp)
{
	struct err err = { 0 };
	const struct cli_opts *o = &c->o;
	int ret = 0;

	for (size_t i = 0; i < o->npartitions && !ret; i++) {
		const struct cfg_partition *p = NULL;

		if (!util_name_ok(o->partitions[i]))
			return cli_bad_partition(o->partitions[i]);
		if (c->have_config && !(p = config_partition(&c->cfg, o->partitions[i])))
			return cli_usage_error("--partition %s: no such [partition] in %s",
					       UTIL_ESC(o->partitions[i]), o->config_file);
		ret = add_part(dp, p, o->partitions[i]);
	}
	for (size_t i = 0; !o->npartitions && c->have_config && i < c->cfg.nparts && !ret; i++)
		ret = add_part(dp, &c->cfg.parts[i], c->cfg.parts[i].name);
	if (!o->npartitions && !c->have_config && rg->store) {
		if (catalog_list(rg->store, rg->prefix, host, NULL, &dp->list, &err))
			return cli_fail(&err);
		for (size_t i = 0; i < dp->list.n && !ret; i++)
			ret = add_part(dp, NULL, dp->list.m[i].partition);
	}
	if (ret)
		return cli_fail(&(struct err){ .code = ret, .msg = "out of memory" });
	if (!dp->n && c->have_config)
		return cli_usage_error("nothing to drill: no [partition] in %s", o->config_file);
	if (!dp->n) {
		/* a store with nothing of this host: a drill that fails */
		err_set(&err, -ENOENT, "nothing to drill: region %s (%s) holds no backups of %s%s; pass --partition P to name one (its drill fails), or --host NAME",
			rg->name, rg->store ? store_describe(rg->store) : "not opened", host,
			dp->list.broken ? " that can be read" : "");
		return cli_fail(&err);
	}
	return CLI_GO_ON;
}

/* --report-json, --report-junit and stdout. */
static int drill_output(struct cli *c, const char *host, const struct drill_result *v,
			size_t n)
{
	struct err err = { 0 };
	struct report r;
	json_t *doc = drill_report_json(host, v, n);
	char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	char *xml = c->o.report_junit ? drill_report_junit(host, v, n) : NULL;
	int rc = CLI_GO_ON;

	if (!text || (c->o.report_junit && !xml))
		rc = cli_fail(&(struct err){ .code = -ENOMEM, .msg = "drill report: out of memory" });
	if (rc == CLI_GO_ON && c->o.report_json &&
	    drill_report_write(c->o.report_json, text, &err))
		rc = cli_fail(&err);
	if (rc == CLI_GO_ON && xml && drill_report_write(c->o.report_junit, xml, &err))
		rc = cli_fail(&err);
	if (c->o.json) {
		report_init(&r, true);
		json_decref(r.doc);
		r.doc = json_incref(doc);
		report_end(&r);
	} else {
		drill_report_table(stdout, v, n);
	}
	free(xml);
	free(text);
	json_decref(doc);
	return rc;
}

/* Drill each partition in turn; *nres results in res (one per partition
 * reached before a stop). */
static int drill_each(struct cli *c, struct regions *rs, size_t ri, const char *host,
		      const struct drill_parts *dp, struct drill_result *res, size_t *nres)
{
	struct drill_opts o = { .state_dir = c->cfg.state_dir, .host = host,
				.scratch = c->o.scratch, .keep = c->o.keep,
				.sample = c->o.sample, .now = (int64_t)time(NULL),
				.progress = isatty(2) && log_get_level() >= LOG_WARN,
				.cancelled = signals_cancelled };

	for (size_t i = 0; i < dp->n; i++) {
		struct err err = { 0 };
		int ret;

		log_set_context(dp->v[i].name, rs->v[ri].name);
		ret = drill_partition(rs, ri, &c->cfg, &dp->v[i], &o, &res[i], &err);
		log_set_context(NULL, NULL);
		if (ret == -ECANCELED || signals_stop()) {
			*nres = i + (ret != -ECANCELED);
			return -ECANCELED;
		}
		*nres = i + 1;
		if (ret) {
			/* could not run at all: a failed drill of that partition */
			snprintf(res[i].partition, sizeof(res[i].partition), "%s", dp->v[i].name);
			snprintf(res[i].region, sizeof(res[i].region), "%s", rs->v[ri].name);
			res[i].failure = DRILL_ERROR;
			res[i].rpo_s = res[i].rto_s = -1;
			snprintf(res[i].message, sizeof(res[i].message), "partition %s, region %s: the drill could not run: %s",
				 dp->v[i].name, rs->v[ri].name, UTIL_ESC_CTL(err.msg));
		}
	}
	return 0;
}

int cmd_drill(struct cli *c, int argc, char **argv)
{
	struct drill_parts dp = { 0 };
	struct drill_result *res = NULL;
	struct regions rs;
	struct err err = { 0 };
	const char *host;
	char hbuf[256];
	size_t ri, nres = 0, failed = 0;
	int rc, ret;

	(void)argv;
	if (argc)
		return cli_usage_error("usage: snapship drill [--region R] [--partition P]... [--scratch DIR] [--report-json F] [--report-junit F] [--keep] [--sample N] [--json]");
	cli_use_state_dir(c);
	host = cli_host(c, hbuf, sizeof(hbuf));
	/* the drilled region alone is read: opened with the full retries a
	 * restore has (no failover to make them short) */
	if (cli_open_regions(c, false, &rs, &err))
		return cli_fail(&err);
	ri = drill_default_region(&rs);
	rc = parts_choose(c, &rs.v[ri], host, &dp);
	if (rc != CLI_GO_ON)
		goto out;
	res = calloc(dp.n, sizeof(*res));
	if (!res) {
		rc = cli_fail(&(struct err){ .code = -ENOMEM, .msg = "out of memory" });
		goto out;
	}
	ret = drill_each(c, &rs, ri, host, &dp, res, &nres);
	for (size_t i = 0; i < nres; i++)
		failed += res[i].failure != DRILL_OK;
	rc = drill_output(c, host, res, nres);
	if (ret == -ECANCELED)
		rc = 128 + signals_stop();
	else if (rc == CLI_GO_ON)
		rc = failed ? EXIT_FAIL : EXIT_OK;
	/* the drill records just written: into the metrics file at once (a
	 * drill run by cron, as a backup's) */
	if (nres && c->have_config && c->cfg.metrics_file &&
	    metrics_write(&c->cfg, host, NULL, 0, &err))
		log_warn("%s", err.msg);
out:
	free(res);
	free(dp.v);
	catalog_list_free(&dp.list);
	geo_regions_free(&rs);
	return rc;
}
