// SPDX-License-Identifier: MIT
/* TEMP stub of branch M's agent/notify.c: no-ops. */
#include "agent/notify.h"

void notify_ready(void) {}
void notify_reloading(void) {}
void notify_stopping(void) {}
void notify_status(const char *fmt, ...) { (void)fmt; }
void notify_watchdog(void) {}
uint64_t notify_watchdog_usec(void) { return 0; }
