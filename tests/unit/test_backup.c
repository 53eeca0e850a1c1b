// SPDX-License-Identifier: MIT
/*
 * backup: the run's phases and their unwinding, seen through the cancel
 * seam (backup_opts.cancelled, asked before plan, freeze, upload, commit,
 * and inside the upload between writes of the stream).
 * A run stopped before any phase leaves nothing behind: no object in the
 * store, no snapshot, no journal entry; a run never stopped commits.
 *
 * The cases past "plan" need a real btrfs: they run when TEST_BTRFS names a
 * directory on a mounted btrfs and we are root; otherwise they are skipped
 * with the reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include "tests/unit/unit.h"

#include "agent/backup.h"
#include "agent/config.h"
#include "agent/geo.h"
#include "common/err.h"
#include "uploader/store.h"

#include <btrfsutil.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

struct fixture {
	char state[256];        /* state_dir, in /tmp */
	char store[256];        /* the directory store, in /tmp */
	char work[512];         /* scratch dir on TEST_BTRFS, "" without btrfs */
};

/* Cancel from the at-th question on (1: before plan; a cancellation
 * stays); 0: never (only count the questions). */
struct cancel {
	int at;
	int asked;
};

static bool cancel_at(void *ctx)
{
	struct cancel *c = ctx;

	return ++c->asked >= c->at && c->at;
}

static void rm_tree(const char *path)
{
	struct stat st;
	struct dirent *de;
	DIR *d;

	if (lstat(path, &st))
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	if (btrfs_util_is_subvolume(path) == BTRFS_UTIL_OK &&
	    btrfs_util_delete_subvolume(path, BTRFS_UTIL_DELETE_SUBVOLUME_RECURSIVE) ==
		    BTRFS_UTIL_OK)
		return;
	d = opendir(path);
	if (d) {
		while ((de = readdir(d))) {
			char child[PATH_MAX];

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
			rm_tree(child);
		}
		closedir(d);
	}
	rmdir(path);
}

static int nfiles;

static int count_file(const char *path, const struct stat *st, int type,
		      struct FTW *ftw)
{
	(void)path;
	(void)st;
	(void)ftw;
	if (type == FTW_F || type == FTW_SL)
		nfiles++;
	return 0;
}

/* Files (not directories) below dir; 0 if dir does not exist. */
static int files_under(const char *dir)
{
	nfiles = 0;
	if (access(dir, F_OK))
		return 0;
	assert_int_equal(nftw(dir, count_file, 16, FTW_PHYS), 0);
	return nfiles;
}

/* Entries of dir (snapshots, journal entries); 0 if it does not exist. */
static int entries_in(const char *dir)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			printf("# %s/%s\n", dir, de->d_name);
			n++;
		}
	closedir(d);
	return n;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	const char *btrfs = getenv("TEST_BTRFS");
	struct statfs sfs;

	assert_non_null(fx);
	strcpy(fx->state, "/tmp/test_backup.state.XXXXXX");
	assert_non_null(mkdtemp(fx->state));
	strcpy(fx->store, "/tmp/test_backup.store.XXXXXX");
	assert_non_null(mkdtemp(fx->store));
	if (btrfs && geteuid() == 0 && !statfs(btrfs, &sfs) &&
	    (unsigned long)sfs.f_type == BTRFS_SUPER_MAGIC) {
		snprintf(fx->work, sizeof(fx->work), "%s/test_backup.XXXXXX", btrfs);
		if (!mkdtemp(fx->work))
			fx->work[0] = '\0';
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	rm_tree(fx->state);
	rm_tree(fx->store);
	if (fx->work[0])
		rm_tree(fx->work);
	free(fx);
	return 0;
}

static void need_btrfs(const struct fixture *fx)
{
	const char *btrfs = getenv("TEST_BTRFS");

	if (fx->work[0])
		return;
	if (!btrfs)
		unit_skip("TEST_BTRFS is not set (a directory on a mounted btrfs; tests/run.sh sets it as root)");
	else if (geteuid() != 0)
		unit_skip("needs root for btrfs snapshots");
	else
		unit_skip("TEST_BTRFS=%s is not a usable directory on btrfs", btrfs);
}

/* One backup of source into the fixture's store, cancelled as c says. */
static int run_backup(const struct fixture *fx, const char *source,
		      struct cancel *c, struct backup_result *res,
		      struct err *err)
{
	struct cfg_partition part = {
		.name = (char *)"p", .path = (char *)source, .hook_timeout = 10,
	};
	struct backup_opts bo = { .cancelled = cancel_at, .cancel_ctx = c };
	struct config cfg;
	struct regions rs;
	int ret;

	memset(&rs, 0, sizeof(rs));
	assert_int_equal(config_defaults(&cfg, err), 0);
	free(cfg.state_dir);
	cfg.state_dir = strdup(fx->state);
	rs.n = 1;
	rs.v[0].name = (char *)"default";
	rs.v[0].prefix = (char *)"";
	rs.v[0].primary = true;
	assert_int_equal(store_open(fx->store, &rs.v[0].store, err), 0);
	ret = backup_partition(&cfg, &part, &rs, "h", &bo, res, err);
	store_free(rs.v[0].store);
	config_free(&cfg);
	return ret;
}

/* Stopped before plan: the source is not even looked at. */
static void test_cancel_before_plan(void **state)
{
	struct fixture *fx = *state;
	struct cancel c = { .at = 1 };
	struct backup_result res;
	struct err err = { 0 };

	assert_int_equal(run_backup(fx, "/nonexistent/source", &c, &res, &err),
			 -ECANCELED);
	assert_true(c.asked >= 1);
	assert_non_null(strstr(err.msg, "cancelled before its plan phase: nothing to undo"));
	assert_int_equal(res.m.backup_id[0], '\0');    /* nothing to clear */
	assert_null(res.m.host);
	assert_int_equal(files_under(fx->store), 0);
}

/* A subvolume <work>/<name> with one file. */
static void make_source(const struct fixture *fx, const char *name, char *path)
{
	char file[PATH_MAX];
	FILE *f;

	snprintf(path, PATH_MAX, "%s/%s", fx->work, name);
	assert_int_equal(btrfs_util_create_subvolume(path, 0, NULL, NULL), BTRFS_UTIL_OK);
	snprintf(file, sizeof(file), "%s/file.txt", path);
	f = fopen(file, "w");
	assert_non_null(f);
	assert_true(fputs("hello", f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/*
 * Stopped before freeze, upload (snapshot held), in the middle of the
 * upload (the first question the stream asks) and before commit (objects
 * committed, snapshot gone): the unwind leaves no object, no snapshot and
 * no journal entry, and says what it undid.  The question before commit is
 * the last of a run never cancelled (counted first).
 */
static void test_cancel_between_phases(void **state)
{
	static const char *const phase[] = {
		"before its freeze phase", "before its upload phase",
		"in its upload phase: 2 unfinished uploads aborted", "before its commit phase",
	};
	struct fixture *fx = *state;
	char source[PATH_MAX], snaps[PATH_MAX], journal[PATH_MAX];
	struct cancel count = { .at = 0 };
	struct backup_result res;
	struct err err = { 0 };
	int at[4] = { 2, 3, 4, 0 };

	need_btrfs(fx);
	make_source(fx, "src", source);
	snprintf(snaps, sizeof(snaps), "%s/.snapship", fx->work);
	snprintf(journal, sizeof(journal), "%s/journal", fx->state);
	assert_int_equal(run_backup(fx, source, &count, &res, &err), 0);
	manifest_clear(&res.m);
	rm_tree(fx->store);
	assert_int_equal(mkdir(fx->store, 0700), 0);
	at[3] = count.asked;
	assert_true(at[3] > 4);      /* the stream asked too */
	for (int i = 0; i < 4; i++) {
		struct cancel c = { .at = at[i] };

		printf("# cancelled at question %d: %s\n", at[i], phase[i]);
		err_clear(&err);
		assert_int_equal(run_backup(fx, source, &c, &res, &err), -ECANCELED);
		printf("# %s\n", err.msg);
		assert_non_null(strstr(err.msg, phase[i]));
		assert_non_null(strstr(err.msg, "nothing committed"));
		if (i > 0)
			assert_non_null(strstr(err.msg, "snapshot released"));
		assert_null(res.m.host);
		assert_int_equal(files_under(fx->store), 0);
		assert_int_equal(entries_in(snaps), 0);
		assert_int_equal(entries_in(journal), 0);
	}
}

/* Never stopped: asked before plan, freeze, upload and commit; committed. */
static void test_not_cancelled_commits(void **state)
{
	struct fixture *fx = *state;
	char source[PATH_MAX], snaps[PATH_MAX];
	struct cancel c = { .at = 0 };
	struct backup_result res;
	struct err err = { 0 };

	need_btrfs(fx);
	make_source(fx, "src2", source);
	assert_int_equal(run_backup(fx, source, &c, &res, &err), 0);
	assert_true(c.asked >= 4);
	assert_string_equal(res.m.host, "h");
	assert_int_equal(res.m.files, 1);
	assert_int_equal(files_under(fx->store), 3);    /* data, index, manifest */
	snprintf(snaps, sizeof(snaps), "%s/.snapship", fx->work);
	assert_int_equal(entries_in(snaps), 0);
	manifest_clear(&res.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cancel_before_plan),
		cmocka_unit_test(test_cancel_between_phases),
		cmocka_unit_test(test_not_cancelled_commits),
	};

	return unit_main(tests, setup, teardown);
}
