// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: extraction of a tar stream (agent/extract.c), the way
 * restore drives it.  The input is the tar stream; the loop below mirrors
 * restore_range() of agent/restore.c (names normalised, absolute names and
 * ".." refused, device nodes skipped, regular files' data handed over in
 * blocks) without the index checks.  An odd-sized input is extracted with
 * one writer thread, an even-sized one from the reading thread.
 *
 * Where it writes: a jail made with mkdtemp() under $FUZZ_SCRATCH (else
 * $TMPDIR, else /tmp) holding
 *     jail/target/   the restore target: the working directory while
 *                    extracting, emptied after every input;
 *     jail/canary/   a directory and a file that must never change.
 * After every input the jail must hold just these two, the canary be
 * untouched and no file in the target have links outside it; otherwise
 * the target aborts ("escaped the target"), which libFuzzer reports.
 *
 * As root it first makes sure no write can land outside the jail: in a
 * mount namespace of its own, every mount is made read-only except binds
 * of the jail, the working directory and the directories libFuzzer writes
 * to (corpus directories, -artifact_prefix, -exact_artifact_path).  An
 * attempt to write elsewhere then fails with EROFS (or EXDEV for a hard
 * link), which the target treats as an escape too.  When that isolation
 * cannot be set up (no CAP_SYS_ADMIN, no mount_setattr), it refuses to run
 * as root: exit 77 with "SKIP: ...".  It also refuses to run with the
 * working directory at /.  Pass -artifact_prefix as an absolute path: a
 * crash happens with the working directory in the jail.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/fs.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/extract.h"
#include "common/err.h"
#include "common/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CANARY_TEXT "the canary: nothing may change this file\n"

static char jail[PATH_MAX], target[PATH_MAX];
static int home_fd = -1, jail_fd = -1, target_fd = -1;
static struct stat canary_dir_st, canary_st, target_st;

static __attribute__((noreturn)) void bug(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_extract: %s%s%s\n", what, detail ? ": " : "",
		detail ? detail : "");
	abort();
}

static __attribute__((noreturn)) void die(const char *what)
{
	fprintf(stderr, "fuzz_extract: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- making and emptying the jail ---------------------------------------- */

/* Clear immutable/append-only flags (the archive may set them). */
static void clear_flags_fd(int fd)
{
	int flags = 0;

	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 &&
	    (flags & (FS_IMMUTABLE_FL | FS_APPEND_FL))) {
		flags &= ~(FS_IMMUTABLE_FL | FS_APPEND_FL);
		ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
}

static void clear_flags_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW |
			O_NOCTTY | O_CLOEXEC);

	if (fd >= 0) {
		clear_flags_fd(fd);
		close(fd);
	}
}

/* Remove everything in directory fd dfd, never following a link. */
static void empty_dir(int dfd)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(dfd);

	if (fd < 0)
		die("dup");
	clear_flags_fd(dfd);
	fchmod(dfd, 0700);
	d = fdopendir(fd);
	if (!d)
		die("fdopendir");
	while ((de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY |
					 O_NOFOLLOW | O_CLOEXEC);

			if (sub < 0) {
				clear_flags_at(dfd, de->d_name);
				fchmodat(dfd, de->d_name, 0700, 0);
				sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY |
					     O_NOFOLLOW | O_CLOEXEC);
			}
			if (sub >= 0) {
				empty_dir(sub);
				close(sub);
			}
			if (unlinkat(dfd, de->d_name, AT_REMOVEDIR))
				bug("cannot empty the target", de->d_name);
		} else if (unlinkat(dfd, de->d_name, 0)) {
			clear_flags_at(dfd, de->d_name);
			if (unlinkat(dfd, de->d_name, 0))
				bug("cannot empty the target", de->d_name);
		}
	}
	closedir(d);
}

static void remove_jail(void)
{
	if (jail_fd < 0)
		return;
	if (home_fd >= 0 && fchdir(home_fd))
		return;
	empty_dir(jail_fd);
	close(jail_fd);
	jail_fd = -1;
	rmdir(jail);
}

static void make_jail(void)
{
	const char *base = getenv("FUZZ_SCRATCH");
	int fd;

	if (!base || !*base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	if (snprintf(jail, sizeof(jail), "%s/snapship-fuzz-extract.XXXXXX", base) >=
	    (int)sizeof(jail) || !mkdtemp(jail))
		die("mkdtemp under $FUZZ_SCRATCH");
	if (!realpath(jail, jail))
		die("realpath of the jail");
	jail_fd = open(jail, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (jail_fd < 0 || mkdirat(jail_fd, "target", 0755) ||
	    mkdirat(jail_fd, "canary", 0755))
		die("making the jail");
	atexit(remove_jail);
	fd = openat(jail_fd, "canary/file", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, CANARY_TEXT, strlen(CANARY_TEXT)) != (ssize_t)strlen(CANARY_TEXT))
		die("writing the canary");
	close(fd);
	snprintf(target, sizeof(target), "%s/target", jail);
	target_fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (target_fd < 0 || fstat(target_fd, &target_st) ||
	    fstatat(jail_fd, "canary", &canary_dir_st, AT_SYMLINK_NOFOLLOW) ||
	    fstatat(jail_fd, "canary/file", &canary_st, AT_SYMLINK_NOFOLLOW))
		die("opening the jail");
}

/* ---- root: nothing writable outside the jail ----------------------------- */

#define KEEP_MAX 16
static char keep[KEEP_MAX][PATH_MAX];
static int nkeep;

static void keep_writable(const char *path, bool parent)
{
	char buf[PATH_MAX];

	if (nkeep == KEEP_MAX || strlen(path) >= sizeof(buf))
		return;
	strcpy(buf, path);
	if (parent) {
		const char *d = dirname(buf);

		memmove(buf, d, strlen(d) + 1);
	}
	if (!realpath(buf, keep[nkeep]))
		return;
	if (!strcmp(keep[nkeep], "/")) {
		fprintf(stderr, "SKIP: fuzz_extract: %s would leave / writable; give libFuzzer directories below it\n",
			path);
		exit(77);
	}
	nkeep++;
}

static int by_length(const void *a, const void *b)
{
	size_t la = strlen(a), lb = strlen(b);

	return la < lb ? -1 : la > lb;
}

static int isolate(int argc, char **argv)
{
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
	struct mount_attr rw = { .attr_clr = MOUNT_ATTR_RDONLY };

	keep_writable(jail, false);
	keep_writable(".", false);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		struct stat st;

		if (!strncmp(a, "-artifact_prefix=", 17))
			keep_writable(a + 17, a[strlen(a) - 1] != '/');
		else if (!strncmp(a, "-exact_artifact_path=", 21))
			keep_writable(a + 21, true);
		else if (a[0] != '-' && !stat(a, &st) && S_ISDIR(st.st_mode))
			keep_writable(a, false);
	}
	if (unshare(CLONE_NEWNS))
		return -errno;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return -errno;
	/* parents first: a bind of a parent made later would hide the child's */
	qsort(keep, nkeep, sizeof(keep[0]), by_length);
	for (int i = 0; i < nkeep; i++)
		if (mount(keep[i], keep[i], NULL, MS_BIND | MS_REC, NULL))
			return -errno;
	if (mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof(ro)))
		return -errno;
	for (int i = 0; i < nkeep; i++)
		if (mount_setattr(AT_FDCWD, keep[i], AT_RECURSIVE, &rw, sizeof(rw)))
			return -errno;
	/* the check: / is read-only now, the jail is not */
	if (mkdir("/snapship-fuzz-extract-probe", 0700) == 0) {
		rmdir("/snapship-fuzz-extract-probe");
		return -EPERM;
	}
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char cwd[PATH_MAX];

	log_set_level(LOG_ERROR);
	if (!getcwd(cwd, sizeof(cwd)) || !strcmp(cwd, "/")) {
		fprintf(stderr, "fuzz_extract: run me from a scratch directory, not from /\n");
		exit(1);
	}
	home_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (home_fd < 0)
		die("opening the working directory");
	make_jail();
	if (geteuid() == 0) {
		int ret = isolate(*argc, *argv);

		if (ret) {
			fprintf(stderr, "SKIP: fuzz_extract: as root it needs a mount namespace with everything but its scratch directory read-only, and that failed: %s (run it as an unprivileged user instead)\n",
				strerror(-ret));
			exit(77);
		}
		fprintf(stderr, "fuzz_extract: jail %s; everything else is read-only\n", jail);
	} else {
		fprintf(stderr, "fuzz_extract: jail %s\n", jail);
	}
	return 0;
}

/* ---- the checks after every input ----------------------------------------- */

struct inode_count {
	dev_t dev;
	ino_t ino;
	nlink_t nlink, seen;
};

static struct inode_count *inodes;
static size_t ninodes, inodes_cap;

static void count_inode(const struct stat *st)
{
	for (size_t i = 0; i < ninodes; i++)
		if (inodes[i].ino == st->st_ino && inodes[i].dev == st->st_dev) {
			inodes[i].seen++;
			return;
		}
	if (ninodes == inodes_cap) {
		size_t cap = inodes_cap ? inodes_cap * 2 : 64;
		struct inode_count *n = realloc(inodes, cap * sizeof(*n));

		if (!n)
			bug("out of memory", NULL);
		inodes = n;
		inodes_cap = cap;
	}
	inodes[ninodes++] = (struct inode_count){ st->st_dev, st->st_ino, st->st_nlink, 1 };
}

static void walk_links(int dfd, int depth)
{
	DIR *d;
	struct dirent *de;
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || depth > 256)
		goto out;
	d = fdopendir(fd);
	if (!d)
		goto out;
	fd = -1;
	while ((de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (st.st_dev != target_st.st_dev)
			bug("a mount point inside the target", de->d_name);
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY |
					 O_NOFOLLOW | O_CLOEXEC);

			if (sub >= 0) {
				walk_links(sub, depth + 1);
				close(sub);
			}
		} else if (!S_ISLNK(st.st_mode) && st.st_nlink > 1) {
			count_inode(&st);
		}
	}
	closedir(d);
out:
	if (fd >= 0)
		close(fd);
}

static bool same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       a->st_mode == b->st_mode && a->st_nlink == b->st_nlink &&
	       a->st_uid == b->st_uid && a->st_gid == b->st_gid &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void check_jail(void)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int fd = openat(jail_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || !(d = fdopendir(fd)))
		bug("cannot read the jail", jail);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "target") && strcmp(de->d_name, "canary"))
			bug("escaped the target: a new entry beside it", de->d_name);
	closedir(d);
	if (fstatat(jail_fd, "target", &st, AT_SYMLINK_NOFOLLOW) ||
	    st.st_ino != target_st.st_ino || st.st_dev != target_st.st_dev)
		bug("escaped the target: the target itself was replaced", target);
	if (fstatat(jail_fd, "canary", &st, AT_SYMLINK_NOFOLLOW) ||
	    !same_stat(&st, &canary_dir_st))
		bug("escaped the target: the canary directory changed", jail);
	if (fstatat(jail_fd, "canary/file", &st, AT_SYMLINK_NOFOLLOW) ||
	    !same_stat(&st, &canary_st))
		bug("escaped the target: the canary file changed (or got a hard link)", jail);
	ninodes = 0;
	walk_links(target_fd, 0);
	for (size_t i = 0; i < ninodes; i++)
		if (inodes[i].seen != inodes[i].nlink) {
			char what[96];

			snprintf(what, sizeof(what), "inode %llu has %llu links, %llu inside the target",
				 (unsigned long long)inodes[i].ino,
				 (unsigned long long)inodes[i].nlink,
				 (unsigned long long)inodes[i].seen);
			bug("escaped the target: a hard link to a file outside it", what);
		}
}

/* ---- one input, as restore_range() does it -------------------------------- */

static int copy_data(struct archive *a, struct extractor *x, struct err *err)
{
	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int ret = archive_read_data_block(a, &buf, &len, &off);

		if (ret == ARCHIVE_EOF)
			return 0;
		if (ret < ARCHIVE_WARN)
			return err_set(err, -EBADMSG, "corrupt: %s", archive_error_string(a));
		if (len) {
			ret = extractor_data(x, buf, len, off, err);
			if (ret)
				return ret;
		}
	}
}

static int extract(struct archive *a, struct extractor *x, struct err *err)
{
	struct archive_entry *ae;
	int ret;

	for (;;) {
		char path[4096];
		const char *name;
		mode_t type;

		ret = archive_read_next_header(a, &ae);
		if (ret == ARCHIVE_EOF)
			break;
		if (ret < ARCHIVE_WARN)
			return err_set(err, -EBADMSG, "corrupt: %s", archive_error_string(a));
		name = archive_entry_pathname(ae);
		snprintf(path, sizeof(path), "%s", name ? name : "");
		extract_norm_path(path);
		if (!extract_path_safe(path) || (archive_entry_hardlink(ae) &&
					 !extract_path_safe(archive_entry_hardlink(ae))))
			return err_set(err, -EPERM, "unsafe path");
		type = archive_entry_filetype(ae);
		if (type == AE_IFCHR || type == AE_IFBLK)
			continue;
		archive_entry_set_pathname(ae, path);
		ret = extractor_begin(x, ae, path, err);
		if (ret)
			return ret;
		if (type == AE_IFREG && !archive_entry_hardlink(ae)) {
			ret = copy_data(a, x, err);
			if (ret)
				return ret;
		}
		ret = extractor_end(x, err);
		if (ret)
			return ret;
	}
	return extractor_finish(x, NULL, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
			  ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_ACL |
			  ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_FFLAGS |
			  ARCHIVE_EXTRACT_SECURE_SYMLINKS |
			  ARCHIVE_EXTRACT_SECURE_NODOTDOT |
			  ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;
	struct archive *a = archive_read_new();
	struct extractor *x = NULL;
	struct err err = { 0 };
	int ret;

	if (!a)
		return 0;
	archive_read_support_format_tar(a);
	if (archive_read_open_memory(a, data, size) != ARCHIVE_OK) {
		archive_read_free(a);
		return 0;
	}
	if (fchdir(target_fd))
		bug("cannot enter the target", target);
	ret = extractor_new(flags, size & 1, 8u << 20, target, &x, &err);
	if (!ret)
		ret = extract(a, x, &err);
	extractor_free(x);
	archive_read_free(a);
	if (fchdir(home_fd))
		bug("cannot leave the target", NULL);
	if (ret == -EROFS || ret == -EXDEV || strstr(err.msg, strerror(EROFS)) ||
	    strstr(err.msg, strerror(EXDEV)))
		bug("escaped the target: a write outside it was refused by the isolation", err.msg);
	check_jail();
	empty_dir(target_fd);
	return 0;
}
