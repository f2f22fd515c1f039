/*
 * journal.h: the crash-safe record of every in-flight rotation step.
 *
 * One JSON object per line, appended and fdatasync'ed before the step it
 * records takes effect.  Each record names its rotation ("rotation": id)
 * and carries the state entered plus whatever that state needs to be
 * resumed (node generations, ports, directories).  Replaying the journal
 * merges the records of each rotation in order, later keys over earlier
 * ones, so the result is the last known state of every rotation.
 */
#ifndef ROTATOR_JOURNAL_H
#define ROTATOR_JOURNAL_H

#include <stddef.h>

#include <jansson.h>

#include "rotator/util.h"

struct journal;

/*
 * Open (creating if needed) the journal at PATH for appending.  Returns
 * NULL after writing the reason into ERR.
 */
struct journal *journal_open(const char *path, char *err, size_t errlen);

void journal_close(struct journal *journal);

/*
 * Append RECORD (borrowed; it must hold a string "rotation") with a
 * "time" member added, and sync it.  Safe to call from any thread.
 * Returns 0, or -1 after logging the reason.
 */
int journal_append(struct journal *journal, json_t *record) WUR;

/*
 * Replay the journal at PATH.  Returns a new JSON object mapping each
 * rotation id to its merged record (a missing file gives an empty object),
 * or NULL after writing into ERR the line that could not be read.  A torn
 * final line, the mark of a crash during an append, is skipped with a
 * warning: its step had not taken effect.
 */
json_t *journal_replay(const char *path, char *err, size_t errlen);

/*
 * Rewrite the journal at PATH durably so that it holds only the merged
 * records in ACTIVE (borrowed, as returned by journal_replay).  Used at
 * start-up to drop finished rotations.  Returns 0 or -1.
 */
int journal_compact(const char *path, json_t *active) WUR;

/*
 * Compact the open JOURNAL in place: the records of rotations that ended
 * ("state" "done" or "aborted") are dropped, the others merged, and
 * appends go on to the new file.  Called when a rotation ends, so that a
 * daemon that runs for months keeps a journal of a few lines.  Returns 0,
 * or -1 after logging (the journal is then as it was).
 */
int journal_trim(struct journal *journal) WUR;

#endif
