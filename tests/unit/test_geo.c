// SPDX-License-Identifier: MIT
/*
 * Geo-redundancy pieces on directory stores: the tee sink (a failing
 * secondary is dropped, the primary goes on), copy checks, streamed repair
 * copies that refuse bad bytes, the replication state file and summaries.
 * (The same code against Ceph RGW: tests/integration/test_geo_*.sh.)
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/catalog.h"
#include "agent/config.h"
#include "agent/geo.h"
#include "common/err.h"
#include "common/util.h"
#include "uploader/sink.h"
#include "uploader/store.h"

static char root[64];

static void mkregion(struct region *g, const char *name, bool primary)
{
	char dir[128];
	struct err err = { 0 };

	snprintf(dir, sizeof(dir), "%s/%s", root, name);
	assert_int_equal(mkdir(dir, 0700), 0);
	memset(g, 0, sizeof(*g));
	g->name = strdup(name);
	g->prefix = strdup("p/");
	g->primary = primary;
	g->replication = primary ? REPL_NONE : REPL_AGENT;
	g->deadline = 60;
	assert_int_equal(store_open(dir, &g->store, &err), 0);
}

static void freeregion(struct region *g)
{
	store_free(g->store);
	free(g->name);
	free(g->prefix);
}

static int setup(void **state)
{
	(void)state;
	strcpy(root, "/tmp/snapship-geo-XXXXXX");
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

/* A backup's three objects written to g, as backup.c would. */
static void put_backup(struct region *g, struct manifest *m, const char *data)
{
	struct err err = { 0 };
	char *json, *k;

	k = geo_region_key(g, m, "data.tar.zst");
	assert_int_equal(store_put_buf(g->store, k, data, strlen(data), &err), 0);
	free(k);
	k = geo_region_key(g, m, "index.jsonl.zst");
	assert_int_equal(store_put_buf(g->store, k, "idx", 3, &err), 0);
	free(k);
	assert_int_equal(manifest_to_json(m, &json, &err), 0);
	m->self_size = strlen(json);
	util_sha256_hex(json, m->self_size, m->self_sha256);
	k = geo_region_key(g, m, "manifest.json");
	assert_int_equal(store_put_buf(g->store, k, json, strlen(json), &err), 0);
	free(k);
	free(json);
}

static void fill_manifest(struct manifest *m, const char *data)
{
	memset(m, 0, sizeof(*m));
	m->format_version = FORMAT_VERSION;
	strcpy(m->backup_id, "20261124T100000Z-abcdef");
	m->host = (char *)"h";
	m->partition = (char *)"part";
	m->data_key = (char *)"p/h/part/20261124T100000Z-abcdef/data.tar.zst";
	m->index_key = (char *)"p/h/part/20261124T100000Z-abcdef/index.jsonl.zst";
	m->data_size = strlen(data);
	m->index_size = 3;
	util_sha256_hex(data, strlen(data), m->data_sha256);
	util_sha256_hex("idx", 3, m->index_sha256);
}

/* First: SNAPSHIP_FAULT=store.write@2 hits the second target's first write. */
static void test_sink_drops_failed_secondary(void **state)
{
	struct region a, b;
	struct sink s;
	struct sink_target t[2];
	struct store_obj_info info;
	struct err err = { 0 };
	char hex[65], want[65];

	(void)state;
	mkregion(&a, "sa", true);
	mkregion(&b, "sb", false);
	t[0] = (struct sink_target){ .store = a.store, .key = "k", .region = "sa" };
	t[1] = (struct sink_target){ .store = b.store, .key = "k", .region = "sb" };
	assert_int_equal(sink_open_multi(&s, t, 2, false, &err), 0);
	assert_int_equal(sink_write(&s, "hello ", 6, &err), 0);   /* b fails: dropped */
	assert_int_not_equal(s.failed[1], 0);
	assert_int_equal(s.failed[0], 0);
	assert_int_equal(sink_write(&s, "world", 5, &err), 0);
	assert_int_equal(sink_commit(&s, hex, &err), 0);
	util_sha256_hex("hello world", 11, want);
	assert_string_equal(hex, want);
	assert_true(s.committed[0]);
	assert_false(s.committed[1]);
	assert_int_equal(s.info[0].size, 11);
	assert_int_equal(store_head(a.store, "k", &info, &err), 0);
	assert_int_equal(info.size, 11);
	/* nothing half-written is visible in b */
	assert_int_equal(store_head(b.store, "k", &info, &err), -ENOENT);

	/* strict (require_geo): both or nothing */
	err_clear(&err);
	t[0].key = t[1].key = "k2";
	assert_int_equal(sink_open_multi(&s, t, 2, true, &err), 0);
	assert_int_equal(sink_write(&s, "abc", 3, &err), 0);
	assert_int_equal(sink_commit(&s, hex, &err), 0);
	assert_true(s.committed[0] && s.committed[1]);
	assert_int_equal(store_head(b.store, "k2", &info, &err), 0);
	assert_int_equal(info.size, 3);
	freeregion(&a);
	freeregion(&b);
}

static void test_check_and_copy(void **state)
{
	const char *data = "the backup's compressed bytes";
	struct region a, b;
	struct manifest m;
	struct geo_check c;
	struct err err = { 0 };
	void *buf;
	size_t len;
	char *k;

	(void)state;
	mkregion(&a, "ca", true);
	mkregion(&b, "cb", false);
	fill_manifest(&m, data);
	put_backup(&a, &m, data);

	assert_int_equal(geo_check_copy(&a, &m, OBJ_ALL, &c), 0);
	assert_int_equal(c.copy, COPY_OK);
	assert_int_equal(geo_check_copy(&b, &m, OBJ_ALL, &c), 0);
	assert_int_equal(c.copy, COPY_MISSING);
	assert_int_equal(c.bad_mask, OBJ_ALL);
	assert_non_null(strstr(c.detail, "data.tar.zst missing"));

	/* a repair copy: everything, then the region is whole */
	assert_int_equal(geo_copy(&a, &b, &m, c.bad_mask, 0, &err), 0);
	assert_int_equal(geo_check_copy(&b, &m, OBJ_ALL, &c), 0);
	assert_int_equal(c.copy, COPY_OK);

	/* b's data replaced by a shorter object: bad, and named */
	k = geo_region_key(&b, &m, "data.tar.zst");
	assert_int_equal(store_put_buf(b.store, k, "short", 5, &err), 0);
	assert_int_equal(geo_check_copy(&b, &m, OBJ_ALL, &c), 0);
	assert_int_equal(c.copy, COPY_BAD);
	assert_int_equal(c.bad_mask, OBJ_DATA);
	assert_non_null(strstr(c.detail, "data.tar.zst has 5 bytes"));

	/* a source with other bytes of the right size is refused: the target
	 * keeps what it had, nothing bad spreads */
	{
		char other[64];
		char *ka = geo_region_key(&a, &m, "data.tar.zst");

		snprintf(other, sizeof(other), "%s", data);
		other[0] ^= 1;
		assert_int_equal(store_put_buf(a.store, ka, other, strlen(other), &err), 0);
		assert_int_equal(geo_copy(&a, &b, &m, OBJ_DATA, 0, &err), -EBADMSG);
		assert_non_null(strstr(err.msg, "not copying"));
		assert_int_equal(store_get_all(b.store, k, 1024, &buf, &len, &err), 0);
		assert_int_equal(len, 5);
		free(buf);
		/* restore a, then the repair goes through */
		err_clear(&err);
		assert_int_equal(store_put_buf(a.store, ka, data, strlen(data), &err), 0);
		assert_int_equal(geo_copy(&a, &b, &m, OBJ_DATA, 0, &err), 0);
		assert_int_equal(store_get_all(b.store, k, 1024, &buf, &len, &err), 0);
		assert_int_equal(len, strlen(data));
		assert_memory_equal(buf, data, len);
		free(buf);
		free(ka);
	}
	free(k);
	freeregion(&a);
	freeregion(&b);
}

static void test_state(void **state)
{
	struct geo_state gs, back;
	struct geo_region_state *r;
	struct err err = { 0 };
	int64_t now = util_now_unix_ns();
	char dir[128];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/state", root);
	memset(&gs, 0, sizeof(gs));
	strcpy(gs.backup_id, "20261124T100000Z-abcdef");
	gs.committed_ns = now;
	assert_string_equal(geo_summary(&gs, now), "single region");
	r = geo_state_region(&gs, "west");
	assert_non_null(r);
	r->replication = REPL_SERVER;
	r->deadline_ns = now + 60000000000LL;
	assert_string_equal(geo_summary(&gs, now), "replicating");
	/* past the deadline without a verified copy: at risk */
	assert_string_equal(geo_summary(&gs, now + 61000000000LL), "at risk");
	r->state = RS_VERIFIED;
	r->lag_s = 0.25;
	r->verified_ns = now;
	assert_string_equal(geo_summary(&gs, now + 61000000000LL), "geo-protected");
	r = geo_state_region(&gs, "b");
	r->replication = REPL_AGENT;
	r->state = RS_AT_RISK;
	snprintf(r->detail, sizeof(r->detail), "upload failed");
	assert_string_equal(geo_summary(&gs, now), "at risk");

	assert_int_equal(geo_state_save(dir, "h", "part", &gs, &err), 0);
	assert_int_equal(geo_state_load(dir, "h", "part", gs.backup_id, &back, &err), 0);
	assert_int_equal(back.n, 2);
	assert_int_equal(back.committed_ns, now);
	r = geo_state_region(&back, "west");
	assert_int_equal(r->state, RS_VERIFIED);
	assert_int_equal(r->replication, REPL_SERVER);
	assert_true(r->lag_s > 0.24 && r->lag_s < 0.26);
	assert_int_equal(r->verified_ns, now);
	r = geo_state_region(&back, "b");
	assert_int_equal(r->state, RS_AT_RISK);
	assert_int_equal(r->replication, REPL_AGENT);
	assert_string_equal(r->detail, "upload failed");
	assert_int_equal(back.n, 2);     /* both were there: nothing added */
	assert_int_equal(geo_state_load(dir, "h", "part", "20261124T100000Z-000000", &back, &err),
			 -ENOENT);
	geo_state_remove(dir, "h", "part", gs.backup_id);
	assert_int_equal(geo_state_load(dir, "h", "part", gs.backup_id, &back, &err), -ENOENT);
}

/* Names that would leave <state_dir>/geo are refused, nothing is made. */
static void test_state_path_names(void **state)
{
	struct geo_state gs, back;
	struct err err = { 0 };
	struct stat st;
	char dir[128], canary[160];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/st2/state", root);
	snprintf(canary, sizeof(canary), "%s/st2/canary", root);
	assert_int_equal(util_mkdir_p(dir, 0700), 0);
	memset(&gs, 0, sizeof(gs));
	strcpy(gs.backup_id, "20261124T100000Z-abcdef");
	assert_non_null(geo_state_region(&gs, "west"));
	assert_int_equal(geo_state_save(dir, "h", "../../../canary", &gs, &err), -EINVAL);
	assert_null(strchr(err.msg, '\033'));
	err_clear(&err);
	assert_int_equal(geo_state_save(dir, "..", "part", &gs, &err), -EINVAL);
	err_clear(&err);
	assert_int_equal(geo_state_save(dir, "h", "\033]0;x\007", &gs, &err), -EINVAL);
	assert_null(strchr(err.msg, '\033'));
	err_clear(&err);
	memcpy(gs.backup_id, "../../../../../canary/z", BACKUP_ID_LEN + 1);
	assert_int_equal(geo_state_save(dir, "h", "part", &gs, &err), -EINVAL);
	err_clear(&err);
	assert_int_equal(geo_state_load(dir, "h", "../../../canary", "20261124T100000Z-abcdef",
				       &back, &err), -EINVAL);
	geo_state_remove(dir, "h", "../..", "20261124T100000Z-abcdef");
	assert_int_equal(stat(canary, &st), -1);
	assert_true(util_dir_is_empty(dir));
}

static void test_region_strip(void **state)
{
	(void)state;
	assert_string_equal(err_strip_region("east", "region east: cannot connect"), "cannot connect");
	assert_string_equal(err_strip_region("east", "region eastern: x"), "region eastern: x");
	assert_string_equal(err_strip_region("east", "store: x"), "store: x");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sink_drops_failed_secondary),
		cmocka_unit_test(test_check_and_copy),
		cmocka_unit_test(test_state),
		cmocka_unit_test(test_state_path_names),
		cmocka_unit_test(test_region_strip),
	};

	/* before any store call: the fault counter is per process */
	setenv("SNAPSHIP_FAULT", "store.write@2", 1);
	return cmocka_run_group_tests(tests, setup, teardown);
}
