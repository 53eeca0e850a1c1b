// SPDX-License-Identifier: MIT
/*
 * The LVM backend's host-testable parts (cow/lvm.h): lvs JSON, the sysfs
 * test on a fake sysfs root, snapshot sizes, the names recovery may
 * remove, the mount table, the exec helper.  The real snapshots are tested
 * in a qemu guest (tests/integration/test_lvm_*.sh).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"
#include "cow/cow.h"
#include "cow/lvm.h"

/* lvm2 2.03's output for a VG with a thin pool, a thin LV, a thick LV
 * and a thick snapshot of it. */
static const char *const lvs_json =
	"  {\n"
	"      \"report\": [\n"
	"          {\n"
	"              \"lv\": [\n"
	"                  {\"lv_name\":\"db\", \"vg_name\":\"vg0\", \"lv_attr\":\"Vwi-aotz--\", "
	"\"pool_lv\":\"pool\", \"origin\":\"\", \"lv_dm_path\":\"/dev/mapper/vg0-db\", "
	"\"lv_size\":\"67108864\", \"vg_free\":\"20971520\", \"data_percent\":\"12.50\", "
	"\"lv_kernel_major\":\"254\", \"lv_kernel_minor\":\"3\"},\n"
	"                  {\"lv_name\":\"pool\", \"vg_name\":\"vg0\", \"lv_attr\":\"twi-aotz--\", "
	"\"pool_lv\":\"\", \"origin\":\"\", \"lv_dm_path\":\"/dev/mapper/vg0-pool\", "
	"\"lv_size\":\"104857600\", \"vg_free\":\"20971520\", \"data_percent\":\"100.00\", "
	"\"lv_kernel_major\":\"254\", \"lv_kernel_minor\":\"2\"},\n"
	"                  {\"lv_name\":\"plain\", \"vg_name\":\"vg0\", \"lv_attr\":\"owi-aos---\", "
	"\"pool_lv\":\"\", \"origin\":\"\", \"lv_dm_path\":\"/dev/mapper/vg0-plain\", "
	"\"lv_size\":\"33554432\", \"vg_free\":\"20971520\", \"data_percent\":\"\", "
	"\"lv_kernel_major\":\"254\", \"lv_kernel_minor\":\"4\"},\n"
	"                  {\"lv_name\":\"snapship-orders-x1\", \"vg_name\":\"vg0\", "
	"\"lv_attr\":\"swi-I-s---\", \"pool_lv\":\"\", \"origin\":\"plain\", "
	"\"lv_dm_path\":\"/dev/mapper/vg0-snapship--orders--x1\", "
	"\"lv_size\":\"8388608\", \"vg_free\":\"20971520\", \"data_percent\":\"100.00\", "
	"\"lv_kernel_major\":\"-1\", \"lv_kernel_minor\":\"-1\"}\n"
	"              ]\n"
	"          }\n"
	"      ]\n"
	"  }\n";

static void test_parse_lvs(void **state)
{
	struct lvm_lv *lvs = NULL;
	struct err err = { 0 };
	size_t n = 0;

	(void)state;
	assert_int_equal(lvm_parse_lvs(lvs_json, &lvs, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(lvs[0].name, "db");
	assert_string_equal(lvs[0].vg, "vg0");
	assert_string_equal(lvs[0].pool, "pool");
	assert_int_equal(lvs[0].attr[0], 'V');
	assert_int_equal(lvs[0].size, 64ull << 20);
	assert_int_equal(lvs[0].vg_free, 20ull << 20);
	assert_true(lvs[0].data_percent > 12.4 && lvs[0].data_percent < 12.6);
	assert_int_equal(lvs[0].major, 254);
	assert_int_equal(lvs[0].minor, 3);
	assert_string_equal(lvs[0].dm_path, "/dev/mapper/vg0-db");
	assert_true(lvs[1].data_percent >= 100.0);
	assert_true(lvs[2].data_percent < 0);   /* "" is unknown */
	assert_string_equal(lvs[3].origin, "plain");
	assert_int_equal(lvs[3].major, -1);
	free(lvs);
}

static void test_parse_lvs_bad(void **state)
{
	static const char *const bad[] = {
		"", "not json", "{}", "{\"report\":[]}", "{\"report\":[{\"lv\":{}}]}",
		"{\"report\":[{\"lv\":[{\"lv_name\":\"x\"}]}]}",     /* no vg_name */
		"{\"report\":[{\"lv\":[7]}]}",
	};
	struct lvm_lv *lvs = (struct lvm_lv *)1;
	struct err err = { 0 };
	size_t n = 9;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&err);
		assert_int_equal(lvm_parse_lvs(bad[i], &lvs, &n, &err), -EBADMSG);
		assert_null(lvs);
		assert_int_equal(n, 0);
		assert_non_null(strstr(err.msg, "lvs"));
	}
	/* an empty VG is fine */
	assert_int_equal(lvm_parse_lvs("{\"report\":[{\"lv\":[]}]}", &lvs, &n,
				       &err), 0);
	assert_int_equal(n, 0);
	free(lvs);
}

static void put_file(const char *root, const char *rel, const char *text)
{
	char path[512], dir[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	assert_int_equal(util_mkdir_p(dir, 0755), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_sysfs(void **state)
{
	char root[] = "/tmp/test_lvm.sys.XXXXXX", cmd[600], name[64];
	bool is_lvm = true;

	(void)state;
	assert_non_null(mkdtemp(root));
	put_file(root, "sys/dev/block/254:3/dm/uuid",
		 "LVM-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWx\n");
	put_file(root, "sys/dev/block/254:3/dm/name", "vg0-db\n");
	put_file(root, "sys/dev/block/254:7/dm/uuid", "CRYPT-LUKS2-abc-sda2\n");
	put_file(root, "sys/dev/block/8:1/size", "2048\n");   /* no dm/ */
	assert_int_equal(lvm_sysfs_is_lvm(root, 254, 3, &is_lvm, name,
					  sizeof(name)), 0);
	assert_true(is_lvm);
	assert_string_equal(name, "vg0-db");
	assert_int_equal(lvm_sysfs_is_lvm(root, 254, 7, &is_lvm, NULL, 0), 0);
	assert_false(is_lvm);     /* device-mapper, but not LVM's */
	assert_int_equal(lvm_sysfs_is_lvm(root, 8, 1, &is_lvm, NULL, 0), 0);
	assert_false(is_lvm);
	assert_int_equal(lvm_sysfs_is_lvm(root, 9, 9, &is_lvm, NULL, 0), 0);
	assert_false(is_lvm);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

static void test_snapshot_bytes(void **state)
{
	uint64_t b = 0;

	(void)state;
	assert_int_equal(lvm_snapshot_bytes(NULL, 1000ull << 20, &b), 0);
	assert_int_equal(b, 200ull << 20);          /* the default, 20% */
	assert_int_equal(lvm_snapshot_bytes("5%", 100ull << 30, &b), 0);
	assert_int_equal(b, 5ull << 30);
	assert_int_equal(lvm_snapshot_bytes("100%", 4096, &b), 0);
	assert_int_equal(b, 4096);
	assert_int_equal(lvm_snapshot_bytes("33%", 1000, &b), 0);
	assert_int_equal(b, 512);                   /* 330 rounded up to 512 */
	assert_int_equal(lvm_snapshot_bytes("512M", 1, &b), 0);
	assert_int_equal(b, 512ull << 20);
	assert_int_equal(lvm_snapshot_bytes("2G", 0, &b), 0);
	assert_int_equal(b, 2ull << 30);
	assert_int_equal(lvm_snapshot_bytes("1000", 0, &b), 0);
	assert_int_equal(b, 1024);
	assert_int_equal(lvm_snapshot_bytes("0%", 1 << 20, &b), -EINVAL);
	assert_int_equal(lvm_snapshot_bytes("101%", 1 << 20, &b), -EINVAL);
	assert_int_equal(lvm_snapshot_bytes("%", 1 << 20, &b), -EINVAL);
	assert_int_equal(lvm_snapshot_bytes("-5%", 1 << 20, &b), -EINVAL);
	assert_int_equal(lvm_snapshot_bytes("5.5%", 1 << 20, &b), -EINVAL);
	assert_int_equal(lvm_snapshot_bytes("20%", 0, &b), -EINVAL);
	assert_int_equal(lvm_snapshot_bytes("0", 1 << 20, &b), -EINVAL);
	assert_int_equal(lvm_snapshot_bytes("lots", 1 << 20, &b), -EINVAL);
	assert_true(cow_lvm_size_ok("20%"));
	assert_true(cow_lvm_size_ok("1G"));
	assert_false(cow_lvm_size_ok("0"));
	assert_false(cow_lvm_size_ok(NULL));
}

static void test_names(void **state)
{
	(void)state;
	assert_true(lvm_snap_name_ok("snapship-orders-20261124T110000Z-a1b2c3"));
	assert_true(lvm_snap_name_ok("snapship-a.b_c-1"));
	assert_false(lvm_snap_name_ok("db"));
	assert_false(lvm_snap_name_ok("snapship-"));
	assert_false(lvm_snap_name_ok("snapship-orders"));    /* no id */
	assert_false(lvm_snap_name_ok("snapship-orders-"));
	assert_false(lvm_snap_name_ok("snapship--x"));        /* no partition */
	assert_false(lvm_snap_name_ok("Snapship-orders-1"));
	assert_false(lvm_snap_name_ok("xsnapship-orders-1"));
	assert_false(lvm_snap_name_ok("snapship-or/ders-1"));
	assert_false(lvm_snap_name_ok("snapship-orders-1 "));
	assert_false(lvm_snap_name_ok("snapship-orders-1:2"));
	{
		char longname[200];

		memset(longname, 'a', sizeof(longname));
		memcpy(longname, "snapship-p-", 11);
		longname[LVM_NAME_MAX] = '\0';
		assert_true(lvm_snap_name_ok(longname));
		longname[LVM_NAME_MAX] = 'a';
		longname[LVM_NAME_MAX + 1] = '\0';
		assert_false(lvm_snap_name_ok(longname));
	}
}

/* Recovery refuses, before running any lvm2 command, an entry whose LV
 * is not snapship-<partition>-<id> at its own mount point. */
static void test_recover_refuses(void **state)
{
	static const char *const bad[][2] = {
		{ "vg0/db", "/var/lib/snapship/lvm/db" },
		{ "vg0/snapship-orders", "/var/lib/snapship/lvm/snapship-orders" },
		{ "vg0/snapship-orders-1", "/var/lib/snapship/lvm/snapship-orders-2" },
		{ "snapship-orders-1", "/var/lib/snapship/lvm/snapship-orders-1" },
		{ "", "/x/snapship-orders-1" },
		{ "vg0/snapship-orders-1/..", "/x/.." },
	};
	struct err err = { 0 };
	bool removed = true;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&err);
		assert_int_equal(lvm_recover(bad[i][0], bad[i][1], &removed,
					     &err), -EINVAL);
		assert_false(removed);
		assert_non_null(strstr(err.msg, "refusing"));
	}
}

static void test_mount_of(void **state)
{
	char fstype[32], mnt[4096], rel[4096], dir[] = "/tmp/test_lvm.mnt.XXXXXX";
	char sub[4096];
	struct err err = { 0 };

	(void)state;
	assert_int_equal(lvm_mount_of("/", fstype, sizeof(fstype), mnt, rel,
				      &err), 0);
	assert_string_equal(mnt, "/");
	assert_string_equal(rel, "");
	assert_true(strlen(fstype) > 0);
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/a b", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(lvm_mount_of(sub, fstype, sizeof(fstype), mnt, rel,
				      &err), 0);
	/* mnt + "/" + rel is the directory again */
	{
		char joined[8192];

		snprintf(joined, sizeof(joined), "%s%s%s", mnt,
			 strcmp(mnt, "/") ? "/" : "", rel);
		if (strncmp(sub, joined, strlen(sub))) {
			/* a bind mount's root shows in rel; only the tail must match */
			assert_non_null(strstr(joined, "a b"));
		} else {
			assert_string_equal(joined, sub);
		}
	}
	assert_int_equal(lvm_mount_of("/nonexistent-snapship", fstype,
				      sizeof(fstype), mnt, rel, &err), -ENOENT);
	rmdir(sub);
	rmdir(dir);
}

static void test_exec(void **state)
{
	const char *echo[] = { "echo", "hello", NULL };
	const char *fail[] = { "ls", "/nonexistent-snapship-dir", NULL };
	const char *slow[] = { "sleep", "30", NULL };
	const char *none[] = { "no-such-program-snapship", NULL };
	struct err err = { 0 };
	char *out = NULL;
	double t0;

	(void)state;
	assert_int_equal(lvm_exec(echo, 10, &out, &err), 0);
	assert_string_equal(out, "hello\n");
	free(out);
	assert_int_equal(lvm_exec(fail, 10, &out, &err), -EIO);
	assert_null(out);
	/* the command and its stderr are in the message */
	assert_non_null(strstr(err.msg, "ls /nonexistent-snapship-dir failed"));
	assert_non_null(strstr(err.msg, "nonexistent-snapship-dir"));
	assert_non_null(strstr(err.msg, "exit status"));
	err_clear(&err);
	t0 = util_now_mono();
	assert_int_equal(lvm_exec(slow, 1, NULL, &err), -ETIMEDOUT);
	printf("timeout after %.2f s\n", util_now_mono() - t0);
	assert_true(util_now_mono() - t0 < 25);
	assert_non_null(strstr(err.msg, "did not finish in 1 s"));
	err_clear(&err);
	assert_int_equal(lvm_exec(none, 10, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "install lvm2"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_lvs),
		cmocka_unit_test(test_parse_lvs_bad),
		cmocka_unit_test(test_sysfs),
		cmocka_unit_test(test_snapshot_bytes),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_recover_refuses),
		cmocka_unit_test(test_mount_of),
		cmocka_unit_test(test_exec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
