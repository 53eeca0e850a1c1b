/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_BACKUP_H
#define SNAPSHIP_AGENT_BACKUP_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/catalog.h"

struct err;
struct store;
struct config;
struct cfg_partition;

struct backup_result {
	struct manifest m;        /* the committed manifest */
	double seconds;
};

/*
 * One backup of one partition into store under prefix/host: freeze, stream,
 * commit (manifest last), release.  The snapshot is released whatever
 * happens; on failure nothing becomes visible and objects already written
 * are removed.  The caller holds the host lock (lock_acquire).
 */
int backup_partition(const struct config *cfg, const struct cfg_partition *part,
		     struct store *store, const char *prefix, const char *host,
		     bool progress, struct backup_result *res, struct err *err);

/* Take the host lock in state_dir (blocks up to wait_s); fd or <0. */
int lock_acquire(const char *state_dir, int wait_s, struct err *err);
void lock_release(int fd);

/* Run a hook command with a timeout; 0 if it exited 0. */
int hook_run(const char *what, const char *cmd, int64_t timeout_s,
	     const char *partition, const char *source, struct err *err);

#endif
