// SPDX-License-Identifier: MIT
#include "common/fault.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAULT_MAX 16

static struct {
	char point[64];
	unsigned long nth;   /* 0 = always */
	int code;
	bool kill;           /* ":kill": the process dies here (SIGKILL) */
	unsigned long calls;
} faults[FAULT_MAX];
static unsigned nfaults;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void fault_init(void)
{
	const char *env = getenv("SNAPSHIP_FAULT");
	char buf[1024], *save = NULL;

	if (!env || strlen(env) >= sizeof(buf))
		return;
	strcpy(buf, env);
	for (char *tok = strtok_r(buf, ",", &save); tok && nfaults < FAULT_MAX;
	     tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':'), *at;

		faults[nfaults].code = -EIO;
		if (colon) {
			*colon = '\0';
			faults[nfaults].code = -atoi(colon + 1);
			faults[nfaults].kill = !strcmp(colon + 1, "kill");
		}
		at = strchr(tok, '@');
		if (at) {
			*at = '\0';
			faults[nfaults].nth = strtoul(at + 1, NULL, 10);
		}
		strncpy(faults[nfaults].point, tok, sizeof(faults[0].point) - 1);
		nfaults++;
	}
}

bool fault_hit(const char *point, int *code_ret)
{
	bool hit = false;

	pthread_once(&once, fault_init);
	if (!nfaults)
		return false;
	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < nfaults; i++) {
		if (strcmp(faults[i].point, point))
			continue;
		faults[i].calls++;
		if (!faults[i].nth || faults[i].calls == faults[i].nth) {
			hit = true;
			if (faults[i].kill)
				kill(getpid(), SIGKILL);   /* a crash at this point */
			if (code_ret)
				*code_ret = faults[i].code;
		}
	}
	pthread_mutex_unlock(&lock);
	return hit;
}
