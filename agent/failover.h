/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_FAILOVER_H
#define SNAPSHIP_AGENT_FAILOVER_H

/*
 * Read failover (design §6): listing from the first region that answers,
 * and the choice of the regions a restore reads from — the first whole
 * copy, the other whole copies as fallbacks when reading fails midway.
 *
 * Ownership: rs is used (its stores; a region that does not answer is
 * marked down in it) and stays the caller's; other pointer arguments are
 * only read.  What a *_ret holds is said at each function.
 */

#include <stdbool.h>
#include <stddef.h>

#include "agent/catalog.h"
#include "agent/geo.h"
#include "agent/restore.h"

struct err;

/* Did this error come from not reaching the store at all? */
bool failover_unreachable(const struct err *e);

/*
 * The backups of host (partition NULL = all) from the first region of rs
 * that answers: the primary, then the secondaries, each failing over with
 * a warning.  When that region lacks backups this host committed (known
 * from the replication state in state_dir; NULL: not asked), it is
 * suspect — an unmounted share looks empty — so the others are listed
 * too: *list_ret is then their union (list_ret->region says where each
 * came from) and warnings say which region lacks what.  *list_ret is the
 * caller's (catalog_list_free) on success, empty on error; *used_ret is
 * the index in rs of the region listed (first).
 */
int failover_list(struct regions *rs, const char *state_dir, const char *host,
		  const char *part, struct catalog_list *list_ret,
		  size_t *used_ret, struct err *err);

/* The hosts a store holds backups of, from the first region of rs that
 * answers (as failover_list); *hosts_ret as catalog_hosts's. */
int failover_hosts(struct regions *rs, struct catalog_hosts *hosts_ret,
		   size_t *used_ret, struct err *err);

/* Where a restore reads from: free with failover_sources_free. */
struct failover_sources {
	struct restore_source v[REGIONS_MAX];  /* whole copies, primary first */
	size_t n;
	size_t used;                 /* index in rs of v[0]'s region */
	struct manifest m;           /* the backup, its data and index keys in
				      * v[0]'s region (the strings are owned
				      * here, not by m: never manifest_clear it) */
	char *keys[REGIONS_MAX][2];  /* data and index key in each region */
};

/*
 * Check m's data and index in every region of rs (primary first) and keep
 * the whole copies: the first is read from, the others take over if
 * reading fails.  With no whole copy: -EBADMSG (or -EIO when a region did
 * not answer), err naming each region's problem (host and part for the
 * message).  *src_ret is always set and failover_sources_free frees it,
 * whatever the return.
 */
int failover_sources(struct regions *rs, const char *host, const char *part,
		     const struct manifest *m, struct failover_sources *src_ret,
		     struct err *err);
void failover_sources_free(struct failover_sources *src);

#endif
