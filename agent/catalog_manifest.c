// SPDX-License-Identifier: MIT
/*
 * Manifests as JSON (agent/catalog.h): manifest_to_json() writes one,
 * manifest_from_json() reads and checks one — every name, key, range and
 * reference a manifest claims is checked here before a caller sees it —
 * and manifest_clear() frees what it filled.  The struct manifest and its
 * strings belong to the caller.  Keys, ids, listing and the store walks
 * are in catalog.c.
 */
#include "agent/catalog.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "stream/seal.h"

/* Version 2's fields into root (built by manifest_to_json): -1 when out of
 * memory. */
static int manifest_v2_to_json(json_t *root, const struct manifest *m)
{
	json_t *refs = json_array(), *counts = json_object_get(root, "counts");
	json_t *snap = json_object_get(root, "snapshot");
	int bad = !refs || !counts || !snap;

	for (size_t i = 0; !bad && i < m->nrefs; i++) {
		const struct manifest_ref *r = &m->refs[i];

		bad |= json_array_append_new(refs, json_pack("{s:s, s:s, s:I, s:s, s:s}",
			"id", r->id, "key", r->key, "size", (json_int_t)r->size,
			"sha256", r->sha256, "etag", r->etag));
	}
	if (bad) {
		json_decref(refs);
		return -1;
	}
	bad |= json_object_set_new(root, "references", refs);
	bad |= json_object_set_new(root, "parent", m->parent[0] ? json_string(m->parent) : json_null());
	bad |= json_object_set_new(root, "chain", json_integer((json_int_t)m->chain));
	bad |= json_object_set_new(root, "full_id", json_string(m->full_id));
	bad |= json_object_set_new(snap, "source_uuid", json_string(m->enc_fp[0] ? "" : m->source_uuid));
	bad |= json_object_set_new(counts, "new_bytes", json_integer((json_int_t)m->new_bytes));
	bad |= json_object_set_new(counts, "referenced_bytes", json_integer((json_int_t)m->referenced_bytes));
	bad |= json_object_set_new(counts, "unchanged", json_integer((json_int_t)m->n_unchanged));
	bad |= json_object_set_new(counts, "changed", json_integer((json_int_t)m->n_changed));
	bad |= json_object_set_new(counts, "new", json_integer((json_int_t)m->n_new));
	bad |= json_object_set_new(counts, "deleted", json_integer((json_int_t)m->n_deleted));
	bad |= json_object_set_new(counts, "meta_only", json_integer((json_int_t)m->n_meta_only));
	bad |= json_object_set_new(counts, "renamed", json_integer((json_int_t)m->n_renamed));
	return bad ? -1 : 0;
}

/* An encrypted backup's encryption{fingerprint, salt, sealed}. */
static int enc_to_json(json_t *root, const struct manifest *m)
{
	json_t *e = json_object_get(root, "encryption");
	int bad = !e;

	bad |= json_object_set_new(e, "fingerprint", json_string(m->enc_fp));
	if (m->enc_salt[0])
		bad |= json_object_set_new(e, "salt", json_string(m->enc_salt));
	bad |= json_object_set_new(e, "sealed", json_string(m->enc_sealed ? m->enc_sealed : ""));
	return bad ? -1 : 0;
}

static bool hex_len(const char *s, size_t n)
{
	return s && strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

/* encryption{mode, fingerprint, salt, sealed}: "none", or SEAL_ALG with a
 * fingerprint, a salt or none, and the sealed fields (base64, < 1 MiB). */
static int enc_from_json(json_t *root, struct manifest *m, struct err *err)
{
	json_t *e = json_object_get(root, "encryption");
	const char *fp, *salt, *sealed;

	if (!strcmp(m->encryption, "none"))
		return 0;
	if (strcmp(m->encryption, SEAL_ALG))
		return err_set(err, -EPROTONOSUPPORT,
			       "manifest says encryption \"%s\"; this snapship knows none and " SEAL_ALG ": upgrade snapship",
			       UTIL_ESC(m->encryption));
	fp = json_string_value(json_object_get(e, "fingerprint"));
	salt = json_string_value(json_object_get(e, "salt"));
	sealed = json_string_value(json_object_get(e, "sealed"));
	if (!hex_len(fp, SEAL_FP_HEX) || (json_object_get(e, "salt") && !hex_len(salt, 32)))
		return err_set(err, -EBADMSG, "manifest field encryption has a malformed fingerprint or salt");
	if (!sealed || strlen(sealed) > (1u << 20) ||
	    strspn(sealed, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") !=
	    strlen(sealed))
		return err_set(err, -EBADMSG, "manifest field encryption.sealed is missing or not base64");
	strcpy(m->enc_fp, fp);
	strcpy(m->enc_salt, salt ? salt : "");
	m->enc_sealed = strdup(sealed);
	return m->enc_sealed ? 0 : err_set(err, -ENOMEM, "out of memory");
}

int manifest_to_json(const struct manifest *m, char **json_ret, struct err *err)
{
	json_t *root, *hooks = json_array();
	char *s;

	/* encrypted: the sealed fields are in encryption.sealed only */
	for (size_t i = 0; !m->enc_fp[0] && m->hooks && m->hooks[i]; i++)
		json_array_append_new(hooks, json_string(m->hooks[i]));
	root = json_pack(
		"{s:i, s:s*, s:s, s:s?, s:s?, s:s*,"
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
		"source", m->enc_fp[0] ? NULL : m->source,
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
	if (m->enc_fp[0] && enc_to_json(root, m)) {
		json_decref(root);
		return err_set(err, -ENOMEM, "out of memory");
	}
	if (m->format_version >= 2 && manifest_v2_to_json(root, m)) {
		json_decref(root);
		return err_set(err, -ENOMEM, "out of memory");
	}
	/* a version 1 full records its source subvolume too (readers of
	 * version 1 ignore it): the next incremental's planner compares
	 * extent fingerprints only within one subvolume */
	if ((m->format_version < 2 && m->source_uuid[0] && !m->enc_fp[0] &&
	     json_object_set_new(json_object_get(root, "snapshot"), "source_uuid",
				 json_string(m->source_uuid))) ||
	    (m->fstype[0] &&
	     json_object_set_new(json_object_get(root, "snapshot"), "fstype",
				 json_string(m->fstype)))) {
		json_decref(root);
		return err_set(err, -ENOMEM, "out of memory");
	}
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

/*
 * A name of the manifest used in keys and paths: snapship's own grammar,
 * or the manifest is refused (it was not written by snapship).
 */
static int check_name(const char *field, const char *v, struct err *err)
{
	if (util_name_ok(v))
		return 0;
	return err_set(err, -EBADMSG,
		       "manifest field %s \"%s\" is not a name snapship writes (1 to %d letters, digits, '-', '_' or '.', not starting with '.')",
		       field, UTIL_ESC(v), UTIL_NAME_MAX);
}

/*
 * key must be "<P><host>/<partition>/<id>/<name>" where P is empty or a
 * clean key prefix ending in '/' (the primary's prefix: the same bytes are
 * in every region); *plen_ret is strlen(P).  A manifest cannot name
 * another backup's objects.
 */
static bool key_names_backup(const struct manifest *m, const char *key,
			     const char *name, size_t *plen_ret)
{
	char tail[3 * UTIL_NAME_MAX + 64];
	size_t klen = strlen(key), tlen, plen;
	const char *c;

	snprintf(tail, sizeof(tail), "%s/%s/%s/%s", m->host, m->partition,
		 m->backup_id, name);
	tlen = strlen(tail);
	if (klen < tlen || klen > MANIFEST_KEY_MAX || strcmp(key + klen - tlen, tail))
		return false;
	plen = klen - tlen;
	*plen_ret = plen;
	if (!plen)
		return true;
	if (key[0] == '/' || key[plen - 1] != '/')
		return false;
	for (c = key; c < key + plen;) {
		const char *slash = memchr(c, '/', (size_t)(key + plen - c));
		size_t n = (size_t)(slash - c);

		if (!n || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f)
				return false;
		c = slash + 1;
	}
	return true;
}

/* The fields the rest of snapship builds keys, paths and messages from. */
static int manifest_validate(const struct manifest *m, struct err *err)
{
	size_t dp = 0, ip = 0;
	int ret;

	ret = check_name("host", m->host, err);
	if (!ret)
		ret = check_name("partition", m->partition, err);
	if (ret)
		return ret;
	if (catalog_id_time(m->backup_id) < 0)
		return err_set(err, -EBADMSG,
			       "manifest field backup_id \"%s\" is not a backup id (YYYYMMDDTHHMMSSZ-xxxxxx)",
			       UTIL_ESC(m->backup_id));
	if (!key_names_backup(m, m->data_key, "data.tar.zst", &dp))
		return err_set(err, -EBADMSG,
			       "manifest field data.key \"%s\" is not this backup's data object (expected [PREFIX]%s/%s/%s/data.tar.zst)",
			       UTIL_ESC(m->data_key), m->host, m->partition, m->backup_id);
	if (!key_names_backup(m, m->index_key, "index.jsonl.zst", &ip) || ip != dp ||
	    strncmp(m->data_key, m->index_key, dp))
		return err_set(err, -EBADMSG,
			       "manifest field index.key \"%s\" is not this backup's index object (expected %.*s%s/%s/%s/index.jsonl.zst)",
			       UTIL_ESC(m->index_key), (int)dp, m->data_key, m->host,
			       m->partition, m->backup_id);
	return 0;
}

/* Counts, sizes and times are 0 .. INT64_MAX (jansson refuses bigger
 * integers; a negative one would become a huge unsigned count). */
static int check_nonneg(const char *field, json_int_t v, struct err *err)
{
	if (v >= 0)
		return 0;
	return err_set(err, -EBADMSG, "manifest field %s is %lld; it cannot be negative",
		       field, (long long)v);
}

static int check_ranges(json_int_t const v[], const char *const names[], size_t n,
			struct err *err)
{
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++)
		ret = check_nonneg(names[i], v[i], err);
	return ret;
}

static bool hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* The ETag as a store gives it: printable ASCII (quotes, hex, "-N"). */
static bool etag_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n >= max)
		return false;
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e)
			return false;
	return true;
}

/* A manifest's fields as jansson unpacked them, before any check. */
struct manifest_raw {
	json_t *hooks;
	const char *id, *tv, *host, *part, *src, *uuid, *algo, *enc;
	const char *dkey, *dsha, *detag, *ikey, *isha, *ietag;
	json_int_t fv, level, gen, sn, st, fn, ent, files, dirs, others, lb, tb,
		   sb, fs, fr, ds, is;
};

static int manifest_unpack(json_t *root, struct manifest_raw *r, struct err *err)
{
	json_error_t je;

	memset(r, 0, sizeof(*r));
	r->uuid = r->detag = r->ietag = "";
	if (json_unpack_ex(root, &je, 0,
		"{s:I, s?s, s:s, s:s, s:s, s?s,"
		" s:{s:s, s:I, s:I},"
		" s:I, s:I,"
		" s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
		" s:{s:s, s:I, s:I, s:I},"
		" s:{s:s, s:I, s:s, s?s}, s:{s:s, s:I, s:s, s?s},"
		" s?o, s?{s:s}}",
		"format_version", &r->fv, "tool_version", &r->tv, "backup_id", &r->id,
		"host", &r->host, "partition", &r->part, "source", &r->src,
		"snapshot", "uuid", &r->uuid, "generation", &r->gen, "time_ns", &r->sn,
		"started_ns", &r->st, "finished_ns", &r->fn,
		"counts", "entries", &r->ent, "files", &r->files, "dirs", &r->dirs,
		"others", &r->others, "logical_bytes", &r->lb, "tar_bytes", &r->tb,
		"stored_bytes", &r->sb,
		"compression", "algo", &r->algo, "level", &r->level,
		"frame_size", &r->fs, "frames", &r->fr,
		"data", "key", &r->dkey, "size", &r->ds, "sha256", &r->dsha,
		"etag", &r->detag,
		"index", "key", &r->ikey, "size", &r->is, "sha256", &r->isha,
		"etag", &r->ietag,
		"hooks", &r->hooks, "encryption", "mode", &r->enc))
		return err_set(err, -EBADMSG, "manifest is malformed: %s", UTIL_ESC(je.text));
	return 0;
}

/* What does not need the manifest struct: versions, formats, ranges. */
static int manifest_check_raw(const struct manifest_raw *r, struct err *err)
{
	const json_int_t v[] = { r->gen, r->sn, r->st, r->fn, r->ent, r->files,
				 r->dirs, r->others, r->lb, r->tb, r->sb, r->fs,
				 r->fr, r->ds, r->is };
	static const char *const names[] = {
		"snapshot.generation", "snapshot.time_ns", "started_ns",
		"finished_ns", "counts.entries", "counts.files", "counts.dirs",
		"counts.others", "counts.logical_bytes", "counts.tar_bytes",
		"counts.stored_bytes", "compression.frame_size",
		"compression.frames", "data.size", "index.size",
	};
	int ret;

	if (r->fv < 1 || r->fv > FORMAT_VERSION_MAX)
		return err_set(err, -EPROTONOSUPPORT,
			       "manifest format version %lld is not supported by this snapship (knows 1 to %d); upgrade snapship",
			       (long long)r->fv, FORMAT_VERSION_MAX);
	if (strlen(r->id) != BACKUP_ID_LEN || !hex64(r->dsha) || !hex64(r->isha))
		return err_set(err, -EBADMSG, "manifest has a malformed id or checksum");
	if (strlen(r->uuid) > 36 ||
	    strspn(r->uuid, "0123456789abcdefABCDEF-") != strlen(r->uuid) ||
	    !etag_ok(r->detag, sizeof(((struct manifest *)0)->data_etag)) ||
	    !etag_ok(r->ietag, sizeof(((struct manifest *)0)->index_etag)))
		return err_set(err, -EBADMSG, "manifest has a malformed snapshot uuid or ETag");
	ret = check_ranges(v, names, sizeof(v) / sizeof(v[0]), err);
	if (ret)
		return ret;
	if (r->fs < 1 || r->fs > MANIFEST_FRAME_SIZE_MAX || r->fr > UINT32_MAX)
		return err_set(err, -EBADMSG,
			       "manifest says frames of %lld bytes, %lld of them; snapship writes 1 byte to %u MiB per frame and at most %lu frames",
			       (long long)r->fs, (long long)r->fr, MANIFEST_FRAME_SIZE_MAX >> 20,
			       (unsigned long)UINT32_MAX);
	if (r->fn < r->st)
		return err_set(err, -EBADMSG, "manifest says the backup finished (%lld) before it started (%lld)",
			       (long long)r->fn, (long long)r->st);
	if (r->level < MANIFEST_LEVEL_MIN || r->level > MANIFEST_LEVEL_MAX)
		return err_set(err, -EBADMSG, "manifest says compression level %lld; zstd's are %d to %d",
			       (long long)r->level, MANIFEST_LEVEL_MIN, MANIFEST_LEVEL_MAX);
	if (r->hooks && !json_is_array(r->hooks))
		return err_set(err, -EBADMSG, "manifest field hooks is not a list of commands");
	for (size_t i = 0; r->hooks && i < json_array_size(r->hooks); i++)
		if (!json_is_string(json_array_get(r->hooks, i)))
			return err_set(err, -EBADMSG, "manifest field hooks[%zu] is not a string", i);
	return 0;
}

/* m from checked raw fields; strings copied (-ENOMEM leaves m to clear). */
static int manifest_fill(struct manifest *m, const struct manifest_raw *r,
			 struct err *err)
{
	size_t n = r->hooks ? json_array_size(r->hooks) : 0;

	m->format_version = (int)r->fv;
	strcpy(m->backup_id, r->id);
	strcpy(m->snap_uuid, r->uuid);
	strcpy(m->data_sha256, r->dsha);
	strcpy(m->index_sha256, r->isha);
	strcpy(m->data_etag, r->detag);
	strcpy(m->index_etag, r->ietag);
	m->tool_version = dup_or_null(r->tv);
	m->host = dup_or_null(r->host);
	m->partition = dup_or_null(r->part);
	m->source = dup_or_null(r->src);
	m->compression = dup_or_null(r->algo);
	m->data_key = dup_or_null(r->dkey);
	m->index_key = dup_or_null(r->ikey);
	m->encryption = dup_or_null(r->enc ? r->enc : "none");
	m->snap_generation = (uint64_t)r->gen;
	m->snap_time_ns = r->sn;
	m->started_ns = r->st;
	m->finished_ns = r->fn;
	m->entries = (uint64_t)r->ent;
	m->files = (uint64_t)r->files;
	m->dirs = (uint64_t)r->dirs;
	m->others = (uint64_t)r->others;
	m->logical_bytes = (uint64_t)r->lb;
	m->tar_bytes = (uint64_t)r->tb;
	m->stored_bytes = (uint64_t)r->sb;
	m->level = (int)r->level;
	m->frame_size = (uint32_t)r->fs;
	m->frames = (uint32_t)r->fr;
	m->data_size = (uint64_t)r->ds;
	m->index_size = (uint64_t)r->is;
	if ((r->tv && !m->tool_version) || (r->src && !m->source) || !m->host ||
	    !m->partition || !m->compression || !m->data_key || !m->index_key ||
	    !m->encryption)
		return err_set(err, -ENOMEM, "out of memory");
	if (n) {
		m->hooks = calloc(n + 1, sizeof(char *));
		if (!m->hooks)
			return err_set(err, -ENOMEM, "out of memory");
		for (size_t i = 0; i < n; i++) {
			m->hooks[i] = strdup(json_string_value(json_array_get(r->hooks, i)));
			if (!m->hooks[i])
				return err_set(err, -ENOMEM, "out of memory");
		}
	}
	return 0;
}

/* A backup id that an id of this manifest may name: an id, not this
 * backup's, not newer (by the id's time). */
static int check_older_id(const struct manifest *m, const char *field,
			  const char *id, struct err *err)
{
	int64_t t = catalog_id_time(id);

	if (t < 0)
		return err_set(err, -EBADMSG,
			       "manifest field %s \"%s\" is not a backup id (YYYYMMDDTHHMMSSZ-xxxxxx)",
			       field, UTIL_ESC(id));
	if (!strcmp(id, m->backup_id) || t > catalog_id_time(m->backup_id))
		return err_set(err, -EBADMSG,
			       "manifest field %s names backup %s, which is not older than backup %s itself",
			       field, id, m->backup_id);
	return 0;
}

/* One reference: {id, key, size, sha256, etag}; prefix is this manifest's
 * (the data key's) and the key must be the data object of that id. */
static int ref_from_json(const struct manifest *m, json_t *o, size_t i,
			 const char *prefix, size_t plen, struct manifest_ref *r,
			 struct err *err)
{
	const char *id, *key, *sha, *etag = "";
	json_int_t size;
	json_error_t je;
	char *want;
	int ret;

	if (json_unpack_ex(o, &je, 0, "{s:s, s:s, s:I, s:s, s?s}", "id", &id,
			   "key", &key, "size", &size, "sha256", &sha, "etag", &etag))
		return err_set(err, -EBADMSG, "manifest field references[%zu] is malformed: %s",
			       i, UTIL_ESC(je.text));
	ret = check_older_id(m, "references[].id", id, err);
	if (ret)
		return ret;
	if (size < 0 || !hex64(sha) || !etag_ok(etag, sizeof(r->etag)))
		return err_set(err, -EBADMSG,
			       "manifest field references[%zu] (backup %s) has a bad size, sha256 or etag",
			       i, id);
	if (asprintf(&want, "%.*s%s/%s/%s/data.tar.zst", (int)plen, prefix, m->host,
		     m->partition, id) < 0)
		return err_set(err, -ENOMEM, "out of memory");
	ret = strcmp(key, want);
	if (ret) {
		ret = err_set(err, -EBADMSG,
			      "manifest field references[%zu].key \"%s\" is not the data object of backup %s (expected %s)",
			      i, UTIL_ESC(key), id, UTIL_ESC(want));
		free(want);
		return ret;
	}
	memcpy(r->id, id, BACKUP_ID_LEN + 1);
	r->key = want;
	r->size = (uint64_t)size;
	strcpy(r->sha256, sha);
	strcpy(r->etag, etag);
	return 0;
}

static int refs_from_json(struct manifest *m, json_t *refs, struct err *err)
{
	size_t n = json_array_size(refs);
	/* the data key is "<prefix><host>/<partition>/<id>/data.tar.zst" (checked) */
	size_t plen = strlen(m->data_key) - strlen(m->host) - strlen(m->partition) -
		      BACKUP_ID_LEN - strlen("///data.tar.zst");
	int ret;

	if (!json_is_array(refs) || n > MANIFEST_REFS_MAX)
		return err_set(err, -EBADMSG,
			       "manifest field references is not a list of at most %d backups",
			       MANIFEST_REFS_MAX);
	if (!n)
		return 0;
	m->refs = calloc(n, sizeof(*m->refs));
	if (!m->refs)
		return err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		ret = ref_from_json(m, json_array_get(refs, i), i, m->data_key, plen,
				    &m->refs[i], err);
		if (ret)
			return ret;
		m->nrefs = i + 1;
		if (i && strcmp(m->refs[i - 1].id, m->refs[i].id) >= 0)
			return err_set(err, -EBADMSG,
				       "manifest field references is not sorted by id without repeats (%s after %s)",
				       m->refs[i].id, m->refs[i - 1].id);
	}
	return 0;
}

/* snapshot.fstype, optional in every version: left "" when absent or not
 * a short lower-case name. */
static void manifest_fstype(json_t *root, struct manifest *m)
{
	const char *t = json_string_value(json_object_get(json_object_get(root, "snapshot"),
							  "fstype"));

	if (t && *t && strlen(t) < sizeof(m->fstype) &&
	    strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789") == strlen(t))
		strcpy(m->fstype, t);
}

/* A version 1 manifest's snapshot.source_uuid, optional (written since
 * version 2 became known; the planner compares extent fingerprints only
 * within one subvolume): left "" when absent or not a UUID. */
static void v1_source_uuid(json_t *root, struct manifest *m)
{
	const char *u = json_string_value(json_object_get(json_object_get(root, "snapshot"),
							  "source_uuid"));

	if (u && strlen(u) <= 36 && strspn(u, "0123456789abcdefABCDEF-") == strlen(u))
		strcpy(m->source_uuid, u);
}

/*
 * Version 2's fields, all required: parent, references, chain, full_id,
 * counts.{new_bytes, referenced_bytes, unchanged, changed, new, deleted,
 * meta_only, renamed}, snapshot.source_uuid.  m holds the checked v1
 * fields; what this fills is freed by manifest_clear.
 */
static int manifest_v2_from_json(json_t *root, struct manifest *m, struct err *err)
{
	json_t *parent, *refs;
	const char *full, *suuid;
	json_int_t c[9];
	static const char *const names[] = {
		"chain", "counts.new_bytes", "counts.referenced_bytes", "counts.unchanged",
		"counts.changed", "counts.new", "counts.deleted", "counts.meta_only",
		"counts.renamed",
	};
	json_error_t je;
	int ret;

	if (json_unpack_ex(root, &je, 0,
			   "{s:o, s:o, s:I, s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
			   " s:{s:s}}",
			   "parent", &parent, "references", &refs, "chain", &c[0],
			   "full_id", &full, "counts", "new_bytes", &c[1],
			   "referenced_bytes", &c[2], "unchanged", &c[3], "changed", &c[4],
			   "new", &c[5], "deleted", &c[6], "meta_only", &c[7],
			   "renamed", &c[8], "snapshot", "source_uuid", &suuid))
		return err_set(err, -EBADMSG, "manifest (format version 2) is malformed: %s",
			       UTIL_ESC(je.text));
	ret = check_ranges(c, names, 9, err);
	if (ret)
		return ret;
	if (strlen(suuid) > 36 || strspn(suuid, "0123456789abcdefABCDEF-") != strlen(suuid))
		return err_set(err, -EBADMSG, "manifest has a malformed snapshot source_uuid");
	strcpy(m->source_uuid, suuid);
	if (!json_is_null(parent)) {
		if (!json_is_string(parent))
			return err_set(err, -EBADMSG, "manifest field parent is not a backup id or null");
		ret = check_older_id(m, "parent", json_string_value(parent), err);
		if (ret)
			return ret;
		strcpy(m->parent, json_string_value(parent));
	}
	if (strcmp(full, m->backup_id)) {
		ret = check_older_id(m, "full_id", full, err);
		if (ret)
			return ret;
	}
	strcpy(m->full_id, full);
	ret = refs_from_json(m, refs, err);
	if (ret)
		return ret;
	m->chain = (uint64_t)c[0];
	m->new_bytes = (uint64_t)c[1];
	m->referenced_bytes = (uint64_t)c[2];
	m->n_unchanged = (uint64_t)c[3];
	m->n_changed = (uint64_t)c[4];
	m->n_new = (uint64_t)c[5];
	m->n_deleted = (uint64_t)c[6];
	m->n_meta_only = (uint64_t)c[7];
	m->n_renamed = (uint64_t)c[8];
	if (!m->parent[0] && (m->nrefs || m->chain || strcmp(m->full_id, m->backup_id)))
		return err_set(err, -EBADMSG,
			       "manifest of backup %s has no parent (a full) but references, a chain or another full_id",
			       m->backup_id);
	if (m->parent[0] && (!m->chain || !strcmp(m->full_id, m->backup_id)))
		return err_set(err, -EBADMSG,
			       "manifest of backup %s has a parent but chain 0 or itself as full_id",
			       m->backup_id);
	return 0;
}

int manifest_from_json(const char *json, size_t len, struct manifest *m,
		       struct err *err)
{
	json_error_t je;
	json_t *root = json_loadb(json, len, 0, &je);
	struct manifest_raw r;
	int ret;

	memset(m, 0, sizeof(*m));
	if (!root) /* never quote the text: it may not be a manifest at all */
		return err_set(err, -EBADMSG, "manifest is not valid JSON (line %d, column %d)",
			       je.line, je.column);
	ret = manifest_unpack(root, &r, err);
	if (!ret)
		ret = manifest_check_raw(&r, err);
	if (ret)
		goto out_root;
	m->self_size = len;
	util_sha256_hex(json, len, m->self_sha256);
	ret = manifest_fill(m, &r, err);
	if (!ret && strcmp(m->compression, "zstd"))
		ret = err_set(err, -EBADMSG, "manifest names compression \"%s\"; this snapship knows zstd",
			      UTIL_ESC(m->compression));
	if (!ret)
		ret = manifest_validate(m, err);
	if (!ret)
		ret = enc_from_json(root, m, err);
	if (!ret && m->format_version >= 2)
		ret = manifest_v2_from_json(root, m, err);
	if (!ret && m->format_version < 2)
		v1_source_uuid(root, m);
	if (!ret)
		manifest_fstype(root, m);
	if (ret)
		manifest_clear(m);
out_root:
	json_decref(root);
	return ret;
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
	free(m->enc_sealed);
	for (size_t i = 0; m->hooks && m->hooks[i]; i++)
		free(m->hooks[i]);
	free(m->hooks);
	for (size_t i = 0; i < m->nrefs; i++)
		free(m->refs[i].key);
	free(m->refs);
	memset(m, 0, sizeof(*m));
}
