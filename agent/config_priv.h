/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_CONFIG_PRIV_H
#define SNAPSHIP_AGENT_CONFIG_PRIV_H

/*
 * Shared between config.c (defaults, the checks across sections, loading,
 * freeing and the getters) and config_ini.c (reading the INI text: each
 * section's keys and their values).  Internal to the config; config.h is the
 * interface.  A parse_ctx lives on load_stream's stack; the config it fills
 * is the caller's.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "agent/config.h"

struct err;

struct parse_ctx {
	struct config *cfg;
	const char *file;
	FILE *fp;
	int line;
	struct err *err;
	int error;
};

/* The [retention] keys: name, field, duration (else a count or yes/no). */
struct ret_key {
	const char *name;
	size_t off;
	bool duration;
};

/* Indexed by CFG_RET_*; config_retention copies a partition's overrides by
 * their offsets. */
extern const struct ret_key config_ret_keys[CFG_RET_KEYS];

/* Replace *dst with a copy of v (the old string freed); -ENOMEM. */
int config_set_str(char **dst, const char *v);

/* libinih's handler (user is a struct parse_ctx): one key of a section. */
int config_ini_handler(void *user, const char *section, const char *key,
		       const char *value);

/* libinih's reader (stream is a struct parse_ctx): fgets that counts lines,
 * so errors can name them. */
char *config_ini_reader(char *str, int num, void *stream);

#endif
