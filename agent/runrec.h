/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_RUNREC_H
#define SNAPSHIP_AGENT_RUNREC_H

/*
 * The run record of a partition: what its last backup attempt did, kept in
 * <state_dir>/runs/<host>/<partition>.json, written atomically
 * (tmp + fsync + rename) by cmd_backup and the agent after every attempt.
 * status --json and the metrics file read it (one source of these facts).
 *
 * Ownership: struct runrec owns last_error (runrec_clear frees it); every
 * other pointer argument is only read and not kept.
 */

#include <stdint.h>

struct err;
struct backup_result;

struct runrec {
	int64_t last_attempt, last_success;  /* unix seconds, 0 = never */
	int last_rc;                         /* 0 ok, else the error code */
	char *last_error;                    /* NULL if ok; escaped text */
	double duration_s, snapshot_held_s;  /* of the last attempt / success */
	uint64_t logical_bytes, stored_bytes;  /* of the last success */
	uint64_t failures_total;
	unsigned failures_in_row;            /* failed attempts since the last success
					      * (the agent's backoff: schedule.h) */
	double slowed_s;                     /* time the low-impact mode held the backup back */
};

/* Load host/partition's record into *r_ret (runrec_clear frees it); a
 * missing file gives a zeroed record and 0; a file that is not a record:
 * -EBADMSG (and a zeroed record). host and partition: util_name_ok names. */
int runrec_load(const char *state_dir, const char *host, const char *partition,
		struct runrec *r_ret, struct err *err);
int runrec_save(const char *state_dir, const char *host, const char *partition,
		const struct runrec *r, struct err *err);
void runrec_clear(struct runrec *r);

/*
 * Record one attempt: loads, updates, saves.  rc 0: a success, res its
 * result (bytes, snapshot held from the manifest; res->seconds when
 * duration_s < 0) and failures_in_row = 0; else a failure with error (its
 * message, escaped here), failures_total++, failures_in_row++ and the
 * earlier success's facts kept.  duration_s: the
 * attempt's wall time (< 0: from res).  An unreadable old record is
 * replaced (and said in err only when saving fails).
 */
int runrec_note(const char *state_dir, const char *host, const char *partition,
		int rc, const char *error, const struct backup_result *res, double duration_s,
		struct err *err);

#endif
