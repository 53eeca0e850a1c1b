// SPDX-License-Identifier: MIT
/*
 * The two ends of the supervised agent in the snapship binary (agentd.h):
 * `snapship agent` handing over to the supervisor (agent_exec_supervisor)
 * and the worker the supervisor starts (agent_worker_prepare).  The
 * supervisor itself is agent/supervise.c, a program of its own.
 */
#include "agent/agentd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "agent/config.h"
#include "agent/lock.h"
#include "agent/notify.h"
#include "common/err.h"
#include "common/log.h"

#ifndef SNAPSHIP_LIBEXECDIR
#define SNAPSHIP_LIBEXECDIR "/usr/local/libexec/snapship"
#endif

/* The supervisor's path into buf: SNAPSHIP_AGENTD, else snapship-agentd
 * next to exe, else in ../libexec/snapship from exe's directory, else in
 * the libexec dir built in; -ENOENT (err says where it looked). */
static int find_agentd(const char *exe, char *buf, size_t len, struct err *err)
{
	const char *env = getenv("SNAPSHIP_AGENTD");
	const char *slash = strrchr(exe, '/');

	if (env && *env) {
		snprintf(buf, len, "%s", env);
		if (access(buf, X_OK) == 0)
			return 0;
		return err_set(err, -ENOENT, "SNAPSHIP_AGENTD=%s is not an executable", env);
	}
	snprintf(buf, len, "%.*s/snapship-agentd", slash ? (int)(slash - exe) : 1,
		 slash ? exe : ".");
	if (access(buf, X_OK) == 0)
		return 0;
	/* PREFIX/sbin/snapship: PREFIX/libexec/snapship (any make install PREFIX) */
	snprintf(buf, len, "%.*s/../libexec/snapship/snapship-agentd",
		 slash ? (int)(slash - exe) : 1, slash ? exe : ".");
	if (access(buf, X_OK) == 0)
		return 0;
	snprintf(buf, len, "%s/snapship-agentd", SNAPSHIP_LIBEXECDIR);
	if (access(buf, X_OK) == 0)
		return 0;
	return err_set(err, -ENOENT, "the supervisor snapship-agentd is neither next to %s nor in %s (make install puts it there): the agent runs in one process, idling at the whole binary's size",
		       exe, SNAPSHIP_LIBEXECDIR);
}

static const char *level_name(enum log_level l)
{
	return l == LOG_ERROR ? "error" : l == LOG_WARN ? "warn" : l == LOG_INFO ? "info" : "debug";
}

/* Exec agentd with the lock and the config copy: returns only on failure. */
static int exec_agentd(const char *agentd, const char *exe, const struct config *cfg,
		       const struct agent_opts *o, int lockfd, int memfd, struct err *err)
{
	char lfd[16], cfd[16], ivl[32];
	const char *argv[] = {
		agentd, "--snapship", exe, "--config", o->config_file,
		"--state-dir", cfg->state_dir, "--host", o->host,
		"--config-fd", cfd, "--lock-fd", lfd, "--interval", ivl,
		"--log-format", log_get_format() == LOG_FORMAT_JSON ? "json" : "text",
		"--log-level", level_name(log_get_level()),
		"--state-dir-given", o->state_dir ? "yes" : "no", NULL,
	};

	snprintf(lfd, sizeof(lfd), "%d", lockfd);
	snprintf(cfd, sizeof(cfd), "%d", memfd);
	snprintf(ivl, sizeof(ivl), "%lld", (long long)cfg->interval);
	if (fcntl(lockfd, F_SETFD, 0) || fcntl(memfd, F_SETFD, 0))
		return err_set(err, -errno, "cannot pass the agent lock to the supervisor: %s",
			       strerror(errno));
	fflush(stderr);
	execv(agentd, (char *const *)argv);
	return err_set(err, -errno, "cannot run the supervisor %s: %s", agentd, strerror(errno));
}

int agent_exec_supervisor(const struct config *cfg, const struct agent_opts *o,
			  struct err *err)
{
	char exe[PATH_MAX], agentd[PATH_MAX];
	struct config tmp;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int lockfd, memfd, ret;

	if (n <= 0)
		return err_set(err, -ENOENT, "cannot find the snapship binary (/proc/self/exe): %s; the agent runs in one process",
			       strerror(errno));
	exe[n] = '\0';
	ret = find_agentd(exe, agentd, sizeof(agentd), err);
	if (ret)
		return ret;
	lockfd = agentlock_acquire(cfg->state_dir, err);
	if (lockfd < 0)
		return lockfd == -ENOENT ? -EIO : lockfd;
	memfd = memfd_create("snapship.conf", MFD_CLOEXEC);
	if (memfd < 0) {
		ret = err_set(err, -errno, "cannot keep a copy of the config (memfd_create): %s",
			      strerror(errno));
		goto out_lock;
	}
	/* the copy: the bytes read now, checked again (the file may have
	 * changed since it was loaded) */
	ret = config_load_copy(o->config_file, memfd, &tmp, err);
	if (ret)
		goto out_memfd;
	config_free(&tmp);
	agent_say_start(cfg, o);
	ret = exec_agentd(agentd, exe, cfg, o, lockfd, memfd, err);
out_memfd:
	close(memfd);
out_lock:
	hostlock_release(lockfd);
	return ret == -ENOENT ? -EIO : ret;   /* -ENOENT: only "no supervisor" */
}

int agent_worker_prepare(const char *fd_arg, struct config *cfg, struct agent_opts *o,
			 struct err *err)
{
	const char *sd = getenv("SNAPSHIP_AGENT_STATE_DIR");
	const char *cfd = getenv("SNAPSHIP_AGENT_CONFIG_FD");
	const char *sup = getenv("SNAPSHIP_AGENTD_PID");
	sigset_t set;
	char *end;
	long fd = strtol(fd_arg, &end, 10);

	if (*end || fd < 0 || fd > INT_MAX || !cfd || !sup)
		return err_set(err, -EINVAL, "agent --worker is the supervisor's (snapship-agentd): run snapship agent");
	/* the supervisor gone (kill -9): this worker stops as on SIGTERM */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM))
		log_warn("PR_SET_PDEATHSIG: %s", strerror(errno));
	if ((long)getppid() != atol(sup))
		return err_set(err, -ESRCH, "the supervisor (pid %s) is gone: the worker does not start",
			       sup);
	/* the agent's state dir (its lock's), whatever the config says now */
	if (sd && !o->state_dir) {
		char *dup = strdup(sd);

		if (!dup)
			return err_set(err, -ENOMEM, "out of memory");
		free(cfg->state_dir);
		cfg->state_dir = dup;
	}
	o->worker = true;
	o->config_fd = atoi(cfd);
	hostlock_note_pid(atol(sup));   /* "held by the agent (pid SUPERVISOR)" */
	/* hooks started by the worker inherit neither */
	if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) || fcntl(o->config_fd, F_SETFD, FD_CLOEXEC))
		return err_set(err, -errno, "agent --worker: %s", strerror(errno));
	/* the supervisor kept them blocked across the exec: the handlers
	 * (signals_install, in main) take what came meanwhile */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	unsetenv("SNAPSHIP_AGENT_CONFIG_FD");
	unsetenv("SNAPSHIP_AGENT_STATE_DIR");
	unsetenv("SNAPSHIP_AGENTD_PID");
	notify_to_supervisor((int)fd);
	return 0;
}
