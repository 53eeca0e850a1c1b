// SPDX-License-Identifier: MIT
/* TEMP stub of branch S's agent/signals.c: a flag + a self-pipe. */
#include "agent/signals.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_sig, reload_pending, hup_reloads;
static int pipefd[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	char c = 0;

	if (sig == SIGHUP && hup_reloads) {
		reload_pending = 1;
	} else {
		if (stop_sig)
			_exit(128 + sig);
		stop_sig = sig;
	}
	if (write(pipefd[1], &c, 1) < 0) {
		/* full pipe: already readable */
	}
	errno = saved;
}

int signals_install(void)
{
	struct sigaction sa;

	if (pipefd[0] >= 0)
		return 0;
	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

void signals_hup_reloads(bool on)
{
	hup_reloads = on;
}

int signals_stop(void)
{
	return stop_sig;
}

bool signals_take_reload(void)
{
	if (!reload_pending)
		return false;
	reload_pending = 0;
	return true;
}

int signals_fd(void)
{
	return pipefd[0];
}

void signals_drain(void)
{
	char buf[64];

	while (pipefd[0] >= 0 && read(pipefd[0], buf, sizeof(buf)) > 0)
		;
}

bool signals_cancelled(void *ctx)
{
	(void)ctx;
	return stop_sig != 0;
}
