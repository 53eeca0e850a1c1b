// SPDX-License-Identifier: MIT
#include "agent/discover.h"

#include <errno.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "cow/cow.h"

static void part_free(struct cfg_partition *p)
{
	free(p->name);
	free(p->path);
}

static void parts_free(struct cfg_partition *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		part_free(&v[i]);
	free(v);
}

/* true the first time key is seen (and then remembered) */
static bool first_time(struct discover *d, const char *key)
{
	char **n;

	for (size_t i = 0; i < d->nsaid; i++)
		if (!strcmp(d->said[i], key))
			return false;
	n = realloc(d->said, (d->nsaid + 1) * sizeof(*n));
	if (!n)
		return true;   /* say it again rather than never */
	d->said = n;
	n[d->nsaid] = strdup(key);
	if (n[d->nsaid])
		d->nsaid++;
	return true;
}

/* forget a note (the problem went away: say it again if it comes back) */
static void forget(struct discover *d, const char *key)
{
	for (size_t i = 0; i < d->nsaid; i++)
		if (!strcmp(d->said[i], key)) {
			free(d->said[i]);
			d->said[i] = d->said[--d->nsaid];
			return;
		}
}

static const struct cfg_partition *find(const struct cfg_partition *v, size_t n,
					const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

/* Whether path can be partition name (said once when it cannot). */
static bool usable(struct discover *d, const struct config *cfg,
		   const struct cfg_partition *got, size_t ngot, const char *path,
		   const char *name)
{
	const struct cfg_partition *p;
	char key[4200];
	struct err err = { 0 };

	snprintf(key, sizeof(key), "bad:%s", path);
	if (!util_name_ok(name)) {
		if (first_time(d, key))
			log_warn("discover: %s is not a partition: its name \"%s\" is not 1 to %d letters, digits, '-', '_' or '.' (not starting with '.'); rename it or add a [partition NAME] with path = %s",
				 UTIL_ESC(path), UTIL_ESC(name), UTIL_NAME_MAX, UTIL_ESC(path));
		return false;
	}
	p = config_partition(cfg, name);
	if (p && !strcmp(p->path, path))
		return false;   /* configured already: no news */
	if (!p)
		p = find(got, ngot, name);
	if (p) {
		if (first_time(d, key))
			log_warn("discover: %s is skipped: partition %s is already %s; rename one of them or add a [partition NAME] with path = %s",
				 UTIL_ESC(path), name, p->path, UTIL_ESC(path));
		return false;
	}
	/* btrfs subvolumes only: every directory of an LVM volume would
	 * pass, each a snapshot of the whole volume */
	if (cow_check_source_opts(path, &(struct cow_opts){ .mode = COW_MODE_BTRFS },
				  &err)) {
		if (first_time(d, key))
			log_warn("discover: %s is skipped: %s", UTIL_ESC(path), err.msg);
		return false;
	}
	forget(d, key);
	return true;
}

/* Add path as a partition to *v (n of them), taking [agent]'s schedule. */
static int add(struct cfg_partition **v, size_t *n, const char *path, const char *name)
{
	struct cfg_partition *nv = realloc(*v, (*n + 1) * sizeof(*nv)), *p;

	if (!nv)
		return -ENOMEM;
	*v = nv;
	p = &nv[*n];
	memset(p, 0, sizeof(*p));
	p->name = strdup(name);
	p->path = strdup(path);
	p->hook_timeout = 300;
	if (!p->name || !p->path) {
		part_free(p);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

/* One glob's matches into *v. */
static int match_one(struct discover *d, const struct config *cfg, const char *pattern,
		     struct cfg_partition **v, size_t *n)
{
	glob_t g;
	char key[4200];
	int ret = 0, gr = glob(pattern, GLOB_ONLYDIR | GLOB_ERR, NULL, &g);

	snprintf(key, sizeof(key), "glob:%s", pattern);
	if (gr == GLOB_NOSPACE)
		return -ENOMEM;
	if (gr == GLOB_ABORTED) {
		if (first_time(d, key))
			log_warn("discover = %s: cannot read a directory it names (%s); fix the path or its permissions",
				 UTIL_ESC(pattern), strerror(errno));
		return 0;
	}
	forget(d, key);
	for (size_t i = 0; gr == 0 && i < g.gl_pathc && !ret; i++) {
		char *path = g.gl_pathv[i], *slash;

		while (strlen(path) > 1 && path[strlen(path) - 1] == '/')
			path[strlen(path) - 1] = '\0';
		slash = strrchr(path, '/');
		if (usable(d, cfg, *v, *n, path, slash ? slash + 1 : path))
			ret = add(v, n, path, slash ? slash + 1 : path);
	}
	globfree(&g);
	return ret;
}

int discover_run(struct discover *d, const struct config *cfg, struct err *err)
{
	struct cfg_partition *v = NULL;
	size_t n = 0;
	int ret = 0;

	for (size_t i = 0; i < cfg->ndiscover && !ret; i++)
		ret = match_one(d, cfg, cfg->discover[i], &v, &n);
	if (ret) {
		parts_free(v, n);
		return err_set(err, ret, "discover: out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const struct cfg_partition *old = find(d->v, d->n, v[i].name);

		if (!old || strcmp(old->path, v[i].path))
			log_info("discover: new partition %s at %s", v[i].name, v[i].path);
	}
	for (size_t i = 0; i < d->n; i++)
		if (!find(v, n, d->v[i].name))
			log_warn("discover: partition %s (%s) is gone: no longer a btrfs subvolume matched by discover; its backups stay in the store",
				 d->v[i].name, d->v[i].path);
	parts_free(d->v, d->n);
	d->v = v;
	d->n = n;
	return 0;
}

void discover_free(struct discover *d)
{
	parts_free(d->v, d->n);
	for (size_t i = 0; i < d->nsaid; i++)
		free(d->said[i]);
	free(d->said);
	memset(d, 0, sizeof(*d));
}
