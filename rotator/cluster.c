/*
 * cluster.c: cluster members and their durable state file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rotator/cluster.h"
#include "rotator/endpoint.h"
#include "rotator/log.h"
#include "rotator/sentinel.h"

static const char *const role_names[] = {
	[NODE_PRIMARY] = "primary",
	[NODE_REPLICA] = "replica",
	[NODE_FRESH] = "fresh",
	[NODE_RETIRED] = "retired",
};

const char *node_role_name(enum node_role role)
{
	return role_names[role];
}

static int role_from_name(const char *name, enum node_role *role)
{
	for (size_t i = 0; i < sizeof(role_names) / sizeof(*role_names); i++) {
		if (strcmp(role_names[i], name) == 0) {
			*role = (enum node_role)i;
			return 0;
		}
	}
	return -1;
}

struct node *cluster_primary(struct cluster *cl)
{
	for (int i = 0; i < cl->n_nodes; i++)
		if (cl->nodes[i].role == NODE_PRIMARY)
			return &cl->nodes[i];
	return NULL;
}

struct node *cluster_node(struct cluster *cl, int gen)
{
	for (int i = 0; i < cl->n_nodes; i++)
		if (cl->nodes[i].generation == gen)
			return &cl->nodes[i];
	return NULL;
}

static void set_target(struct endpoint_target *t, const struct node *n)
{
	snprintf(t->host, sizeof(t->host), "%s", n->host);
	t->port = n->port;
}

void cluster_publish(struct cluster *cl)
{
	struct endpoint_target readers[ENDPOINT_MAX_TARGETS], primary = {0};
	int n = 0;
	bool have_primary;

	pthread_mutex_lock(&cl->lock);
	have_primary = cluster_primary(cl) != NULL && !cl->primary_down;
	if (have_primary)
		set_target(&primary, cluster_primary(cl));
	for (int i = 0; i < cl->n_nodes && n < ENDPOINT_MAX_TARGETS; i++)
		if (cl->nodes[i].role == NODE_REPLICA)
			set_target(&readers[n++], &cl->nodes[i]);
	pthread_mutex_unlock(&cl->lock);

	if (cl->reader) {
		if (n > 0)
			endpoint_set_targets(cl->reader, readers, n);
		else
			endpoint_set_targets(cl->reader, &primary,
					     have_primary ? 1 : 0);
	}
	if (cl->sentinel) {
		struct sentinel_addr sp, sr[ENDPOINT_MAX_TARGETS];

		snprintf(sp.host, sizeof(sp.host), "%s", primary.host);
		sp.port = primary.port;
		for (int i = 0; i < n; i++) {
			snprintf(sr[i].host, sizeof(sr[i].host), "%s",
				 readers[i].host);
			sr[i].port = readers[i].port;
		}
		sentinel_update(cl->sentinel, have_primary ? &sp : NULL, sr, n);
	}
}

void node_release(struct node *n)
{
	free(n->dir);
	free(n->born_from);
	free(n->conf_file);
	n->dir = NULL;
	n->born_from = NULL;
	n->conf_file = NULL;
}

void node_copy(struct node *dst, const struct node *src)
{
	*dst = *src;
	dst->dir = src->dir ? xstrdup(src->dir) : NULL;
	dst->born_from = src->born_from ? xstrdup(src->born_from) : NULL;
	dst->conf_file = src->conf_file ? xstrdup(src->conf_file) : NULL;
}

void cluster_add_node(struct cluster *cl, const struct node *n)
{
	cl->nodes = realloc(cl->nodes, sizeof(*cl->nodes) * (cl->n_nodes + 1));
	if (!cl->nodes)
		abort();
	node_copy(&cl->nodes[cl->n_nodes++], n);
}

void cluster_remove_node(struct cluster *cl, int gen)
{
	for (int i = 0; i < cl->n_nodes; i++) {
		if (cl->nodes[i].generation != gen)
			continue;
		node_release(&cl->nodes[i]);
		memmove(&cl->nodes[i], &cl->nodes[i + 1],
			sizeof(*cl->nodes) * (cl->n_nodes - i - 1));
		cl->n_nodes--;
		return;
	}
}

json_t *node_to_json(const struct node *n)
{
	char born[32];
	json_t *j;

	format_time(n->born_at, born, sizeof(born));
	j = json_pack("{s:i, s:s, s:i, s:s, s:I, s:b}", "generation",
		      n->generation, "host", n->host, "port", n->port, "role",
		      node_role_name(n->role), "born_at_ms",
		      (json_int_t)n->born_at, "adopted", n->adopted);
	json_object_set_new(j, "born_at", json_string(born));
	if (n->dir)
		json_object_set_new(j, "dir", json_string(n->dir));
	if (n->born_from)
		json_object_set_new(j, "born_from", json_string(n->born_from));
	if (n->conf_file)
		json_object_set_new(j, "conf_file", json_string(n->conf_file));
	return j;
}

int node_from_json(json_t *j, struct node *n)
{
	const char *host = NULL, *dir = NULL, *role = NULL, *from = NULL;
	const char *conf = NULL;
	json_int_t born = 0;
	int adopted = 0;

	memset(n, 0, sizeof(*n));
	if (json_unpack(j, "{s:i, s:s, s:i, s?s, s:s, s?s, s:I, s?b, s?s}",
			"generation", &n->generation, "host", &host, "port",
			&n->port, "dir", &dir, "role", &role, "born_from",
			&from, "born_at_ms", &born, "adopted", &adopted,
			"conf_file", &conf) == -1)
		return -1;
	if (role_from_name(role, &n->role) == -1)
		return -1;
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->dir = dir ? xstrdup(dir) : NULL;
	n->born_from = from ? xstrdup(from) : NULL;
	n->born_at = born;
	n->adopted = adopted;
	n->conf_file = conf ? xstrdup(conf) : NULL;
	return 0;
}

static char *state_path(struct cluster *cl)
{
	return xasprintf("%s/state.json", cl->dir);
}

int cluster_load_state(struct cluster *cl, char *err, size_t errlen)
{
	char *path = state_path(cl);
	json_error_t jerr;
	json_t *root, *nodes, *j;
	size_t i;
	int rc = -1;

	root = json_load_file(path, 0, &jerr);
	if (!root) {
		if (access(path, F_OK) == -1 && errno == ENOENT) {
			free(path);
			return 0;
		}
		snprintf(err, errlen, "could not read \"%s\": %s", path,
			 jerr.text);
		free(path);
		return -1;
	}
	if (json_unpack(root, "{s:i, s:i, s:i, s:o}", "next_generation",
			&cl->next_generation, "next_snapshot",
			&cl->next_snapshot, "next_rotation", &cl->next_rotation,
			"nodes", &nodes) == -1 ||
	    !json_is_array(nodes)) {
		snprintf(err, errlen, "could not read \"%s\": bad layout",
			 path);
		goto out;
	}
	cl->last_rotation_at = json_integer_value(
		json_object_get(root, "last_rotation_at_ms"));
	cl->last_snapshot_at = json_integer_value(
		json_object_get(root, "last_snapshot_at_ms"));
	if (json_is_object(json_object_get(root, "last_rotation")))
		cl->last_rotation =
			json_incref(json_object_get(root, "last_rotation"));
	json_array_foreach (nodes, i, j) {
		struct node n;

		if (node_from_json(j, &n) == -1) {
			snprintf(err, errlen,
				 "could not read \"%s\": bad node %zu", path,
				 i);
			goto out;
		}
		cluster_add_node(cl, &n);
		node_release(&n);
	}
	rc = 0;
out:
	json_decref(root);
	free(path);
	return rc;
}

int cluster_save_state(struct cluster *cl)
{
	char *path = state_path(cl);
	json_t *root, *nodes = json_array();
	char *text;
	int rc;

	for (int i = 0; i < cl->n_nodes; i++)
		json_array_append_new(nodes, node_to_json(&cl->nodes[i]));
	root = json_pack("{s:s, s:i, s:i, s:i, s:o}", "cluster", cl->cfg->name,
			 "next_generation", cl->next_generation,
			 "next_snapshot", cl->next_snapshot, "next_rotation",
			 cl->next_rotation, "nodes", nodes);
	json_object_set_new(root, "last_rotation_at_ms",
			    json_integer(cl->last_rotation_at));
	json_object_set_new(root, "last_snapshot_at_ms",
			    json_integer(cl->last_snapshot_at));
	if (cl->last_rotation)
		json_object_set(root, "last_rotation", cl->last_rotation);
	text = json_dumps(root, JSON_INDENT(2));
	rc = write_file_durable(path, text, strlen(text), 0600);
	if (rc == -1)
		log_error("could not write \"%s\": %s", path, strerror(errno));
	free(text);
	json_decref(root);
	free(path);
	return rc;
}

void cluster_retire_replica(struct cluster *cl, int gen)
{
	struct node *n;

	pthread_mutex_lock(&cl->lock);
	n = cluster_node(cl, gen);
	if (n)
		n->role = NODE_RETIRED;
	if (cluster_save_state(cl) == -1)
		slog_error(cl->scope, "could not save members");
	pthread_mutex_unlock(&cl->lock);
	cluster_publish(cl);
}
