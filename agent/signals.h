/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_SIGNALS_H
#define SNAPSHIP_AGENT_SIGNALS_H

/* TEMP stub of branch S's agent/signals.h (interfaces.md); dropped at merge. */

#include <stdbool.h>

int signals_install(void);
void signals_hup_reloads(bool on);
int signals_stop(void);
bool signals_take_reload(void);
int signals_fd(void);
void signals_drain(void);
bool signals_cancelled(void *ctx);

#endif
