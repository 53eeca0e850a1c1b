// SPDX-License-Identifier: MIT
/*
 * The signal handler and its self-pipe (signals.h).  The handler touches
 * only lock-free atomics, write(2) and _exit(2): all async-signal-safe.
 * Both pipe ends are non-blocking and close-on-exec: a full pipe drops the
 * byte (one unread byte already makes the descriptor readable) and hooks
 * run by the agent do not inherit it.
 */
#include "agent/signals.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static atomic_int stop_sig;          /* first stop request, 0 = none */
static atomic_int reloads;           /* SIGHUPs not yet taken */
static atomic_bool hup_reloads;
static atomic_bool reads_stop;       /* signals_reads_stop */
static int pipe_fd[2] = { -1, -1 };
static bool installed;

static void on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;

	if (sig == SIGHUP && atomic_load(&hup_reloads)) {
		atomic_fetch_add(&reloads, 1);
	} else {
		int expected = 0;

		/* a second stop request: the user insists, leave now */
		if (!atomic_compare_exchange_strong(&stop_sig, &expected, sig) &&
		    sig != SIGHUP)
			_exit(128 + sig);
	}
	if (pipe_fd[1] >= 0 && write(pipe_fd[1], &c, 1) < 0) {
		/* full (readable already) or closed: nothing to do */
	}
	errno = saved;
}

int signals_install(void)
{
	static const int caught[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa;
	int ret;

	if (installed)
		return 0;
	if (pipe2(pipe_fd, O_NONBLOCK | O_CLOEXEC))
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* restart what can be restarted: a stop is noticed at safe points,
	 * never as an EINTR in some library's read */
	sa.sa_flags = SA_RESTART;
	for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
		if (sigaction(caught[i], &sa, NULL))
			goto out_close;
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL))
		goto out_close;
	installed = true;
	return 0;

out_close:
	ret = -errno;
	close(pipe_fd[0]);
	close(pipe_fd[1]);
	pipe_fd[0] = pipe_fd[1] = -1;
	return ret;
}

void signals_hup_reloads(bool on)
{
	atomic_store(&hup_reloads, on);
}

int signals_stop(void)
{
	return atomic_load(&stop_sig);
}

bool signals_take_reload(void)
{
	int n = atomic_load(&reloads);

	while (n > 0)
		if (atomic_compare_exchange_weak(&reloads, &n, n - 1))
			return true;
	return false;
}

int signals_fd(void)
{
	return pipe_fd[0];
}

void signals_drain(void)
{
	char buf[64];

	if (pipe_fd[0] < 0)
		return;
	while (read(pipe_fd[0], buf, sizeof(buf)) > 0)
		;
}

bool signals_cancelled(void *ctx)
{
	(void)ctx;
	return atomic_load(&stop_sig) != 0;
}

void signals_reads_stop(bool on)
{
	atomic_store(&reads_stop, on);
}

bool signals_reads_cancelled(void *ctx)
{
	(void)ctx;
	return atomic_load(&reads_stop) && atomic_load(&stop_sig) != 0;
}

const char *signals_name(int sig)
{
	static char other[32];

	switch (sig) {
	case SIGINT: return "SIGINT";
	case SIGTERM: return "SIGTERM";
	case SIGHUP: return "SIGHUP";
	default:
		snprintf(other, sizeof(other), "signal %d", sig);
		return other;
	}
}
