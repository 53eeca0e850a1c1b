/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_CMD_CONFIG_H
#define SNAPSHIP_AGENT_CMD_CONFIG_H

/*
 * The commands `config check` and `key generate` (argv: what the command
 * table left: the command's own words).  Exit statuses as every command's.
 */

struct cli;

int cmd_config(struct cli *c, int argc, char **argv);
int cmd_key(struct cli *c, int argc, char **argv);

#endif
