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

struct agent_opts {
	const char *config_file;   /* reloaded on SIGHUP */
	const char *host;          /* the host name of the keys (fixed for the agent's life) */
	const char *state_dir;     /* --state-dir, NULL: the config's */
	bool once;                 /* one round of the due backups, then exit */
};

/*
 * Run the agent with *cfg, which stays the caller's: a reload replaces its
 * contents (config_free still frees it).  o is only read.  Returns the
 * exit status: 0 after a stop asked by a signal (or --once with every
 * backup ok), 1 when --once had a backup fail or the agent cannot start,
 * 128 + signal when --once was stopped by one.
 */
int agent_run(struct config *cfg, const struct agent_opts *o);

#endif
