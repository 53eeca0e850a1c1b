/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_REPORT_PRIV_H
#define SNAPSHIP_AGENT_REPORT_PRIV_H

/*
 * Shared between report.c and report_status.c: the helpers that build a
 * command's JSON document.  Both live in report.c.  Pointers other than
 * the json_t * given away are only read.
 */

#include <jansson.h>

#include "agent/report.h"

struct geo_state;

/* The document is now o (the array made by report_init goes); r owns o. */
void report_set_doc(struct report *r, json_t *o);

/* "geo": summary and "regions": [...] of a backup's replication state, set on o */
void report_geo_json(json_t *o, const struct geo_state *gs);

#endif
