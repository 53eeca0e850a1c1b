/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_DRILL_PRIV_H
#define SNAPSHIP_AGENT_DRILL_PRIV_H

/*
 * Shared between drill.c and drill_scratch.c (and the unit tests): the
 * names of scratch copies and their removal.  Strings are only read.
 */

#include <stdbool.h>
#include <stddef.h>

struct err;

/* Is name a drill's copy, "drill-<partition>-<backup-id>"?  Its partition
 * goes to part_ret (len bytes). */
bool drill_copy_name(const char *name, char *part_ret, size_t len);

/*
 * Remove the scratch copy at path with everything in it: a subvolume is
 * deleted whole (cow_delete_volume), a plain directory removed entry by
 * entry without following a link or leaving its filesystem.  A missing path
 * is 0; a path that is not a directory is refused (-EINVAL).
 */
int drill_remove_copy(const char *path, struct err *err);

/*
 * One drill at a time per state directory (the agent's and snapship
 * drill's: each removes the other's copies as leftovers otherwise): an
 * exclusive flock on <state_dir>/drill.lock, waited for (cancelled is asked
 * between tries: -ECANCELED).  Returns the descriptor (close it to unlock)
 * or -errno with err set.
 */
int drill_lock(const char *state_dir, bool (*cancelled)(void *ctx), void *ctx,
	       struct err *err);

#endif
