/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_RUNREC_H
#define SNAPSHIP_AGENT_RUNREC_H

/* TEMP stub of branch M's agent/runrec.h (interfaces.md); dropped at merge. */

#include <stdint.h>

#include "agent/backup.h"

struct err;

struct runrec {
	int64_t last_attempt, last_success;
	int last_rc;
	char *last_error;
	double duration_s, snapshot_held_s;
	uint64_t logical_bytes, stored_bytes;
	uint64_t failures_total;
	double slowed_s;
};
int runrec_load(const char *state_dir, const char *host, const char *partition,
		struct runrec *r_ret, struct err *err);
int runrec_save(const char *state_dir, const char *host, const char *partition,
		const struct runrec *r, struct err *err);
void runrec_clear(struct runrec *r);
int runrec_note(const char *state_dir, const char *host, const char *partition,
		int rc, const char *error, const struct backup_result *res, double duration_s,
		struct err *err);

#endif
