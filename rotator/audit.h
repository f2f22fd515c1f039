/*
 * audit.h: the append-only, hash-chained audit log.
 *
 * One JSON object per line.  Every line carries "seq" (1, 2, ...), "time"
 * and "prev", the SHA-256 (hex) of the previous line's bytes without its
 * newline; the first line's "prev" is 64 zeros.  A head file beside the log
 * (PATH.head) holds the sequence number and hash of the last line, so that
 * lines removed from the end are found too.  audit_append() returns only
 * after the line and the head are on disk.
 */
#ifndef ROTATOR_AUDIT_H
#define ROTATOR_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rotator/util.h"

struct audit;

/*
 * Open (creating if needed) the log at PATH for appending.  The tail is
 * read to learn the last sequence number and hash; a torn last line is an
 * error.  Returns NULL after writing the reason into ERR.
 */
struct audit *audit_open(const char *path, char *err, size_t errlen);

void audit_close(struct audit *audit);

/*
 * Append one event.  EVENT is its name ("restore_point", "rotation_step"
 * ...), CLUSTER may be NULL, FIELDS (borrowed, may be NULL) is an object
 * whose members are copied into the line.  Safe to call from any thread.
 * Returns 0, or -1 after logging the reason; on -1 nothing was appended.
 */
int audit_append(struct audit *audit, const char *event, const char *cluster,
		 json_t *fields) WUR;

/*
 * Check the chain of the log at PATH.  Returns 0 when it is intact (the
 * number of lines into N_LINES, which may be NULL), or -1 after writing
 * into ERR a message that names the first line that does not fit
 * ("line 7: prev does not match the hash of line 6").
 */
int audit_verify(const char *path, uint64_t *n_lines, char *err, size_t errlen);

/*
 * The entries of the log at PATH, oldest first, as a new JSON array;
 * only those of CLUSTER when it is not NULL, and at most the LIMIT newest
 * when LIMIT is not 0.  Returns NULL when the file cannot be read.
 */
json_t *audit_read(const char *path, const char *cluster, size_t limit);

#endif
