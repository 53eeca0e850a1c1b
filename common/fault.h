/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_COMMON_FAULT_H
#define SNAPSHIP_COMMON_FAULT_H

#include <stdbool.h>

/*
 * Fault injection for tests.  SNAPSHIP_FAULT holds a comma-separated list of
 * "point" or "point@N" (fail the Nth call, 1-based; without @N every call).
 * Wrapper functions call fault_hit("cow.create") etc. before doing the work
 * and fail with -EIO (or the code after ':' as in "store.write@3:28" for
 * ENOSPC) when it returns true.  "point@N:kill" kills the process
 * (SIGKILL) there instead: a crash at that point, for recovery tests.
 * Some points exist only to be killed at (fault_hit's result ignored):
 * backup.snapshot (the snapshot taken), backup.committed (the manifest on
 * the primary).  Production never sets the variable.
 */
bool fault_hit(const char *point, int *code_ret);

#endif
