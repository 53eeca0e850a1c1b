// SPDX-License-Identifier: MIT
/* Config parsing: good files, and errors that name file, line and key. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/catalog.h"
#include "agent/config.h"
#include "common/err.h"
#include "common/util.h"
#include "cow/cow.h"

static char path[64];

static const char *write_conf(const char *text)
{
	FILE *f;
	int fd;

	strcpy(path, "/tmp/snapship-conf-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static int load(const char *text, struct config *cfg, struct err *err)
{
	int ret = config_load(write_conf(text), cfg, err);

	unlink(path);
	return ret;
}

static void test_good(void **state)
{
	struct config cfg;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(load("; comment\n[agent]\ninterval = 2h\nstate_dir = /tmp/st\n"
			      "compression_level = 5\nmax_read_rate = 200M\nio_priority = best-effort\n"
			      "[retention]\nkeep_last = 3\nkeep_within = 7d\nmax_age = 90d\n"
			      "[partition orders]\npath = /srv/db/orders\npre_snapshot = /bin/true\n"
			      "[region east]\nstore = file\npath = /mnt/b\nprefix = prod/\n",
			      &cfg, &err), 0);
	assert_int_equal(cfg.interval, 7200);
	assert_string_equal(cfg.state_dir, "/tmp/st");
	assert_int_equal(cfg.compression_level, 5);
	assert_int_equal(cfg.max_read_rate, 200ull << 20);
	assert_int_equal(cfg.io_priority, 2);
	assert_int_equal(cfg.ret.keep_last, 3);
	assert_int_equal(cfg.ret.keep_within, 7 * 86400);
	assert_int_equal(cfg.nparts, 1);
	assert_string_equal(config_partition(&cfg, "orders")->path, "/srv/db/orders");
	assert_null(config_partition(&cfg, "nope"));
	assert_string_equal(config_primary(&cfg)->name, "east");   /* the only one */
	assert_string_equal(config_primary(&cfg)->prefix, "prod/");
	config_free(&cfg);
}

static void test_defaults(void **state)
{
	struct config cfg;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(config_defaults(&cfg, &err), 0);
	assert_int_equal(cfg.interval, 4 * 3600);
	assert_int_equal(cfg.ret.keep_last, 2);
	assert_int_equal(cfg.ret.keep_within, 0);
	assert_int_equal(cfg.ret.max_age, 90 * 86400);
	assert_int_equal(cfg.compression_level, 3);
	/* the low-impact mode is on by default, compression at idle priority */
	assert_true(cfg.low_impact);
	assert_int_equal(cfg.cpu_priority, 2);
	assert_null(cfg.pressure_cgroup);
	config_free(&cfg);
}

static void expect_error(const char *text, const char *needle1, const char *needle2);

static void test_low_impact_keys(void **state)
{
	struct config cfg;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(load("[agent]\nlow_impact = off\ncpu_priority = low\n"
			      "pressure_cgroup = /sys/fs/cgroup/system.slice/postgresql.service\n",
			      &cfg, &err), 0);
	assert_false(cfg.low_impact);
	assert_int_equal(cfg.cpu_priority, 1);
	assert_string_equal(cfg.pressure_cgroup, "/sys/fs/cgroup/system.slice/postgresql.service");
	config_free(&cfg);
	assert_int_equal(load("[agent]\nlow_impact = adaptive\ncpu_priority = normal\n",
			      &cfg, &err), 0);
	assert_true(cfg.low_impact);
	assert_int_equal(cfg.cpu_priority, 0);
	config_free(&cfg);
	expect_error("[agent]\nlow_impact = maybe\n", ":2:", "adaptive or off");
	expect_error("[agent]\ncpu_priority = high\n", ":2:", "idle, low or normal");
	expect_error("[agent]\npressure_cgroup = db.slice\n", ":2:", "cgroup");
}

static void expect_error(const char *text, const char *needle1, const char *needle2)
{
	struct config cfg;
	struct err err = { 0 };

	assert_int_not_equal(load(text, &cfg, &err), 0);
	if (!strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2)))
		fail_msg("error \"%s\" lacks \"%s\"/\"%s\"", err.msg, needle1,
			 needle2 ? needle2 : "");
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("[agent]\n\ncolour = blue\n", ":3:", "colour");
	expect_error("[agent]\ninterval = often\n", ":2:", "interval");
	expect_error("[agent]\ncompression_level = 30\n", ":2:", "1 to 19");
	expect_error("[agnet]\nx = 1\n", ":2:", "[agnet]");
	expect_error("[partition a]\nsnapshot_dir = /x\n", "partition a", "no path");
	expect_error("[partition a b]\npath = /x\n", "partition", "names");
	expect_error("[region r]\nstore = s3\n", ":2:", "S3");
	expect_error("[region r]\nstore = ftp\n", ":2:", "store");
	expect_error("[region a]\nstore = file\npath = /a\nprimary = yes\n"
		     "[region b]\nstore = file\npath = /b\nprimary = yes\n", "both primary", NULL);
	expect_error("[region a]\nstore = file\npath = /a\n[region b]\nstore = file\npath = /b\n",
		     "no region is primary", NULL);
	expect_error("[retention]\nkeep_within = 100d\nmax_age = 90d\n", "keep_within", NULL);
	expect_error("[agent]\nstate_dir = relative\n", ":2:", "absolute");
	expect_error("this is not ini\n", ":1:", "syntax");
	/* geo-redundancy keys */
	expect_error("[region a]\nstore = file\npath = /a\nprimary = yes\n"
		     "[region b]\nstore = file\npath = /b\nreplication = sometimes\n",
		     ":8:", "server");
	expect_error("[region a]\nstore = file\npath = /a\nprimary = yes\nreplication = agent\n"
		     "[region b]\nstore = file\npath = /b\n", ":5:", "primary");
	expect_error("[region a]\nstore = file\npath = /a\nprimary = yes\n"
		     "[region b]\nstore = file\npath = /b\nreplication_deadline = soon\n",
		     ":8:", "replication_deadline");
	expect_error("[region a]\nstore = file\npath = /a\nprimary = yes\n"
		     "[region b]\nstore = file\npath = /a\n", "same place", NULL);
	expect_error("[region a]\nstore = s3\nbucket = x\nendpoint = https://h:1\nprimary = yes\n"
		     "[region b]\nstore = s3\nbucket = x\nendpoint = https://h:1\n", "same place", NULL);
	expect_error("[agent]\nrequire_geo = yes\n[region a]\nstore = file\npath = /a\n",
		     "require_geo", "secondary");
	expect_error("[agent]\nrequire_geo = maybe\n", ":2:", "yes or no");
	expect_error("[region a]\nstore = s3\nbucket = x\nendpoint = https://h:1\nprimary = yes\n"
		     "[region b]\nstore = s3\nbucket = y\nendpoint = https://h:1\npart_size = 16M\n",
		     "region b", "part_size");
}

static void test_regions(void **state)
{
	struct config cfg;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(load("[agent]\nrequire_geo = yes\n"
			      "[region east]\nstore = s3\nbucket = b\nendpoint = https://e:1\nprimary = yes\n"
			      "[region west]\nstore = s3\nbucket = b\nendpoint = https://w:1\n"
			      "[region local]\nstore = file\npath = /b\nreplication = agent\n"
			      "replication_deadline = 30s\n",
			      &cfg, &err), 0);
	assert_true(cfg.require_geo);
	assert_int_equal(cfg.nregions, 3);
	assert_string_equal(config_primary(&cfg)->name, "east");
	assert_int_equal(cfg.regions[0].replication, REPL_NONE);
	assert_int_equal(cfg.regions[1].replication, REPL_SERVER);   /* the default */
	assert_int_equal(cfg.regions[1].replication_deadline, 15 * 60);
	assert_int_equal(cfg.regions[2].replication, REPL_AGENT);
	assert_int_equal(cfg.regions[2].replication_deadline, 30);
	config_free(&cfg);
}

/* Issue 15: prune credentials and Object Lock keys. */
static void test_protection_keys(void **state)
{
	struct config cfg;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(load("[region east]\nstore = s3\nbucket = b\nendpoint = https://e:1\n"
			      "prune_access_key_id = PRUNEKEY\nprune_secret_access_key_file = /etc/p.key\n"
			      "object_lock = compliance\nlock_margin = 12h\nprimary = yes\n"
			      "[region west]\nstore = s3\nbucket = b\nendpoint = https://w:1\n",
			      &cfg, &err), 0);
	assert_string_equal(cfg.regions[0].prune_access_key_id, "PRUNEKEY");
	assert_string_equal(cfg.regions[0].prune_secret_access_key_file, "/etc/p.key");
	assert_int_equal(cfg.regions[0].object_lock, 2);      /* STORE_LOCK_COMPLIANCE */
	assert_int_equal(cfg.regions[0].lock_margin, 12 * 3600);
	assert_int_equal(cfg.regions[1].object_lock, 0);
	assert_int_equal(cfg.regions[1].lock_margin, 86400);  /* the default */
	assert_null(cfg.regions[1].prune_access_key_id);
	config_free(&cfg);
	expect_error("[region a]\nstore = s3\nbucket = x\nendpoint = https://h:1\n"
		     "prune_access_key_id = K\n", "region a", "prune_secret_access_key_file");
	expect_error("[region a]\nstore = s3\nbucket = x\nobject_lock = always\n",
		     ":4:", "governance");
	expect_error("[region a]\nstore = s3\nbucket = x\nlock_margin = later\n",
		     ":4:", "lock_margin");
	expect_error("[region a]\nstore = file\npath = /a\nobject_lock = governance\n",
		     "object_lock", "store = s3");
	expect_error("[region a]\nstore = s3\nbucket = x\nprune_secret_access_key_file = rel\n",
		     ":4:", "absolute");
}

static void test_missing_file(void **state)
{
	struct config cfg;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(config_load("/nonexistent/snapship.conf", &cfg, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/snapship.conf"));
}

static void test_parsers(void **state)
{
	uint64_t b;
	int64_t s;

	(void)state;
	assert_int_equal(util_parse_size("64M", &b), 0);
	assert_int_equal(b, 64ull << 20);
	assert_int_equal(util_parse_size("1GiB", &b), 0);
	assert_int_equal(b, 1ull << 30);
	assert_int_equal(util_parse_size("12", &b), 0);
	assert_int_equal(b, 12);
	assert_int_not_equal(util_parse_size("-1", &b), 0);
	assert_int_not_equal(util_parse_size("5X", &b), 0);
	assert_int_equal(util_parse_duration("90d", &s), 0);
	assert_int_equal(s, 90 * 86400);
	assert_int_equal(util_parse_duration("5m", &s), 0);
	assert_int_equal(s, 300);
	assert_int_not_equal(util_parse_duration("soon", &s), 0);
}

/* config_review's messages, "E: ..." or "W: ...", one per line */
static void collect(void *ctx, bool error, const char *msg)
{
	char *buf = ctx;

	snprintf(buf + strlen(buf), 2048 - strlen(buf), "%s: %s\n", error ? "E" : "W", msg);
}

static void test_rpo_max(void **state)
{
	struct config cfg;
	struct err err = { 0 };
	char said[2048] = "";

	(void)state;
	/* default: 2 x interval; [agent] over it; [partition] over both */
	assert_int_equal(load("[agent]\ninterval = 1h\n[partition a]\npath = /a\n"
			      "[region r]\nstore = file\npath = /r\n", &cfg, &err), 0);
	assert_int_equal(config_rpo_max(&cfg, config_partition(&cfg, "a")), 7200);
	assert_int_equal(config_rpo_max(&cfg, NULL), 7200);
	assert_int_equal(config_review(&cfg, collect, said), 0);
	assert_string_equal(said, "");
	config_free(&cfg);
	assert_int_equal(load("[agent]\nrpo_max = 1d\n[partition a]\npath = /a\n"
			      "[partition b]\npath = /b\nrpo_max = 30m\n", &cfg, &err), 0);
	assert_int_equal(config_rpo_max(&cfg, config_partition(&cfg, "a")), 86400);
	assert_int_equal(config_rpo_max(&cfg, config_partition(&cfg, "b")), 1800);
	/* no region: an error; b's rpo_max under the 4h interval: a warning */
	assert_int_equal(config_review(&cfg, collect, said), 1);
	assert_non_null(strstr(said, "E: no [region]"));
	assert_non_null(strstr(said, "W: [partition b]: rpo_max (1800s)"));
	assert_null(strstr(said, "[partition a]"));
	config_free(&cfg);
	expect_error("[agent]\nrpo_max = soon\n", ":2:", "rpo_max");
	expect_error("[partition a]\npath = /a\nrpo_max = 0\n", ":3:", "rpo_max");
}

/* config check warns about an Object Lock span over 10 years */
static void test_lock_span_review(void **state)
{
	struct config cfg;
	struct err err = { 0 };
	char said[2048] = "";
	const char *reg = "[region r]\nstore = s3\nendpoint = http://127.0.0.1:1\nbucket = b\n"
			  "object_lock = governance\n";
	char text[1024];

	(void)state;
	snprintf(text, sizeof(text), "[retention]\nkeep_monthly = 24\n[partition a]\npath = /a\n"
		 "[partition b]\npath = /b\nkeep_monthly = 1000\nmax_age = 0\n%s", reg);
	assert_int_equal(load(text, &cfg, &err), 0);
	assert_int_equal(config_review(&cfg, collect, said), 0);
	assert_non_null(strstr(said, "W: [region r] object_lock: [partition b] locks each backup for 31001 days"));
	assert_null(strstr(said, "[partition a]"));
	config_free(&cfg);
}

/* rto_max: [agent]'s, a [partition]'s over it (0 there lifts it);
 * drill_interval: default 0 (no drills by the agent), a [partition]'s over
 * [agent]'s (0 there: that partition is not drilled). */
static void test_drill_keys(void **state)
{
	struct config cfg;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(load("[partition a]\npath = /a\n", &cfg, &err), 0);
	assert_int_equal(config_rto_max(&cfg, config_partition(&cfg, "a")), 0);
	assert_int_equal(cfg.drill_interval, 0);
	config_free(&cfg);
	assert_int_equal(load("[agent]\nrto_max = 30m\ndrill_interval = 1d\n"
			      "[partition a]\npath = /a\n"
			      "[partition b]\npath = /b\nrto_max = 90s\n"
			      "[partition c]\npath = /c\nrto_max = 0\n", &cfg, &err), 0);
	assert_int_equal(config_rto_max(&cfg, NULL), 1800);
	assert_int_equal(config_rto_max(&cfg, config_partition(&cfg, "a")), 1800);
	assert_int_equal(config_rto_max(&cfg, config_partition(&cfg, "b")), 90);
	assert_int_equal(config_rto_max(&cfg, config_partition(&cfg, "c")), 0);
	assert_int_equal(cfg.drill_interval, 86400);
	assert_int_equal(config_drill_interval(&cfg, config_partition(&cfg, "a")), 86400);
	config_free(&cfg);
	assert_int_equal(load("[agent]\ndrill_interval = 1d\n"
			      "[partition a]\npath = /a\ndrill_interval = 6h\n"
			      "[partition b]\npath = /b\ndrill_interval = 0\n", &cfg, &err), 0);
	assert_int_equal(config_drill_interval(&cfg, config_partition(&cfg, "a")), 6 * 3600);
	assert_int_equal(config_drill_interval(&cfg, config_partition(&cfg, "b")), 0);
	assert_int_equal(config_drill_interval(&cfg, NULL), 86400);
	config_free(&cfg);
	expect_error("[agent]\nrto_max = fast\n", ":2:", "rto_max");
	expect_error("[agent]\ndrill_interval = -1h\n", ":2:", "drill_interval");
	expect_error("[partition a]\npath = /a\nrto_max = 1 hour\n", ":3:", "rto_max");
	expect_error("[partition a]\npath = /a\ndrill_interval = often\n", ":3:", "drill_interval");
}

/* full_every and max_chain: [agent]'s, a [partition]'s over it. */
static void test_chain_keys(void **state)
{
	struct config cfg;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(load("[agent]\nfull_every = 7d\nmax_chain = 42\n"
			      "[partition a]\npath = /a\n"
			      "[partition b]\npath = /b\nfull_every = 0\nmax_chain = 0\n",
			      &cfg, &err), 0);
	assert_int_equal(config_full_every(&cfg, NULL), 7 * 86400);
	assert_int_equal(config_max_chain(&cfg, config_partition(&cfg, "a")), 42);
	assert_int_equal(config_full_every(&cfg, config_partition(&cfg, "a")), 7 * 86400);
	assert_int_equal(config_full_every(&cfg, config_partition(&cfg, "b")), 0);
	assert_int_equal(config_max_chain(&cfg, config_partition(&cfg, "b")), 0);
	config_free(&cfg);
	assert_int_equal(load("[partition a]\npath = /a\n", &cfg, &err), 0);
	assert_int_equal(config_full_every(&cfg, NULL), 30 * 86400);
	config_free(&cfg);
	expect_error("[agent]\nmax_chain = -1\n", ":2:", "max_chain");
	expect_error("[agent]\nfull_every = monthly\n", ":2:", "full_every");
	expect_error("[partition a]\npath = /a\nmax_chain = lots\n", ":3:", "max_chain");
}

/* [partition] snapshot and lvm_snapshot_size (issue 16). */
static void test_snapshot_keys(void **state)
{
	struct config cfg;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(load("[partition a]\npath = /a\n"
			      "[partition b]\npath = /b\nsnapshot = lvm\nlvm_snapshot_size = 30%\n"
			      "[partition c]\npath = /c\nsnapshot = btrfs\nlvm_snapshot_size = 2G\n",
			      &cfg, &err), 0);
	assert_int_equal(config_partition(&cfg, "a")->snapshot_mode, COW_MODE_AUTO);
	assert_null(config_partition(&cfg, "a")->lvm_snapshot_size);
	assert_int_equal(config_partition(&cfg, "b")->snapshot_mode, COW_MODE_LVM);
	assert_string_equal(config_partition(&cfg, "b")->lvm_snapshot_size, "30%");
	assert_int_equal(config_partition(&cfg, "c")->snapshot_mode, COW_MODE_BTRFS);
	assert_string_equal(config_partition(&cfg, "c")->lvm_snapshot_size, "2G");
	config_free(&cfg);
	expect_error("[partition a]\npath = /a\nsnapshot = zfs\n", ":3:", "auto, btrfs or lvm");
	expect_error("[partition a]\npath = /a\nlvm_snapshot_size = 0%\n", ":3:", "lvm_snapshot_size");
	expect_error("[partition a]\npath = /a\nlvm_snapshot_size = 101%\n", ":3:", "percentage");
	expect_error("[partition a]\npath = /a\nlvm_snapshot_size = lots\n", ":3:", "lvm_snapshot_size");
}

static void test_backup_ids(void **state)
{
	char id[BACKUP_ID_LEN + 1], id2[BACKUP_ID_LEN + 1];
	struct err err = { 0 };

	(void)state;
	assert_int_equal(catalog_new_id(1795000000, id, &err), 0);
	assert_int_equal(strlen(id), BACKUP_ID_LEN);
	assert_int_equal(catalog_id_time(id), 1795000000);
	assert_int_equal(catalog_new_id(1795000001, id2, &err), 0);
	assert_true(strcmp(id, id2) < 0);   /* ids sort by time */
	assert_int_equal(catalog_id_time("20261124T110000Z-zzzzzz"), -1);
	assert_int_equal(catalog_id_time("garbage"), -1);
}

static void test_manifest_roundtrip(void **state)
{
	struct manifest m = { 0 }, back;
	struct err err = { 0 };
	char *json;

	(void)state;
	m.format_version = FORMAT_VERSION;
	strcpy(m.backup_id, "20261124T110000Z-abcdef");
	m.tool_version = strdup("t");
	m.host = strdup("h");
	m.partition = strdup("p");
	m.source = strdup("/srv/p");
	strcpy(m.snap_uuid, "11111111-2222-3333-4444-555555555555");
	m.files = 7;
	m.logical_bytes = 1ull << 40;
	m.compression = strdup("zstd");
	m.level = 3;
	m.frame_size = 4u << 20;
	m.data_key = strdup("h/p/20261124T110000Z-abcdef/data.tar.zst");
	m.index_key = strdup("h/p/20261124T110000Z-abcdef/index.jsonl.zst");
	memset(m.data_sha256, 'a', 64);
	memset(m.index_sha256, 'b', 64);
	assert_int_equal(manifest_to_json(&m, &json, &err), 0);
	assert_int_equal(manifest_from_json(json, strlen(json), &back, &err), 0);
	assert_string_equal(back.backup_id, m.backup_id);
	assert_int_equal(back.logical_bytes, 1ull << 40);
	assert_string_equal(back.data_key, m.data_key);
	assert_string_equal(back.encryption, "none");
	assert_string_equal(back.fstype, "");      /* none recorded: none read */
	manifest_clear(&back);
	free(json);
	strcpy(m.fstype, "xfs");                   /* restore --to-lv's mkfs */
	assert_int_equal(manifest_to_json(&m, &json, &err), 0);
	assert_non_null(strstr(json, "\"fstype\": \"xfs\""));
	assert_int_equal(manifest_from_json(json, strlen(json), &back, &err), 0);
	assert_string_equal(back.fstype, "xfs");
	manifest_clear(&back);
	/* a future format is refused with advice */
	json[strstr(json, "\"format_version\": 1") - json + 18] = '9';
	assert_int_equal(manifest_from_json(json, strlen(json), &back, &err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err.msg, "upgrade"));
	free(json);
	err_clear(&err);
	assert_int_equal(manifest_from_json("{", 1, &back, &err), -EBADMSG);
	manifest_clear(&m);
}

/* the agent's schedule keys: [agent] defaults, [partition] overrides, discover */
static void test_schedule_keys(void **state)
{
	struct config cfg;
	struct err err = { 0 };
	int s, e;

	(void)state;
	assert_int_equal(load("[agent]\ninterval = 5s\njitter = 0\nwindow = 22:00-02:30\n"
			      "max_concurrent = 2\ndiscover = /srv/db/*\ndiscover = /srv/other/*\n"
			      "[partition a]\npath = /a\ninterval = 1h\njitter = 10m\nwindow = none\n"
			      "[partition b]\npath = /b\n", &cfg, &err), 0);
	assert_int_equal(cfg.interval, 5);
	assert_int_equal(cfg.max_concurrent, 2);
	assert_int_equal(cfg.ndiscover, 2);
	assert_string_equal(cfg.discover[1], "/srv/other/*");
	assert_int_equal(config_interval(&cfg, &cfg.parts[0]), 3600);
	assert_int_equal(config_jitter(&cfg, &cfg.parts[0]), 600);
	assert_int_equal(config_interval(&cfg, &cfg.parts[1]), 5);
	assert_int_equal(config_jitter(&cfg, &cfg.parts[1]), 0);
	config_window(&cfg, &cfg.parts[0], &s, &e);
	assert_int_equal(s, e);
	config_window(&cfg, &cfg.parts[1], &s, &e);
	assert_int_equal(s, 22 * 60);
	assert_int_equal(e, 2 * 60 + 30);
	config_free(&cfg);
	/* max_concurrent > 1 is no warning any more; discover alone
	 * is something to back up; a partition's own interval judges its
	 * rpo_max */
	{
		char said[2048] = "";

		assert_int_equal(load("[agent]\nmax_concurrent = 3\ndiscover = /srv/*\n"
				      "[partition a]\npath = /a\ninterval = 1d\nrpo_max = 12h\n"
				      "[region r]\nstore = file\npath = /r\n", &cfg, &err), 0);
		assert_int_equal(config_review(&cfg, collect, said), 0);
		assert_null(strstr(said, "max_concurrent"));
		assert_non_null(strstr(said, "W: [partition a]: rpo_max (43200s) is not longer than its interval (86400s)"));
		assert_null(strstr(said, "nothing to back up"));
		config_free(&cfg);
	}
	expect_error("[agent]\nwindow = 1-5\n", ":2:", "window");
	expect_error("[agent]\ninterval = 0\n", ":2:", "interval");
	expect_error("[agent]\nmax_concurrent = 0\n", ":2:", "max_concurrent");
	expect_error("[agent]\ndiscover = srv/*\n", ":2:", "discover");
	expect_error("[partition a]\npath = /a\nwindow = 03:00-03:00\n", ":3:", "window");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_regions),
		cmocka_unit_test(test_protection_keys),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_parsers),
		cmocka_unit_test(test_rpo_max),
		cmocka_unit_test(test_lock_span_review),
		cmocka_unit_test(test_drill_keys),
		cmocka_unit_test(test_chain_keys),
		cmocka_unit_test(test_snapshot_keys),
		cmocka_unit_test(test_backup_ids),
		cmocka_unit_test(test_manifest_roundtrip),
		cmocka_unit_test(test_schedule_keys),
		cmocka_unit_test(test_low_impact_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
