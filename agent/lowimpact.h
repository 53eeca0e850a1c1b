/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_LOWIMPACT_H
#define SNAPSHIP_AGENT_LOWIMPACT_H

/*
 * The adaptive low-impact mode ([agent] low_impact = adaptive): while a
 * backup reads, watch Linux pressure stall information (PSI) — the host's
 * /proc/pressure/{io,cpu}, or a cgroup's {io,cpu}.pressure when
 * pressure_cgroup is set (the database's: then the backup's own stalls do
 * not count) — and steer the reader's rate (pack_opts.throttle), AIMD:
 *
 *   every LI_SAMPLE_S, from the `some ... total=` deltas (the share of the
 *   window in which some task stalled), smoothed over ~2 samples:
 *     io >= pause_io or cpu >= pause_cpu   the rate drops to the floor (a
 *                                          "pause" that still moves on, so
 *                                          a backup always finishes)
 *     io >= high_io or cpu >= high_cpu     the rate halves (not below floor)
 *     else                                 the rate grows by step, and is
 *                                          unlimited above ceiling
 *
 * lowimpact_step is the pure rule (unit-tested on synthetic readings);
 * lowimpact_throttle the pack_opts.throttle callback that samples.
 * A pressure file that cannot be read disables the mode for the run (said
 * once in the log): the backup goes on at full rate.
 *
 * Ownership: struct lowimpact is the caller's (on its stack); cgroup is
 * only read and must outlive it.
 */

#include <stdbool.h>
#include <stdint.h>

#define LI_SAMPLE_S 0.2

struct lowimpact_params {
	double high_io, pause_io;     /* % of the window stalled (some) */
	double high_cpu, pause_cpu;
	uint64_t floor, start, step, ceiling;   /* bytes per second */
};

struct lowimpact {
	struct lowimpact_params par;
	const char *cgroup;           /* NULL: the host's /proc/pressure */
	bool disabled;                /* a pressure file could not be read */
	uint64_t rate;                /* now; 0 = unlimited */
	double io, cpu;               /* smoothed pressure, % */
	/* sampling */
	double t_last;
	uint64_t io_total, cpu_total; /* µs stalled (some), at t_last */
	bool have_sample;
	/* what it did */
	unsigned backoffs, pauses;
	double io_max, cpu_max;
};

/* The defaults (documented in snapship.conf(5)). */
void lowimpact_defaults(struct lowimpact_params *par);
void lowimpact_init(struct lowimpact *li, const char *cgroup);
/* One sample: io and cpu are the window's stall shares in %. */
void lowimpact_step(struct lowimpact *li, double io, double cpu);
/* pack_opts.throttle: samples at most every LI_SAMPLE_S; bytes/s, 0 = none. */
uint64_t lowimpact_throttle(void *li);
/* Log what the mode did in a read of partition that took wall_s, of which
 * the reader waited held_s for the mode's rate (info when it held back). */
void lowimpact_report(const struct lowimpact *li, const char *partition,
		      double held_s, double wall_s);

#endif
