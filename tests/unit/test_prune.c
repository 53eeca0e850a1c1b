// SPDX-License-Identifier: MIT
/*
 * prune_partition (agent/prune.c) on two directory regions in a scratch
 * directory, no root: the policy applied in both; a partial listing (a
 * manifest that cannot be read) deletes nothing there; a region down gets
 * pending deletions, applied by the next prune when it is back; a backup
 * held by a reading lock is skipped.
 */
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
#include "agent/lock.h"
#include "agent/prune.h"
#include "common/err.h"
#include "common/util.h"
#include "tests/unit/unit.h"
#include "uploader/store.h"

#define NB 5

static char dir[64];
static char ids[NB][BACKUP_ID_LEN + 1];

/* A backup of host h, partition part, taken at t, into the directory
 * store at path: data, index, then the manifest; with ref, a version 2
 * backup whose parent and only reference is ref. */
static void put_backup_ref(const char *path, const char *id, int64_t t, const char *ref)
{
	struct manifest m = { 0 };
	struct manifest_ref r = { 0 };
	struct store *s;
	struct err err = { 0 };
	char *json, *mkey;

	assert_int_equal(store_open(path, &s, &err), 0);
	m.format_version = FORMAT_VERSION;
	strcpy(m.backup_id, id);
	m.tool_version = (char *)"test";
	m.host = (char *)"h";
	m.partition = (char *)"part";
	m.source = (char *)"/srv/part";
	strcpy(m.snap_uuid, "11111111-2222-3333-4444-555555555555");
	m.snap_time_ns = m.started_ns = m.finished_ns = t * 1000000000LL;
	m.compression = (char *)"zstd";
	m.level = 3;
	m.frame_size = 4u << 20;
	m.frames = 1;
	m.data_key = catalog_key("", "h", "part", id, "data.tar.zst");
	m.index_key = catalog_key("", "h", "part", id, "index.jsonl.zst");
	mkey = catalog_key("", "h", "part", id, "manifest.json");
	memset(m.data_sha256, 'a', 64);
	memset(m.index_sha256, 'b', 64);
	if (ref) {
		m.format_version = 2;
		strcpy(m.parent, ref);
		strcpy(m.full_id, ref);
		m.chain = 1;
		strcpy(r.id, ref);
		r.key = catalog_key("", "h", "part", ref, "data.tar.zst");
		r.size = 1;
		memset(r.sha256, 'a', 64);
		m.refs = &r;
		m.nrefs = 1;
	}
	assert_int_equal(store_put_buf(s, m.data_key, "d", 1, &err), 0);
	assert_int_equal(store_put_buf(s, m.index_key, "i", 1, &err), 0);
	assert_int_equal(manifest_to_json(&m, &json, &err), 0);
	assert_int_equal(store_put_buf(s, mkey, json, strlen(json), &err), 0);
	free(json);
	free(mkey);
	free(m.data_key);
	free(m.index_key);
	free(r.key);
	store_free(s);
}

static void put_backup(const char *path, const char *id, int64_t t)
{
	put_backup_ref(path, id, t, NULL);
}

/* How many backups of h/part region dir r holds (their manifests). */
static size_t count(const char *r)
{
	struct catalog_list l;
	struct store *s;
	struct err err = { 0 };
	char path[128];
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, r);
	assert_int_equal(store_open(path, &s, &err), 0);
	assert_int_equal(catalog_list(s, "", "h", "part", &l, &err), 0);
	n = l.n;
	catalog_list_free(&l);
	store_free(s);
	return n;
}

static bool exists(const char *r, int k, const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s/h/part/%s/%s", dir, r, ids[k], name);
	return !stat(path, &st);
}

/* The config and NB backups (every one older than keep_last 2 keeps but
 * none older than max_age) in both regions. */
static int setup(void **state)
{
	char path[128];
	int64_t now = util_now_unix_ns() / 1000000000LL;
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/snapship-prune-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	for (int r = 0; r < 2; r++) {
		snprintf(path, sizeof(path), "%s/%c", dir, 'a' + r);
		mkdir(path, 0700);
	}
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "[agent]\nstate_dir = %s/state\nhost = h\n[retention]\nkeep_last = 2\n"
		"[partition part]\npath = /srv/part\n"
		"[region a]\nstore = file\npath = %s/a\nprimary = yes\n"
		"[region b]\nstore = file\npath = %s/b\nreplication = agent\n", dir, dir, dir);
	fclose(f);
	for (int k = 0; k < NB; k++) {
		struct err err = { 0 };
		int64_t t = now - (NB - k) * 86400;

		assert_int_equal(catalog_new_id(t, ids[k], &err), 0);
		for (int r = 0; r < 2; r++) {
			snprintf(path, sizeof(path), "%s/%c", dir, 'a' + r);
			put_backup(path, ids[k], t);
		}
	}
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? -1 : 0;
}

static void prune(struct prune_report *rep, bool dry)
{
	struct prune_opts o = { .dry_run = dry };
	struct config cfg;
	struct err err = { 0 };
	char path[128];

	snprintf(path, sizeof(path), "%s/c.conf", dir);
	assert_int_equal(config_load(path, &cfg, &err), 0);
	if (prune_partition(&cfg, "h", config_partition(&cfg, "part"), &o, rep, &err))
		fail_msg("prune_partition: %s", err.msg);
	config_free(&cfg);
}

static void test_dry_run_and_policy(void **state)
{
	struct prune_report rep;

	(void)state;
	prune(&rep, true);
	assert_int_equal(rep.nb, NB);
	assert_int_equal(rep.kept, 2);
	assert_int_equal(rep.deleted, 3);
	assert_string_equal(rep.b[0].r[0].action, "would delete");
	prune_report_clear(&rep);
	assert_int_equal(count("a"), NB);
	assert_int_equal(count("b"), NB);
}

static void test_partial_listing(void **state)
{
	struct prune_report rep;
	char path[256];
	FILE *f;

	(void)state;
	/* region b: the newest manifest unreadable: a partial listing */
	snprintf(path, sizeof(path), "%s/b/h/part/%s/manifest.json", dir, ids[NB - 1]);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{}", f);
	fclose(f);
	prune(&rep, false);
	assert_string_equal(rep.regions[1].status, "partial");
	assert_int_equal(rep.deleted, 3);
	assert_int_equal(rep.pending, 0);
	assert_string_equal(rep.b[0].r[0].action, "deleted");
	assert_string_equal(rep.b[0].r[1].action, "kept");
	prune_report_clear(&rep);
	assert_int_equal(count("a"), 2);
	assert_int_equal(count("b"), NB - 1);         /* the broken one aside */
	assert_false(exists("a", 0, "data.tar.zst"));
	assert_true(exists("b", 0, "data.tar.zst"));
	/* repaired: the next prune deletes there too */
	snprintf(path, sizeof(path), "%s/a", dir);
	put_backup(path, ids[NB - 1], catalog_id_time(ids[NB - 1]));
	snprintf(path, sizeof(path), "%s/b", dir);
	put_backup(path, ids[NB - 1], catalog_id_time(ids[NB - 1]));
	prune(&rep, false);
	assert_string_equal(rep.regions[1].status, "listed");
	prune_report_clear(&rep);
	assert_int_equal(count("b"), 2);
	assert_false(exists("b", 0, "data.tar.zst"));
}

/* A region that lacks a backup this host committed (its replication state
 * says so), older than its newest, looks truncated: nothing deleted there. */
static void test_lacks_committed(void **state)
{
	struct geo_state gs = { 0 };
	struct prune_report rep;
	struct err err = { 0 };
	char st[128], path[256];

	(void)state;
	snprintf(st, sizeof(st), "%s/state", dir);
	strcpy(gs.backup_id, ids[3]);
	gs.committed_ns = (int64_t)catalog_id_time(ids[3]) * 1000000000LL;
	assert_int_equal(geo_state_save(st, "h", "part", &gs, &err), 0);
	snprintf(path, sizeof(path), "%s/b/h/part/%s/manifest.json", dir, ids[3]);
	assert_int_equal(unlink(path), 0);
	prune(&rep, false);
	assert_string_equal(rep.regions[1].status, "partial");
	assert_non_null(strstr(rep.regions[1].detail, ids[3]));
	prune_report_clear(&rep);
	assert_int_equal(count("a"), 2);
	assert_int_equal(count("b"), NB - 1);
}

static void test_region_down_pending(void **state)
{
	struct prune_report rep;
	char a[128], b[128], away[128];

	(void)state;
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	snprintf(away, sizeof(away), "%s/b.away", dir);
	assert_int_equal(rename(b, away), 0);
	prune(&rep, false);
	assert_int_equal(rep.deleted, 3);
	assert_int_equal(rep.pending, 3);
	assert_string_equal(rep.regions[1].status, "failed");
	assert_string_equal(rep.b[0].r[1].action, "pending");
	prune_report_clear(&rep);
	assert_int_equal(rename(away, b), 0);
	assert_int_equal(count("a"), 2);
	assert_int_equal(count("b"), NB);
	/* back: the pending deletions go first, whatever the listing says */
	prune(&rep, false);
	assert_int_equal(rep.nfinished, 3);
	assert_int_equal(rep.pending, 0);
	assert_string_equal(rep.finished[0].r[0].action, "deleted");
	assert_string_equal(rep.finished[0].r[0].region, "b");
	prune_report_clear(&rep);
	assert_int_equal(count("b"), 2);
	for (int k = 0; k < 3; k++) {
		assert_false(exists("b", k, "manifest.json"));
		assert_false(exists("b", k, "index.jsonl.zst"));
	}
}

static void test_reading_lock(void **state)
{
	struct prune_report rep;
	struct err err = { 0 };
	char st[128];
	int fd;

	(void)state;
	snprintf(st, sizeof(st), "%s/state", dir);
	fd = readlock_acquire(st, "h", "part", ids[1], &err);
	assert_true(fd >= 0);
	prune(&rep, false);
	assert_int_equal(rep.skipped, 1);
	assert_int_equal(rep.deleted, 2);
	assert_non_null(strstr(rep.b[1].note, "reading"));
	prune_report_clear(&rep);
	assert_true(exists("a", 1, "manifest.json"));
	readlock_release(fd, NULL, NULL, NULL, NULL, false);
	prune(&rep, false);
	assert_int_equal(rep.deleted, 1);
	prune_report_clear(&rep);
	assert_false(exists("a", 1, "manifest.json"));
	assert_int_equal(count("a"), 2);
}

/* The pending-deletion record of backup k, or NULL. */
static char *record_of(int k)
{
	char path[256], *buf;
	size_t len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/state/prune/h/part/%s.json", dir, ids[k]);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	buf = calloc(1, 65536);
	assert_non_null(buf);
	len = fread(buf, 1, 65535, f);
	fclose(f);
	assert_true(len > 0);
	return buf;
}

/*
 * A version 2 backup X, newest, in region a only (not replicated yet),
 * references ids[0]: ids[0] leaves list but its data stays in both regions
 * (the references of every region's listing count), said; ids[1..3] go
 * whole; with round listings (the agent) as with prune_partition.  X gone,
 * the next prune deletes ids[0]'s data and its record.
 */
static void refs_case(bool round)
{
	char path[128], x[BACKUP_ID_LEN + 1];
	int64_t now = util_now_unix_ns() / 1000000000LL;
	struct prune_report rep;
	struct err err = { 0 };
	char *rec;

	assert_int_equal(catalog_new_id(now, x, &err), 0);
	snprintf(path, sizeof(path), "%s/a", dir);
	put_backup_ref(path, x, now, ids[0]);
	if (round) {
		struct prune_opts o = { 0 };
		struct prune_round pr;
		struct regions rs;
		struct config cfg;

		snprintf(path, sizeof(path), "%s/c.conf", dir);
		assert_int_equal(config_load(path, &cfg, &err), 0);
		assert_int_equal(geo_regions_open(&cfg, NULL, NULL, NULL, false, &rs, &err), 0);
		assert_int_equal(prune_round_list(&pr, &rs, "h", &err), 0);
		if (prune_partition_round(&cfg, "h", config_partition(&cfg, "part"), &o, &pr,
					  &rep, &err))
			fail_msg("prune_partition_round: %s", err.msg);
		prune_round_free(&pr);
		geo_regions_free(&rs);
		config_free(&cfg);
	} else {
		prune(&rep, false);
	}
	assert_int_equal(rep.deleted, 4);
	assert_string_equal(rep.b[0].id, ids[0]);
	for (int r = 0; r < 2; r++) {
		assert_string_equal(rep.b[0].r[r].action, "deleted");
		assert_non_null(strstr(rep.b[0].r[r].detail, "data kept: referenced by "));
		assert_non_null(strstr(rep.b[0].r[r].detail, x));
		assert_string_equal(rep.b[1].r[r].detail, "");
	}
	prune_report_clear(&rep);
	for (int r = 0; r < 2; r++) {
		const char *rn = r ? "b" : "a";

		assert_false(exists(rn, 0, "manifest.json"));
		assert_false(exists(rn, 0, "index.jsonl.zst"));
		assert_true(exists(rn, 0, "data.tar.zst"));
		for (int k = 1; k < 4; k++)
			assert_false(exists(rn, k, "data.tar.zst"));
	}
	rec = record_of(0);
	assert_non_null(rec);
	assert_non_null(strstr(rec, "\"data\""));
	free(rec);
	assert_null(record_of(1));
	/* still referenced: the next prune says so and keeps it */
	prune(&rep, false);
	assert_int_equal(rep.nfinished, 1);
	assert_string_equal(rep.finished[0].r[0].action, "data kept");
	assert_int_equal(rep.pending, 0);
	assert_int_equal(rep.errors, 0);
	prune_report_clear(&rep);
	assert_true(exists("a", 0, "data.tar.zst"));
	/* X gone (its manifest): nothing references ids[0] any more */
	snprintf(path, sizeof(path), "%s/a/h/part/%s/manifest.json", dir, x);
	assert_int_equal(unlink(path), 0);
	prune(&rep, true);
	assert_string_equal(rep.finished[0].r[0].action, "would delete");
	prune_report_clear(&rep);
	assert_true(exists("a", 0, "data.tar.zst"));
	prune(&rep, false);
	assert_string_equal(rep.finished[0].r[0].action, "deleted");
	assert_string_equal(rep.finished[0].r[1].action, "deleted");
	prune_report_clear(&rep);
	assert_false(exists("a", 0, "data.tar.zst"));
	assert_false(exists("b", 0, "data.tar.zst"));
	assert_null(record_of(0));
}

static void test_refs_keep_data(void **state)
{
	(void)state;
	refs_case(false);
}

static void test_refs_keep_data_round(void **state)
{
	(void)state;
	refs_case(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dry_run_and_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_listing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lacks_committed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region_down_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reading_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs_keep_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs_keep_data_round, setup, teardown),
	};

	return unit_main(tests, NULL, NULL);
}
