// SPDX-License-Identifier: MIT
/*
 * cow: freeze, release, journal and recovery.
 *
 * Tests that need a real btrfs run when TEST_BTRFS names a directory on a
 * mounted btrfs and we are root; otherwise they are skipped with the reason.
 * Fault injection reads SNAPSHIP_FAULT once per process, so those tests
 * re-run this binary ("--child ...") with the variable set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include "tests/unit/unit.h"

#include "common/err.h"
#include "common/util.h"
#include "cow/cow.h"

#include <btrfsutil.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fixture {
	char state[512];        /* state_dir, in /tmp */
	char shm[512];          /* scratch dir on tmpfs (/dev/shm), "" if none */
	char work[512];         /* scratch dir on TEST_BTRFS, "" without btrfs */
};

static char self_exe[PATH_MAX];

/* snprintf that fails the test instead of truncating. */
__attribute__((format(printf, 3, 4)))
static void pathf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < size);
}

static bool is_fs(const char *path, unsigned long magic)
{
	struct statfs sfs;

	return statfs(path, &sfs) == 0 && (unsigned long)sfs.f_type == magic;
}

/* Remove a tree, deleting btrfs subvolumes (also read-only ones) whole. */
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
	    btrfs_util_delete_subvolume(path,
					BTRFS_UTIL_DELETE_SUBVOLUME_RECURSIVE) ==
		    BTRFS_UTIL_OK)
		return;
	d = opendir(path);
	if (d) {
		while ((de = readdir(d))) {
			char child[PATH_MAX];

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			pathf(child, sizeof(child), "%s/%s", path, de->d_name);
			rm_tree(child);
		}
		closedir(d);
	}
	rmdir(path);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Number of journal entries (any file) in <state>/journal. */
static int journal_count(const char *state)
{
	char dir[PATH_MAX];
	struct dirent *de;
	int n = 0;
	DIR *d;

	pathf(dir, sizeof(dir), "%s/journal", state);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void journal_put(const char *state, const char *name, const char *text)
{
	char path[PATH_MAX];

	pathf(path, sizeof(path), "%s/journal", state);
	mkdir(path, 0700);
	pathf(path, sizeof(path), "%s/journal/%s", state, name);
	write_file(path, text);
}

static void journal_put_snapshot(const char *state, const char *name,
				 const char *snapshot)
{
	char text[PATH_MAX + 64];

	pathf(text, sizeof(text), "snapshot=%s\nsource=/x\npid=1\n", snapshot);
	journal_put(state, name, text);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	const char *btrfs = getenv("TEST_BTRFS");

	assert_non_null(fx);
	strcpy(fx->state, "/tmp/test_cow.state.XXXXXX");
	assert_non_null(mkdtemp(fx->state));
	strcpy(fx->shm, "/dev/shm/test_cow.XXXXXX");
	if (!is_fs("/dev/shm", TMPFS_MAGIC) || !mkdtemp(fx->shm))
		fx->shm[0] = '\0';
	if (btrfs && geteuid() == 0 && is_fs(btrfs, BTRFS_SUPER_MAGIC)) {
		snprintf(fx->work, sizeof(fx->work), "%s/test_cow.XXXXXX", btrfs);
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
	if (fx->shm[0])
		rm_tree(fx->shm);
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
		unit_skip("TEST_BTRFS=%s is not a usable directory on btrfs",
			  btrfs);
}

static void need_shm(const struct fixture *fx)
{
	if (fx->shm[0])
		return;
	unit_skip("/dev/shm is not a writable tmpfs");
}

/* A subvolume <work>/<name> holding data/file.txt = "hello". */
static void make_source(const struct fixture *fx, const char *name, char *path)
{
	char file[PATH_MAX];

	pathf(path, PATH_MAX, "%s/%s", fx->work, name);
	assert_int_equal(btrfs_util_create_subvolume(path, 0, NULL, NULL),
			 BTRFS_UTIL_OK);
	pathf(file, sizeof(file), "%s/data", path);
	assert_int_equal(mkdir(file, 0755), 0);
	pathf(file, sizeof(file), "%s/data/file.txt", path);
	write_file(file, "hello");
}

/*
 * Run this binary as "--child ARGS..." with SNAPSHIP_FAULT=fault; return its
 * exit status.
 */
static int run_child(const char *fault, const char *mode, const char *a,
		     const char *b, const char *c)
{
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("SNAPSHIP_FAULT", fault, 1);
		execl(self_exe, self_exe, "--child", mode, a, b, c, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Child side: exit status is -ret of the step under test. */
static int child_main(int argc, char **argv)
{
	struct cow_snapshot *snap = NULL;
	struct err err = { 0 };
	int ret;

	if (argc != 6)
		return 100;
	ret = cow_freeze(argv[3], NULL, argv[4], argv[5], &snap, &err);
	if (!strcmp(argv[2], "freeze")) {
		if (ret)
			fprintf(stderr, "child: %s\n", err.msg);
		else
			cow_release(snap, NULL);
		return -ret;
	}
	if (!strcmp(argv[2], "release")) {
		if (ret) {
			fprintf(stderr, "child: freeze: %s\n", err.msg);
			return 101;
		}
		ret = cow_release(snap, &err);
		if (ret && !strstr(err.msg, "injected"))
			return 102;
		return -ret;
	}
	return 100;
}

/* ---- no btrfs needed ---------------------------------------------------- */

static void test_check_missing(void **state)
{
	struct err err = { 0 };

	(void)state;
	assert_int_equal(cow_check_source("/nonexistent-snapship/orders", &err),
			 -ENOENT);
	assert_int_equal(err.code, -ENOENT);
	assert_non_null(strstr(err.msg, "\"/nonexistent-snapship/orders\""));
	assert_non_null(strstr(err.msg, "does not exist"));
}

static void test_check_not_dir(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	char file[PATH_MAX];

	pathf(file, sizeof(file), "%s/plain-file", fx->state);
	write_file(file, "x");
	assert_int_equal(cow_check_source(file, &err), -ENOTDIR);
	assert_non_null(strstr(err.msg, "not a directory"));
}

static void test_check_not_btrfs(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };

	need_shm(fx);
	assert_int_equal(cow_check_source(fx->shm, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "is on tmpfs, not btrfs"));
	assert_non_null(strstr(err.msg, "btrfs subvolume create"));
	if (is_fs(fx->state, EXT4_SUPER_MAGIC)) {
		err_clear(&err);
		assert_int_equal(cow_check_source(fx->state, &err), -EOPNOTSUPP);
		assert_non_null(strstr(err.msg, "is on ext4, not btrfs"));
	}
}

static void test_freeze_not_btrfs_leaves_nothing(void **state)
{
	struct fixture *fx = *state;
	struct cow_snapshot *snap = (struct cow_snapshot *)1;
	struct err err = { 0 };

	need_shm(fx);
	assert_int_equal(cow_freeze(fx->shm, NULL, fx->state, "t1", &snap, &err),
			 -EOPNOTSUPP);
	assert_null(snap);
	assert_int_equal(journal_count(fx->state), 0);
	assert_non_null(strstr(err.msg, "not btrfs"));
}

static void test_freeze_bad_args(void **state)
{
	struct fixture *fx = *state;
	struct cow_snapshot *snap = NULL;
	struct err err = { 0 };

	assert_int_equal(cow_freeze("/srv", NULL, fx->state, "a/b", &snap, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "invalid snapshot tag"));
	err_clear(&err);
	assert_int_equal(cow_freeze("/srv", NULL, fx->state, "", &snap, &err),
			 -EINVAL);
	err_clear(&err);
	assert_int_equal(cow_freeze("/srv", NULL, fx->state, "..", &snap, &err),
			 -EINVAL);
	err_clear(&err);
	assert_int_equal(cow_freeze(NULL, NULL, fx->state, "t", &snap, &err),
			 -EINVAL);
	assert_int_equal(cow_freeze("/srv", NULL, fx->state, "t", NULL, NULL),
			 -EINVAL);
	assert_null(snap);
	assert_int_equal(journal_count(fx->state), 0);
}

static void test_release_null(void **state)
{
	struct err err = { 0 };

	(void)state;
	assert_int_equal(cow_release(NULL, &err), 0);
	assert_int_equal(err.code, 0);
}

static void test_recover_empty(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	char dir[PATH_MAX];
	unsigned removed = 99;

	assert_int_equal(cow_recover(fx->state, &removed, &err), 0);
	assert_int_equal(removed, 0);
	pathf(dir, sizeof(dir), "%s/journal", fx->state);
	assert_int_equal(mkdir(dir, 0700), 0);
	removed = 99;
	assert_int_equal(cow_recover(fx->state, &removed, &err), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(cow_recover(fx->state, NULL, &err), 0);
	assert_int_equal(err.code, 0);
}

static void test_recover_drops_missing(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	char gone[PATH_MAX];
	unsigned removed = 99;

	pathf(gone, sizeof(gone), "%s/snaps/snapship-gone", fx->state);
	journal_put_snapshot(fx->state, "snapship-gone.journal", gone);
	journal_put(fx->state, ".snapship-half.123.tmp", "snapshot=/x/snapship-");
	assert_int_equal(journal_count(fx->state), 2);
	assert_int_equal(cow_recover(fx->state, &removed, &err), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(journal_count(fx->state), 0);
}

static void test_recover_refuses_plain_dirs(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	char decoy[PATH_MAX], noprefix[PATH_MAX], file[PATH_MAX];
	unsigned removed = 99;

	pathf(decoy, sizeof(decoy), "%s/snapship-decoy", fx->state);
	pathf(noprefix, sizeof(noprefix), "%s/precious", fx->state);
	assert_int_equal(mkdir(decoy, 0700), 0);
	assert_int_equal(mkdir(noprefix, 0700), 0);
	pathf(file, sizeof(file), "%s/keep", decoy);
	write_file(file, "keep");
	pathf(file, sizeof(file), "%s/keep", noprefix);
	write_file(file, "keep");
	journal_put_snapshot(fx->state, "snapship-decoy.journal", decoy);
	journal_put_snapshot(fx->state, "precious.journal", noprefix);
	journal_put(fx->state, "damaged.journal", "garbage\n");

	assert_int_equal(cow_recover(fx->state, &removed, &err), 0);
	assert_int_equal(removed, 0);
	pathf(file, sizeof(file), "%s/keep", decoy);
	assert_true(exists(file));
	pathf(file, sizeof(file), "%s/keep", noprefix);
	assert_true(exists(file));
	/* entries stay for the operator to look at */
	assert_int_equal(journal_count(fx->state), 3);
}

/* SNAPSHIP_FAULT=cow.freeze: freeze fails, no snapshot, no journal entry. */
static void test_fault_freeze(void **state)
{
	struct fixture *fx = *state;
	char source[PATH_MAX], snap[PATH_MAX];

	if (fx->work[0]) {
		make_source(fx, "orders", source);
		pathf(snap, sizeof(snap), "%s/.snapship/snapship-f1", fx->work);
	} else {
		need_shm(fx);
		pathf(source, sizeof(source), "%s", fx->shm);
		pathf(snap, sizeof(snap), "/dev/shm/.snapship/snapship-f1");
	}
	assert_int_equal(run_child("cow.freeze", "freeze", source, fx->state,
				   "f1"), EIO);
	assert_false(exists(snap));
	assert_int_equal(journal_count(fx->state), 0);
	/* a fault on another point does not fire */
	if (fx->work[0])
		assert_int_equal(run_child("cow.other", "freeze", source,
					   fx->state, "f1"), 0);
}

/* ---- btrfs ------------------------------------------------------------ */

static void test_freeze_release(void **state)
{
	struct fixture *fx = *state;
	struct cow_snapshot *snap = NULL;
	struct err err = { 0 };
	char source[PATH_MAX], path[PATH_MAX], buf[16] = "";
	bool read_only = false;
	int64_t before = (int64_t)time(NULL) * 1000000000LL;
	char *journal;
	struct stat st;
	FILE *f;
	int fd;

	need_btrfs(fx);
	make_source(fx, "orders", source);
	assert_int_equal(cow_check_source(source, &err), 0);
	assert_int_equal(cow_freeze(source, NULL, fx->state,
				    "orders-20261124T110000Z-a1b2c3", &snap,
				    &err), 0);
	assert_int_equal(err.code, 0);
	assert_non_null(snap);

	pathf(path, sizeof(path), "%s/.snapship/snapship-orders-"
		 "20261124T110000Z-a1b2c3", fx->work);
	assert_string_equal(snap->path, path);
	assert_string_equal(snap->source, source);
	pathf(path, sizeof(path), "%s/.snapship", fx->work);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	/* read-only subvolume with the content */
	assert_int_equal(btrfs_util_is_subvolume(snap->path), BTRFS_UTIL_OK);
	assert_int_equal(btrfs_util_get_subvolume_read_only(snap->path,
							    &read_only),
			 BTRFS_UTIL_OK);
	assert_true(read_only);
	pathf(path, sizeof(path), "%s/data/file.txt", snap->path);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "hello");
	fd = open(path, O_WRONLY);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, EROFS);

	/* identity */
	assert_int_equal(strlen(snap->uuid), 36);
	for (int i = 0; i < 36; i++) {
		char c = snap->uuid[i];

		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(c, '-');
		else
			assert_true((c >= '0' && c <= '9') ||
				    (c >= 'a' && c <= 'f'));
	}
	/* the source's UUID, as btrfs has it */
	{
		struct btrfs_util_subvolume_info si;
		char hex[33], want[37];

		assert_int_equal(btrfs_util_subvolume_info(source, 0, &si), BTRFS_UTIL_OK);
		util_hex(si.uuid, sizeof(si.uuid), hex);
		snprintf(want, sizeof(want), "%.8s-%.4s-%.4s-%.4s-%.12s",
			 hex, hex + 8, hex + 12, hex + 16, hex + 20);
		assert_string_equal(snap->source_uuid, want);
		assert_string_not_equal(snap->source_uuid, snap->uuid);
	}
	assert_true(snap->generation > 0);
	assert_true(snap->time_ns >= before - 1000000000LL);
	assert_true(snap->time_ns <= (int64_t)(time(NULL) + 1) * 1000000000LL);

	/* the journal names the snapshot */
	assert_int_equal(journal_count(fx->state), 1);
	assert_non_null(snap->journal);
	journal = strdup(snap->journal);
	f = fopen(journal, "r");
	assert_non_null(f);
	{
		char line[PATH_MAX + 16], want[PATH_MAX + 16];
		bool found = false;

		pathf(want, sizeof(want), "snapshot=%s\n", snap->path);
		while (fgets(line, sizeof(line), f))
			found |= !strcmp(line, want);
		assert_true(found);
	}
	fclose(f);
	pathf(path, sizeof(path), "%s", snap->path);

	/* the same tag again is refused, the first snapshot untouched */
	{
		struct cow_snapshot *again = NULL;
		struct err err2 = { 0 };

		assert_int_equal(cow_freeze(source, NULL, fx->state,
					    "orders-20261124T110000Z-a1b2c3",
					    &again, &err2), -EEXIST);
		assert_null(again);
		assert_non_null(strstr(err2.msg, "already exists"));
	}

	assert_int_equal(cow_release(snap, &err), 0);
	assert_int_equal(err.code, 0);
	assert_false(exists(path));
	assert_false(exists(journal));
	assert_int_equal(journal_count(fx->state), 0);
	free(journal);
	/* the source is untouched */
	pathf(path, sizeof(path), "%s/data/file.txt", source);
	assert_true(exists(path));
}

static void test_freeze_explicit_snap_dir(void **state)
{
	struct fixture *fx = *state;
	struct cow_snapshot *snap = NULL;
	struct err err = { 0 };
	char source[PATH_MAX], dir[PATH_MAX], path[PATH_MAX];

	need_btrfs(fx);
	make_source(fx, "orders", source);
	pathf(dir, sizeof(dir), "%s/snaps/deep", fx->work);
	assert_int_equal(cow_freeze(source, dir, fx->state, "x1", &snap, &err),
			 0);
	pathf(path, sizeof(path), "%s/snapship-x1", dir);
	assert_string_equal(snap->path, path);
	assert_true(exists(path));
	assert_int_equal(cow_release(snap, &err), 0);
	assert_false(exists(path));
	assert_true(exists(dir));
}

static void test_freeze_existing_dest(void **state)
{
	struct fixture *fx = *state;
	struct cow_snapshot *snap = NULL;
	struct err err = { 0 };
	char source[PATH_MAX], path[PATH_MAX];

	need_btrfs(fx);
	make_source(fx, "orders", source);
	pathf(path, sizeof(path), "%s/.snapship", fx->work);
	assert_int_equal(mkdir(path, 0700), 0);
	pathf(path, sizeof(path), "%s/.snapship/snapship-t1", fx->work);
	assert_int_equal(mkdir(path, 0700), 0);
	pathf(path, sizeof(path), "%s/.snapship/snapship-t1/keep", fx->work);
	write_file(path, "keep");

	assert_int_equal(cow_freeze(source, NULL, fx->state, "t1", &snap, &err),
			 -EEXIST);
	assert_null(snap);
	assert_non_null(strstr(err.msg, "already exists"));
	assert_true(exists(path));
	assert_int_equal(journal_count(fx->state), 0);
}

/* A crash between freeze and release: recovery deletes the snapshot. */
static void test_recover_after_crash(void **state)
{
	struct fixture *fx = *state;
	struct cow_snapshot *snap = NULL;
	struct err err = { 0 };
	char source[PATH_MAX], path[PATH_MAX];
	unsigned removed = 0;

	need_btrfs(fx);
	make_source(fx, "orders", source);
	assert_int_equal(cow_freeze(source, NULL, fx->state, "c1", &snap, &err),
			 0);
	pathf(path, sizeof(path), "%s", snap->path);
	/* "crash": forget the snapshot without releasing it */
	free(snap->path);
	free(snap->source);
	free(snap->journal);
	free(snap);
	assert_true(exists(path));
	assert_int_equal(journal_count(fx->state), 1);

	assert_int_equal(cow_recover(fx->state, &removed, &err), 0);
	assert_int_equal(err.code, 0);
	assert_int_equal(removed, 1);
	assert_false(exists(path));
	assert_int_equal(journal_count(fx->state), 0);

	removed = 99;
	assert_int_equal(cow_recover(fx->state, &removed, &err), 0);
	assert_int_equal(removed, 0);
}

/* Recovery never deletes what is not a read-only snapship-* subvolume. */
static void test_recover_refuses_decoys(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	char source[PATH_MAX], rw[PATH_MAX], plain[PATH_MAX], ro[PATH_MAX];
	char link[PATH_MAX], real[PATH_MAX];
	unsigned removed = 99;

	need_btrfs(fx);
	make_source(fx, "orders", source);
	pathf(rw, sizeof(rw), "%s/snapship-rw", fx->work);
	assert_int_equal(btrfs_util_create_subvolume(rw, 0, NULL, NULL),
			 BTRFS_UTIL_OK);
	pathf(plain, sizeof(plain), "%s/snapship-plain", fx->work);
	assert_int_equal(mkdir(plain, 0700), 0);
	pathf(ro, sizeof(ro), "%s/decoy-ro", fx->work);
	assert_int_equal(btrfs_util_create_snapshot(
				 source, ro, BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY,
				 NULL, NULL),
			 BTRFS_UTIL_OK);
	pathf(link, sizeof(link), "%s/snapship-link", fx->work);
	pathf(real, sizeof(real), "%s/snapship-real", fx->work);
	assert_int_equal(btrfs_util_create_snapshot(
				 source, real,
				 BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY, NULL,
				 NULL),
			 BTRFS_UTIL_OK);
	assert_int_equal(symlink(real, link), 0);

	journal_put_snapshot(fx->state, "rw.journal", rw);
	journal_put_snapshot(fx->state, "plain.journal", plain);
	journal_put_snapshot(fx->state, "ro.journal", ro);
	journal_put_snapshot(fx->state, "link.journal", link);
	journal_put_snapshot(fx->state, "source.journal", source);

	assert_int_equal(cow_recover(fx->state, &removed, &err), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(btrfs_util_is_subvolume(rw), BTRFS_UTIL_OK);
	assert_true(exists(plain));
	assert_int_equal(btrfs_util_is_subvolume(ro), BTRFS_UTIL_OK);
	assert_int_equal(btrfs_util_is_subvolume(real), BTRFS_UTIL_OK);
	assert_true(exists(link));
	assert_int_equal(btrfs_util_is_subvolume(source), BTRFS_UTIL_OK);
	assert_int_equal(journal_count(fx->state), 5);

	/* a genuine leftover next to the decoys is still removed */
	journal_put_snapshot(fx->state, "real.journal", real);
	assert_int_equal(cow_recover(fx->state, &removed, &err), 0);
	assert_int_equal(removed, 1);
	assert_false(exists(real));
	assert_int_equal(journal_count(fx->state), 5);
}

static void test_not_subvolume(void **state)
{
	struct fixture *fx = *state;
	struct cow_snapshot *snap = NULL;
	struct err err = { 0 };
	char dir[PATH_MAX];

	need_btrfs(fx);
	pathf(dir, sizeof(dir), "%s/plain", fx->work);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(cow_check_source(dir, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a btrfs subvolume"));
	assert_non_null(strstr(err.msg, "btrfs subvolume create"));
	assert_non_null(strstr(err.msg, "--reflink"));
	err_clear(&err);
	assert_int_equal(cow_freeze(dir, NULL, fx->state, "n1", &snap, &err),
			 -EINVAL);
	assert_null(snap);
	assert_int_equal(journal_count(fx->state), 0);
}

static void test_snap_dir_other_fs(void **state)
{
	struct fixture *fx = *state;
	struct cow_snapshot *snap = NULL;
	struct err err = { 0 };
	char source[PATH_MAX], dir[PATH_MAX];

	need_btrfs(fx);
	need_shm(fx);
	make_source(fx, "orders", source);
	pathf(dir, sizeof(dir), "%s/snaps", fx->shm);
	assert_int_equal(cow_freeze(source, dir, fx->state, "o1", &snap, &err),
			 -EXDEV);
	assert_null(snap);
	assert_non_null(strstr(err.msg, "snapshot_dir"));
	assert_non_null(strstr(err.msg, "tmpfs"));
	assert_false(exists(dir));
	assert_int_equal(journal_count(fx->state), 0);
}

static void test_snap_dir_inside_source(void **state)
{
	struct fixture *fx = *state;
	struct cow_snapshot *snap = NULL;
	struct err err = { 0 };
	char source[PATH_MAX], dir[PATH_MAX];

	need_btrfs(fx);
	make_source(fx, "orders", source);
	pathf(dir, sizeof(dir), "%s/snaps", source);
	assert_int_equal(cow_freeze(source, dir, fx->state, "i1", &snap, &err),
			 -EINVAL);
	assert_null(snap);
	assert_non_null(strstr(err.msg, "inside the partition"));
	assert_int_equal(journal_count(fx->state), 0);
}

/* SNAPSHIP_FAULT=cow.release: the snapshot and entry stay for recovery. */
static void test_fault_release(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	char source[PATH_MAX], snap[PATH_MAX];
	unsigned removed = 0;

	need_btrfs(fx);
	make_source(fx, "orders", source);
	assert_int_equal(run_child("cow.release", "release", source, fx->state,
				   "r1"), EIO);
	pathf(snap, sizeof(snap), "%s/.snapship/snapship-r1", fx->work);
	assert_int_equal(btrfs_util_is_subvolume(snap), BTRFS_UTIL_OK);
	assert_int_equal(journal_count(fx->state), 1);
	assert_int_equal(cow_recover(fx->state, &removed, &err), 0);
	assert_int_equal(removed, 1);
	assert_false(exists(snap));
	assert_int_equal(journal_count(fx->state), 0);
}

/* A snapshot deleted behind our back: release still drops the entry. */
static void test_release_already_gone(void **state)
{
	struct fixture *fx = *state;
	struct cow_snapshot *snap = NULL;
	struct err err = { 0 };
	char source[PATH_MAX];

	need_btrfs(fx);
	make_source(fx, "orders", source);
	assert_int_equal(cow_freeze(source, NULL, fx->state, "g1", &snap, &err),
			 0);
	assert_int_equal(btrfs_util_delete_subvolume(snap->path, 0),
			 BTRFS_UTIL_OK);
	assert_int_equal(cow_release(snap, &err), 0);
	assert_int_equal(journal_count(fx->state), 0);
}

/* cow_make_target on btrfs: a new subvolume through the backend's make_target. */
static void test_make_target_btrfs(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	char dir[PATH_MAX], file[PATH_MAX];
	enum cow_target made = COW_TARGET_DIR;

	need_btrfs(fx);
	assert_non_null(cow_btrfs_ops.make_target);
	assert_ptr_equal(cow_backend_for(BTRFS_SUPER_MAGIC), &cow_btrfs_ops);
	pathf(dir, sizeof(dir), "%s/target", fx->work);
	assert_int_equal(cow_make_target(dir, false, &made, &err), 0);
	assert_int_equal(made, COW_TARGET_VOLUME);
	assert_int_equal(btrfs_util_is_subvolume(dir), BTRFS_UTIL_OK);
	/* an existing empty directory is used as it is */
	assert_int_equal(cow_make_target(dir, false, &made, &err), 0);
	assert_int_equal(made, COW_TARGET_EXISTED);
	pathf(file, sizeof(file), "%s/f", dir);
	write_file(file, "x");
	assert_int_equal(cow_make_target(dir, false, &made, &err), -ENOTEMPTY);
	assert_non_null(strstr(err.msg, "--force"));
	err_clear(&err);
	assert_int_equal(cow_make_target(dir, true, &made, &err), 0);
	/* the backend's own error: a subvolume where its parent is gone */
	pathf(dir, sizeof(dir), "%s/missing/target", fx->work);
	assert_int_equal(cow_make_target(dir, false, &made, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "does not exist; create it first"));
}

/* Elsewhere (tmpfs, no backend): a plain directory. */
static void test_make_target_plain(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	char dir[PATH_MAX];
	enum cow_target made = COW_TARGET_VOLUME;
	struct stat st;

	need_shm(fx);
	assert_null(cow_backend_for(TMPFS_MAGIC));
	pathf(dir, sizeof(dir), "%s/target", fx->shm);
	assert_int_equal(cow_make_target(dir, false, &made, &err), 0);
	assert_int_equal(made, COW_TARGET_DIR);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
}

/*
 * cow_remove_target on btrfs: the new subvolume goes while empty; one with
 * something in it, a target that existed, a plain directory, a snapshot
 * and a symlink stay.
 */
static void test_remove_target_btrfs(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	char dir[PATH_MAX], file[PATH_MAX], snap[PATH_MAX], lnk[PATH_MAX];
	enum cow_target made = COW_TARGET_EXISTED;

	need_btrfs(fx);
	pathf(dir, sizeof(dir), "%s/target", fx->work);
	assert_int_equal(cow_make_target(dir, false, &made, &err), 0);
	assert_int_equal(made, COW_TARGET_VOLUME);
	assert_int_equal(cow_remove_target(dir, made, &err), 0);
	assert_false(exists(dir));
	/* not empty: kept */
	assert_int_equal(cow_make_target(dir, false, &made, &err), 0);
	pathf(file, sizeof(file), "%s/f", dir);
	write_file(file, "x");
	assert_int_equal(cow_remove_target(dir, made, &err), -ENOTEMPTY);
	assert_true(exists(file));
	err_clear(&err);
	/* a target that existed is never removed */
	assert_int_equal(unlink(file), 0);
	assert_int_equal(cow_remove_target(dir, COW_TARGET_EXISTED, &err), 0);
	assert_true(exists(dir));
	/* a read-only subvolume (a snapshot) is refused */
	pathf(snap, sizeof(snap), "%s/snap", fx->work);
	assert_int_equal(btrfs_util_create_snapshot(dir, snap,
		BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY, NULL, NULL), BTRFS_UTIL_OK);
	assert_int_equal(cow_remove_target(snap, COW_TARGET_VOLUME, &err), -EINVAL);
	assert_true(exists(snap));
	err_clear(&err);
	/* a plain directory is not a subvolume: refused */
	pathf(file, sizeof(file), "%s/plain", fx->work);
	assert_int_equal(mkdir(file, 0700), 0);
	assert_int_equal(cow_remove_target(file, COW_TARGET_VOLUME, &err), -EINVAL);
	assert_true(exists(file));
	err_clear(&err);
	/* a symlink to the subvolume is not followed */
	pathf(lnk, sizeof(lnk), "%s/link", fx->work);
	assert_int_equal(symlink(dir, lnk), 0);
	assert_true(cow_remove_target(lnk, COW_TARGET_VOLUME, &err) < 0);
	assert_true(exists(dir));
}

/* A new plain directory: removed with rmdir, only while empty. */
static void test_remove_target_plain(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	char dir[PATH_MAX], file[PATH_MAX];
	enum cow_target made = COW_TARGET_EXISTED;

	need_shm(fx);
	pathf(dir, sizeof(dir), "%s/target", fx->shm);
	assert_int_equal(cow_make_target(dir, false, &made, &err), 0);
	assert_int_equal(cow_remove_target(dir, made, &err), 0);
	assert_false(exists(dir));
	assert_int_equal(cow_make_target(dir, false, &made, &err), 0);
	pathf(file, sizeof(file), "%s/f", dir);
	write_file(file, "x");
	assert_int_equal(cow_remove_target(dir, made, &err), -ENOTEMPTY);
	assert_true(exists(file));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(test_check_missing),
		T(test_check_not_dir),
		T(test_check_not_btrfs),
		T(test_freeze_not_btrfs_leaves_nothing),
		T(test_freeze_bad_args),
		T(test_release_null),
		T(test_recover_empty),
		T(test_recover_drops_missing),
		T(test_recover_refuses_plain_dirs),
		T(test_fault_freeze),
		T(test_freeze_release),
		T(test_freeze_explicit_snap_dir),
		T(test_freeze_existing_dest),
		T(test_recover_after_crash),
		T(test_recover_refuses_decoys),
		T(test_not_subvolume),
		T(test_snap_dir_other_fs),
		T(test_snap_dir_inside_source),
		T(test_fault_release),
		T(test_release_already_gone),
		T(test_make_target_btrfs),
		T(test_make_target_plain),
		T(test_remove_target_btrfs),
		T(test_remove_target_plain),
	};
	ssize_t n;

	if (argc > 1 && !strcmp(argv[1], "--child"))
		return child_main(argc, argv);
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		return 1;
	self_exe[n] = '\0';
	return unit_main(tests, NULL, NULL);
}
