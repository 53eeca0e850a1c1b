/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_INDEX_PRIV_H
#define SNAPSHIP_AGENT_INDEX_PRIV_H

/* Between index.c (lines, the reader, the writer) and index_blocks.c (a
 * large file's blocks). */

#include <jansson.h>
#include <stddef.h>

struct err;
struct index_entry;
struct pack_entry_info;

/* Exactly 2 * n hex digits into n bytes; -1: not hex. */
int index_unhex(const char *s, unsigned char *out, size_t n);
/* bsize, bxxh3, bext and (unless one whole location) runs of e->blocks
 * into o: 0 or -ENOMEM (err set). */
int index_put_blocks(json_t *o, const struct pack_entry_info *e, struct err *err);
/* The blocks of the line o into e->blk (none: 0, e->blk NULL): 0,
 * -EBADMSG (what is wrong in *why) or -ENOMEM. */
int index_parse_blocks(json_t *o, struct index_entry *e, const char **why);

#endif
