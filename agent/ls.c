// SPDX-License-Identifier: MIT
#include "agent/ls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/catalog.h"
#include "agent/extract.h"
#include "agent/index.h"
#include "agent/restore.h"
#include "common/err.h"
#include "common/util.h"

const char *ls_name(const struct index_entry *e)
{
	const char *slash = strrchr(e->path, '/');

	return slash ? slash + 1 : e->path;
}

/* Is e directly in the directory dir ("." the root)? */
static bool in_dir(const struct index_entry *e, const char *dir)
{
	const char *slash = strrchr(e->path, '/');
	size_t n = strlen(dir);

	if (!strcmp(dir, "."))
		return !slash && strcmp(e->path, ".");
	return slash && (size_t)(slash - e->path) == n && !strncmp(e->path, dir, n) &&
	       slash[1];
}

static int by_name(const void *a, const void *b)
{
	const struct index_entry *const *x = a, *const *y = b;

	return strcmp((*x)->path, (*y)->path);
}

/* "./a/b/" -> "a/b"; "", "./" -> "." (a malloc'd copy, NULL: out of memory) */
static char *norm_path(const char *p)
{
	char *s;
	size_t n;

	if (!p)
		p = ".";
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	s = strdup(*p ? p : ".");
	if (!s)
		return NULL;
	n = strlen(s);
	while (n > 1 && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

/* ls->e: the entries of directory ls->path, sorted. */
static int list_dir(struct ls_listing *ls, struct err *err)
{
	const struct index *idx = ls->idx;
	size_t n = 0;

	for (size_t i = 0; i < idx->n; i++)
		n += in_dir(&idx->e[i], ls->path);
	ls->e = calloc(n ? n : 1, sizeof(*ls->e));
	if (!ls->e)
		return err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < idx->n; i++)
		if (in_dir(&idx->e[i], ls->path))
			ls->e[ls->n++] = &idx->e[i];
	qsort(ls->e, ls->n, sizeof(*ls->e), by_name);
	return 0;
}

int ls_backup(struct store *store, const struct manifest *m,
	      const struct restore_opts *o, const char *path,
	      struct ls_listing *ls_ret, struct err *err)
{
	struct ls_listing *ls = ls_ret;
	size_t i;
	int ret;

	memset(ls, 0, sizeof(*ls));
	ls->path = norm_path(path);
	if (!ls->path)
		return err_set(err, -ENOMEM, "out of memory");
	if (strcmp(ls->path, ".") && !extract_path_safe(ls->path)) {
		ret = err_set(err, -EINVAL, "%s: give a path relative to the partition, without ..",
			      UTIL_ESC(path));
		goto out_free;
	}
	ret = restore_index(store, m, o, &ls->idx, err);
	if (ret)
		goto out_free;
	i = index_find(ls->idx, ls->path);
	if (i == (size_t)-1 && strcmp(ls->path, ".")) {
		ret = err_set(err, -ENOENT,
			      "%s is not in backup %s of %s; snapship ls %s --id %s lists its top directory (paths are relative to the partition)",
			      UTIL_ESC(ls->path), m->backup_id, m->partition,
			      m->partition, m->backup_id);
		goto out_free;
	}
	ls->dir = i == (size_t)-1 || ls->idx->e[i].type == PACK_DIR;
	if (ls->dir) {
		ret = list_dir(ls, err);
		if (ret)
			goto out_free;
		return 0;
	}
	ls->e = calloc(1, sizeof(*ls->e));
	if (!ls->e) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out_free;
	}
	ls->e[ls->n++] = &ls->idx->e[i];
	return 0;
out_free:
	ls_free(ls);
	return ret;
}

void ls_free(struct ls_listing *ls)
{
	index_free(ls->idx);
	free(ls->e);
	free(ls->path);
	memset(ls, 0, sizeof(*ls));
}
