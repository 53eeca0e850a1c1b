// SPDX-License-Identifier: MIT
#include "agent/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

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
