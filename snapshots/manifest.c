/*
 * manifest.c: reading, writing and checking snapshot manifests.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rotator/audit.h"
#include "snapshots/manifest.h"

static const char *const required[] = {"id", "cluster", "engine", "created",
				       "size"};

int manifest_write(const char *dir, json_t *manifest,
		   char sha[SHA256_HEX_LEN + 1], char *err, size_t errlen)
{
	char *path = xasprintf("%s/%s", dir, MANIFEST_FILE);
	char *text = json_dumps(manifest, JSON_INDENT(2) | JSON_SORT_KEYS);
	size_t len;
	int rc = -1;

	if (!text) {
		snprintf(err, errlen, "could not encode manifest");
		goto out;
	}
	len = strlen(text);
	text[len] = '\0';
	if (write_file_durable(path, text, len, 0600) == -1) {
		snprintf(err, errlen, "could not write \"%s\": %s", path,
			 strerror(errno));
		goto out;
	}
	sha256_hex(text, len, sha);
	rc = 0;
out:
	free(text);
	free(path);
	return rc;
}

json_t *manifest_read(const char *dir, char sha[SHA256_HEX_LEN + 1], char *err,
		      size_t errlen)
{
	char *path = xasprintf("%s/%s", dir, MANIFEST_FILE);
	json_error_t jerr;
	json_t *m = NULL;
	size_t len;
	char *text;

	text = read_file(path, &len);
	if (!text) {
		snprintf(err, errlen, "could not read \"%s\": %s", path,
			 strerror(errno));
		goto out;
	}
	sha256_hex(text, len, sha);
	m = json_loadb(text, len, 0, &jerr);
	if (!m || !json_is_object(m)) {
		snprintf(err, errlen, "could not parse \"%s\": %s", path,
			 m ? "not an object" : jerr.text);
		json_decref(m);
		m = NULL;
		goto out;
	}
	for (size_t i = 0; i < sizeof(required) / sizeof(*required); i++) {
		if (!json_object_get(m, required[i])) {
			snprintf(err, errlen, "manifest \"%s\" lacks \"%s\"",
				 path, required[i]);
			json_decref(m);
			m = NULL;
			goto out;
		}
	}
out:
	free(text);
	free(path);
	return m;
}

int manifest_check_record(const char *audit_path, const char *id,
			  const char *sha, char *err, size_t errlen)
{
	json_t *entries = audit_read(audit_path, NULL, 0);
	const char *recorded = NULL;
	json_t *e;
	size_t i;
	int rc = -1;

	if (!entries) {
		snprintf(err, errlen, "could not read audit log \"%s\"",
			 audit_path);
		return -1;
	}
	json_array_foreach (entries, i, e) {
		const char *event =
			json_string_value(json_object_get(e, "event"));
		const char *snap =
			json_string_value(json_object_get(e, "snapshot"));

		if (event && snap && strcmp(event, "restore_point") == 0 &&
		    strcmp(snap, id) == 0)
			recorded = json_string_value(
				json_object_get(e, "manifest_sha256"));
	}
	if (!recorded)
		snprintf(
			err, errlen,
			"snapshot \"%s\" has no restore point record in the audit log",
			id);
	else if (strcmp(recorded, sha) != 0)
		snprintf(
			err, errlen,
			"manifest of snapshot \"%s\" has SHA-256 %s but its audit record says %s",
			id, sha, recorded);
	else
		rc = 0;
	json_decref(entries);
	return rc;
}
