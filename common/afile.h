/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_COMMON_AFILE_H
#define SNAPSHIP_COMMON_AFILE_H

/*
 * Files a reader must see whole or not at all (run records, the metrics
 * file a node exporter scrapes): written to a temporary file in the same
 * directory, fsync'd, renamed over path.  The strings and buf are only read.
 */

#include <stddef.h>

struct err;

/*
 * Replace path with len bytes of buf, mode as given (umask not applied),
 * through "<path>.tmp.<pid>": on any failure path is left as it was and the
 * temporary file is removed.  mkdirs: create path's directory (0700) first.
 * 0 or -errno with err saying what failed on which file.
 */
int afile_write(const char *path, const void *buf, size_t len, unsigned mode,
		int mkdirs, struct err *err);

#endif
