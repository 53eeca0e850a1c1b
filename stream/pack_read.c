// SPDX-License-Identifier: MIT
/*
 * The packer's io_uring reader: opens the entries the walker queued, assigns
 * their data regions to chunks of the registered arena, submits READ_FIXED
 * reads at the rate the options allow, and reaps them (short reads re-read).
 * The packer (pack.c) consumes the chunks strictly in order.
 */
#include "stream/pack_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fault.h"
#include "common/log.h"


bool pk_needs_data(const struct pent *e)
{
	return S_ISREG(e->st.st_mode) && !e->hardlink && e->st.st_size > 0 &&
	       !e->is_ref;
}

int pk_reader_open(struct packer *p, struct pent *e)
{
	int fd = openat(p->rootfd, e->path,
			O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
	int ret;

	if (fd < 0 && errno == EPERM)   /* O_NOATIME needs ownership */
		fd = openat(p->rootfd, e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return pk_fail(p, -errno, "cannot open %s/%s: %s", p->root,
			       e->path, strerror(errno));
	e->fd = fd;
	e->igen = pk_igen(fd);
	p->open_files++;
	ret = pk_find_regions(p, e, fd);
	if (ret)
		return ret < 0 && !p->error ? pk_fail(p, ret, "out of memory") : ret;
	ret = pk_blk_opened(p, e);
	if (ret)
		return ret;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

/* Reserve len contiguous arena bytes; false when the window is full. */
static bool arena_alloc(struct packer *p, size_t len, uint64_t *apos_ret)
{
	uint64_t w = p->o.window, pos = p->ahead;

	if (pos % w + len > w)
		pos += w - pos % w;    /* skip to the start of the ring */
	if (pos + len - p->atail > w)
		return false;
	*apos_ret = pos;
	p->ahead = pos + len;
	return true;
}

/* Assign chunks to upcoming entries while there is room. */
static int reader_assign(struct packer *p)
{
	while (p->chead - p->ctail < CCAP) {
		struct pent *e;
		struct chunk *c;
		uint64_t apos, len;

		if (p->qread == p->qwalk) {
			int r;

			if (p->walk_done || p->qwalk - p->qpack >= QCAP ||
			    p->nblk >= NBLK_AHEAD)
				return 0;
			r = pk_walk_one(p);
			if (r <= 0)
				return r;
			continue;
		}
		e = p->q[p->qread % QCAP];
		if (!pk_needs_data(e) || e->assigned) {
			p->qread++;
			continue;
		}
		if (e->fd < 0) {
			int r;

			if (p->open_files >= MAX_OPEN)
				return 0;
			r = pk_reader_open(p, e);
			if (r)
				return r;
		}
		if (e->ri >= e->nreg) {
			e->assigned = true;
			p->qread++;
			continue;
		}
		len = e->reg[e->ri].len - e->roff;
		if (len > p->o.chunk)
			len = p->o.chunk;
		if (!arena_alloc(p, len, &apos))
			return 0;
		c = &p->c[p->chead++ % CCAP];
		memset(c, 0, sizeof(*c));
		c->e = e;
		c->off = e->reg[e->ri].off + e->roff;
		c->len = (uint32_t)len;
		c->apos = apos;
		c->aend = p->ahead;
		e->roff += len;
		if (e->roff == e->reg[e->ri].len) {
			e->ri++;
			e->roff = 0;
		}
	}
	return 0;
}

static void reader_prep(struct packer *p, struct io_uring_sqe *sqe,
			struct chunk *c, uint64_t idx)
{
	unsigned char *buf = p->arena + c->apos % p->o.window + c->done;

	io_uring_prep_read_fixed(sqe, c->e->fd, buf, c->len - c->done,
				 c->off + c->done, 0);
	if (p->o.ioprio_class)
		sqe->ioprio = (unsigned short)(p->o.ioprio_class << 13);
	io_uring_sqe_set_data64(sqe, idx);
}

bool pk_cancelled(const struct packer *p)
{
	return p->o.cancelled && p->o.cancelled(p->o.cancel_ctx);
}

/* The read rate allowed now (0 = none); *by_throttle: the throttle's
 * rate is the one that binds. */
static uint64_t read_rate(const struct packer *p, bool *by_throttle)
{
	uint64_t r = p->o.max_read_rate;
	uint64_t t = p->o.throttle ? p->o.throttle(p->o.throttle_ctx) : 0;

	*by_throttle = t && (!r || t < r);
	return *by_throttle ? t : r;
}

/*
 * The rate limit, a virtual clock: each read moves rate_due on by len/rate
 * at the rate of its time, so a rate that changes applies from the next
 * read on.  Sleeps (in slices: cancellation and a rising rate are seen
 * within one) until the next read of len bytes may start; false when it
 * may not start now and wait is false.
 */
static bool rate_admit(struct packer *p, uint64_t len, bool wait)
{
	for (;;) {
		bool by_throttle;
		uint64_t rate = read_rate(p, &by_throttle);
		double now = pk_now(), left;
		struct timespec ts = { 0 };

		if (!rate || now >= p->rate_due) {
			if (rate)
				p->rate_due = (now > p->rate_due + 0.25 ? now - 0.25 : p->rate_due) +
					      (double)len / (double)rate;
			return true;
		}
		if (!wait)
			return false;
		if (pk_cancelled(p))
			return true;     /* the walk sees it next */
		left = p->rate_due - now > 0.1 ? 0.1 : p->rate_due - now;
		ts.tv_nsec = (long)(left * 1e9);
		nanosleep(&ts, NULL);
		if (by_throttle)
			p->stats.throttled_s += pk_now() - now;
	}
}

#define IOPRIO_WHO_THREAD 1   /* IOPRIO_WHO_PROCESS: with 0, the calling thread */

ssize_t pack_pread(struct packer *p, int fd, void *buf, size_t len, uint64_t off)
{
	long old = -1;
	ssize_t n;
	int e;

	if (!p)
		return pread(fd, buf, len, (off_t)off);
	rate_admit(p, len, true);
	if (p->o.ioprio_class) {
		old = syscall(SYS_ioprio_get, IOPRIO_WHO_THREAD, 0);
		if (old >= 0)
			syscall(SYS_ioprio_set, IOPRIO_WHO_THREAD, 0, p->o.ioprio_class << 13);
	}
	n = pread(fd, buf, len, (off_t)off);
	e = errno;
	if (old >= 0)
		syscall(SYS_ioprio_set, IOPRIO_WHO_THREAD, 0, (int)old);
	errno = e;
	return n;
}

int pk_reader_submit(struct packer *p)
{
	unsigned n = 0;

	while (p->csub < p->chead && p->inflight < p->o.queue_depth) {
		struct chunk *c = &p->c[p->csub % CCAP];
		struct io_uring_sqe *sqe;

		/* the rate limit: sleep only when nothing is in flight, else
		 * leave the rest for a later call (decide before taking an SQE:
		 * a taken SQE is submitted with the next io_uring_submit) */
		if (!rate_admit(p, c->len, p->inflight == 0))
			break;
		sqe = io_uring_get_sqe(&p->ring);
		if (!sqe)
			break;
		reader_prep(p, sqe, c, p->csub);
		c->submitted = true;
		p->bytes_submitted += c->len;
		p->inflight++;
		p->csub++;
		n++;
	}
	if (n) {
		int r = io_uring_submit(&p->ring);

		if (r < 0)
			return pk_fail(p, r, "io_uring submit failed: %s", strerror(-r));
	}
	return 0;
}

int pk_reader_reap(struct packer *p, bool wait)
{
	struct io_uring_cqe *cqe;
	int r;

	r = wait ? io_uring_wait_cqe(&p->ring, &cqe) : io_uring_peek_cqe(&p->ring, &cqe);
	while (r == 0) {
		uint64_t idx = io_uring_cqe_get_data64(cqe);
		struct chunk *c = &p->c[idx % CCAP];
		int res = cqe->res;

		io_uring_cqe_seen(&p->ring, cqe);
		p->inflight--;
		if (fault_hit("pack.read", &r))
			res = r;
		if (res < 0 && res != -EAGAIN && res != -EINTR)
			return pk_fail(p, res, "reading %s/%s: %s", p->root,
				       c->e->path, strerror(-res));
		if (res == 0)
			return pk_fail(p, -EIO,
				       "reading %s/%s: file ended early (at byte %llu)",
				       p->root, c->e->path,
				       (unsigned long long)(c->off + c->done));
		if (res > 0)
			c->done += (uint32_t)res;
		if (c->done == c->len) {
			c->complete = true;
		} else {
			/* short read: read the rest */
			struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);

			if (!sqe) {
				io_uring_submit(&p->ring);
				sqe = io_uring_get_sqe(&p->ring);
			}
			if (!sqe)
				return pk_fail(p, -EBUSY, "io_uring queue full");
			reader_prep(p, sqe, c, idx);
			p->inflight++;
			io_uring_submit(&p->ring);
		}
		r = io_uring_peek_cqe(&p->ring, &cqe);
	}
	if (r != -EAGAIN && r != -EINTR && r != 0)
		return pk_fail(p, r, "io_uring wait failed: %s", strerror(-r));
	return 0;
}

int pk_reader_pump(struct packer *p)
{
	int ret = reader_assign(p);

	if (!ret)
		ret = pk_reader_submit(p);
	if (!ret)
		ret = pk_reader_reap(p, false);
	return ret;
}

int pk_next_chunk(struct packer *p, struct pent *e, struct chunk **c_ret)
{
	int ret;

	*c_ret = NULL;
	while (!e->assigned || p->ctail < p->chead) {
		struct chunk *c;

		if (p->ctail == p->chead) {
			/* nothing assigned yet for this file: make room */
			ret = pk_reader_pump(p);
			if (ret)
				return ret;
			if (e->assigned && p->ctail == p->chead)
				break;
			if (p->ctail == p->chead) {
				if (e->fd < 0 && p->open_files >= MAX_OPEN)
					return pk_fail(p, -EMFILE, "reader stalled");
				continue;
			}
		}
		c = &p->c[p->ctail % CCAP];
		if (c->e != e)
			break;
		if (pk_cancelled(p))
			return pk_fail(p, -ECANCELED, "reading %s: cancelled", e->path);
		while (!c->complete) {
			ret = pk_reader_submit(p);
			if (!ret)
				ret = pk_reader_reap(p, !c->complete && p->inflight > 0);
			if (ret)
				return ret;
			if (!c->submitted && p->inflight == 0) {
				ret = pk_reader_submit(p);
				if (ret)
					return ret;
			}
		}
		*c_ret = c;
		return 1;
	}
	return 0;
}

int pk_chunk_done(struct packer *p, struct chunk *c)
{
	p->stats.logical_bytes += c->len;
	p->atail = c->aend;
	p->ctail++;
	return pk_reader_pump(p);
}
