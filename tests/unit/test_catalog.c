// SPDX-License-Identifier: MIT
/*
 * What a store hands snapship is anyone's: manifests with hostile names,
 * keys, numbers and types are refused with a message naming the field
 * (and nothing leaks: run under make D=asan / D=ubsan); listing skips and
 * names them, escaped, and still lists the good ones; names shown to a
 * terminal are escaped (util_escape).
 */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/catalog.h"
#include "agent/keyring.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "stream/seal.h"
#include "uploader/store.h"

#define ID "20261124T110000Z-abcdef"

static char root[64];

static int setup(void **state)
{
	(void)state;
	strcpy(root, "/tmp/snapship-catalog-XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- util_escape, util_name_ok, backup ids ---- */

static void test_escape(void **state)
{
	char b[64];

	(void)state;
	assert_string_equal(util_escape("gd-part", b, sizeof(b)), "gd-part");
	assert_string_equal(util_escape("\033]0;pwned\007", b, sizeof(b)), "\\x1b]0;pwned\\x07");
	assert_string_equal(util_escape("\033[2J", b, sizeof(b)), "\\x1b[2J");
	assert_string_equal(util_escape("a\\b", b, sizeof(b)), "a\\\\b");
	assert_string_equal(util_escape_ctl("a\\b\n", b, sizeof(b)), "a\\b\\x0a");
	assert_string_equal(util_escape("del\177", b, sizeof(b)), "del\\x7f");
	/* C1 controls: raw (invalid UTF-8) and encoded (CSI U+009B) */
	assert_string_equal(util_escape("\233x", b, sizeof(b)), "\\x9bx");
	assert_string_equal(util_escape("\302\233x", b, sizeof(b)), "\\xc2\\x9bx");
	/* printable UTF-8 stays; invalid, overlong and surrogates do not */
	assert_string_equal(util_escape("caf\303\251 \346\227\245 \360\237\230\200", b, sizeof(b)),
			    "caf\303\251 \346\227\245 \360\237\230\200");
	assert_string_equal(util_escape("\377\300\257\355\240\200", b, sizeof(b)),
			    "\\xff\\xc0\\xaf\\xed\\xa0\\x80");
	assert_string_equal(util_escape("\303", b, sizeof(b)), "\\xc3");   /* cut */
	/* right-to-left override U+202E */
	assert_string_equal(util_escape("a\342\200\256b", b, sizeof(b)), "a\\xe2\\x80\\xaeb");
	assert_string_equal(util_escape(NULL, b, sizeof(b)), "(null)");
	/* cut where a whole escape ends, marked */
	assert_string_equal(util_escape("abcdefgh", b, 9), "abcdefgh");
	assert_string_equal(util_escape("abcdefghi", b, 9), "abcde...");
	assert_string_equal(util_escape("abcd\033\033", b, 9), "abcd...");
	assert_string_equal(util_escape("ab\033", b, 9), "ab\\x1b");
	assert_string_equal(util_escape("abc", b, 2), "");     /* no room to say it was cut */
	/* the macro: a buffer per use, so two in one call */
	snprintf(b, sizeof(b), "%s %s", UTIL_ESC("\033"), UTIL_ESC("\007"));
	assert_string_equal(b, "\\x1b \\x07");
}

/* A log line never carries a raw control character, nor a second line. */
static void test_log_escapes(void **state)
{
	char path[128], buf[512];
	FILE *f;
	size_t n;
	int saved = dup(2), fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/log", root);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	log_warn("skipping %s: %s", "h/\033]0;pwned\007/x", "line\nbreak \\x1b");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	assert_string_equal(buf,
			    "snapship: warning: skipping h/\\x1b]0;pwned\\x07/x: line\\x0abreak \\x1b\n");
}

static void test_names(void **state)
{
	char long_name[UTIL_NAME_MAX + 2];

	(void)state;
	assert_true(util_name_ok("gd-part"));
	assert_true(util_name_ok("host_1.example"));
	assert_false(util_name_ok(""));
	assert_false(util_name_ok(NULL));
	assert_false(util_name_ok("."));
	assert_false(util_name_ok(".."));
	assert_false(util_name_ok(".hidden"));
	assert_false(util_name_ok("../../.."));
	assert_false(util_name_ok("a/b"));
	assert_false(util_name_ok("a b"));
	assert_false(util_name_ok("\033]0;pwned\007"));
	assert_false(util_name_ok("caf\303\251"));
	memset(long_name, 'a', sizeof(long_name));
	long_name[UTIL_NAME_MAX] = '\0';
	assert_true(util_name_ok(long_name));
	long_name[UTIL_NAME_MAX] = 'a';
	long_name[UTIL_NAME_MAX + 1] = '\0';
	assert_false(util_name_ok(long_name));

	assert_true(catalog_id_time(ID) > 0);
	assert_int_equal(catalog_id_time("../../../../../canary/z"), -1);
	assert_int_equal(catalog_id_time(" 0261124T110000Z-abcdef"), -1);
	assert_int_equal(catalog_id_time("2026 124T110000Z-abcdef"), -1);
	assert_int_equal(catalog_id_time("20261124T110000Z-ABCDEF"), -1);
	assert_int_equal(catalog_id_time("20261124T110000Z/abcdef"), -1);
	assert_int_equal(catalog_id_time("20261324T110000Z-abcdef"), -1);   /* month 13 */
	assert_int_equal(catalog_id_time("20261124T110000Z-abcdef0"), -1);
}

/* ---- manifests ---- */

/* A valid manifest as JSON (jansson object; the caller owns it). */
static json_t *good_manifest(const char *prefix)
{
	struct manifest m = { 0 };
	struct err err = { 0 };
	json_error_t je;
	char *s;
	json_t *j;

	m.format_version = FORMAT_VERSION;
	strcpy(m.backup_id, ID);
	m.tool_version = (char *)"0.1.0";
	m.host = (char *)"h";
	m.partition = (char *)"part";
	m.source = (char *)"/srv/part";
	strcpy(m.snap_uuid, "11111111-2222-3333-4444-555555555555");
	m.started_ns = 1795000000000000000LL;
	m.finished_ns = 1795000001000000000LL;
	m.snap_time_ns = m.started_ns;
	m.files = 3;
	m.compression = (char *)"zstd";
	m.level = 3;
	m.frame_size = 4u << 20;
	m.frames = 1;
	m.data_key = catalog_key(prefix, "h", "part", ID, "data.tar.zst");
	m.index_key = catalog_key(prefix, "h", "part", ID, "index.jsonl.zst");
	memset(m.data_sha256, 'a', 64);
	memset(m.index_sha256, 'b', 64);
	assert_int_equal(manifest_to_json(&m, &s, &err), 0);
	j = json_loads(s, 0, &je);
	assert_non_null(j);
	free(s);
	free(m.data_key);
	free(m.index_key);
	return j;
}

/* Parse j (consumed); returns the code, err filled. */
static int parse(json_t *j, struct manifest *m, struct err *err)
{
	char *s = json_dumps(j, 0);
	int ret;

	assert_non_null(s);
	json_decref(j);
	err_clear(err);
	ret = manifest_from_json(s, strlen(s), m, err);
	free(s);
	return ret;
}

/* Set "a.b" (or "a") of j to v (consumed). */
static json_t *with(json_t *j, const char *path, json_t *v)
{
	const char *dot = strchr(path, '.');

	if (!dot) {
		json_object_set_new(j, path, v);
	} else {
		char outer[32];

		snprintf(outer, sizeof(outer), "%.*s", (int)(dot - path), path);
		json_object_set_new(json_object_get(j, outer), dot + 1, v);
	}
	return j;
}

/* Expect j refused with -EBADMSG, a message holding want, no raw ESC. */
static void refused(json_t *j, const char *want)
{
	struct manifest m;
	struct err err = { 0 };

	assert_int_equal(parse(j, &m, &err), -EBADMSG);
	if (!strstr(err.msg, want))
		fail_msg("message \"%s\" does not hold \"%s\"", err.msg, want);
	assert_null(strchr(err.msg, '\033'));
	assert_null(m.host);     /* nothing left to free */
	assert_null(m.hooks);
}

static void test_manifest_good(void **state)
{
	struct manifest m;
	struct err err = { 0 };
	json_t *hooks = json_array();

	(void)state;
	assert_int_equal(parse(good_manifest(""), &m, &err), 0);
	assert_string_equal(m.partition, "part");
	assert_int_equal(m.frame_size, 4u << 20);
	manifest_clear(&m);
	/* another region's copy: the primary's prefix in the keys */
	assert_int_equal(parse(good_manifest("backups/east/"), &m, &err), 0);
	assert_string_equal(m.data_key, "backups/east/h/part/" ID "/data.tar.zst");
	manifest_clear(&m);
	/* hooks: strings, kept and freed */
	json_array_append_new(hooks, json_string("pre_snapshot"));
	json_array_append_new(hooks, json_string("post_snapshot"));
	assert_int_equal(parse(with(good_manifest(""), "hooks", hooks), &m, &err), 0);
	assert_string_equal(m.hooks[1], "post_snapshot");
	assert_null(m.hooks[2]);
	manifest_clear(&m);
	/* the largest counts jansson parses are taken as they are */
	assert_int_equal(parse(with(good_manifest(""), "counts.files",
				    json_integer(INT64_MAX)), &m, &err), 0);
	assert_int_equal(m.files, (uint64_t)INT64_MAX);
	manifest_clear(&m);
}

/* An encrypted backup's manifest: the sealed fields out of the clear text,
 * back with the key, refused when altered; hostile encryption objects. */
static void test_manifest_encrypted(void **state)
{
	struct seal_master *mk = seal_alloc(sizeof(*mk));
	struct backup_keys bk = { 0 };
	struct manifest m, m2;
	struct err err = { 0 };
	json_t *j = good_manifest(""), *hooks = json_array();
	char *s = NULL;
	size_t n;

	(void)state;
	assert_non_null(mk);
	memset(mk->key, 0x42, sizeof(mk->key));
	assert_int_equal(seal_fingerprint(mk->key, mk->fp), 0);
	assert_int_equal(seal_key_new(mk, ID, SEAL_KIND_DATA, &bk.data, &err), 0);
	assert_int_equal(seal_key_new(mk, ID, SEAL_KIND_INDEX, &bk.index, &err), 0);
	assert_int_equal(seal_key_new(mk, ID, SEAL_KIND_MANIFEST, &bk.manifest, &err), 0);
	memcpy(bk.fp, mk->fp, sizeof(bk.fp));
	json_array_append_new(hooks, json_string("pre_snapshot"));
	assert_int_equal(parse(with(j, "hooks", hooks), &m, &err), 0);
	strcpy(m.source_uuid, "99999999-2222-3333-4444-555555555555");
	assert_int_equal(keyring_seal_manifest(&bk, &m, &err), 0);
	assert_int_equal(manifest_to_json(&m, &s, &err), 0);
	assert_null(strstr(s, "/srv/part"));
	assert_null(strstr(s, "pre_snapshot"));
	assert_null(strstr(s, "99999999"));
	assert_non_null(strstr(s, mk->fp));
	assert_int_equal(manifest_from_json(s, strlen(s), &m2, &err), 0);
	assert_string_equal(m2.encryption, SEAL_ALG);
	assert_string_equal(m2.enc_fp, mk->fp);
	assert_string_equal(m2.enc_salt, "");
	assert_null(m2.source);
	assert_true(!m2.hooks || !m2.hooks[0]);
	assert_int_equal(keyring_unseal_manifest(&bk, &m2, &err), 0);
	assert_string_equal(m2.source, "/srv/part");
	assert_string_equal(m2.hooks[0], "pre_snapshot");
	assert_string_equal(m2.source_uuid, "99999999-2222-3333-4444-555555555555");
	manifest_clear(&m2);
	/* the sealed fields altered: refused when opened */
	n = strlen(m.enc_sealed);
	m.enc_sealed[n / 2] = m.enc_sealed[n / 2] == 'A' ? 'B' : 'A';
	free(s);
	assert_int_equal(manifest_to_json(&m, &s, &err), 0);
	assert_int_equal(manifest_from_json(s, strlen(s), &m2, &err), 0);
	err_clear(&err);
	assert_int_equal(keyring_unseal_manifest(&bk, &m2, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "does not authenticate"));
	manifest_clear(&m2);
	manifest_clear(&m);
	free(s);

	/* hostile: an unknown mode, a bad fingerprint or salt, no sealed */
	j = good_manifest("");
	json_object_set_new(json_object_get(j, "encryption"), "mode", json_string("rot13"));
	err_clear(&err);
	assert_int_equal(parse(j, &m, &err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err.msg, "upgrade snapship"));
	j = good_manifest("");
	json_object_set_new(j, "encryption", json_pack("{s:s, s:s, s:s}", "mode", SEAL_ALG,
						       "fingerprint", "XYZ", "sealed", "AAAA"));
	refused(j, "fingerprint");
	j = good_manifest("");
	json_object_set_new(j, "encryption", json_pack("{s:s, s:s, s:s, s:s}", "mode", SEAL_ALG,
						       "fingerprint", "0123456789abcdef",
						       "salt", "00", "sealed", "AAAA"));
	refused(j, "salt");
	j = good_manifest("");
	json_object_set_new(j, "encryption", json_pack("{s:s, s:s, s:s}", "mode", SEAL_ALG,
						       "fingerprint", "0123456789abcdef",
						       "sealed", "not base64!"));
	refused(j, "sealed");
	backup_keys_clear(&bk);
	seal_master_free(mk);
}

static void test_manifest_hostile_names(void **state)
{
	(void)state;
	refused(with(good_manifest(""), "partition", json_string("../../..")), "partition");
	refused(with(good_manifest(""), "partition", json_string("\033]0;pwned\007\033[2J")),
		"\\x1b]0;pwned\\x07\\x1b[2J");
	refused(with(good_manifest(""), "partition", json_string("")), "partition");
	refused(with(good_manifest(""), "host", json_string("..")), "host");
	refused(with(good_manifest(""), "host", json_string("a/b")), "host");
	refused(with(good_manifest(""), "backup_id", json_string("../x")), "id");
	refused(with(good_manifest(""), "backup_id", json_string("../../../../../canary/z")),
		"backup_id");
	refused(with(good_manifest(""), "backup_id", json_string("20261124T110000Z-abcde\033")),
		"backup_id");
}

static void test_manifest_hostile_keys(void **state)
{
	(void)state;
	/* another backup's objects */
	refused(with(good_manifest(""), "data.key",
		     json_string("h/part/20261124T110000Z-000000/data.tar.zst")), "data.key");
	refused(with(good_manifest(""), "data.key",
		     json_string("h/other/" ID "/data.tar.zst")), "data.key");
	refused(with(good_manifest(""), "data.key", json_string("h/part/" ID "/index.jsonl.zst")),
		"data.key");
	refused(with(good_manifest(""), "index.key", json_string("/etc/shadow")), "index.key");
	/* prefixes that leave the store or are not clean */
	refused(with(good_manifest(""), "data.key",
		     json_string("../h/part/" ID "/data.tar.zst")), "data.key");
	refused(with(good_manifest(""), "data.key",
		     json_string("/h/part/" ID "/data.tar.zst")), "data.key");
	refused(with(good_manifest(""), "data.key",
		     json_string("a//h/part/" ID "/data.tar.zst")), "data.key");
	refused(with(good_manifest(""), "data.key",
		     json_string("x\033[2J/h/part/" ID "/data.tar.zst")), "\\x1b[2J");
	refused(with(good_manifest(""), "data.key",
		     json_string("xh/part/" ID "/data.tar.zst")), "data.key");
	/* data and index under different prefixes */
	refused(with(good_manifest(""), "index.key",
		     json_string("p/h/part/" ID "/index.jsonl.zst")), "index.key");
}

static void test_manifest_hostile_numbers(void **state)
{
	(void)state;
	refused(with(good_manifest(""), "counts.files", json_integer(-1)), "counts.files");
	refused(with(good_manifest(""), "data.size", json_integer(-5)), "data.size");
	refused(with(good_manifest(""), "index.size", json_integer(INT64_MIN)), "index.size");
	refused(with(good_manifest(""), "compression.frame_size", json_integer(1LL << 40)),
		"frames of");
	refused(with(good_manifest(""), "compression.frame_size", json_integer(0)), "frames of");
	refused(with(good_manifest(""), "compression.frame_size",
		     json_integer((64LL << 20) + 1)), "frames of");
	refused(with(good_manifest(""), "compression.frames", json_integer(1LL << 32)), "frames");
	refused(with(good_manifest(""), "compression.level", json_integer(1LL << 32)), "level");
	refused(with(good_manifest(""), "snapshot.time_ns", json_integer(-1)), "time_ns");
	refused(with(good_manifest(""), "started_ns", json_integer(INT64_MAX)), "finished");
	refused(with(good_manifest(""), "counts.logical_bytes", json_real(1e30)), "malformed");
	{
		/* not taken modulo 2^32 */
		struct manifest m;
		struct err err = { 0 };

		assert_int_equal(parse(with(good_manifest(""), "format_version",
					    json_integer((1LL << 32) + 1)), &m, &err),
				 -EPROTONOSUPPORT);
		assert_non_null(strstr(err.msg, "4294967297"));
	}
	{
		/* beyond int64: jansson refuses to parse it */
		static const char big[] = "{\"format_version\": 18446744073709551616}";
		struct manifest m;
		struct err err = { 0 };

		assert_int_equal(manifest_from_json(big, strlen(big), &m, &err), -EBADMSG);
	}
}

static void test_manifest_hostile_types(void **state)
{
	json_t *hooks;

	(void)state;
	refused(with(good_manifest(""), "hooks", json_string("rm -rf /")), "hooks");
	hooks = json_array();
	json_array_append_new(hooks, json_string("pre_snapshot"));
	json_array_append_new(hooks, json_integer(1));
	json_array_append_new(hooks, json_string("post_snapshot"));
	refused(with(good_manifest(""), "hooks", hooks), "hooks[1]");
	hooks = json_array();
	json_array_append_new(hooks, json_string("a"));
	json_array_append_new(hooks, json_null());
	json_array_append_new(hooks, json_string("b"));
	refused(with(good_manifest(""), "hooks", hooks), "hooks[1]");
	refused(with(good_manifest(""), "counts.files", json_string("7")), "malformed");
	refused(with(good_manifest(""), "data", json_array()), "malformed");
	refused(with(good_manifest(""), "backup_id", json_integer(5)), "malformed");
	refused(with(good_manifest(""), "data.sha256", json_string("zz")), "checksum");
	refused(with(good_manifest(""), "data.sha256",
		     json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
		"checksum");
	refused(with(good_manifest(""), "data.etag", json_string("\"ab\033[2J\"")), "ETag");
	refused(with(good_manifest(""), "snapshot.uuid", json_string("\033]0;x\007")), "uuid");
	refused(with(good_manifest(""), "compression.algo", json_string("\033[2Jlz4")),
		"\\x1b[2Jlz4");
	refused(json_array(), "malformed");
	{
		/* not JSON: the text is never quoted (it may be a secret) */
		static const char secret[] = "root:$6$secrethash:19000:0:99999:7:::\n";
		struct manifest m;
		struct err err = { 0 };

		assert_int_equal(manifest_from_json(secret, strlen(secret), &m, &err), -EBADMSG);
		assert_null(strstr(err.msg, "root"));
		assert_null(strstr(err.msg, "secret"));
	}
}

/* ---- format version 2 ---- */

#define OLD1 "20261120T010000Z-000001"
#define OLD2 "20261122T020000Z-000002"

/* A version 2 manifest with parent OLD2, references OLD1 and OLD2. */
static void v2_fill(struct manifest *m, const char *prefix)
{
	static const char *const ids[2] = { OLD1, OLD2 };

	memset(m, 0, sizeof(*m));
	m->format_version = 2;
	strcpy(m->backup_id, ID);
	m->tool_version = strdup("0.2.0");
	m->host = strdup("h");
	m->partition = strdup("part");
	m->source = strdup("/srv/part");
	strcpy(m->snap_uuid, "11111111-2222-3333-4444-555555555555");
	strcpy(m->source_uuid, "66666666-7777-8888-9999-aaaaaaaaaaaa");
	m->snap_generation = 77;
	m->started_ns = 1795000000000000000LL;
	m->finished_ns = 1795000001000000000LL;
	m->snap_time_ns = m->started_ns;
	m->files = 3;
	m->compression = strdup("zstd");
	m->encryption = strdup("none");
	m->level = 3;
	m->frame_size = 4u << 20;
	m->frames = 1;
	m->data_key = catalog_key(prefix, "h", "part", ID, "data.tar.zst");
	m->index_key = catalog_key(prefix, "h", "part", ID, "index.jsonl.zst");
	memset(m->data_sha256, 'a', 64);
	memset(m->index_sha256, 'b', 64);
	strcpy(m->parent, OLD2);
	strcpy(m->full_id, OLD1);
	m->chain = 2;
	m->nrefs = 2;
	m->refs = calloc(2, sizeof(*m->refs));
	assert_non_null(m->refs);
	for (int i = 0; i < 2; i++) {
		strcpy(m->refs[i].id, ids[i]);
		m->refs[i].key = catalog_key(prefix, "h", "part", ids[i], "data.tar.zst");
		m->refs[i].size = 1000u + (unsigned)i;
		memset(m->refs[i].sha256, 'c' + i, 64);
		strcpy(m->refs[i].etag, i ? "\"abc-2\"" : "");
	}
	m->new_bytes = 10;
	m->referenced_bytes = 20;
	m->n_unchanged = 1;
	m->n_changed = 2;
	m->n_new = 3;
	m->n_deleted = 4;
	m->n_meta_only = 5;
	m->n_renamed = 6;
}

static json_t *good_v2(const char *prefix)
{
	struct manifest m;
	struct err err = { 0 };
	json_error_t je;
	char *s;
	json_t *j;

	v2_fill(&m, prefix);
	assert_int_equal(manifest_to_json(&m, &s, &err), 0);
	j = json_loads(s, 0, &je);
	assert_non_null(j);
	free(s);
	manifest_clear(&m);
	return j;
}

static void test_manifest_v2_round_trip(void **state)
{
	struct manifest a, b;
	struct err err = { 0 };
	char *s1, *s2;

	(void)state;
	v2_fill(&a, "pre/");
	assert_int_equal(manifest_to_json(&a, &s1, &err), 0);
	assert_int_equal(manifest_from_json(s1, strlen(s1), &b, &err), 0);
	assert_int_equal(b.format_version, 2);
	assert_string_equal(b.parent, OLD2);
	assert_string_equal(b.full_id, OLD1);
	assert_int_equal(b.chain, 2);
	assert_int_equal(b.nrefs, 2);
	assert_string_equal(b.refs[0].id, OLD1);
	assert_string_equal(b.refs[0].key, "pre/h/part/" OLD1 "/data.tar.zst");
	assert_int_equal(b.refs[1].size, 1001);
	assert_string_equal(b.refs[1].etag, "\"abc-2\"");
	assert_memory_equal(b.refs[1].sha256, a.refs[1].sha256, 65);
	assert_string_equal(b.source_uuid, a.source_uuid);
	assert_int_equal(b.new_bytes, 10);
	assert_int_equal(b.referenced_bytes, 20);
	assert_int_equal(b.n_unchanged + b.n_changed + b.n_new + b.n_deleted +
			 b.n_meta_only + b.n_renamed, 21);
	assert_int_equal(b.n_renamed, 6);
	assert_int_equal(manifest_to_json(&b, &s2, &err), 0);
	assert_string_equal(s1, s2);
	free(s1);
	free(s2);
	manifest_clear(&b);
	/* a full: parent null, no references, chain 0, itself as full_id */
	a.parent[0] = '\0';
	a.chain = 0;
	strcpy(a.full_id, ID);
	a.nrefs = 0;
	assert_int_equal(manifest_to_json(&a, &s1, &err), 0);
	assert_non_null(strstr(s1, "\"parent\": null"));
	assert_int_equal(manifest_from_json(s1, strlen(s1), &b, &err), 0);
	assert_string_equal(b.parent, "");
	assert_null(b.refs);
	free(s1);
	manifest_clear(&b);
	a.nrefs = 2;
	/* version 1 writes none of them but the source subvolume (the next
	 * incremental compares extent fingerprints only within it), and
	 * reads only that */
	a.format_version = 1;
	assert_int_equal(manifest_to_json(&a, &s1, &err), 0);
	assert_null(strstr(s1, "references"));
	assert_non_null(strstr(s1, "source_uuid"));
	assert_null(strstr(s1, "parent"));
	assert_int_equal(manifest_from_json(s1, strlen(s1), &b, &err), 0);
	assert_int_equal(b.nrefs, 0);
	assert_string_equal(b.source_uuid, a.source_uuid);
	free(s1);
	manifest_clear(&b);
	manifest_clear(&a);
}

/* refs: a list of n references to consecutive old ids, key under prefix */
static json_t *refs_json(size_t n, const char *prefix)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		char id[BACKUP_ID_LEN + 1], *key;

		snprintf(id, sizeof(id), "20261101T000000Z-%06x", (unsigned)(i & 0xffffff));
		key = catalog_key(prefix, "h", "part", id, "data.tar.zst");
		json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:s, s:s}", "id", id,
						   "key", key, "size", 1, "sha256",
						   "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
						   "etag", ""));
		free(key);
	}
	return a;
}

static json_t *ref_with(json_t *j, size_t i, const char *field, json_t *v)
{
	json_object_set_new(json_array_get(json_object_get(j, "references"), i), field, v);
	return j;
}

static void test_manifest_v2_hostile(void **state)
{
	json_t *j;

	(void)state;
	/* versions this build does not know */
	{
		struct manifest m;
		struct err err = { 0 };

		assert_int_equal(parse(with(good_v2(""), "format_version", json_integer(3)),
				       &m, &err), -EPROTONOSUPPORT);
		assert_non_null(strstr(err.msg, "version 3"));
		assert_non_null(strstr(err.msg, "upgrade snapship"));
		assert_int_equal(parse(with(good_manifest(""), "format_version", json_integer(0)),
				       &m, &err), -EPROTONOSUPPORT);
	}
	/* a version 2 field missing or of the wrong type */
	j = good_v2("");
	json_object_del(j, "references");
	refused(j, "format version 2");
	j = good_v2("");
	json_object_del(json_object_get(j, "counts"), "renamed");
	refused(j, "format version 2");
	refused(with(good_v2(""), "chain", json_integer(-1)), "chain");
	refused(with(good_v2(""), "counts.new_bytes", json_integer(-1)), "new_bytes");
	refused(with(good_v2(""), "snapshot.source_uuid", json_string("../x")), "source_uuid");
	refused(with(good_v2(""), "parent", json_integer(1)), "parent");
	refused(with(good_v2(""), "parent", json_string("../../x")), "parent");
	/* not older: itself, a newer one */
	refused(with(good_v2(""), "parent", json_string(ID)), "not older");
	refused(with(good_v2(""), "parent", json_string("20261125T000000Z-000000")), "not older");
	refused(with(good_v2(""), "full_id", json_string("20271125T000000Z-000000")), "not older");
	/* a full with references, a chain with no parent */
	refused(with(good_v2(""), "parent", json_null()), "no parent");
	refused(with(with(good_v2(""), "chain", json_integer(0)), "parent", json_string(OLD1)),
		"chain 0");
	/* references: not a list, too many, unsorted, repeated */
	refused(with(good_v2(""), "references", json_object()), "references");
	refused(with(good_v2(""), "references", refs_json(MANIFEST_REFS_MAX + 1, "")),
		"at most 4096");
	j = with(good_v2(""), "references", refs_json(2, ""));
	ref_with(j, 0, "id", json_string("20261101T000000Z-000001"));
	ref_with(j, 0, "key", json_string("h/part/20261101T000000Z-000001/data.tar.zst"));
	refused(j, "not sorted");
	j = with(good_v2(""), "references", refs_json(2, ""));
	ref_with(j, 1, "id", json_string("20261101T000000Z-000000"));
	ref_with(j, 1, "key", json_string("h/part/20261101T000000Z-000000/data.tar.zst"));
	refused(j, "not sorted");
	/* a reference: bad id, newer, itself, bad numbers, another key */
	refused(ref_with(good_v2(""), 0, "id", json_string("x")), "references[].id");
	refused(ref_with(good_v2(""), 0, "id", json_string(ID)), "not older");
	refused(ref_with(good_v2(""), 0, "size", json_integer(-1)), "bad size");
	refused(ref_with(good_v2(""), 0, "sha256", json_string("abc")), "bad size");
	refused(ref_with(good_v2(""), 0, "etag", json_string("\"a\033[2J\"")), "etag");
	refused(ref_with(good_v2(""), 0, "size", json_string("1")), "malformed");
	refused(ref_with(good_v2(""), 0, "key", json_string("h/part/" OLD2 "/data.tar.zst")),
		"is not the data object of backup " OLD1);
	refused(ref_with(good_v2(""), 0, "key", json_string("h/other/" OLD1 "/data.tar.zst")),
		"references[0].key");
	refused(ref_with(good_v2(""), 0, "key", json_string("h/part/" OLD1 "/index.jsonl.zst")),
		"references[0].key");
	refused(ref_with(good_v2(""), 0, "key", json_string("../h/part/" OLD1 "/data.tar.zst")),
		"references[0].key");
	/* under another prefix than this manifest's own */
	refused(ref_with(good_v2("p/"), 0, "key", json_string("h/part/" OLD1 "/data.tar.zst")),
		"expected p/h/part/");
	refused(ref_with(good_v2(""), 1, "key", json_string("p/h/part/" OLD2 "/data.tar.zst")),
		"references[1].key");
	/* the limit itself is fine */
	{
		struct manifest m;
		struct err err = { 0 };

		assert_int_equal(parse(with(good_v2("q/"), "references",
					    refs_json(MANIFEST_REFS_MAX, "q/")), &m, &err), 0);
		assert_int_equal(m.nrefs, MANIFEST_REFS_MAX);
		manifest_clear(&m);
	}
}

/* ---- listing ---- */

static void put(struct store *s, const char *key, json_t *j)
{
	struct err err = { 0 };
	char *text = json_dumps(j, JSON_ENCODE_ANY);

	assert_non_null(text);
	assert_int_equal(store_put_buf(s, key, text, strlen(text), &err), 0);
	free(text);
	json_decref(j);
}

/* Orphans and references: a data object whose backup a manifest
 * references is no orphan (same partition and id only); indexes of
 * deleted backups are; with a manifest that cannot be read, every data
 * object stays. */
static void test_orphans_refs(void **state)
{
	static const char *const keys[] = {
		"h/part/" OLD1 "/data.tar.zst",                 /* referenced */
		"h/part/" OLD2 "/data.tar.zst",                 /* referenced */
		"h/part/" OLD1 "/index.jsonl.zst",              /* an orphan */
		"h/part/20261123T000000Z-000003/data.tar.zst",  /* an orphan */
		"h/other/" OLD1 "/data.tar.zst",                /* another partition's */
	};
	struct store_obj_info info;
	struct store *s;
	struct err err = { 0 };
	char dir[128];
	size_t removed = 0;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/orphans", root);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(store_open(dir, &s, &err), 0);
	put(s, "h/part/" ID "/manifest.json", good_v2(""));
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(store_put_buf(s, keys[i], "x", 1, &err), 0);
	assert_int_equal(catalog_remove_orphans(s, "", "h", &removed, &err), 0);
	assert_int_equal(removed, 3);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(store_head(s, keys[i], &info, &err), i < 2 ? 0 : -ENOENT);
	/* a manifest that cannot be read: its references are unknown */
	put(s, "h/part/20261125T000000Z-000005/manifest.json", json_string("not a manifest"));
	for (size_t i = 2; i < 4; i++)
		assert_int_equal(store_put_buf(s, keys[i], "x", 1, &err), 0);
	assert_int_equal(catalog_remove_orphans(s, "", "h", &removed, &err), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(store_head(s, keys[2], &info, &err), -ENOENT);
	assert_int_equal(store_head(s, keys[3], &info, &err), 0);
	store_free(s);
}

static void test_list_skips_bad(void **state)
{
	struct catalog_list list;
	struct store *s;
	struct err err = { 0 };
	char dir[128];
	bool said_esc = false, said_moved = false;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/list", root);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(store_open(dir, &s, &err), 0);
	/* sorted before the good one ('.' < 'p', '\033' < 'p') */
	put(s, "h/\033]0;pwned\007\033[2J/" ID "/manifest.json",
	    with(good_manifest(""), "partition", json_string("\033]0;pwned\007\033[2J")));
	put(s, "h/aaa/" ID "/manifest.json", good_manifest(""));     /* says part */
	put(s, "h/aab/" ID "/manifest.json",
	    with(good_manifest(""), "partition", json_string("../../..")));
	put(s, "h/aac/sub/" ID "/manifest.json", good_manifest(""));
	put(s, "h/aad/not-an-id/manifest.json", good_manifest(""));
	put(s, "h/aae/" ID "/manifest.json", json_string("not a manifest"));
	put(s, "h/part/" ID "/manifest.json", good_manifest(""));
	assert_int_equal(catalog_list(s, "", "h", NULL, &list, &err), 0);
	assert_int_equal(list.n, 1);
	assert_string_equal(list.m[0].partition, "part");
	assert_int_equal(list.broken, 6);
	assert_int_equal(list.nbroken_why, 6);
	for (size_t i = 0; i < list.nbroken_why; i++) {
		const char *w = list.broken_why[i];

		assert_null(strchr(w, '\033'));
		assert_null(strchr(w, '\007'));
		said_esc |= strstr(w, "h/\\x1b]0;pwned\\x07\\x1b[2J/" ID "/manifest.json") != NULL;
		said_moved |= strstr(w, "h/aaa/" ID "/manifest.json") && strstr(w, "its key names");
	}
	assert_true(said_esc);
	assert_true(said_moved);
	catalog_list_free(&list);
	/* the same with the partition given */
	assert_int_equal(catalog_list(s, "", "h", "part", &list, &err), 0);
	assert_int_equal(list.n, 1);
	assert_int_equal(list.broken, 0);
	catalog_list_free(&list);
	/* a secondary under its own prefix holds the primary's manifest bytes */
	put(s, "y/h/part/" ID "/manifest.json", good_manifest("x/"));
	assert_int_equal(catalog_list(s, "y/", "h", NULL, &list, &err), 0);
	assert_int_equal(list.n, 1);
	assert_int_equal(list.broken, 0);
	assert_string_equal(list.m[0].data_key, "x/h/part/" ID "/data.tar.zst");
	catalog_list_free(&list);
	/* names that are not snapship's are not even asked for */
	assert_int_equal(catalog_list(s, "", "..", NULL, &list, &err), -EINVAL);
	err_clear(&err);
	assert_int_equal(catalog_list(s, "", "h", "../h", &list, &err), -EINVAL);
	store_free(s);
}

/* The hosts a store holds: counted from manifest keys; others' names are
 * not hosts (an escape sequence never becomes one). */
static void test_hosts(void **state)
{
	struct catalog_hosts h;
	struct store *s;
	struct err err = { 0 };
	char dir[128], others[256];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/hosts", root);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(store_open(dir, &s, &err), 0);
	put(s, "vm/p1/" ID "/manifest.json", json_string("not read"));
	put(s, "vm/p1/20240101T000000Z-aaaaaa/manifest.json", json_string("x"));
	put(s, "vm/p2/" ID "/manifest.json", json_string("x"));
	put(s, "vm/p2/" ID "/data.tar.zst", json_string("x"));
	put(s, "box/p/" ID "/manifest.json", json_string("x"));
	put(s, "\033[2J/p/" ID "/manifest.json", json_string("x"));
	put(s, "nohost/p/not-an-id/manifest.json", json_string("x"));
	assert_int_equal(catalog_hosts(s, "", &h, &err), 0);
	assert_int_equal(h.n, 2);
	assert_string_equal(h.v[0].name, "box");
	assert_string_equal(h.v[1].name, "vm");
	assert_int_equal(h.v[1].backups, 3);
	assert_int_equal(h.v[1].partitions, 2);
	assert_string_equal(h.v[1].latest, ID);
	assert_int_equal(h.other, 2);
	catalog_hosts_free(&h);
	assert_string_equal(catalog_other_hosts(s, "", "vm", others, sizeof(others)), "box");
	assert_string_equal(catalog_other_hosts(s, "", "new", others, sizeof(others)), "box, vm");
	store_free(s);
}

/* Two backups of one second: the newer is the one taken later, whatever
 * the random tails of their ids say (status and "latest" used to take the
 * greater id). */
static void test_newest_same_second(void **state)
{
	struct manifest m[3] = { 0 };
	struct catalog_list list = { .m = m, .n = 3 };

	(void)state;
	for (int i = 0; i < 3; i++)
		m[i].partition = (char *)"p";
	strcpy(m[0].backup_id, "20261124T110000Z-ffffff");   /* first of the second */
	m[0].snap_time_ns = 1795518000000000000 + 100;
	strcpy(m[1].backup_id, "20261124T110000Z-000000");   /* later, smaller tail */
	m[1].snap_time_ns = 1795518000000000000 + 900000000;
	strcpy(m[2].backup_id, "20261124T105959Z-ffffff");   /* a second before */
	m[2].snap_time_ns = 1795517999000000000;
	assert_true(catalog_cmp_age(&m[0], &m[1]) < 0);
	assert_true(catalog_cmp_age(&m[1], &m[0]) > 0);
	assert_true(catalog_cmp_age(&m[2], &m[0]) < 0);
	assert_int_equal(catalog_cmp_age(&m[1], &m[1]), 0);
	assert_ptr_equal(catalog_find(&list, "p", NULL), &m[1]);
	assert_ptr_equal(catalog_find(&list, NULL, NULL), &m[1]);
}

/* The reference set: uses by (partition, id), who references, duplicates
 * from two regions said once, v1 manifests adding nothing. */
static void test_refs(void **state)
{
	struct manifest m[4];
	struct manifest_ref r[4];
	struct catalog_refs refs = { 0 };
	char by[64];
	size_t first;

	(void)state;
	memset(m, 0, sizeof(m));
	memset(r, 0, sizeof(r));
	strcpy(r[0].id, "20261101T000000Z-000001");
	strcpy(r[1].id, "20261102T000000Z-000002");
	strcpy(r[2].id, "20261101T000000Z-000001");
	strcpy(r[3].id, "20261101T000000Z-000001");
	m[0].partition = (char *)"p";                   /* B3 -> B1, B2 */
	strcpy(m[0].backup_id, "20261103T000000Z-000003");
	m[0].refs = &r[0];
	m[0].nrefs = 2;
	m[1].partition = (char *)"p";                   /* B4 -> B1 */
	strcpy(m[1].backup_id, "20261104T000000Z-000004");
	m[1].refs = &r[2];
	m[1].nrefs = 1;
	m[2].partition = (char *)"q";                   /* another partition's B1 */
	strcpy(m[2].backup_id, "20261105T000000Z-000005");
	m[2].refs = &r[3];
	m[2].nrefs = 1;
	m[3].partition = (char *)"p";                   /* a v1: nothing */
	strcpy(m[3].backup_id, "20261101T000000Z-000001");
	for (int i = 3; i >= 0; i--)
		assert_int_equal(catalog_refs_add(&refs, &m[i]), 0);
	assert_int_equal(catalog_refs_add(&refs, &m[0]), 0);   /* listed twice */
	assert_int_equal(refs.n, 6);
	assert_int_equal(catalog_refs_users(&refs, "p", "20261101T000000Z-000001", &first), 3);
	assert_string_equal(refs.v[first].by, "20261103T000000Z-000003");
	assert_int_equal(catalog_refs_users(&refs, "p", "20261102T000000Z-000002", NULL), 2);
	assert_int_equal(catalog_refs_users(&refs, "q", "20261101T000000Z-000001", NULL), 1);
	assert_int_equal(catalog_refs_users(&refs, "p", "20261103T000000Z-000003", NULL), 0);
	assert_int_equal(catalog_refs_users(&refs, "q", "20261102T000000Z-000002", NULL), 0);
	assert_int_equal(catalog_refs_users(&refs, "o", "20261101T000000Z-000001", NULL), 0);
	assert_string_equal(catalog_refs_by(&refs, "p", "20261101T000000Z-000001", by, sizeof(by)),
			    "20261103T000000Z-000003, 20261104T000000Z-000004");
	assert_string_equal(catalog_refs_by(&refs, "p", "20261102T000000Z-000002", by, sizeof(by)),
			    "20261103T000000Z-000003");
	assert_string_equal(catalog_refs_by(&refs, "p", "20261101T000000Z-000001", by, 40),
			    "20261103T000000Z-000003, ...");
	assert_string_equal(catalog_refs_by(&refs, "p", "20261109T000000Z-000009", by, sizeof(by)),
			    "");
	/* added after a lookup: sorted again */
	assert_int_equal(catalog_refs_add(&refs, &m[1]), 0);
	assert_int_equal(catalog_refs_users(&refs, "p", "20261101T000000Z-000001", NULL), 4);
	catalog_refs_free(&refs);
	assert_null(refs.v);
	catalog_refs_free(&refs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_log_escapes),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_manifest_good),
		cmocka_unit_test(test_manifest_encrypted),
		cmocka_unit_test(test_manifest_hostile_names),
		cmocka_unit_test(test_manifest_hostile_keys),
		cmocka_unit_test(test_manifest_hostile_numbers),
		cmocka_unit_test(test_manifest_hostile_types),
		cmocka_unit_test(test_manifest_v2_round_trip),
		cmocka_unit_test(test_manifest_v2_hostile),
		cmocka_unit_test(test_list_skips_bad),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_newest_same_second),
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_orphans_refs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
