/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_CLEAN_H
#define SNAPSHIP_AGENT_CLEAN_H

/*
 * What an interrupted run leaves in a store: multipart uploads never
 * completed and backup objects without a manifest.  Only with the host
 * lock held (hostlock_acquire): a backup in progress looks the same.
 */

#include "agent/geo.h"

/*
 * Remove host's unfinished uploads in region g (a region without a store
 * is skipped); says what it removed, or why it could not, as warnings.  A
 * secondary that does not answer is marked down in g.  host is only read.
 * Returns how many uploads and objects were removed.
 */
unsigned clean_region(struct region *g, const char *host);

/*
 * clean_region on every region of rs that snapship uploads to itself: the
 * primary and the replication = agent ones (in a server-replicated region
 * a backup whose manifest has not arrived yet looks unfinished).
 */
unsigned clean_regions(struct regions *rs, const char *host);

#endif
