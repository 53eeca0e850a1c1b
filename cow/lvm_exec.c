// SPDX-License-Identifier: MIT
/*
 * lvm_exec: one lvm2 command, fork/exec without a shell, a timeout, its
 * stdout collected for the caller and its stderr for the error message.
 */
#include "cow/lvm.h"

#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXEC_OUT_MAX (4u << 20)    /* lvs of a big host stays far below */
#define EXEC_ERR_MAX 2048

struct exec_buf {
	char *p;
	size_t len, cap, max;
};

/* Append what fd has; 1 at EOF, 0 for more, -errno. */
static int exec_drain(int fd, struct exec_buf *b)
{
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -errno;
	if (n == 0)
		return 1;
	if (b->len + (size_t)n + 1 > b->cap && b->len < b->max) {
		size_t cap = b->cap ? b->cap * 2 : 8192;
		char *p;

		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	if (b->len + (size_t)n + 1 <= b->cap) {  /* beyond max: dropped */
		memcpy(b->p + b->len, chunk, (size_t)n);
		b->len += (size_t)n;
		b->p[b->len] = '\0';
	}
	return 0;
}

/* What the child needs, made before fork: after it, in a process that
 * may have threads, only async-signal-safe calls are allowed. */
struct exec_prep {
	char **envp;               /* environ + LVM_SUPPRESS_FD_WARNINGS=1 */
	char paths[2][256];        /* /sbin/PROG, /usr/sbin/PROG */
	char notfound[300];        /* the message when none runs */
};

static int exec_prepare(const char *prog, struct exec_prep *p)
{
	static char quiet[] = "LVM_SUPPRESS_FD_WARNINGS=1";
	size_t n = 0;

	while (environ[n])
		n++;
	p->envp = calloc(n + 2, sizeof(char *));
	if (!p->envp)
		return -ENOMEM;
	for (size_t i = 0, j = 0; i < n; i++)   /* lvm2 warns about every */
		if (strncmp(environ[i], "LVM_SUPPRESS_FD_WARNINGS=", 25))
			p->envp[j++] = environ[i];      /* inherited descriptor */
	for (n = 0; p->envp[n]; n++)
		;
	p->envp[n] = quiet;
	snprintf(p->paths[0], sizeof(p->paths[0]), "/sbin/%s", prog);
	snprintf(p->paths[1], sizeof(p->paths[1]), "/usr/sbin/%s", prog);
	snprintf(p->notfound, sizeof(p->notfound),
		 "%s: not found in PATH, /sbin or /usr/sbin", prog);
	return 0;
}

/* The child: stdout and stderr to the pipes, stdin from /dev/null. */
static void exec_child(const char *const argv[], const struct exec_prep *p,
		       int out_fd, int err_fd)
{
	int null_fd = open("/dev/null", O_RDONLY);
	ssize_t unused;

	setpgid(0, 0);
	signal(SIGPIPE, SIG_DFL);
	if (null_fd >= 0)
		dup2(null_fd, 0);
	dup2(out_fd, 1);
	dup2(err_fd, 2);
	execvpe(argv[0], (char *const *)argv, p->envp);
	execve(p->paths[0], (char *const *)argv, p->envp);
	execve(p->paths[1], (char *const *)argv, p->envp);
	unused = write(2, p->notfound, strlen(p->notfound));
	(void)unused;
	_exit(127);
}

/* Read both pipes until EOF or the deadline; 0, -ETIMEDOUT or -errno. */
static int exec_collect(int out_fd, int err_fd, struct exec_buf *out,
			struct exec_buf *eb, double deadline)
{
	struct pollfd pfd[2] = { { out_fd, POLLIN, 0 }, { err_fd, POLLIN, 0 } };
	struct exec_buf *bufs[2] = { out, eb };
	int open_n = 2, ret;

	while (open_n > 0) {
		double left = deadline - util_now_mono();

		if (left <= 0)
			return -ETIMEDOUT;
		ret = poll(pfd, 2, (int)(left * 1000) + 1);
		if (ret < 0 && errno != EINTR)
			return -errno;
		for (int i = 0; ret > 0 && i < 2; i++) {
			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			ret = exec_drain(pfd[i].fd, bufs[i]);
			if (ret < 0)
				return ret;
			if (ret == 1) {
				pfd[i].fd = -1;
				open_n--;
			}
			ret = 1;
		}
	}
	return 0;
}

/* "lvcreate -s -n x vg/lv" for messages, into buf. */
static void exec_cmdline(const char *const argv[], char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; argv[i] && n + 1 < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? " " : "",
				      argv[i]);
}

/* The last line(s) of stderr, trimmed, for a message. */
static const char *exec_tail(struct exec_buf *eb)
{
	size_t len = eb->len;

	if (!eb->p)
		return "(no message)";
	while (len && (eb->p[len - 1] == '\n' || eb->p[len - 1] == ' '))
		eb->p[--len] = '\0';
	for (char *c = eb->p; *c; c++)
		if (*c == '\n')
			*c = ' ';
	while (*eb->p == ' ')
		memmove(eb->p, eb->p + 1, strlen(eb->p));
	return len > 600 ? eb->p + len - 600 : eb->p;
}

int lvm_exec(const char *const argv[], int timeout_s, char **out_ret,
	     struct err *err)
{
	struct exec_buf out = { .max = EXEC_OUT_MAX }, eb = { .max = EXEC_ERR_MAX };
	struct exec_prep prep = { 0 };
	char cmd[512];
	int out_pipe[2], err_pipe[2], status = 0, ret;
	pid_t pid;

	if (out_ret)
		*out_ret = NULL;
	exec_cmdline(argv, cmd, sizeof(cmd));
	if (exec_prepare(argv[0], &prep))
		return err_set(err, -ENOMEM, "out of memory");
	if (pipe2(out_pipe, O_CLOEXEC)) {
		ret = err_set(err, -errno, "%s: cannot make a pipe: %s", cmd,
			      err_str(-errno));
		free(prep.envp);
		return ret;
	}
	if (pipe2(err_pipe, O_CLOEXEC)) {
		ret = err_set(err, -errno, "%s: cannot make a pipe: %s", cmd,
			      err_str(-errno));
		goto out_close_out;
	}
	pid = fork();
	if (pid < 0) {
		ret = err_set(err, -errno, "%s: cannot fork: %s", cmd,
			      err_str(-errno));
		goto out_close_err;
	}
	if (pid == 0)
		exec_child(argv, &prep, out_pipe[1], err_pipe[1]);
	close(out_pipe[1]);
	close(err_pipe[1]);
	out_pipe[1] = err_pipe[1] = -1;
	ret = exec_collect(out_pipe[0], err_pipe[0], &out, &eb,
			   util_now_mono() + timeout_s);
	if (ret == -ETIMEDOUT)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (ret == -ETIMEDOUT) {
		err_set(err, ret, "%s did not finish in %d s and was killed; "
			"check the volume group (lvs, dmsetup info)", cmd,
			timeout_s);
	} else if (ret) {
		err_set(err, ret, "%s: %s", cmd, err_str(ret));
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 127 &&
		   eb.p && strstr(eb.p, "not found in PATH")) {
		ret = err_set(err, -ENOENT, "%s: %s: install lvm2", cmd,
			      exec_tail(&eb));
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		ret = err_set(err, -EIO, "%s failed (%s %d): %s", cmd,
			      WIFEXITED(status) ? "exit status" : "signal",
			      WIFEXITED(status) ? WEXITSTATUS(status)
						: WTERMSIG(status),
			      exec_tail(&eb));
	}
	if (!ret && out_ret) {
		*out_ret = out.p ? out.p : strdup("");
		out.p = NULL;
		if (!*out_ret)
			ret = err_set(err, -ENOMEM, "out of memory");
	}
out_close_err:
	close(err_pipe[0]);
	if (err_pipe[1] >= 0)
		close(err_pipe[1]);
out_close_out:
	close(out_pipe[0]);
	if (out_pipe[1] >= 0)
		close(out_pipe[1]);
	free(out.p);
	free(eb.p);
	free(prep.envp);
	return ret;
}
