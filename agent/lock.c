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
#include "common/log.h"
#include "common/util.h"

/* open <state_dir>/<name> (the directory made if missing) into *fd_ret */
static int lock_open(const char *state_dir, const char *name, char *path,
		     size_t len, int *fd_ret, struct err *err)
{
	int ret = util_mkdir_p(state_dir, 0700);

	if (ret)
		return err_set(err, ret, "cannot create state directory %s: %s%s",
			       state_dir, err_str(ret),
			       ret == -EACCES ? " (run as root, or set --state-dir / [agent] state_dir)" : "");
	snprintf(path, len, "%s/%s", state_dir, name);
	*fd_ret = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd_ret < 0)
		return err_set(err, -errno, "cannot open lock %s: %s", path, strerror(errno));
	return 0;
}

/* "the agent (pid 123)" from the holder's note, or "another snapship run" */
static void lock_holder(int fd, char *buf, size_t len)
{
	char note[128], what[96];
	ssize_t n = pread(fd, note, sizeof(note) - 1, 0);
	long pid;

	snprintf(buf, len, "another snapship run");
	if (n <= 0)
		return;
	note[n] = '\0';
	if (sscanf(note, "%ld %95[^\n]", &pid, what) == 2 && pid > 0)
		snprintf(buf, len, "%s (pid %ld)", what, pid);
}

static long note_pid;   /* hostlock_note_pid; 0: getpid() */

void hostlock_note_pid(long pid)
{
	note_pid = pid;
}

/* the holder's note: "PID WHAT\n" (best effort: only for messages) */
static void lock_note(int fd, const char *what)
{
	char note[128];
	int n = snprintf(note, sizeof(note), "%ld %s\n", note_pid ? note_pid : (long)getpid(),
			 what ? what : "snapship");

	if (ftruncate(fd, 0) == 0 && pwrite(fd, note, (size_t)n, 0) < 0)
		log_debug("cannot note the lock holder: %s", strerror(errno));
}

int hostlock_acquire_as(const char *state_dir, int wait_s, const char *what,
			struct err *err)
{
	char path[4096], holder[128];
	int fd, ret;

	ret = lock_open(state_dir, "lock", path, sizeof(path), &fd, err);
	if (ret)
		return ret;
	for (long i = 0;; i++) {
		if (!flock(fd, LOCK_EX | LOCK_NB)) {
			lock_note(fd, what);
			return fd;
		}
		if (errno != EWOULDBLOCK ||
		    (wait_s != HOSTLOCK_WAIT_FOREVER && i >= (long)wait_s * 10)) {
			lock_holder(fd, holder, sizeof(holder));
			ret = err_set(err, -EBUSY,
				      "the host lock %s is held by %s%s; wait for it to finish%s",
				      path, holder, wait_s > 0 ? " after waiting" : "",
				      wait_s >= 0 ? " (backup --wait SECONDS waits longer)" : "");
			close(fd);
			return ret;
		}
		if (signals_stop()) {   /* a stop request ends the wait */
			close(fd);
			return err_set(err, -ECANCELED, "stopped while waiting for the host lock %s (another snapshot run holds it)",
				       path);
		}
		if (i == 0) {
			lock_holder(fd, holder, sizeof(holder));
			log_warn("waiting for the host lock held by %s…", holder);
		}
		usleep(100000);
	}
}

int hostlock_acquire(const char *state_dir, int wait_s, struct err *err)
{
	return hostlock_acquire_as(state_dir, wait_s, NULL, err);
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

int agentlock_acquire(const char *state_dir, struct err *err)
{
	char path[4096], holder[128];
	int fd, ret;

	ret = lock_open(state_dir, "agent.lock", path, sizeof(path), &fd, err);
	if (ret)
		return ret;
	if (!flock(fd, LOCK_EX | LOCK_NB)) {
		lock_note(fd, "the agent");
		return fd;
	}
	ret = -errno;
	lock_holder(fd, holder, sizeof(holder));
	close(fd);
	if (ret != -EWOULDBLOCK)
		return err_set(err, ret, "cannot lock %s: %s", path, err_str(ret));
	return err_set(err, -EBUSY,
		       "another snapship agent runs on this host: %s holds %s; one agent per host (stop it first, e.g. systemctl stop snapship)",
		       holder, path);
}
