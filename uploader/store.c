// SPDX-License-Identifier: MIT
/*
 * Object store front end: picks a backend from the location, checks every
 * argument and key before a backend sees it, and hosts the fault-injection
 * points tests use.  Callers never reach a backend's ops table directly.
 */
#include "uploader/store.h"
#include "uploader/store_driver.h"

#include "common/err.h"
#include "common/fault.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STORE_KEY_MAX 1024

struct store {
	const struct store_ops *ops;
	void *priv;
	char *desc;             /* "file:/srv/backups" */
};

struct store_writer {
	struct store *store;
	void *wpriv;            /* backend writer; NULL once handed back */
	int failed;             /* first error of a write; commit refuses */
	char key[];
};

/*
 * Fault injection: when the test harness armed @point, fail with its code
 * and a message that says the failure was not real.
 */
static int store_fault(const struct store *store, const char *point,
		       const char *key, struct err *err)
{
	int code = -EIO;

	if (!fault_hit(point, &code))
		return 0;
	if (code >= 0)
		code = -EIO;
	return err_set(err, code, "store %s: %s: injected fault (%s): %s",
		       store->desc, key ? key : "", point, err_str(code));
}

/*
 * Keys are relative '/'-separated names: no leading '/', no empty, "." or
 * ".." component, at most STORE_KEY_MAX bytes.  A prefix follows the same
 * rules except that it may be empty, end in '/', and its last (partial)
 * component may be anything since it only selects names.
 */
static const char *store_key_problem(const char *key, bool is_prefix)
{
	size_t len = strlen(key);
	const char *p = key;

	if (len > STORE_KEY_MAX)
		return "longer than 1024 bytes";
	if (len == 0)
		return is_prefix ? NULL : "empty";
	if (key[0] == '/')
		return "starts with '/'; keys are relative";
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (!slash && is_prefix)
			return NULL;
		if (n == 0)
			return slash ? "has an empty component (\"//\")"
				     : "ends with '/'";
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return "has a \".\" or \"..\" component";
		if (!slash)
			return NULL;
		p = slash + 1;
	}
}

static int store_check_key(const struct store *store, const char *key,
			   bool is_prefix, struct err *err)
{
	const char *problem;

	if (!key)
		return err_set(err, -EINVAL, "store %s: missing key",
			       store->desc);
	problem = store_key_problem(key, is_prefix);
	if (problem)
		return err_set(err, -EINVAL,
			       "store %s: invalid %s \"%.200s%s\": %s",
			       store->desc, is_prefix ? "prefix" : "key", key,
			       strlen(key) > 200 ? "..." : "", problem);
	return 0;
}

/*
 * "file:///abs", "/abs" or "rel" → absolute path without trailing '/'
 * (malloc'd into *path_ret).
 */
static int store_file_path(const char *location, char **path_ret,
			   struct err *err)
{
	const char *p = location;
	char cwd[PATH_MAX];
	size_t len;
	char *path;

	if (!strncmp(p, "file://", 7)) {
		p += 7;
		if (p[0] != '/')
			return err_set(err, -EINVAL,
				       "store \"%s\": a file:// location needs an absolute path (file:///srv/backups)",
				       location);
	}
	if (!p[0])
		return err_set(err, -EINVAL, "store \"%s\": empty path",
			       location);
	len = strlen(p);
	while (len > 1 && p[len - 1] == '/')
		len--;
	if (p[0] == '/') {
		path = strndup(p, len);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return err_set(err, -errno,
				       "store \"%s\": cannot resolve a relative path: %s; use an absolute one",
				       location, err_str(-errno));
		if (len == 1 && p[0] == '.')
			len = 0;
		if (len >= 2 && p[0] == '.' && p[1] == '/') {
			p += 2;
			len -= 2;
		}
		if (asprintf(&path, "%s%s%.*s", cwd,
			     len && strcmp(cwd, "/") ? "/" : "", (int)len, p) < 0)
			path = NULL;
	}
	if (!path)
		return err_set(err, -ENOMEM, "store \"%s\": out of memory",
			       location);
	*path_ret = path;
	return 0;
}

/*
 * "s3://bucket[/prefix]" → the s3 backend, opened with opts (a zeroed set
 * when NULL); desc "s3://bucket/prefix".
 */
static int store_open_s3(const char *location, const struct store_opts *opts,
			 struct store **store_ret, struct err *err)
{
	const struct store_ops *ops = &store_s3_ops;
	static const struct store_opts none;
	struct store *store;
	size_t len = strlen(location);
	int ret;

	while (len > 5 && location[len - 1] == '/')
		len--;
	store = calloc(1, sizeof(*store));
	if (!store)
		return err_set(err, -ENOMEM, "store \"%s\": out of memory",
			       location);
	store->desc = strndup(location, len);
	if (!store->desc) {
		free(store);
		return err_set(err, -ENOMEM, "store \"%s\": out of memory",
			       location);
	}
	ret = ops->open_opts(location, opts ? opts : &none, &store->priv, err);
	if (ret) {
		free(store->desc);
		free(store);
		return ret;
	}
	store->ops = ops;
	*store_ret = store;
	return 0;
}

int store_open(const char *location, struct store **store_ret, struct err *err)
{
	return store_open_opts(location, NULL, store_ret, err);
}

int store_open_opts(const char *location, const struct store_opts *opts,
		    struct store **store_ret, struct err *err)
{
	const struct store_ops *ops = &store_file_ops;
	struct store *store;
	char *path = NULL;
	int ret;

	if (!location || !store_ret)
		return err_set(err, -EINVAL, "store_open: missing argument");
	*store_ret = NULL;
	if (!strncmp(location, "s3://", 5))
		return store_open_s3(location, opts, store_ret, err);
	if (strstr(location, "://") && strncmp(location, "file://", 7))
		return err_set(err, -EINVAL,
			       "store \"%s\": unknown store type; use a directory, file:///dir or s3://bucket/prefix",
			       location);

	ret = store_file_path(location, &path, err);
	if (ret)
		return ret;
	store = calloc(1, sizeof(*store));
	if (!store) {
		ret = err_set(err, -ENOMEM, "store \"%s\": out of memory",
			      location);
		goto out_free_path;
	}
	if (asprintf(&store->desc, "%s:%s", ops->scheme, path) < 0) {
		store->desc = NULL;
		ret = err_set(err, -ENOMEM, "store \"%s\": out of memory",
			      location);
		goto out_free_store;
	}
	if (ops->open_opts) {
		static const struct store_opts none;

		ret = ops->open_opts(path, opts ? opts : &none, &store->priv, err);
	} else {
		ret = ops->open(path, &store->priv, err);
	}
	if (ret)
		goto out_free_desc;
	store->ops = ops;
	free(path);
	*store_ret = store;
	return 0;

out_free_desc:
	free(store->desc);
out_free_store:
	free(store);
out_free_path:
	free(path);
	return ret;
}

void store_free(struct store *store)
{
	if (!store)
		return;
	store->ops->free(store->priv);
	free(store->desc);
	free(store);
}

const char *store_describe(const struct store *store)
{
	return store ? store->desc : "(no store)";
}

unsigned store_features(const struct store *store)
{
	return store ? store->ops->features : 0;
}

uint64_t store_part_size(const struct store *store)
{
	return store && store->ops->part_size ? store->ops->part_size(store->priv) : 0;
}

int store_put_begin(struct store *store, const char *key,
		    struct store_writer **w_ret, struct err *err)
{
	return store_put_begin_opts(store, key, NULL, w_ret, err);
}

int store_put_begin_opts(struct store *store, const char *key,
			 const struct store_put_opts *po,
			 struct store_writer **w_ret, struct err *err)
{
	struct store_writer *w;
	int ret;

	if (!store || !w_ret)
		return err_set(err, -EINVAL, "store_put_begin: missing argument");
	*w_ret = NULL;
	ret = store_check_key(store, key, false, err);
	if (ret)
		return ret;
	ret = store_fault(store, "store.put_begin", key, err);
	if (ret)
		return ret;
	w = calloc(1, sizeof(*w) + strlen(key) + 1);
	if (!w)
		return err_set(err, -ENOMEM, "store %s: %s: out of memory",
			       store->desc, key);
	w->store = store;
	strcpy(w->key, key);
	if (po && store->ops->put_begin_opts)
		ret = store->ops->put_begin_opts(store->priv, key, po, &w->wpriv, err);
	else
		ret = store->ops->put_begin(store->priv, key, &w->wpriv, err);
	if (ret) {
		free(w);
		return ret;
	}
	*w_ret = w;
	return 0;
}

int store_write(struct store_writer *w, const void *buf, size_t len,
		struct err *err)
{
	int ret;

	if (!w || (!buf && len))
		return err_set(err, -EINVAL, "store_write: missing argument");
	if (w->failed)
		return err_set(err, w->failed,
			       "store %s: writing %s: an earlier write failed (%s); abort this object",
			       w->store->desc, w->key, err_str(w->failed));
	if (!len)
		return 0;
	ret = store_fault(w->store, "store.write", w->key, err);
	if (!ret)
		ret = w->store->ops->write(w->wpriv, buf, len, err);
	if (ret)
		w->failed = ret;
	return ret;
}

int store_put_commit(struct store_writer *w, struct err *err)
{
	return store_put_commit_info(w, NULL, err);
}

int store_put_commit_info(struct store_writer *w,
			  struct store_obj_info *info_ret, struct err *err)
{
	int ret;

	if (!w)
		return err_set(err, -EINVAL, "store_put_commit: missing writer");
	if (w->failed) {
		/* Publishing now would expose a truncated object. */
		ret = err_set(err, w->failed,
			      "store %s: not committing %s: a write failed (%s)",
			      w->store->desc, w->key, err_str(w->failed));
		store_put_abort(w);
		return ret;
	}
	ret = store_fault(w->store, "store.commit", w->key, err);
	if (ret) {
		store_put_abort(w);
		return ret;
	}
	if (info_ret)
		memset(info_ret, 0, sizeof(*info_ret));
	ret = w->store->ops->put_commit(w->wpriv, info_ret, err);
	free(w);
	return ret;
}

void store_put_abort(struct store_writer *w)
{
	if (!w)
		return;
	w->store->ops->put_abort(w->wpriv);
	free(w);
}

int store_put_buf(struct store *store, const char *key, const void *buf,
		  size_t len, struct err *err)
{
	return store_put_buf_opts(store, key, buf, len, NULL, err);
}

int store_put_buf_opts(struct store *store, const char *key, const void *buf,
		       size_t len, const struct store_put_opts *po,
		       struct err *err)
{
	struct store_writer *w;
	int ret;

	if (!buf && len)
		return err_set(err, -EINVAL, "store_put_buf: missing buffer");
	ret = store_put_begin_opts(store, key, po, &w, err);
	if (ret)
		return ret;
	ret = store_write(w, buf, len, err);
	if (ret) {
		store_put_abort(w);
		return ret;
	}
	return store_put_commit(w, err);
}

int store_get_range(struct store *store, const char *key, uint64_t off,
		    size_t len, void *buf, size_t *got_ret, struct err *err)
{
	int ret;

	if (!store || !got_ret || (!buf && len))
		return err_set(err, -EINVAL, "store_get_range: missing argument");
	*got_ret = 0;
	ret = store_check_key(store, key, false, err);
	if (ret)
		return ret;
	ret = store_fault(store, "store.get", key, err);
	if (ret)
		return ret;
	return store->ops->get_range(store->priv, key, off, len, buf, got_ret,
				     err);
}

int store_get_all(struct store *store, const char *key, size_t max,
		  void **buf_ret, size_t *len_ret, struct err *err)
{
	struct store_obj_info info;
	size_t cap, len = 0, got;
	char *buf = NULL, *nbuf;
	int ret;

	if (!store || !buf_ret || !len_ret)
		return err_set(err, -EINVAL, "store_get_all: missing argument");
	*buf_ret = NULL;
	*len_ret = 0;
	ret = store_check_key(store, key, false, err);
	if (ret)
		return ret;
	ret = store_fault(store, "store.get", key, err);
	if (ret)
		return ret;
	ret = store->ops->head(store->priv, key, &info, err);
	if (ret)
		return ret;
	if (max > SIZE_MAX - 1)
		max = SIZE_MAX - 1;
	if (info.size > max)
		goto too_big;

	/*
	 * Read until a short read says "end", growing if the object was
	 * replaced by a bigger one meanwhile.  One spare byte detects growth
	 * and leaves room for a NUL terminator.
	 */
	cap = (size_t)info.size + 1;
	for (;;) {
		nbuf = realloc(buf, cap);
		if (!nbuf) {
			ret = err_set(err, -ENOMEM,
				      "store %s: reading %s: out of memory",
				      store->desc, key);
			goto out_free_buf;
		}
		buf = nbuf;
		ret = store->ops->get_range(store->priv, key, len, cap - len,
					    buf + len, &got, err);
		if (ret)
			goto out_free_buf;
		len += got;
		if (len < cap)
			break;
		if (len > max)
			goto too_big;
		cap = cap > max / 2 ? max + 1 : cap * 2;
	}
	buf[len] = '\0';
	*buf_ret = buf;
	*len_ret = len;
	return 0;

too_big:
	ret = err_set(err, -EFBIG,
		      "store %s: %s is bigger than the %zu bytes expected; it is not a file snapship wrote, or it is damaged",
		      store->desc, key, max);
out_free_buf:
	free(buf);
	return ret;
}

int store_head(struct store *store, const char *key,
	       struct store_obj_info *info_ret, struct err *err)
{
	int ret;

	if (!store || !info_ret)
		return err_set(err, -EINVAL, "store_head: missing argument");
	ret = store_check_key(store, key, false, err);
	if (ret)
		return ret;
	ret = store_fault(store, "store.head", key, err);
	if (ret)
		return ret;
	return store->ops->head(store->priv, key, info_ret, err);
}

int store_list(struct store *store, const char *prefix, store_list_fn fn,
	       void *ctx, struct err *err)
{
	int ret;

	if (!store || !fn)
		return err_set(err, -EINVAL, "store_list: missing argument");
	if (!prefix)
		prefix = "";
	ret = store_check_key(store, prefix, true, err);
	if (ret)
		return ret;
	ret = store_fault(store, "store.list", prefix, err);
	if (ret)
		return ret;
	ret = store->ops->list(store->priv, prefix, fn, ctx, err);
	/* A positive return of fn just stops early; a negative one fails. */
	if (ret > 0)
		return 0;
	if (ret < 0)
		return err_set(err, ret, "store %s: listing \"%s\": stopped: %s",
			       store->desc, prefix, err_str(ret));
	return 0;
}

int store_delete(struct store *store, const char *const *keys, size_t n,
		 struct err *err)
{
	int ret;

	if (!store || (!keys && n))
		return err_set(err, -EINVAL, "store_delete: missing argument");
	for (size_t i = 0; i < n; i++) {
		ret = store_check_key(store, keys[i], false, err);
		if (ret)
			return ret;
	}
	if (!n)
		return 0;
	ret = store_fault(store, "store.delete", keys[0], err);
	if (ret)
		return ret;
	return store->ops->delete(store->priv, keys, n, err);
}

int store_abort_incomplete(struct store *store, const char *prefix,
			   unsigned *count_ret, struct err *err)
{
	int ret;

	if (count_ret)
		*count_ret = 0;
	if (!store || !prefix)
		return err_set(err, -EINVAL, "store_abort_incomplete: missing argument");
	if (!store->ops->abort_incomplete)
		return 0;
	ret = store_fault(store, "store.abort_incomplete", prefix, err);
	if (ret)
		return ret;
	return store->ops->abort_incomplete(store->priv, prefix, count_ret, err);
}

int store_remove_empty_dirs(struct store *store, const char *prefix,
			    store_dir_fn dir_ok, void *ctx, unsigned *count_ret,
			    struct err *err)
{
	int ret;

	if (count_ret)
		*count_ret = 0;
	if (!store || !prefix || !dir_ok)
		return err_set(err, -EINVAL, "store_remove_empty_dirs: missing argument");
	if (!store->ops->remove_empty_dirs)
		return 0;
	ret = store_fault(store, "store.remove_empty_dirs", prefix, err);
	if (ret)
		return ret;
	return store->ops->remove_empty_dirs(store->priv, prefix, dir_ok, ctx,
					     count_ret, err);
}

int store_lock_config(struct store *store, struct store_lock_info *info_ret,
		      struct err *err)
{
	if (!store || !info_ret)
		return err_set(err, -EINVAL, "store_lock_config: missing argument");
	memset(info_ret, 0, sizeof(*info_ret));
	if (!store->ops->lock_config)
		return err_set(err, -EOPNOTSUPP, "store %s: no Object Lock (an S3 feature)",
			       store->desc);
	return store->ops->lock_config(store->priv, info_ret, err);
}

int store_retain(struct store *store, const char *key, int64_t until,
		 struct err *err)
{
	int ret;

	if (!store)
		return err_set(err, -EINVAL, "store_retain: missing store");
	ret = store_check_key(store, key, false, err);
	if (ret)
		return ret;
	if (!store->ops->retain)
		return err_set(err, -EOPNOTSUPP, "store %s: no Object Lock (an S3 feature)",
			       store->desc);
	return store->ops->retain(store->priv, key, until, err);
}

int store_list_hidden(struct store *store, const char *prefix,
		      store_hidden_fn fn, void *ctx, struct err *err)
{
	int ret;

	if (!store || !fn)
		return err_set(err, -EINVAL, "store_list_hidden: missing argument");
	ret = store_check_key(store, prefix, true, err);
	if (ret)
		return ret;
	if (!store->ops->list_hidden)
		return err_set(err, -EOPNOTSUPP, "store %s: no object versions",
			       store->desc);
	return store->ops->list_hidden(store->priv, prefix, fn, ctx, err);
}
