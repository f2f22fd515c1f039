/*
 * manifest.h: rotator's manifest of one snapshot.
 *
 * STORE/ID/manifest.json describes a snapshot: its id, cluster, engine,
 * time, size, the engine's position (LSN and timeline, or replication id
 * and offset) and what the engine's own manifest does not cover.  The
 * SHA-256 of the file's bytes is what the audit log records for the
 * restore point; a manifest whose hash differs from its record is not a
 * restore point.
 */
#ifndef ROTATOR_MANIFEST_H
#define ROTATOR_MANIFEST_H

#include <stddef.h>

#include <jansson.h>

#include "rotator/util.h"

#define MANIFEST_FILE "manifest.json"

/*
 * Write MANIFEST (borrowed) to DIR/manifest.json durably and put the hash
 * of the bytes written into SHA.  Returns 0, or -1 after writing ERR.
 */
int manifest_write(const char *dir, json_t *manifest,
		   char sha[SHA256_HEX_LEN + 1], char *err, size_t errlen) WUR;

/*
 * Read DIR/manifest.json and check that it has the members every
 * manifest has (id, cluster, engine, created, size).  Returns a new
 * reference and the hash of the bytes read into SHA, or NULL after
 * writing ERR.
 */
json_t *manifest_read(const char *dir, char sha[SHA256_HEX_LEN + 1], char *err,
		      size_t errlen);

/*
 * Find the restore point record of snapshot ID in the audit log at
 * AUDIT_PATH and compare its manifest hash with SHA.  Returns 0 when they
 * match, or -1 after writing ERR (no record, or a different hash).
 */
int manifest_check_record(const char *audit_path, const char *id,
			  const char *sha, char *err, size_t errlen) WUR;

#endif
