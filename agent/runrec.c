// SPDX-License-Identifier: MIT
/* TEMP stub of branch M's agent/runrec.c: records nothing. */
#include "agent/runrec.h"

#include <stdlib.h>
#include <string.h>

int runrec_load(const char *state_dir, const char *host, const char *partition,
		struct runrec *r_ret, struct err *err)
{
	(void)state_dir; (void)host; (void)partition; (void)err;
	memset(r_ret, 0, sizeof(*r_ret));
	return 0;
}

int runrec_save(const char *state_dir, const char *host, const char *partition,
		const struct runrec *r, struct err *err)
{
	(void)state_dir; (void)host; (void)partition; (void)r; (void)err;
	return 0;
}

void runrec_clear(struct runrec *r)
{
	free(r->last_error);
	r->last_error = NULL;
}

int runrec_note(const char *state_dir, const char *host, const char *partition,
		int rc, const char *error, const struct backup_result *res, double duration_s,
		struct err *err)
{
	(void)state_dir; (void)host; (void)partition; (void)rc; (void)error;
	(void)res; (void)duration_s; (void)err;
	return 0;
}
