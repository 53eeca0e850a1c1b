/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_NOTIFY_H
#define SNAPSHIP_AGENT_NOTIFY_H

/* TEMP stub of branch M's agent/notify.h (interfaces.md); dropped at merge. */

#include <stdint.h>

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void notify_watchdog(void);
uint64_t notify_watchdog_usec(void);

#endif
