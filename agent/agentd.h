/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_AGENTD_H
#define SNAPSHIP_AGENT_AGENTD_H

/*
 * snapship agent: the daemon (design §9).  One per host (the agent lock in
 * the state dir).  Every round: discovery, recovery (leftover snapshots,
 * one listing of every region for the round (prune_round), pending and
 * half-done prunes and the policy on it, then - at start, after a reload
 * or a failed round only - unfinished uploads and manifest-less objects),
 * the newest committed backup of every partition from that listing,
 * schedule_next_try, then the due backups one at
 * a time, each under the host lock; a success is followed by
 * prune_partition_round; every attempt by runrec_note and
 * metrics_write_listed (the round's listing).  All store work (recovery,
 * listings, backups, prunes)
 * runs in a thread while the main loop keeps answering signals and pinging
 * the watchdog, also when a region is slow to answer.  A
 * failed backup is retried with a backoff (schedule_next_try over the run
 * record's failures in a row), never more often than every 30s and at
 * most an interval later; the agent never exits on one.
 * SIGTERM/SIGINT cancel the running backup and stop (exit 0: a clean
 * stop); SIGHUP reloads the config (a bad one is logged, the old kept).
 *
 * max_concurrent > 1: the due backups of a round run up to that many at
 * once, each of a different partition, in threads of their own with their
 * own regions, under one hold of the host lock; prunes, run records and
 * the metrics file follow each one in the main loop.
 */

#include <stdbool.h>

struct config;
struct err;

struct agent_opts {
	const char *config_file;   /* reloaded on SIGHUP */
	const char *host;          /* the host name of the keys (fixed for the agent's life) */
	const char *state_dir;     /* --state-dir, NULL: the config's */
	bool once;                 /* one round of the due backups, then exit */
	/* the worker of the supervised agent (agent/supervise.c): no agent
	 * lock (the supervisor's), hands over when idle (the next round
	 * AGENT_LINGER_S away: notify_next, exit 0) */
	bool worker;
	int config_fd;             /* worker: the supervisor's copy of the config, rewritten
				    * by a good reload (config_load_copy) */
	bool resume;               /* worker: no full recovery at start (the last worker ended well) */
	bool reload_first;         /* worker: started for a SIGHUP: reload, then the round */
};

/*
 * Run the agent with *cfg, which stays the caller's: a reload replaces its
 * contents (config_free still frees it).  o is only read.  Returns the
 * exit status: 0 after a stop asked by a signal (or --once with every
 * backup ok), 1 when --once had a backup fail or the agent cannot start,
 * 128 + signal when --once was stopped by one.
 */
int agent_run(struct config *cfg, const struct agent_opts *o);

/* "agent started (pid N): ..." (and a warning when cfg has nothing to
 * back up): agent_run says it, the supervised agent before it execs the
 * supervisor. */
void agent_say_start(const struct config *cfg, const struct agent_opts *o);

/*
 * `snapship agent` (not --once): the agent lock taken, a copy of the
 * config file (its bytes now, loaded again to check them) in a memfd,
 * "agent started" said, then exec of the supervisor snapship-agentd
 * (SNAPSHIP_AGENTD, else next to this binary, else the libexec dir) with
 * both descriptors: the process keeps its pid (systemd's main pid).
 * Returns only on failure: -ENOENT when there is no supervisor (the
 * caller runs agent_run in this process instead), other -errno (err set,
 * nothing held) otherwise.
 */
int agent_exec_supervisor(const struct config *cfg, const struct agent_opts *o,
			  struct err *err);

/*
 * `snapship agent --worker FD` (started by the supervisor only): the pipe
 * FD for notify_to_supervisor, the config copy's descriptor
 * (SNAPSHIP_AGENT_CONFIG_FD) into o->config_fd, the agent's state dir
 * (SNAPSHIP_AGENT_STATE_DIR, when no --state-dir was typed) into
 * cfg->state_dir, PR_SET_PDEATHSIG so the worker stops when the supervisor
 * dies; both descriptors close-on-exec.
 * 0 or -errno (err set).
 */
int agent_worker_prepare(const char *fd_arg, struct config *cfg, struct agent_opts *o,
			 struct err *err);

#endif
