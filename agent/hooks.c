// SPDX-License-Identifier: MIT
#include "agent/hooks.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

int hook_run(const char *what, const char *cmd, int64_t timeout_s,
	     const char *partition, const char *source, struct err *err)
{
	double deadline = util_now_mono() + (double)timeout_s;
	int status;
	pid_t pid, r;

	log_info("running %s hook for %s", what, partition);
	pid = fork();
	if (pid < 0)
		return err_set(err, -errno, "%s hook: cannot fork: %s", what, strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
		/* snapship ignores SIGPIPE (signals.h); a hook gets the default */
		signal(SIGPIPE, SIG_DFL);
		setenv("SNAPSHIP_PARTITION", partition, 1);
		setenv("SNAPSHIP_SOURCE", source, 1);
		setenv("SNAPSHIP_HOOK", what, 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return err_set(err, -errno, "%s hook: waitpid: %s", what, strerror(errno));
		if (util_now_mono() > deadline) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			return err_set(err, -ETIMEDOUT,
				       "%s hook for partition %s did not finish in %llds and was killed; fix the hook or raise hook_timeout",
				       what, partition, (long long)timeout_s);
		}
		usleep(20000);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return err_set(err, -ECANCELED, "%s hook for partition %s failed with exit status %d: %s",
			       what, partition, WEXITSTATUS(status), cmd);
	return err_set(err, -ECANCELED, "%s hook for partition %s was killed by signal %d",
		       what, partition, WTERMSIG(status));
}
