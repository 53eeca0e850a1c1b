/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_DRILL_CMD_H
#define SNAPSHIP_AGENT_DRILL_CMD_H

/* `snapship drill` (main.c's command table): c is used, argv (the
 * arguments left after the options, none expected) only read.  Returns the
 * exit status, said. */

struct cli;

int cmd_drill(struct cli *c, int argc, char **argv);

#endif
