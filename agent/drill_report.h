/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_DRILL_REPORT_H
#define SNAPSHIP_AGENT_DRILL_REPORT_H

/*
 * What `snapship drill` writes: the human table, the JSON document (schema:
 * doc/drill-report.schema.json) and JUnit XML for CI systems.  The results
 * are only read; returned strings are malloc'd and the caller's to free.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct drill_result;
struct err;

/*
 * s as XML 1.0 character data or attribute value into buf (len > 0):
 * & < > " ' as entities, characters XML 1.0 forbids (C0 controls but tab,
 * newline and carriage return; U+FFFE, U+FFFF) and bytes that are not
 * UTF-8 as '?'.  Cut before an entity or character that would not fit.
 * Returns buf.  NULL s is "".
 */
char *drill_xml_escape(const char *s, char *buf, size_t len);

/* The JSON document of a drill of host (a json_t *, the caller's:
 * json_decref), NULL when out of memory. */
void *drill_report_json(const char *host, const struct drill_result *v, size_t n);

/* The JUnit XML of it (malloc'd text), NULL when out of memory. */
char *drill_report_junit(const char *host, const struct drill_result *v, size_t n);

/* The table for people, then each failure's message, into f. */
void drill_report_table(FILE *f, const struct drill_result *v, size_t n);

/* Write text to path atomically (a report file). */
int drill_report_write(const char *path, const char *text, struct err *err);

#endif
