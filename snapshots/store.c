/*
 * store.c: capture, listing, opening and pruning of restore points.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapters/adapter.h"
#include "rotator/audit.h"
#include "rotator/cluster.h"
#include "rotator/daemon.h"
#include "rotator/log.h"
#include "rotator/provisioner.h"
#include "snapshots/manifest.h"
#include "snapshots/store.h"

char *store_path(struct cluster *cl, const char *id)
{
	return xasprintf("%s/snapshots/%s", cl->dir, id);
}

static int next_id(struct cluster *cl, char *id, size_t len)
{
	int rc;

	pthread_mutex_lock(&cl->lock);
	snprintf(id, len, "%s-%06d", cl->cfg->name, cl->next_snapshot++);
	rc = cluster_save_state(cl);
	pthread_mutex_unlock(&cl->lock);
	return rc;
}

static json_t *base_manifest(struct cluster *cl, const char *id,
			     const struct node *primary)
{
	char created[32];

	format_time(wall_ms(), created, sizeof(created));
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "id", id, "cluster",
			 cl->cfg->name, "engine", cl->adapter->name, "created",
			 created, "source_generation", primary->generation,
			 "size", 0);
}

/*
 * Record a verified snapshot as a restore point: the audit line carries
 * the manifest's hash, which store_open() later checks.
 */
static int record_restore_point(struct cluster *cl, const char *id,
				json_t *manifest, const char *sha)
{
	json_t *fields = json_pack(
		"{s:s, s:s, s:O?, s:O?}", "snapshot", id, "manifest_sha256",
		sha, "size", json_object_get(manifest, "size"), "position",
		json_object_get(manifest, "position"));
	int rc = audit_append(cl->daemon->audit, "restore_point", cl->cfg->name,
			      fields);

	json_decref(fields);
	return rc;
}

int store_take(struct cluster *cl, char *id, char *err, size_t errlen)
{
	char *root = xasprintf("%s/snapshots", cl->dir);
	char *partial = NULL, *final = NULL;
	char sha[SHA256_HEX_LEN + 1];
	json_t *manifest = NULL;
	struct node primary;
	int rc = -1;

	pthread_mutex_lock(&cl->lock);
	if (!cluster_primary(cl)) {
		pthread_mutex_unlock(&cl->lock);
		snprintf(err, errlen, "cluster has no primary");
		free(root);
		return -1;
	}
	node_copy(&primary, cluster_primary(cl));
	pthread_mutex_unlock(&cl->lock);

	if (next_id(cl, id, 64) == -1) {
		snprintf(err, errlen, "could not save cluster state");
		goto out;
	}
	if (prov_mkdir(cl, root, 0700, err, errlen) == -1)
		goto out;
	partial = xasprintf("%s/%s.partial", root, id);
	final = xasprintf("%s/%s", root, id);
	if (remove_tree(partial) == -1 ||
	    prov_mkdir(cl, partial, 0700, err, errlen) == -1)
		goto out;

	manifest = base_manifest(cl, id, &primary);
	if (cl->adapter->snapshot(cl, &primary, partial, manifest, err,
				  errlen) == -1)
		goto out;
	if (manifest_write(partial, manifest, sha, err, errlen) == -1)
		goto out;
	if (rename(partial, final) == -1 || fsync_parent(final) == -1) {
		snprintf(err, errlen, "could not rename \"%s\": %s", partial,
			 strerror(errno));
		goto out;
	}
	if (record_restore_point(cl, id, manifest, sha) == -1) {
		snprintf(err, errlen, "could not record restore point");
		if (remove_tree(final) == -1)
			log_error("could not remove \"%s\"", final);
		goto out;
	}
	rc = 0;
out:
	if (rc == -1 && partial && remove_tree(partial) == -1)
		log_error("could not remove \"%s\": %s", partial,
			  strerror(errno));
	json_decref(manifest);
	node_release(&primary);
	free(partial);
	free(final);
	free(root);
	return rc;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The names of finished snapshot directories of CL, sorted (ids are
 * zero-padded, so that is oldest first).  Caller frees each and the
 * array.
 */
static char **list_ids(struct cluster *cl, int *count)
{
	char *root = xasprintf("%s/snapshots", cl->dir);
	DIR *dir = opendir(root);
	char **ids = NULL;
	struct dirent *de;
	size_t prefix = strlen(cl->cfg->name);

	*count = 0;
	free(root);
	if (!dir)
		return NULL;
	while ((de = readdir(dir)) != NULL) {
		if (strncmp(de->d_name, cl->cfg->name, prefix) != 0 ||
		    de->d_name[prefix] != '-' || strchr(de->d_name, '.'))
			continue;
		ids = realloc(ids, sizeof(*ids) * (*count + 1));
		if (!ids)
			abort();
		ids[(*count)++] = xstrdup(de->d_name);
	}
	closedir(dir);
	if (ids)
		qsort(ids, (size_t)*count, sizeof(*ids), compare_names);
	return ids;
}

static void free_ids(char **ids, int count)
{
	for (int i = 0; i < count; i++)
		free(ids[i]);
	free(ids);
}

json_t *store_list(struct cluster *cl)
{
	json_t *list = json_array();
	char err[512];
	char **ids;
	int count;

	ids = list_ids(cl, &count);
	for (int i = 0; i < count; i++) {
		char *dir = store_path(cl, ids[i]);
		char sha[SHA256_HEX_LEN + 1];
		json_t *m = manifest_read(dir, sha, err, sizeof(err));

		if (m) {
			json_object_set_new(m, "manifest_sha256",
					    json_string(sha));
			json_array_append_new(list, m);
		} else {
			log_warning("%s", err);
		}
		free(dir);
	}
	free_ids(ids, count);
	return list;
}

json_t *store_open(struct cluster *cl, const char *id, bool *bad, char *err,
		   size_t errlen)
{
	char *dir = store_path(cl, id);
	char sha[SHA256_HEX_LEN + 1];
	json_t *m;

	*bad = true;
	m = manifest_read(dir, sha, err, errlen);
	free(dir);
	if (!m)
		return NULL;
	if (manifest_check_record(cl->daemon->audit_path, id, sha, err,
				  errlen) == -1) {
		/* An audit log that cannot be read is not the point's fault. */
		*bad = access(cl->daemon->audit_path, R_OK) == 0;
		json_decref(m);
		return NULL;
	}
	*bad = false;
	return m;
}

void store_reject(struct cluster *cl, const char *id, const char *reason)
{
	char *dir = store_path(cl, id);
	char *aside = xasprintf("%s.rejected", dir);
	json_t *fields =
		json_pack("{s:s, s:s}", "snapshot", id, "reason", reason);

	if (rename(dir, aside) == -1 || fsync_parent(aside) == -1)
		log_error("could not set restore point \"%s\" aside: %s", dir,
			  strerror(errno));
	if (audit_append(cl->daemon->audit, "restore_point_rejected",
			 cl->cfg->name, fields) == -1)
		log_error("could not record the rejection of \"%s\"", id);
	json_decref(fields);
	free(aside);
	free(dir);
}

int store_newest(struct cluster *cl, char *id, size_t len)
{
	char sha[SHA256_HEX_LEN + 1], err[512];
	char **ids;
	int count, rc = -1;

	ids = list_ids(cl, &count);
	for (int i = count - 1; i >= 0 && rc == -1; i--) {
		char *dir = store_path(cl, ids[i]);
		json_t *m = manifest_read(dir, sha, err, sizeof(err));

		if (m && !json_is_true(json_object_get(m, "source_adopted"))) {
			snprintf(id, len, "%s", ids[i]);
			rc = 0;
		}
		json_decref(m);
		free(dir);
	}
	free_ids(ids, count);
	return rc;
}

static void prune_one(struct cluster *cl, const char *id)
{
	char *dir = store_path(cl, id);
	json_t *fields = json_pack("{s:s}", "snapshot", id);

	if (remove_tree(dir) == -1) {
		log_error("could not remove snapshot \"%s\": %s", dir,
			  strerror(errno));
	} else {
		daemon_event(cl->daemon, cl->cfg->name, "+snapshot-pruned", id,
			     "past snapshots.keep = %d",
			     cl->cfg->snapshot_keep);
		if (audit_append(cl->daemon->audit, "restore_point_pruned",
				 cl->cfg->name, fields) == -1)
			log_error("could not record pruning of \"%s\"", id);
	}
	json_decref(fields);
	free(dir);
}

void store_prune(struct cluster *cl)
{
	char **ids;
	int count, excess;

	ids = list_ids(cl, &count);
	excess = count - cl->cfg->snapshot_keep;
	for (int i = 0; i < count && excess > 0; i++) {
		prune_one(cl, ids[i]);
		free(ids[i]);
		ids[i] = NULL;
		excess--;
	}

	/* The oldest kept snapshot bounds what the archive must keep. */
	for (int i = 0; i < count; i++) {
		char *dir, sha[SHA256_HEX_LEN + 1], err[512];
		json_t *m;

		if (!ids[i])
			continue;
		dir = store_path(cl, ids[i]);
		m = manifest_read(dir, sha, err, sizeof(err));
		free(dir);
		if (m && cl->adapter->prune_archive)
			cl->adapter->prune_archive(cl, m);
		json_decref(m);
		break;
	}
	free_ids(ids, count);
}

void store_clean_partial(struct cluster *cl)
{
	char *root = xasprintf("%s/snapshots", cl->dir);
	DIR *dir = opendir(root);
	struct dirent *de;

	if (!dir) {
		free(root);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		const char *dot = strrchr(de->d_name, '.');
		char *path;

		if (!dot || strcmp(dot, ".partial") != 0)
			continue;
		path = xasprintf("%s/%s", root, de->d_name);
		log_warning("removing interrupted snapshot \"%s\"", path);
		if (remove_tree(path) == -1)
			log_error("could not remove \"%s\": %s", path,
				  strerror(errno));
		free(path);
	}
	closedir(dir);
	free(root);
}

int store_verify(struct cluster *cl, const char *audit_path, const char *id,
		 char *err, size_t errlen)
{
	char *dir = store_path(cl, id);
	char sha[SHA256_HEX_LEN + 1];
	json_t *m;
	int rc = -1;

	m = manifest_read(dir, sha, err, errlen);
	if (!m)
		goto out;
	if (manifest_check_record(audit_path, id, sha, err, errlen) == -1)
		goto out;
	rc = cl->adapter->verify_snapshot(cl, dir, m, err, errlen);
out:
	json_decref(m);
	free(dir);
	return rc;
}
