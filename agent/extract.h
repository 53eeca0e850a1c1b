/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_EXTRACT_H
#define SNAPSHIP_AGENT_EXTRACT_H

/*
 * Parallel extraction into the current working directory (the restore
 * target), with libarchive's archive_write_disk and its SECURE_* checks.
 *
 * The caller reads entries in stream order and hands them over here.
 * Regular files with data go to a pool of writer threads (each with its own
 * archive_write_disk), so writing many files overlaps; directories, fifos,
 * devices and empty files are made at once by the caller's thread; symlinks
 * and hard links are made last, after every file is written, so no writer
 * can ever follow a link the archive planted.  Directory metadata is applied
 * at the very end.  Data waiting for writers is bounded by mem_budget.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct archive_entry;
struct err;
struct extractor;

struct extract_stats {
	uint64_t files;
};

int extractor_new(int flags, unsigned workers, size_t mem_budget,
		  const char *target, struct extractor **x_ret, struct err *err);
/*
 * Instead of a directory, one pax stream (SCHILY.xattr; mtime only) on
 * fd, which stays the caller's (snapship export): every entry written in
 * the caller's thread in the order begun, a file's data in order (a gap
 * written as zeros up to its size; where ae has a sparse map, its holes
 * are left out of the stream as pax GNU.sparse 1.0 says),
 * symlinks and hard links last, so that a hard link follows its target,
 * then the directories (tar sets their times once their content is in).
 */
int extractor_new_stream(int fd, struct extractor **x_ret, struct err *err);
/* Start an entry (the extractor clones ae). path is its safe relative name. */
int extractor_begin(struct extractor *x, struct archive_entry *ae,
		    const char *path, struct err *err);
/* Data of the current regular file (copied). */
int extractor_data(struct extractor *x, const void *buf, size_t len,
		   int64_t off, struct err *err);
int extractor_end(struct extractor *x, struct err *err);
/* Wait for the writers, make the links, apply directory metadata. */
int extractor_finish(struct extractor *x, struct extract_stats *st,
		     struct err *err);
void extractor_free(struct extractor *x);

/*
 * Drop what would give privileges on the restored host: setuid and setgid
 * bits and the security.capability xattr (file capabilities).  *dropped
 * gets how many of them ae had (0 for symlinks and hard links, whose own
 * metadata is never applied).
 */
int extract_strip_privileges(struct archive_entry *ae, unsigned *dropped,
			     struct err *err);

/* Is p (a path from an archive) safe to create under the target?  No
 * absolute path, no ".." component, not empty. */
bool extract_path_safe(const char *p);
/* In place: "./" -> ".", "a/b/" -> "a/b" (directories carry a slash in tar);
 * p must have room for 2 bytes. */
void extract_norm_path(char *p);

#endif
