// SPDX-License-Identifier: MIT
#include "agent/catalog.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "uploader/store.h"

#define MANIFEST_MAX (1u << 20)

int catalog_new_id(int64_t t, char out[BACKUP_ID_LEN + 1], struct err *err)
{
	time_t tt = (time_t)t;
	struct tm tm;
	unsigned char rnd[3];
	char hex[7];
	int ret;

	if (!gmtime_r(&tt, &tm))
		return err_set(err, -EINVAL, "bad time");
	ret = util_random(rnd, sizeof(rnd));
	if (ret)
		return err_set(err, ret, "getrandom failed: %s", err_str(ret));
	util_hex(rnd, sizeof(rnd), hex);
	if (tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1970)
		return err_set(err, -EINVAL, "clock is out of range");
	strftime(out, BACKUP_ID_LEN + 1, "%Y%m%dT%H%M%SZ-", &tm);
	memcpy(out + 17, hex, 7);
	return 0;
}

int64_t catalog_id_time(const char *id)
{
	struct tm tm = { 0 };
	const char *end;

	if (!id || strlen(id) != BACKUP_ID_LEN || id[16] != '-')
		return -1;
	end = strptime(id, "%Y%m%dT%H%M%SZ", &tm);
	if (end != id + 16)
		return -1;
	for (int i = 17; i < BACKUP_ID_LEN; i++)
		if (!strchr("0123456789abcdef", id[i]))
			return -1;
	return (int64_t)timegm(&tm);
}

char *catalog_key(const char *prefix, const char *host, const char *partition,
		  const char *id, const char *name)
{
	char *s;

	if (asprintf(&s, "%s%s/%s/%s/%s", prefix ? prefix : "", host, partition,
		     id, name) < 0)
		return NULL;
	return s;
}

static json_t *jstr(const char *s)
{
	return s ? json_string(s) : json_null();
}

int manifest_to_json(const struct manifest *m, char **json_ret, struct err *err)
{
	json_t *root, *hooks = json_array();
	char *s;

	for (size_t i = 0; m->hooks && m->hooks[i]; i++)
		json_array_append_new(hooks, json_string(m->hooks[i]));
	root = json_pack(
		"{s:i, s:s?, s:s, s:s?, s:s?, s:o,"
		" s:{s:s, s:I, s:I},"
		" s:I, s:I,"
		" s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
		" s:{s:s, s:i, s:I, s:I},"
		" s:{s:s, s:I, s:s, s:s}, s:{s:s, s:I, s:s, s:s},"
		" s:o, s:{s:s}}",
		"format_version", m->format_version,
		"tool_version", m->tool_version,
		"backup_id", m->backup_id,
		"host", m->host,
		"partition", m->partition,
		"source", jstr(m->source),
		"snapshot", "uuid", m->snap_uuid, "generation",
		(json_int_t)m->snap_generation, "time_ns", (json_int_t)m->snap_time_ns,
		"started_ns", (json_int_t)m->started_ns,
		"finished_ns", (json_int_t)m->finished_ns,
		"counts", "entries", (json_int_t)m->entries, "files",
		(json_int_t)m->files, "dirs", (json_int_t)m->dirs, "others",
		(json_int_t)m->others, "logical_bytes", (json_int_t)m->logical_bytes,
		"tar_bytes", (json_int_t)m->tar_bytes, "stored_bytes",
		(json_int_t)m->stored_bytes,
		"compression", "algo", m->compression ? m->compression : "zstd",
		"level", m->level, "frame_size", (json_int_t)m->frame_size,
		"frames", (json_int_t)m->frames,
		"data", "key", m->data_key, "size", (json_int_t)m->data_size,
		"sha256", m->data_sha256, "etag", m->data_etag,
		"index", "key", m->index_key, "size", (json_int_t)m->index_size,
		"sha256", m->index_sha256, "etag", m->index_etag,
		"hooks", hooks,
		"encryption", "mode", m->encryption ? m->encryption : "none");
	if (!root)
		return err_set(err, -EINVAL, "cannot build manifest JSON (a name is not valid UTF-8?)");
	s = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	if (!s)
		return err_set(err, -ENOMEM, "out of memory");
	*json_ret = s;
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int manifest_from_json(const char *json, size_t len, struct manifest *m,
		       struct err *err)
{
	json_error_t je;
	json_t *root = json_loadb(json, len, 0, &je), *hooks = NULL;
	const char *id = NULL, *tv = NULL, *host = NULL, *part = NULL, *src = NULL;
	const char *uuid = "", *algo = NULL, *dkey = NULL, *dsha = NULL;
	const char *ikey = NULL, *isha = NULL, *enc = NULL;
	const char *detag = "", *ietag = "";
	json_int_t gen = 0, st = 0, sn = 0, fn = 0, ent = 0, files = 0, dirs = 0,
		   others = 0, lb = 0, tb = 0, sb = 0, fs = 0, fr = 0, ds = 0, is = 0;
	int fv = 0, level = 0;

	memset(m, 0, sizeof(*m));
	if (!root)
		return err_set(err, -EBADMSG, "manifest is not valid JSON (line %d: %s)",
			       je.line, je.text);
	if (json_unpack_ex(root, &je, 0,
		"{s:i, s?s, s:s, s:s, s:s, s?s,"
		" s:{s:s, s:I, s:I},"
		" s:I, s:I,"
		" s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
		" s:{s:s, s:i, s:I, s:I},"
		" s:{s:s, s:I, s:s, s?s}, s:{s:s, s:I, s:s, s?s},"
		" s?o, s?{s:s}}",
		"format_version", &fv, "tool_version", &tv, "backup_id", &id,
		"host", &host, "partition", &part, "source", &src,
		"snapshot", "uuid", &uuid, "generation", &gen, "time_ns", &sn,
		"started_ns", &st, "finished_ns", &fn,
		"counts", "entries", &ent, "files", &files, "dirs", &dirs,
		"others", &others, "logical_bytes", &lb, "tar_bytes", &tb,
		"stored_bytes", &sb,
		"compression", "algo", &algo, "level", &level, "frame_size", &fs,
		"frames", &fr,
		"data", "key", &dkey, "size", &ds, "sha256", &dsha, "etag", &detag,
		"index", "key", &ikey, "size", &is, "sha256", &isha, "etag", &ietag,
		"hooks", &hooks, "encryption", "mode", &enc)) {
		json_decref(root);
		return err_set(err, -EBADMSG, "manifest is malformed: %s", je.text);
	}
	if (fv != FORMAT_VERSION) {
		json_decref(root);
		return err_set(err, -EPROTONOSUPPORT,
			       "manifest format version %d is not supported by this snapship (knows %d); upgrade snapship",
			       fv, FORMAT_VERSION);
	}
	if (strlen(id) != BACKUP_ID_LEN || strlen(dsha) != 64 || strlen(isha) != 64 ||
	    strlen(uuid) > 36 || strlen(detag) >= sizeof(m->data_etag) ||
	    strlen(ietag) >= sizeof(m->index_etag)) {
		json_decref(root);
		return err_set(err, -EBADMSG, "manifest has a malformed id or checksum");
	}
	m->format_version = fv;
	strcpy(m->backup_id, id);
	strcpy(m->snap_uuid, uuid);
	strcpy(m->data_sha256, dsha);
	strcpy(m->index_sha256, isha);
	strcpy(m->data_etag, detag);
	strcpy(m->index_etag, ietag);
	m->self_size = len;
	util_sha256_hex(json, len, m->self_sha256);
	m->tool_version = dup_or_null(tv);
	m->host = dup_or_null(host);
	m->partition = dup_or_null(part);
	m->source = dup_or_null(src);
	m->compression = dup_or_null(algo);
	m->data_key = dup_or_null(dkey);
	m->index_key = dup_or_null(ikey);
	m->encryption = dup_or_null(enc ? enc : "none");
	m->snap_generation = (uint64_t)gen;
	m->snap_time_ns = sn;
	m->started_ns = st;
	m->finished_ns = fn;
	m->entries = (uint64_t)ent;
	m->files = (uint64_t)files;
	m->dirs = (uint64_t)dirs;
	m->others = (uint64_t)others;
	m->logical_bytes = (uint64_t)lb;
	m->tar_bytes = (uint64_t)tb;
	m->stored_bytes = (uint64_t)sb;
	m->level = level;
	m->frame_size = (uint32_t)fs;
	m->frames = (uint32_t)fr;
	m->data_size = (uint64_t)ds;
	m->index_size = (uint64_t)is;
	if (hooks && json_is_array(hooks) && json_array_size(hooks)) {
		size_t n = json_array_size(hooks);

		m->hooks = calloc(n + 1, sizeof(char *));
		for (size_t i = 0; m->hooks && i < n; i++)
			m->hooks[i] = dup_or_null(json_string_value(json_array_get(hooks, i)));
	}
	json_decref(root);
	if (!m->host || !m->partition || !m->data_key || !m->index_key ||
	    !m->compression || strcmp(m->compression, "zstd")) {
		manifest_clear(m);
		return err_set(err, -EBADMSG, "manifest is incomplete or names an unknown compression");
	}
	return 0;
}

void manifest_clear(struct manifest *m)
{
	if (!m)
		return;
	free(m->tool_version);
	free(m->host);
	free(m->partition);
	free(m->source);
	free(m->compression);
	free(m->data_key);
	free(m->index_key);
	free(m->encryption);
	for (size_t i = 0; m->hooks && m->hooks[i]; i++)
		free(m->hooks[i]);
	free(m->hooks);
	memset(m, 0, sizeof(*m));
}

static int load_key(struct store *store, const char *key, struct manifest *m,
		    struct err *err)
{
	void *buf = NULL;
	size_t len = 0;
	int ret;

	ret = store_get_all(store, key, MANIFEST_MAX, &buf, &len, err);
	if (ret)
		return ret;
	ret = manifest_from_json(buf, len, m, err);
	free(buf);
	if (ret)
		return err_wrap(err, "%s", key);
	return 0;
}

int catalog_load(struct store *store, const char *prefix, const char *host,
		 const char *partition, const char *id, struct manifest *m,
		 struct err *err)
{
	char *key = catalog_key(prefix, host, partition, id, "manifest.json");
	int ret;

	if (!key)
		return err_set(err, -ENOMEM, "out of memory");
	ret = load_key(store, key, m, err);
	free(key);
	return ret;
}

struct list_ctx {
	struct store *store;
	struct catalog_list *list;
	size_t cap;
	const char *partition;
	struct err *err;
	int error;
};

static int list_cb(void *ctx, const char *key, const struct store_obj_info *info)
{
	struct list_ctx *lc = ctx;
	size_t klen = strlen(key), mlen = strlen("/manifest.json");
	struct manifest m;
	struct err e = { 0 };

	(void)info;
	if (klen < mlen || strcmp(key + klen - mlen, "/manifest.json"))
		return 0;
	if (load_key(lc->store, key, &m, &e)) {
		if (e.code == -ENOENT)
			return 0;     /* deleted while listing */
		log_warn("skipping unreadable manifest %s", e.msg);
		lc->list->broken++;
		return 0;
	}
	if (lc->partition && strcmp(m.partition, lc->partition)) {
		manifest_clear(&m);
		return 0;
	}
	if (lc->list->n == lc->cap) {
		size_t cap = lc->cap ? lc->cap * 2 : 16;
		struct manifest *n = realloc(lc->list->m, cap * sizeof(*n));

		if (!n) {
			manifest_clear(&m);
			lc->error = err_set(lc->err, -ENOMEM, "out of memory");
			return 1;
		}
		lc->list->m = n;
		lc->cap = cap;
	}
	lc->list->m[lc->list->n++] = m;
	return 0;
}

static int cmp_manifest(const void *a, const void *b)
{
	const struct manifest *x = a, *y = b;
	int c = strcmp(x->partition, y->partition);

	return c ? c : strcmp(x->backup_id, y->backup_id);
}

int catalog_list(struct store *store, const char *prefix, const char *host,
		 const char *partition, struct catalog_list *list_ret,
		 struct err *err)
{
	struct list_ctx lc = { .store = store, .list = list_ret,
			       .partition = partition, .err = err };
	char *p;
	int ret;

	memset(list_ret, 0, sizeof(*list_ret));
	if (asprintf(&p, "%s%s/%s%s", prefix ? prefix : "", host,
		     partition ? partition : "", partition ? "/" : "") < 0)
		return err_set(err, -ENOMEM, "out of memory");
	ret = store_list(store, p, list_cb, &lc, err);
	free(p);
	if (!ret)
		ret = lc.error;
	if (ret) {
		catalog_list_free(list_ret);
		return ret;
	}
	if (list_ret->n)
		qsort(list_ret->m, list_ret->n, sizeof(*list_ret->m), cmp_manifest);
	return 0;
}

void catalog_list_free(struct catalog_list *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->n; i++)
		manifest_clear(&list->m[i]);
	free(list->m);
	memset(list, 0, sizeof(*list));
}

const struct manifest *catalog_find(const struct catalog_list *list,
				    const char *partition, const char *id)
{
	const struct manifest *best = NULL;

	for (size_t i = 0; i < list->n; i++) {
		const struct manifest *m = &list->m[i];

		if (partition && strcmp(m->partition, partition))
			continue;
		if (id && !strcmp(m->backup_id, id))
			return m;
		if (!id && (!best || strcmp(m->backup_id, best->backup_id) > 0))
			best = m;
	}
	return best;
}

/*
 * Orphans are only what snapship itself writes before the commit: data and
 * index objects, at exactly <prefix><host>/<partition>/<backup-id>/<name>
 * with a well-formed backup id.  Temp files of unfinished puts are the
 * store's own (store_abort_incomplete); nothing else is ever deleted.
 */
struct orphan_ctx {
	char **keys;
	size_t n, cap;
	size_t base_len;         /* of "<prefix><host>/" */
	char dir[1024];          /* current backup directory ".../<id>/" */
	size_t dir_start;        /* first key of dir in keys */
	bool dir_committed;
	int error;
};

/* "YYYYMMDDTHHMMSSZ-xxxxxx" (lowercase hex), exactly, and a real time. */
static bool orphan_id_ok(const char *id, size_t len)
{
	char buf[BACKUP_ID_LEN + 1];

	if (len != BACKUP_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		bool ok;

		if (i == 8)
			ok = c == 'T';
		else if (i == 15)
			ok = c == 'Z';
		else if (i == 16)
			ok = c == '-';
		else if (i > 16)
			ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
		else
			ok = c >= '0' && c <= '9';
		if (!ok)
			return false;
	}
	memcpy(buf, id, len);
	buf[len] = '\0';
	return catalog_id_time(buf) >= 0;
}

static void orphan_close_dir(struct orphan_ctx *oc)
{
	/* keep only the keys of uncommitted backup directories */
	if (oc->dir_committed) {
		for (size_t i = oc->dir_start; i < oc->n; i++)
			free(oc->keys[i]);
		oc->n = oc->dir_start;
	}
	oc->dir_start = oc->n;
	oc->dir_committed = false;
}

static int orphan_cb(void *ctx, const char *key, const struct store_obj_info *info)
{
	struct orphan_ctx *oc = ctx;
	const char *part = key + oc->base_len, *id, *name;
	size_t dlen;

	(void)info;
	if (strlen(key) <= oc->base_len)
		return 0;
	id = strchr(part, '/');
	if (!id || id == part)
		return 0;
	id++;
	name = strchr(id, '/');
	if (!name || !orphan_id_ok(id, (size_t)(name - id)) ||
	    strchr(name + 1, '/'))
		return 0;
	name++;
	dlen = (size_t)(name - key);
	if (dlen >= sizeof(oc->dir))
		return 0;
	if (strncmp(oc->dir, key, dlen) || oc->dir[dlen] != '\0') {
		orphan_close_dir(oc);
		memcpy(oc->dir, key, dlen);
		oc->dir[dlen] = '\0';
	}
	if (!strcmp(name, "manifest.json"))
		oc->dir_committed = true;
	if (strcmp(name, "data.tar.zst") && strcmp(name, "index.jsonl.zst"))
		return 0;
	if (oc->n == oc->cap) {
		size_t cap = oc->cap ? oc->cap * 2 : 16;
		char **n = realloc(oc->keys, cap * sizeof(*n));

		if (!n) {
			oc->error = -ENOMEM;
			return 1;
		}
		oc->keys = n;
		oc->cap = cap;
	}
	oc->keys[oc->n] = strdup(key);
	if (!oc->keys[oc->n]) {
		oc->error = -ENOMEM;
		return 1;
	}
	oc->n++;
	return 0;
}

int catalog_remove_orphans(struct store *store, const char *prefix,
			   const char *host, size_t *removed_ret, struct err *err)
{
	struct orphan_ctx oc = { 0 };
	char *p;
	int ret;

	*removed_ret = 0;
	if (asprintf(&p, "%s%s/", prefix ? prefix : "", host) < 0)
		return err_set(err, -ENOMEM, "out of memory");
	oc.base_len = strlen(p);
	ret = store_list(store, p, orphan_cb, &oc, err);
	free(p);
	if (!ret && oc.error)
		ret = err_set(err, oc.error, "out of memory");
	if (!ret) {
		orphan_close_dir(&oc);
		if (oc.n)
			ret = store_delete(store, (const char *const *)oc.keys, oc.n, err);
		if (!ret)
			*removed_ret = oc.n;
	}
	for (size_t i = 0; i < oc.n; i++)
		free(oc.keys[i]);
	free(oc.keys);
	return ret;
}
