// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: snapship.conf (agent/config.c).  config_load() takes a
 * path, so the input is written to a memfd and loaded as
 * /proc/self/fd/N (a fresh open file at offset 0 every time).
 *
 * Beyond "no crash": a config that loads has exactly one primary region
 * when it has regions, and every region a location.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent/config.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char path[64];

static __attribute__((noreturn)) void bug(const char *what)
{
	fprintf(stderr, "fuzz_config: %s\n", what);
	abort();
}

static void check(const struct config *cfg)
{
	size_t primaries = 0;

	for (size_t i = 0; i < cfg->nregions; i++) {
		primaries += cfg->regions[i].primary;
		if (!config_region_location(&cfg->regions[i]))
			bug("a region without a location");
	}
	if (cfg->nregions && primaries != 1)
		bug("a config whose regions do not have exactly one primary");
	if (cfg->nregions && config_primary(cfg) == NULL)
		bug("config_primary finds none");
	for (size_t i = 0; i < cfg->nparts; i++)
		if (config_partition(cfg, cfg->parts[i].name) == NULL || !cfg->parts[i].path)
			bug("a partition that cannot be found or has no path");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct err err = { 0 };

	if (memfd < 0) {
		memfd = memfd_create("snapship.conf", MFD_CLOEXEC);
		if (memfd < 0) {
			perror("fuzz_config: memfd_create");
			abort();
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	}
	if (ftruncate(memfd, 0) || pwrite(memfd, data, size, 0) != (ssize_t)size) {
		perror("fuzz_config: writing the memfd");
		abort();
	}
	if (config_load(path, &cfg, &err))
		return 0;
	check(&cfg);
	config_free(&cfg);
	return 0;
}
