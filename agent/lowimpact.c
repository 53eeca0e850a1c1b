/* SPDX-License-Identifier: MIT */
#include "agent/lowimpact.h"
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include "common/log.h"
#include "common/util.h"

#define MIB (1024.0 * 1024.0)

void lowimpact_defaults(struct lowimpact_params *par)
{
	*par = (struct lowimpact_params){
		.high_io = 25, .pause_io = 60,
		.high_cpu = 70, .pause_cpu = 90,
		.floor = 8u << 20, .start = 32u << 20,
		.step = 8u << 20, .ceiling = 512u << 20,
	};
}

void lowimpact_init(struct lowimpact *li, const char *cgroup)
{
	memset(li, 0, sizeof(*li));
	lowimpact_defaults(&li->par);
	li->cgroup = cgroup;
	li->rate = li->par.start;
}

void lowimpact_step(struct lowimpact *li, double io, double cpu)
{
	const struct lowimpact_params *p = &li->par;
	uint64_t r = li->rate ? li->rate : p->ceiling;

	/* smoothed over about two samples: one spike is not a trend */
	li->io = li->have_sample ? (li->io + io) / 2 : io;
	li->cpu = li->have_sample ? (li->cpu + cpu) / 2 : cpu;
	li->have_sample = true;
	if (io > li->io_max)
		li->io_max = io;
	if (cpu > li->cpu_max)
		li->cpu_max = cpu;
	if (li->io >= p->pause_io || li->cpu >= p->pause_cpu) {
		if (r > p->floor)
			li->pauses++;
		r = p->floor;
	} else if (li->io >= p->high_io || li->cpu >= p->high_cpu) {
		if (r > p->floor)
			li->backoffs++;
		r = r / 2 > p->floor ? r / 2 : p->floor;
	} else {
		r += p->step;
	}
	li->rate = r >= p->ceiling ? 0 : r;
}

/* `some avg10=.. avg60=.. avg300=.. total=N` of a PSI file: N (µs). */
static int read_some_total(const char *path, uint64_t *total)
{
	char line[256];
	FILE *f = fopen(path, "re");
	int ret = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		const char *t = strstr(line, "total=");

		if (!strncmp(line, "some ", 5) && t &&
		    sscanf(t, "total=%" SCNu64, total) == 1) {
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

static int read_pressure(const struct lowimpact *li, uint64_t *io, uint64_t *cpu)
{
	char pio[PATH_MAX], pcpu[PATH_MAX];

	if (li->cgroup) {
		snprintf(pio, sizeof(pio), "%s/io.pressure", li->cgroup);
		snprintf(pcpu, sizeof(pcpu), "%s/cpu.pressure", li->cgroup);
	} else {
		snprintf(pio, sizeof(pio), "/proc/pressure/io");
		snprintf(pcpu, sizeof(pcpu), "/proc/pressure/cpu");
	}
	if (read_some_total(pio, io) || read_some_total(pcpu, cpu)) {
		log_warn("low_impact: cannot read %s or %s (needs a kernel with PSI, psi=1): backing up without the adaptive mode",
			 pio, pcpu);
		return -1;
	}
	return 0;
}

uint64_t lowimpact_throttle(void *ctx)
{
	struct lowimpact *li = ctx;
	double now = util_now_mono(), dt = now - li->t_last;
	uint64_t io, cpu;

	if (li->disabled)
		return 0;
	if (li->t_last > 0 && dt < LI_SAMPLE_S)
		return li->rate;
	if (read_pressure(li, &io, &cpu)) {
		li->disabled = true;
		return 0;
	}
	if (li->t_last > 0 && dt > 0) {
		uint64_t rate_was = li->rate;

		lowimpact_step(li, (double)(io - li->io_total) / (dt * 1e4),
			       (double)(cpu - li->cpu_total) / (dt * 1e4));
		if (li->rate != rate_was)
			log_debug("low_impact: io %.0f %%, cpu %.0f %% stalled: read rate %.0f MiB/s",
				  li->io, li->cpu, li->rate ? (double)li->rate / MIB : 0.0);
	}
	li->t_last = now;
	li->io_total = io;
	li->cpu_total = cpu;
	return li->rate;
}

void lowimpact_report(const struct lowimpact *li, const char *partition,
		      double held_s, double wall_s)
{
	if (li->disabled)
		return;
	if (held_s < 0.05) {
		log_debug("%s: the low-impact mode did not hold the backup back (pressure peaks: io %.0f %%, cpu %.0f %%)",
			  partition, li->io_max, li->cpu_max);
		return;
	}
	log_info("%s: the low-impact mode held the backup back %.1f s of %.1f s (%u back-offs, %u pauses at the floor of %.0f MiB/s; pressure peaks: io %.0f %%, cpu %.0f %% of %s)",
		 partition, held_s, wall_s, li->backoffs, li->pauses,
		 (double)li->par.floor / MIB, li->io_max, li->cpu_max,
		 li->cgroup ? li->cgroup : "the host");
}
