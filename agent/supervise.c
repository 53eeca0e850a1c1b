// SPDX-License-Identifier: MIT
/*
 * snapship-agentd: the supervisor of the agent (design "The daemon").
 * `snapship agent` takes the agent lock, copies the config into a memfd
 * and execs this program, which keeps its pid (systemd's main pid: only
 * it notifies, NotifyAccess=main).  It links only libc and libsystemd, so
 * the agent between backups costs this process's few pages.
 *
 * The work runs in a worker, the snapship binary as `snapship agent
 * --worker FD`, started when a round is due (at start at once).  The
 * worker runs rounds as the one-process agent does (agentd.c) and, when
 * its next round is far (AGENT_LINGER_S), writes on the pipe FD
 *     status TEXT       the agent's status line (also while working)
 *     ready | reloading around a reload
 *     next UNIX_SECONDS when the next round is due
 * and exits 0.  This program forwards status as STATUS=, ready/reloading
 * as READY=1/RELOADING=1, sleeps until next (pinging the watchdog), and
 * starts the next worker then, with --worker-resume (no full recovery)
 * when the last one ended that way.  A worker that dies otherwise (a
 * crash, kill -9, a nonzero exit, an exit without next) is said and
 * another started after a backoff, 30 s doubling up to the interval; the
 * next one recovers fully (its leftovers are the recovery's to remove).
 *
 * Signals: SIGTERM/SIGINT are forwarded to a worker (it cancels its
 * backup or drill), waited for STOP_WAIT_S, then SIGKILLed and said so;
 * then STOPPING=1 and exit 0.  SIGHUP is forwarded to a worker, which
 * reloads; when idle a worker is started with --worker-reload: it reloads
 * as the agent does (a bad config said, the old kept) and runs the
 * round.  The memfd holds the last good config's bytes: every worker
 * loads it, and a good reload rewrites it, so a config file broken
 * without SIGHUP does not break the next round.
 *
 * The log: the worker's stderr is this process's; these lines take the
 * same form (text or json, the journal's <N> prefix) from a small copy of
 * common/log.c's prefix logic (log.c needs jansson).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_S 30
#define STOP_WAIT_S 60
#define LINE_MAX_LEN 4096

enum lvl { L_ERROR, L_WARN, L_INFO, L_DEBUG };

struct sup {
	/* the command line */
	const char *snapship, *config, *state_dir, *host, *log_format, *log_level;
	bool state_dir_given;     /* --state-dir typed: a reload keeps it silently */
	int config_fd, lock_fd;
	int64_t interval;
	enum lvl level;
	bool json, journal;
	/* the worker */
	pid_t pid;                /* 0: none */
	int rfd;                  /* its pipe's read end, -1 */
	char buf[LINE_MAX_LEN];
	size_t blen;
	int64_t next;             /* the next worker's start (the worker's next, or the backoff) */
	bool got_next, resume, reload;
	bool hup_sent;            /* a SIGHUP forwarded, its "reloading" not seen yet */
	int64_t backoff;
	/* stopping */
	int stop_sig;
	int64_t stop_deadline;
	bool killed;
	int sfd;                  /* signalfd */
};

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* ------------------------------------------------------------ the log */

/* s into out as a JSON string's inside (control characters \u-escaped). */
static void json_esc(const char *s, char *out, size_t len)
{
	size_t k = 0;

	for (; *s && k + 7 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[k++] = '\\';
			out[k++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			k += (size_t)snprintf(out + k, len - k, "\\u%04x", c);
		} else {
			out[k++] = (char)c;
		}
	}
	out[k] = '\0';
}

static void __attribute__((format(printf, 3, 4)))
say(const struct sup *s, enum lvl level, const char *fmt, ...)
{
	static const char *const text[] = { "error: ", "warning: ", "", "debug: " };
	static const char *const json[] = { "error", "warning", "info", "debug" };
	static const char *const prio[] = { SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG };
	char msg[1024], esc[6 * sizeof(msg)], when[64];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level > s->level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!s->json) {
		fprintf(stderr, "%ssnapship: %s%s\n", s->journal ? prio[level] : "", text[level], msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts.tv_nsec / 1000000);
	json_esc(msg, esc, sizeof(esc));
	fprintf(stderr, "%s{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n",
		s->journal ? prio[level] : "", when, json[level], esc);
}

/* As common/log.c's log_detect_journal: stderr is JOURNAL_STREAM's. */
static bool is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (!js || sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2 || fstat(2, &st))
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* ------------------------------------------------------- systemd */

static void notify(const char *state)
{
	if (getenv("NOTIFY_SOCKET"))
		sd_notify(0, state);
}

static void notify_status(const char *text)
{
	char state[LINE_MAX_LEN + 8];

	snprintf(state, sizeof(state), "STATUS=%s", text);
	notify(state);
}

/* Half the watchdog interval in ms (cap when none, or longer). */
static int tick_ms(int cap)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0 && usec / 2000 < (uint64_t)cap)
		return (int)(usec / 2000);
	return cap;
}

/* ---------------------------------------------------- the worker */

static void worker_exec(const struct sup *s, int wfd)
{
	char fd[16], cfd[16], me[32];
	const char *argv[20];
	size_t n = 0;

	argv[n++] = s->snapship;
	argv[n++] = "--config";
	argv[n++] = s->config;
	if (s->state_dir_given) {   /* else SNAPSHIP_AGENT_STATE_DIR: a reload warns */
		argv[n++] = "--state-dir";
		argv[n++] = s->state_dir;
	}
	argv[n++] = "--host";
	argv[n++] = s->host;
	argv[n++] = "--log-format";
	argv[n++] = s->log_format;
	if (s->level == L_DEBUG) {   /* each -v one level up from the default warn */
		argv[n++] = "-v";
		argv[n++] = "-v";
	} else if (s->level == L_ERROR)
		argv[n++] = "-q";
	argv[n++] = "agent";
	argv[n++] = "--worker";
	argv[n++] = fd;
	if (s->resume)
		argv[n++] = "--worker-resume";
	if (s->reload)
		argv[n++] = "--worker-reload";
	argv[n] = NULL;
	snprintf(fd, sizeof(fd), "%d", wfd);
	snprintf(cfd, sizeof(cfd), "%d", s->config_fd);
	snprintf(me, sizeof(me), "%ld", (long)getppid());
	if (fcntl(wfd, F_SETFD, 0) || fcntl(s->config_fd, F_SETFD, 0) ||
	    setenv("SNAPSHIP_AGENT_CONFIG_FD", cfd, 1) || setenv("SNAPSHIP_AGENTD_PID", me, 1) ||
	    setenv("SNAPSHIP_AGENT_STATE_DIR", s->state_dir, 1))
		_exit(127);
	/* only the supervisor talks to systemd */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	execv(s->snapship, (char *const *)argv);
	fprintf(stderr, "snapship: error: cannot run the worker %s: %s\n", s->snapship,
		strerror(errno));
	_exit(127);
}

/* Start a worker: 0, or -errno (the caller says it and retries after the
 * backoff). */
static int worker_start(struct sup *s)
{
	int p[2];
	sigset_t chld;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	s->pid = fork();
	if (s->pid < 0) {
		int ret = -errno;

		close(p[0]);
		close(p[1]);
		s->pid = 0;
		return ret;
	}
	if (s->pid == 0) {
		/* its own process group: a ^C on the terminal reaches only the
		 * supervisor, which forwards it once (a second one would end
		 * the worker at once).  SIGTERM/SIGINT/SIGHUP stay blocked
		 * across the exec until the worker's handlers are in
		 * (agent_worker_prepare): a SIGHUP forwarded at once must not
		 * kill it; only SIGCHLD is unblocked */
		setpgid(0, 0);
		sigemptyset(&chld);
		sigaddset(&chld, SIGCHLD);
		sigprocmask(SIG_UNBLOCK, &chld, NULL);
		signal(SIGPIPE, SIG_DFL);
		close(p[0]);
		worker_exec(s, p[1]);
	}
	close(p[1]);
	s->rfd = p[0];
	s->blen = 0;
	s->got_next = false;
	say(s, L_DEBUG, "worker started (pid %ld)%s%s", (long)s->pid,
	    s->resume ? "" : ": a full recovery", s->reload ? ", reloading first" : "");
	s->reload = false;
	s->hup_sent = false;
	return 0;
}

/* One line of the worker's protocol. */
static void worker_line(struct sup *s, char *line)
{
	char *end;

	if (!strncmp(line, "status ", 7)) {
		notify_status(line + 7);
	} else if (!strcmp(line, "ready")) {
		notify("READY=1");
	} else if (!strcmp(line, "reloading")) {
		s->hup_sent = false;
		notify("RELOADING=1");
	} else if (!strncmp(line, "next ", 5)) {
		long long t = strtoll(line + 5, &end, 10);

		if (!*end && t > 0) {
			s->next = t;
			s->got_next = true;
		}
	} else {
		say(s, L_DEBUG, "worker (pid %ld): unknown line \"%.80s\"", (long)s->pid, line);
	}
}

/* Read what the worker wrote; lines handed to worker_line. */
static void worker_read(struct sup *s)
{
	ssize_t n;
	char *nl;

	if (s->rfd < 0)
		return;
	n = read(s->rfd, s->buf + s->blen, sizeof(s->buf) - 1 - s->blen);
	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
			close(s->rfd);
			s->rfd = -1;
		}
		return;
	}
	s->blen += (size_t)n;
	s->buf[s->blen] = '\0';
	while ((nl = memchr(s->buf, '\n', s->blen))) {
		*nl = '\0';
		worker_line(s, s->buf);
		s->blen -= (size_t)(nl + 1 - s->buf);
		memmove(s->buf, nl + 1, s->blen);
	}
	if (s->blen == sizeof(s->buf) - 1)
		s->blen = 0;   /* an overlong line: dropped */
}

/* The worker ended with status st: the next start set (its next, or the
 * backoff after a death). */
static void worker_ended(struct sup *s, int st)
{
	char how[64];

	while (s->rfd >= 0)
		worker_read(s);   /* what it wrote before it ended */
	if (s->stop_sig) {
		if (!s->killed)
			say(s, L_DEBUG, "worker (pid %ld) stopped", (long)s->pid);
		s->pid = 0;
		return;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && s->got_next) {
		s->pid = 0;
		s->resume = true;
		s->backoff = BACKOFF_MIN_S;
		if (s->hup_sent) {   /* it exited before taking the SIGHUP: the next one reloads now */
			s->hup_sent = false;
			s->reload = true;
			s->resume = false;
			s->next = now_s();
		}
		return;
	}
	if (WIFSIGNALED(st))
		snprintf(how, sizeof(how), "was killed by %s", strsignal(WTERMSIG(st)));
	else if (WEXITSTATUS(st))
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(st));
	else
		snprintf(how, sizeof(how), "exited without saying its next round");
	say(s, L_ERROR, "the agent's worker (pid %ld) %s; a new worker in %llds (with a full recovery: it removes what this one left)",
	    (long)s->pid, how, (long long)s->backoff);
	snprintf(how, sizeof(how), "worker died; restarting in %llds", (long long)s->backoff);
	notify_status(how);
	s->pid = 0;
	s->resume = false;
	s->reload = s->hup_sent;   /* a SIGHUP it never took: the next one reloads */
	s->hup_sent = false;
	s->next = now_s() + s->backoff;
	s->backoff *= 2;   /* doubling up to the interval */
	if (s->backoff > s->interval)
		s->backoff = s->interval;
	if (s->backoff < BACKOFF_MIN_S)
		s->backoff = BACKOFF_MIN_S;
}

static void reap(struct sup *s)
{
	int st;
	pid_t p;

	while ((p = waitpid(-1, &st, WNOHANG)) > 0)
		if (p == s->pid)
			worker_ended(s, st);
}

/* A signal taken from the signalfd. */
static void on_signal(struct sup *s, int sig)
{
	if (sig == SIGCHLD) {
		reap(s);
	} else if (sig == SIGHUP) {
		if (s->pid) {
			kill(s->pid, SIGHUP);   /* the worker reloads */
			s->hup_sent = true;
		} else if (!s->stop_sig) {
			s->reload = true;       /* a worker reloads, then its round */
			s->resume = false;
			s->next = now_s();
		}
	} else if (sig == SIGTERM || sig == SIGINT) {
		if (!s->stop_sig) {
			say(s, L_INFO, "stopping: %s received; %s", strsignal(sig),
			    sig == SIGTERM ? "a stop asked by the service manager (or kill): a clean stop" :
			    "a clean stop");
			notify("STOPPING=1");
			s->stop_sig = sig;
			s->stop_deadline = now_s() + STOP_WAIT_S;
		}
		if (s->pid)
			kill(s->pid, sig);
	}
}

/* Wait for the next event: a signal, a line, the next start. */
static void wait_once(struct sup *s)
{
	struct pollfd p[2] = { { .fd = s->sfd, .events = POLLIN },
			       { .fd = s->rfd, .events = POLLIN } };
	int64_t left = 3600;
	struct signalfd_siginfo si;

	if (s->stop_sig)
		left = s->stop_deadline - now_s();
	else if (!s->pid)
		left = s->next - now_s();
	if (left < 0)
		left = 0;
	if (left > 3600)
		left = 3600;
	if (poll(p, s->rfd >= 0 ? 2 : 1, tick_ms((int)left * 1000 + 1)) < 0 && errno != EINTR)
		say(s, L_DEBUG, "poll: %s", strerror(errno));
	notify("WATCHDOG=1");
	if (s->rfd >= 0 && (p[1].revents & (POLLIN | POLLHUP)))
		worker_read(s);
	if (p[0].revents & POLLIN)
		while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			on_signal(s, (int)si.ssi_signo);
}

/* The loop: workers when due, until a stop with no worker left. */
static int supervise(struct sup *s)
{
	for (;;) {
		wait_once(s);
		reap(s);
		if (s->stop_sig && !s->pid)
			return 0;
		if (s->stop_sig && now_s() >= s->stop_deadline && !s->killed) {
			say(s, L_ERROR, "the agent's worker (pid %ld) did not stop within %ds: killed (SIGKILL); the next start's recovery removes what it left",
			    (long)s->pid, STOP_WAIT_S);
			kill(s->pid, SIGKILL);
			s->killed = true;
		}
		if (!s->stop_sig && !s->pid && now_s() >= s->next) {
			int ret = worker_start(s);

			if (ret) {
				say(s, L_ERROR, "cannot start the agent's worker: %s; retrying in %llds",
				    strerror(-ret), (long long)s->backoff);
				s->next = now_s() + s->backoff;
			}
		}
	}
}

static int usage(const char *what)
{
	fprintf(stderr, "snapship-agentd: %s\n"
		"snapship-agentd is started by `snapship agent` (the supervisor of its workers); run that.\n",
		what);
	return 2;
}

static int parse_level(const char *v, enum lvl *l)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(v, names[i])) {
			*l = (enum lvl)i;
			return 0;
		}
	return -1;
}

/* --NAME VALUE pairs, all of them needed. */
static int parse_args(struct sup *s, int argc, char **argv)
{
	const char *lfd = NULL, *cfd = NULL, *ivl = NULL, *lvl = NULL, *given = NULL;
	struct { const char *name; const char **v; } opts[] = {
		{ "--snapship", &s->snapship }, { "--config", &s->config },
		{ "--state-dir", &s->state_dir }, { "--host", &s->host },
		{ "--config-fd", &cfd }, { "--lock-fd", &lfd }, { "--interval", &ivl },
		{ "--log-format", &s->log_format }, { "--log-level", &lvl },
		{ "--state-dir-given", &given },
	};
	size_t n = sizeof(opts) / sizeof(opts[0]);

	for (int i = 1; i + 1 < argc; i += 2) {
		size_t k = 0;

		while (k < n && strcmp(argv[i], opts[k].name))
			k++;
		if (k == n)
			return usage("unknown option");
		*opts[k].v = argv[i + 1];
	}
	for (size_t k = 0; k < n; k++)
		if (!*opts[k].v)
			return usage("an option is missing");
	s->lock_fd = atoi(lfd);
	s->config_fd = atoi(cfd);
	s->interval = atoll(ivl);
	s->json = !strcmp(s->log_format, "json");
	s->state_dir_given = !strcmp(given, "yes");
	if (parse_level(lvl, &s->level) || fcntl(s->lock_fd, F_GETFD) < 0 ||
	    fcntl(s->config_fd, F_GETFD) < 0)
		return usage("bad --log-level, --lock-fd or --config-fd");
	return 0;
}

int main(int argc, char **argv)
{
	struct sup s = { .rfd = -1, .backoff = BACKOFF_MIN_S };
	sigset_t set;
	int ret;

	if (parse_args(&s, argc, argv))
		return 2;
	s.journal = is_journal();
	s.next = now_s();   /* the first round at once */
	/* the agent lock stays held here; no worker inherits it */
	fcntl(s.lock_fd, F_SETFD, FD_CLOEXEC);
	fcntl(s.config_fd, F_SETFD, FD_CLOEXEC);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, &set, NULL) ||
	    (s.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		say(&s, L_ERROR, "supervisor: cannot take signals: %s", strerror(errno));
		return 1;
	}
	say(&s, L_DEBUG, "supervisor (pid %ld): the work runs in workers (%s agent --worker)",
	    (long)getpid(), s.snapship);
	notify("READY=1");
	notify_status("starting");
	ret = supervise(&s);
	close(s.lock_fd);
	return ret;
}
