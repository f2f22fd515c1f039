/*
 * store.h: the snapshot store of a cluster, STATE_DIR/clusters/NAME/
 * snapshots.
 *
 * A snapshot is captured into ID.partial, verified by the engine's tools,
 * described by manifest.json, renamed to ID and recorded in the audit log
 * as a restore point.  Only then may it seed a node.  A directory still
 * named .partial is the remains of an interrupted capture and is removed.
 */
#ifndef ROTATOR_STORE_H
#define ROTATOR_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "rotator/util.h"

struct cluster;

/* Directory of snapshot ID of CL, a new string. */
char *store_path(struct cluster *cl, const char *id);

/*
 * Capture, verify and record a snapshot of CL's primary.  Blocks; runs in
 * a worker thread that holds CL->job_lock.  On success the new id is
 * written into ID (at least 64 bytes).  Returns 0, or -1 after writing
 * ERR; nothing partial is left behind.
 */
int store_take(struct cluster *cl, char *id, char *err, size_t errlen) WUR;

/*
 * The restore points of CL, oldest first: a new array of manifests, each
 * with "manifest_sha256" added.
 */
json_t *store_list(struct cluster *cl);

/*
 * Open restore point ID for seeding: read its manifest and check its hash
 * against the audit log (invariant 3).  Returns the manifest (new
 * reference) or NULL after writing ERR; *BAD is then true when the fault
 * is the restore point's (unreadable manifest, no record, wrong hash).
 */
json_t *store_open(struct cluster *cl, const char *id, bool *bad, char *err,
		   size_t errlen);

/*
 * Set restore point ID aside for good: renamed to ID.rejected (kept for
 * inspection, never used or pruned), recorded in the audit log with
 * REASON.
 */
void store_reject(struct cluster *cl, const char *id, const char *reason);

/* The id of CL's newest restore point into ID, or -1 when there is none. */
int store_newest(struct cluster *cl, char *id, size_t len) WUR;

/*
 * Remove restore points of CL past snapshots.keep, oldest first, and the
 * archived WAL older than every one kept.  The caller holds CL->job_lock,
 * so no rotation that seeds from one of them runs meanwhile.
 */
void store_prune(struct cluster *cl);

/* Remove every ID.partial directory of CL. */
void store_clean_partial(struct cluster *cl);

/*
 * Check snapshot ID from scratch: manifest hash against the audit log at
 * AUDIT_PATH, then every file through the adapter.  Returns 0 or -1 after
 * writing ERR.
 */
int store_verify(struct cluster *cl, const char *audit_path, const char *id,
		 char *err, size_t errlen) WUR;

#endif
