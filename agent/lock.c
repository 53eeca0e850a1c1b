// SPDX-License-Identifier: MIT
#include "agent/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "agent/catalog.h"
#include "agent/signals.h"
#include "common/err.h"
#include "common/util.h"

int hostlock_acquire(const char *state_dir, int wait_s, struct err *err)
{
	char path[4096];
	int fd, ret;

	ret = util_mkdir_p(state_dir, 0700);
	if (ret)
		return err_set(err, ret, "cannot create state directory %s: %s%s",
			       state_dir, err_str(ret),
			       ret == -EACCES ? " (run as root, or set --state-dir / [agent] state_dir)" : "");
	snprintf(path, sizeof(path), "%s/lock", state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(err, -errno, "cannot open lock %s: %s", path, strerror(errno));
	for (int i = 0;; i++) {
		if (!flock(fd, LOCK_EX | LOCK_NB))
			return fd;
		if (errno != EWOULDBLOCK || i >= wait_s * 10) {
			ret = err_set(err, -EBUSY,
				      "another snapshot is running on this host (lock %s is held); wait for it to finish",
				      path);
			close(fd);
			return ret;
		}
		if (signals_stop()) {   /* a stop request ends the wait */
			close(fd);
			return err_set(err, -ECANCELED, "stopped while waiting for the host lock %s (another snapshot run holds it)",
				       path);
		}
		usleep(100000);
	}
}

void hostlock_release(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* <state_dir>/reading/<host>/<part>/<id>.lock into buf; its directory
 * made with mkdir. */
static int readlock_path(const char *state_dir, const char *host, const char *part,
			 const char *id, bool mkdir, char *buf, size_t len,
			 struct err *err)
{
	int ret;

	if (!util_name_ok(host) || !util_name_ok(part) || catalog_id_time(id) < 0)
		return err_set(err, -EINVAL, "reading lock: not a backup name (%s/%s/%s)",
			       UTIL_ESC(host), UTIL_ESC(part), UTIL_ESC(id));
	snprintf(buf, len, "%s/reading/%s/%s", state_dir, host, part);
	if (mkdir) {
		ret = util_mkdir_p(buf, 0700);
		if (ret)
			return err_set(err, ret, "cannot create %s: %s", buf, err_str(ret));
	}
	if ((size_t)snprintf(buf, len, "%s/reading/%s/%s/%s.lock", state_dir, host,
			     part, id) >= len)
		return err_set(err, -ENAMETOOLONG, "reading lock: state directory path too long");
	return 0;
}

static int readlock_take(const char *state_dir, const char *host, const char *part,
			 const char *id, int how, struct err *err)
{
	char path[4096];
	int fd, ret;

	ret = readlock_path(state_dir, host, part, id, true, path, sizeof(path), err);
	if (ret)
		return ret;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_set(err, -errno, "cannot open reading lock %s: %s", path,
			       strerror(errno));
	while (flock(fd, how)) {
		if (errno == EINTR)
			continue;
		ret = -errno;
		close(fd);
		if (ret == -EWOULDBLOCK)
			return err_set(err, -EBUSY, "a restore on this host is reading it (lock %s)",
				       path);
		return err_set(err, ret, "cannot lock %s: %s", path, err_str(ret));
	}
	return fd;
}

int readlock_acquire(const char *state_dir, const char *host, const char *part,
		     const char *id, struct err *err)
{
	return readlock_take(state_dir, host, part, id, LOCK_SH, err);
}

int readlock_exclusive(const char *state_dir, const char *host, const char *part,
		       const char *id, struct err *err)
{
	return readlock_take(state_dir, host, part, id, LOCK_EX | LOCK_NB, err);
}

void readlock_release(int fd, const char *state_dir, const char *host,
		      const char *part, const char *id, bool remove)
{
	char path[4096];

	if (fd < 0)
		return;
	if (remove && !readlock_path(state_dir, host, part, id, false, path,
				     sizeof(path), NULL))
		unlink(path);
	close(fd);
}
