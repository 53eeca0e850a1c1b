// SPDX-License-Identifier: MIT
/*
 * stream/extents.c: the extent fingerprint of a file's blocks, compared
 * across read-only btrfs snapshots as the product compares them.  Needs
 * root and TEST_BTRFS (tests/run.sh sets both); the other cases (a file on
 * tmpfs) run anywhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include "tests/unit/unit.h"

#include "common/err.h"
#include "stream/extents.h"

#include <btrfsutil.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define MIB (1u << 20)
#define NB_MAX 32u

struct fx {
	char vol[512];            /* a subvolume on TEST_BTRFS */
	char snaps[512];          /* where its snapshots go */
	int nsnap;
};

static bool is_fs(const char *path, unsigned long magic)
{
	struct statfs sfs;

	return statfs(path, &sfs) == 0 && (unsigned long)sfs.f_type == magic;
}

static int setup(void **state)
{
	const char *btrfs = getenv("TEST_BTRFS");
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	*state = f;
	if (!btrfs || geteuid() != 0 || !is_fs(btrfs, BTRFS_SUPER_MAGIC))
		return 0;
	snprintf(f->vol, sizeof(f->vol), "%s/extents-%d", btrfs, (int)getpid());
	snprintf(f->snaps, sizeof(f->snaps), "%s/extents-snaps-%d", btrfs, (int)getpid());
	if (btrfs_util_create_subvolume(f->vol, 0, NULL, NULL) != BTRFS_UTIL_OK ||
	    mkdir(f->snaps, 0700))
		f->vol[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char p[700];

	for (int i = 0; f->vol[0] && i < f->nsnap; i++) {
		snprintf(p, sizeof(p), "%s/s%d", f->snaps, i);
		btrfs_util_delete_subvolume(p, 0);
	}
	if (f->vol[0]) {
		rmdir(f->snaps);
		btrfs_util_delete_subvolume(f->vol, BTRFS_UTIL_DELETE_SUBVOLUME_RECURSIVE);
	}
	free(f);
	return 0;
}

static void need_btrfs(const struct fx *f)
{
	if (!f->vol[0])
		unit_skip("needs root and TEST_BTRFS on a mounted btrfs (tests/run.sh sets it)");
}

static void write_random(int fd, uint64_t off, uint64_t len)
{
	static unsigned seed = 7;
	unsigned char buf[65536];

	while (len) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = (unsigned char)rand_r(&seed);
		assert_int_equal(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
		off += n;
		len -= n;
	}
	assert_int_equal(fsync(fd), 0);
}

/* Snapshot the volume (read-only) and fingerprint name in it. */
static uint32_t snap_fp(struct fx *f, const char *name, uint64_t out[NB_MAX])
{
	char snap[700], path[800];
	struct err err = { 0 };
	struct stat st;
	uint32_t nb;
	int fd;

	snprintf(snap, sizeof(snap), "%s/s%d", f->snaps, f->nsnap++);
	assert_int_equal(btrfs_util_create_snapshot(f->vol, snap,
						    BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY,
						    NULL, NULL), BTRFS_UTIL_OK);
	snprintf(path, sizeof(path), "%s/%s", snap, name);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	nb = (uint32_t)(((uint64_t)st.st_size + MIB - 1) / MIB);
	assert_true(nb <= NB_MAX);
	assert_int_equal(extents_fingerprint(fd, (uint64_t)st.st_size, MIB, nb, out, &err), 0);
	close(fd);
	return nb;
}

/* Which blocks of a and b differ, as a bit mask. */
static uint64_t diff(const uint64_t *a, const uint64_t *b, uint32_t n)
{
	uint64_t m = 0;

	for (uint32_t i = 0; i < n; i++)
		if (a[i] != b[i])
			m |= UINT64_C(1) << i;
	return m;
}

static void test_changes(void **state)
{
	struct fx *f = *state;
	uint64_t s1[NB_MAX], s2[NB_MAX], s3[NB_MAX], s4[NB_MAX], again[NB_MAX];
	const uint64_t size = 16 * MIB + MIB / 2;   /* a partial last block */
	struct file_clone_range fcr;
	char path[700], other[700];
	uint32_t n1, n3;
	int fd, ofd;

	need_btrfs(f);
	snprintf(path, sizeof(path), "%s/big", f->vol);
	snprintf(other, sizeof(other), "%s/other", f->vol);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	write_random(fd, 0, size);
	n1 = snap_fp(f, "big", s1);
	assert_int_equal(n1, 17);
	/* the same snapshot contents: the same fingerprint, every block set */
	assert_int_equal(snap_fp(f, "big", again), 17);
	assert_int_equal(diff(s1, again, n1), 0);
	for (uint32_t i = 1; i < n1; i++)
		assert_true(s1[i] != s1[i - 1]);

	/* 8 KiB in place in block 5: only block 5 */
	write_random(fd, 5 * MIB + 4096, 8192);
	assert_int_equal(snap_fp(f, "big", s2), 17);
	assert_int_equal(diff(s1, s2, n1), UINT64_C(1) << 5);

	/* 3 MiB appended: the old partial last block changes, the rest stay */
	write_random(fd, size, 3 * MIB);
	n3 = snap_fp(f, "big", s3);
	assert_int_equal(n3, 20);
	assert_int_equal(diff(s2, s3, n1), UINT64_C(1) << 16);

	/* 1 MiB cloned from another file into block 9: only block 9 */
	ofd = open(other, O_RDWR | O_CREAT, 0600);
	assert_true(ofd >= 0);
	write_random(ofd, 0, 2 * MIB);
	fcr = (struct file_clone_range){ .src_fd = ofd, .src_offset = 0,
					 .src_length = MIB, .dest_offset = 9 * MIB };
	assert_int_equal(ioctl(fd, FICLONERANGE, &fcr), 0);
	assert_int_equal(snap_fp(f, "big", s4), 20);
	assert_int_equal(diff(s3, s4, n3), UINT64_C(1) << 9);
	close(ofd);
	close(fd);
}

static void test_nocow(void **state)
{
	struct fx *f = *state;
	uint64_t out[8];
	struct err err = { 0 };
	char path[700];
	int fd, flags = 0;

	need_btrfs(f);
	snprintf(path, sizeof(path), "%s/nocow", f->vol);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
	flags |= FS_NOCOW_FL;
	assert_int_equal(ioctl(fd, FS_IOC_SETFLAGS, &flags), 0);
	write_random(fd, 0, 4 * MIB);
	assert_int_equal(extents_fingerprint(fd, 4 * MIB, MIB, 4, out, &err), -EOPNOTSUPP);
	assert_int_equal(err.code, 0);
	close(fd);
}

static void test_not_btrfs(void **state)
{
	char path[] = "/dev/shm/snapship-extents-XXXXXX";
	struct err err = { 0 };
	uint64_t out[8];
	int fd;

	(void)state;
	if (!is_fs("/dev/shm", TMPFS_MAGIC))
		unit_skip("/dev/shm is not a tmpfs");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	write_random(fd, 0, 4 * MIB);
	assert_int_equal(extents_fingerprint(fd, 4 * MIB, MIB, 4, out, &err), -EOPNOTSUPP);
	assert_int_equal(err.code, 0);
	/* bad arguments are refused, not guessed */
	assert_int_equal(extents_fingerprint(fd, 4 * MIB, MIB, 5, out, &err), -EINVAL);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_changes),
		cmocka_unit_test(test_nocow),
		cmocka_unit_test(test_not_btrfs),
	};

	return unit_main(tests, setup, teardown);
}
