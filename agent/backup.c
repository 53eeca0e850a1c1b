// SPDX-License-Identifier: MIT
#include "agent/backup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/config.h"
#include "agent/index.h"
#include "agent/sink.h"
#include "common/err.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "cow/cow.h"
#include "stream/frame.h"
#include "stream/pack.h"
#include "uploader/store.h"

#ifndef SNAPSHIP_VERSION
#define SNAPSHIP_VERSION "0.1.0"
#endif

int lock_acquire(const char *state_dir, int wait_s, struct err *err)
{
	char path[4096];
	int fd, ret;

	ret = util_mkdir_p(state_dir, 0700);
	if (ret)
		return err_set(err, ret, "cannot create state directory %s: %s%s",
			       state_dir, err_str(ret),
			       ret == -EACCES ? " (run as root, or set --state-dir / [agent] state_dir)" : "");
	snprintf(path, sizeof(path), "%s/lock", state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(err, -errno, "cannot open lock %s: %s", path, strerror(errno));
	for (int i = 0;; i++) {
		if (!flock(fd, LOCK_EX | LOCK_NB))
			return fd;
		if (errno != EWOULDBLOCK || i >= wait_s * 10) {
			ret = err_set(err, -EBUSY,
				      "another snapshot is running on this host (lock %s is held); wait for it to finish",
				      path);
			close(fd);
			return ret;
		}
		usleep(100000);
	}
}

void lock_release(int fd)
{
	if (fd >= 0)
		close(fd);
}

int hook_run(const char *what, const char *cmd, int64_t timeout_s,
	     const char *partition, const char *source, struct err *err)
{
	double deadline = util_now_mono() + (double)timeout_s;
	int status;
	pid_t pid, r;

	log_info("running %s hook for %s", what, partition);
	pid = fork();
	if (pid < 0)
		return err_set(err, -errno, "%s hook: cannot fork: %s", what, strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
		setenv("SNAPSHIP_PARTITION", partition, 1);
		setenv("SNAPSHIP_SOURCE", source, 1);
		setenv("SNAPSHIP_HOOK", what, 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return err_set(err, -errno, "%s hook: waitpid: %s", what, strerror(errno));
		if (util_now_mono() > deadline) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			return err_set(err, -ETIMEDOUT,
				       "%s hook for partition %s did not finish in %llds and was killed; fix the hook or raise hook_timeout",
				       what, partition, (long long)timeout_s);
		}
		usleep(20000);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return err_set(err, -ECANCELED, "%s hook for partition %s failed with exit status %d: %s",
			       what, partition, WEXITSTATUS(status), cmd);
	return err_set(err, -ECANCELED, "%s hook for partition %s was killed by signal %d",
		       what, partition, WTERMSIG(status));
}

/* The data stream: framer output goes to the data sink. */
struct tar_ctx {
	struct framer *framer;
};

static int tar_out(void *ctx, const void *buf, size_t len, struct err *err)
{
	struct tar_ctx *t = ctx;

	return framer_write(t->framer, buf, len, err);
}

struct progress_ctx {
	const char *partition;
	double t0;
};

static void show_progress(void *ctx, uint64_t bytes, uint64_t entries)
{
	struct progress_ctx *p = ctx;
	double dt = util_now_mono() - p->t0;
	char hb[32];

	fprintf(stderr, "\r\033[Ksnapship: %s: %s read, %llu entries, %.0f MiB/s",
		p->partition, util_human_size(bytes, hb, sizeof(hb)),
		(unsigned long long)entries,
		dt > 0 ? (double)bytes / dt / 1048576.0 : 0.0);
}

static int stream_snapshot(const struct config *cfg, const char *root,
			   struct sink *data, struct sink *index,
			   struct manifest *m, bool progress, const char *partition,
			   struct err *err)
{
	struct framer_opts fo = {
		.level = cfg->compression_level,
		.frame_size = (size_t)cfg->frame_size,
	};
	struct pack_opts po = {
		.max_read_rate = cfg->max_read_rate,
		.ioprio_class = cfg->io_priority,
	};
	struct progress_ctx pctx = { .partition = partition, .t0 = util_now_mono() };
	struct index_writer *iw = NULL;
	struct tar_ctx tc = { 0 };
	struct framer_stats fs;
	struct pack_stats ps;
	int ret;

	if (progress) {
		po.progress = show_progress;
		po.progress_ctx = &pctx;
	}
	ret = framer_new(&fo, sink_write, data, &tc.framer, err);
	if (ret)
		return ret;
	ret = index_writer_new(index, cfg->compression_level, &iw, err);
	if (ret)
		goto out_free;
	ret = pack_tree(root, &po, tar_out, &tc, index_writer_add, iw, &ps, err);
	if (progress)
		fprintf(stderr, "\r\033[K");
	if (ret)
		goto out_free;
	ret = framer_finish(tc.framer, &fs, err);
	if (ret)
		goto out_free;
	ret = index_writer_finish(iw, err);
	if (ret)
		goto out_free;
	m->entries = ps.entries;
	m->files = ps.files;
	m->dirs = ps.dirs;
	m->others = ps.others;
	m->logical_bytes = ps.logical_bytes;
	m->tar_bytes = ps.tar_bytes;
	m->frames = fs.frames;
	m->frame_size = (uint32_t)(fo.frame_size ? fo.frame_size : FRAME_SIZE_DEFAULT);
	m->level = fo.level;
out_free:
	index_writer_free(iw);
	framer_free(tc.framer);
	return ret;
}

static int put_manifest(struct store *store, const char *key,
			const struct manifest *m, struct err *err)
{
	char *json;
	int ret = manifest_to_json(m, &json, err);

	if (ret)
		return ret;
	ret = store_put_buf(store, key, json, strlen(json), err);
	free(json);
	return ret;
}

int backup_partition(const struct config *cfg, const struct cfg_partition *part,
		     struct store *store, const char *prefix, const char *host,
		     bool progress, struct backup_result *res, struct err *err)
{
	struct manifest *m = &res->m;
	struct cow_snapshot *snap = NULL;
	struct sink data = { 0 }, index = { 0 };
	char *mkey = NULL, tag[256];
	const char *hooks[3] = { 0 };
	bool data_closed = false, index_closed = false, pre_ran = false;
	bool data_visible = false, index_visible = false;
	double t0 = util_now_mono();
	struct err e2 = { 0 };
	int ret, ret2;

	memset(res, 0, sizeof(*res));
	m->format_version = FORMAT_VERSION;
	m->started_ns = util_now_unix_ns();
	ret = catalog_new_id(m->started_ns / 1000000000LL, m->backup_id, err);
	if (ret)
		return ret;
	m->tool_version = strdup(SNAPSHIP_VERSION);
	m->host = strdup(host);
	m->partition = strdup(part->name);
	m->source = strdup(part->path);
	m->compression = strdup("zstd");
	m->encryption = strdup("none");
	m->data_key = catalog_key(prefix, host, part->name, m->backup_id, "data.tar.zst");
	m->index_key = catalog_key(prefix, host, part->name, m->backup_id, "index.jsonl.zst");
	mkey = catalog_key(prefix, host, part->name, m->backup_id, "manifest.json");
	if (!m->tool_version || !m->host || !m->partition || !m->source ||
	    !m->compression || !m->encryption || !m->data_key || !m->index_key || !mkey) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}

	ret = cow_check_source(part->path, err);
	if (ret)
		goto out;
	if (part->pre_snapshot) {
		pre_ran = true;
		hooks[0] = "pre_snapshot";
		ret = hook_run("pre_snapshot", part->pre_snapshot, part->hook_timeout,
			       part->name, part->path, err);
		if (ret)
			goto out_post;
	}
	snprintf(tag, sizeof(tag), "%s-%s", part->name, m->backup_id);
	ret = cow_freeze(part->path, part->snapshot_dir, cfg->state_dir, tag, &snap, err);
out_post:
	if (pre_ran && part->post_snapshot) {
		/* the post hook always runs once the pre hook did */
		hooks[1] = "post_snapshot";
		ret2 = hook_run("post_snapshot", part->post_snapshot, part->hook_timeout,
				part->name, part->path, ret ? &e2 : err);
		if (ret2 && !ret)
			ret = ret2;
		if (ret2 && e2.code)
			log_error("%s", e2.msg);
	}
	if (ret)
		goto out;
	strcpy(m->snap_uuid, snap->uuid);
	m->snap_generation = snap->generation;
	m->snap_time_ns = snap->time_ns;

	ret = sink_open(&data, store, m->data_key, err);
	if (ret)
		goto out;
	ret = sink_open(&index, store, m->index_key, err);
	if (ret)
		goto out;
	log_debug("%s: frozen in %.3f s", part->name, util_now_mono() - t0);
	ret = stream_snapshot(cfg, snap->path, &data, &index, m, progress,
			      part->name, err);
	if (ret)
		goto out;
	log_debug("%s: streamed in %.3f s", part->name, util_now_mono() - t0);
	m->data_size = data.bytes;
	m->index_size = index.bytes;
	m->stored_bytes = data.bytes + index.bytes;
	/* a commit that fails leaves no object (and frees the writer) */
	ret = sink_commit(&data, m->data_sha256, err);
	data_closed = true;
	if (ret)
		goto out;
	data_visible = true;
	ret = sink_commit(&index, m->index_sha256, err);
	index_closed = true;
	if (ret)
		goto out;
	index_visible = true;
	/* release before the commit point: a backup is only listed once its
	 * snapshot is gone, so a crash never leaves both */
	log_debug("%s: objects committed at %.3f s", part->name, util_now_mono() - t0);
	ret = cow_release(snap, err);
	snap = NULL;
	if (ret)
		goto out;
	log_debug("%s: snapshot released at %.3f s", part->name, util_now_mono() - t0);
	m->finished_ns = util_now_unix_ns();
	if (hooks[0]) {
		m->hooks = calloc(3, sizeof(char *));
		for (int i = 0; m->hooks && hooks[i]; i++)
			m->hooks[i] = strdup(hooks[i]);
	}
	if (fault_hit("backup.manifest", &ret)) {
		err_set(err, ret, "injected fault before the manifest");
		goto out;
	}
	ret = put_manifest(store, mkey, m, err);
	if (ret)
		goto out;
	res->seconds = util_now_mono() - t0;

out:
	if (!data_closed)
		sink_abort(&data);
	if (!index_closed)
		sink_abort(&index);
	if (snap) {
		struct err re = { 0 };

		if (cow_release(snap, &re))
			log_error("%s (the snapshot stays in the journal; snapship clean or the next run removes it)",
				  re.msg);
	}
	if (ret && (data_visible || index_visible)) {
		/* objects without a manifest are not a backup: remove them */
		const char *keys[2] = { m->data_key, m->index_key };
		struct err de = { 0 };

		if (store_delete(store, keys, index_visible ? 2 : 1, &de))
			log_warn("could not remove the unfinished backup's objects (%s); snapship clean removes them later",
				 de.msg);
	}
	free(mkey);
	if (ret)
		manifest_clear(m);
	return ret;
}
