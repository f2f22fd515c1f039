/*
 * api.c: the HTTP API (see api.h and the README for the routes).
 *
 * Handlers run on the loop thread.  They read cluster state under the
 * cluster's lock and never wait for a database: a rotation or snapshot
 * request starts a job and answers 202 at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "rotator/api.h"
#include "rotator/audit.h"
#include "rotator/cluster.h"
#include "rotator/daemon.h"
#include "rotator/endpoint.h"
#include "rotator/log.h"
#include "rotator/rotation.h"
#include "snapshots/store.h"

#define MAX_BODY (64 * 1024)

struct api {
	struct daemon *d;
	struct evhttp *http;
};

static void reply_json(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *out = evbuffer_new();
	char *text = json_dumps(body, JSON_INDENT(2));

	evbuffer_add_printf(out, "%s\n", text ? text : "{}");
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "application/json");
	evhttp_send_reply(req, status, NULL, out);
	evbuffer_free(out);
	free(text);
	json_decref(body);
}

static void reply_error(struct evhttp_request *req, int status, const char *fmt,
			...) __attribute__((format(printf, 3, 4)));

static void reply_error(struct evhttp_request *req, int status, const char *fmt,
			...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_json(req, status, json_pack("{s:s}", "error", msg));
}

/*
 * True when the request carries "Authorization: Bearer TOKEN"; the scheme's
 * name is case-insensitive (RFC 7235), the token is not.
 */
static bool authorized(struct api *api, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(
		evhttp_request_get_input_headers(req), "Authorization");
	size_t want = strlen(api->d->token);

	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	return strlen(h) == want && CRYPTO_memcmp(h, api->d->token, want) == 0;
}

/*
 * The request body as a JSON object (new reference); an empty body is
 * an empty object.  NULL after answering 400.
 */
static json_t *read_body(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	json_t *body;

	if (len == 0)
		return json_object();
	if (len > MAX_BODY) {
		reply_error(req, 400, "request body is over %d bytes",
			    MAX_BODY);
		return NULL;
	}
	body = json_loadb((const char *)evbuffer_pullup(in, -1), len,
			  JSON_REJECT_DUPLICATES, &jerr);
	if (!body) {
		reply_error(req, 400,
			    "malformed JSON at line %d, column %d: %s",
			    jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(body)) {
		json_decref(body);
		reply_error(req, 400, "request body must be a JSON object");
		return NULL;
	}
	return body;
}

static json_t *member_json(const struct node *n)
{
	json_t *j = node_to_json(n);
	char addr[96];

	snprintf(addr, sizeof(addr), "%s:%d", n->host, n->port);
	json_object_set_new(j, "address", json_string(addr));
	json_object_set_new(j, "age_s",
			    json_integer((wall_ms() - n->born_at) / 1000));
	json_object_del(j, "born_at_ms");
	return j;
}

static json_int_t seconds_until(int64_t due, int64_t every)
{
	int64_t left = due - now_ms();

	if (every <= 0)
		return -1;
	return left > 0 ? left / 1000 : 0;
}

static json_t *cluster_json(struct cluster *cl)
{
	struct endpoint_stats st;
	json_t *j, *members = json_array(), *last = json_null();
	char listen[96];

	endpoint_get_stats(cl->endpoint, &st);
	pthread_mutex_lock(&cl->lock);
	for (int i = 0; i < cl->n_nodes; i++)
		json_array_append_new(members, member_json(&cl->nodes[i]));
	if (cl->last_rotation) {
		last = json_deep_copy(cl->last_rotation);
		json_object_del(last, "steps");
	}
	snprintf(listen, sizeof(listen), "%s:%d", cl->cfg->endpoint_host,
		 cl->cfg->endpoint_port);
	j = json_pack(
		"{s:s, s:s, s:s, s:o, s:o, s:s?, s:I, s:I, s:b, s:s?,"
		" s:{s:s, s:I, s:I, s:I, s:b}}",
		"name", cl->cfg->name, "engine", cl->cfg->engine, "status",
		cl->bootstrap_failed ? "failed"
		: !cl->bootstrapped  ? "starting"
		: cl->running	     ? "rotating"
		: cl->primary_down   ? "primary_down"
				     : "ready",
		"members", members, "last_rotation", last, "running_rotation",
		cl->running ? cl->running->id : NULL, "next_rotation_in_s",
		seconds_until(cl->next_rotation_due,
			      cl->cfg->schedule_every_ms),
		"next_snapshot_in_s",
		seconds_until(cl->next_snapshot_due,
			      cl->cfg->snapshot_every_ms),
		"snapshot_running", cl->snapshot_running, "snapshot_error",
		cl->snapshot_error, "endpoint", "listen", listen, "active",
		(json_int_t)st.active, "held", (json_int_t)st.held, "accepted",
		(json_int_t)st.accepted, "holding", st.holding);
	json_object_set_new(j, "replicas", json_integer(cl->cfg->replicas));
	if (cl->reader) {
		endpoint_get_stats(cl->reader, &st);
		snprintf(listen, sizeof(listen), "%s:%d", cl->cfg->read_host,
			 cl->cfg->read_port);
		json_object_set_new(j, "read_endpoint",
				    json_pack("{s:s, s:I, s:I}", "listen",
					      listen, "active",
					      (json_int_t)st.active, "accepted",
					      (json_int_t)st.accepted));
	}
	if (cl->sentinel) {
		snprintf(listen, sizeof(listen), "%s:%d",
			 cl->cfg->sentinel_host, cl->cfg->sentinel_port);
		json_object_set_new(j, "sentinel", json_string(listen));
	}
	pthread_mutex_unlock(&cl->lock);
	return j;
}

static void get_clusters(struct api *api, struct evhttp_request *req)
{
	json_t *list = json_array();

	for (int i = 0; i < api->d->n_clusters; i++)
		json_array_append_new(list, cluster_json(api->d->clusters[i]));
	reply_json(req, 200, json_pack("{s:o}", "clusters", list));
}

static const char *requester_of(struct evhttp_request *req, json_t *body,
				char *buf, size_t len)
{
	const char *who = json_string_value(json_object_get(body, "requester"));
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	const char *peer = NULL;
	ev_uint16_t port = 0;

	if (conn)
		evhttp_connection_get_peer(conn, (char **)&peer, &port);
	snprintf(buf, len, "%s (api %s)", who ? who : "operator",
		 peer ? peer : "?");
	return buf;
}

/*
 * Answer 400 when BODY has a member not in KEYS: a misspelt "node"
 * must not turn into a rotation of every node.  Returns true then.
 */
static bool unknown_member(json_t *body, const char *const *keys,
			   struct evhttp_request *req)
{
	const char *key;
	json_t *value;

	json_object_foreach (body, key, value) {
		bool known = false;

		for (const char *const *k = keys; *k; k++)
			known |= strcmp(key, *k) == 0;
		if (!known) {
			reply_error(req, 400, "unknown member \"%.64s\"", key);
			return true;
		}
	}
	return false;
}

/*
 * A reason or requester goes into the audit log and every status reply: it
 * must say something, in printable text (a terminal shows it), and not so
 * much that one request bloats them.
 */
#define MAX_TEXT 512

/*
 * Whether the UTF-8 sequence at S (valid: jansson checked it) is a
 * control or format character that a terminal or a viewer acts on or
 * hides: C1 (U+0080-U+009F), U+061C, the zero-width and directional marks
 * (U+200B-U+200F), the line and paragraph separators and bidirectional
 * embeddings and overrides (U+2028-U+202E), the invisible operators and
 * isolates (U+2060-U+2069), and U+FEFF.
 */
static bool unicode_control(const unsigned char *s)
{
	switch (s[0]) {
	case 0xc2:
		return s[1] >= 0x80 && s[1] <= 0x9f;
	case 0xd8:
		return s[1] == 0x9c;
	case 0xe2:
		if (s[1] == 0x80)
			return (s[2] >= 0x8b && s[2] <= 0x8f) ||
			       (s[2] >= 0xa8 && s[2] <= 0xae);
		return s[1] == 0x81 && s[2] >= 0xa0 && s[2] <= 0xa9;
	case 0xef:
		return s[1] == 0xbb && s[2] == 0xbf;
	}
	return false;
}

/*
 * The length of the space at S, ASCII or Unicode (U+00A0, U+2000-U+200A,
 * U+202F, U+205F, U+3000), or 0.
 */
static int space_length(const unsigned char *s)
{
	if (s[0] == ' ')
		return 1;
	if (s[0] == 0xc2 && s[1] == 0xa0)
		return 2;
	if (s[0] == 0xe2 && s[1] == 0x80 && (s[2] <= 0x8a || s[2] == 0xaf))
		return 3;
	if ((s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) ||
	    (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80))
		return 3;
	return 0;
}

static bool text_member_ok(json_t *body, const char *key)
{
	json_t *v = json_object_get(body, key);
	const unsigned char *s;
	bool blank = true;

	if (!v)
		return true;
	if (json_string_length(v) > MAX_TEXT)
		return false;
	for (s = (const unsigned char *)json_string_value(v); *s; s++) {
		int space = space_length(s);

		if (*s < 0x20 || *s == 0x7f || unicode_control(s))
			return false;
		if (space > 0)
			s += space - 1;
		else if ((*s & 0xc0) != 0x80)
			blank = false;
	}
	return !blank;
}

static const char *const rotate_keys[] = {"reason", "requester", "node", NULL};

static void post_rotate(struct api *api, struct evhttp_request *req,
			struct cluster *cl)
{
	json_t *body = read_body(req), *reason, *node;
	char who[128], err[512];
	struct rotation *rot;
	int status;

	if (!body)
		return;
	if (unknown_member(body, rotate_keys, req)) {
		json_decref(body);
		return;
	}
	reason = json_object_get(body, "reason");
	node = json_object_get(body, "node");
	if ((reason && !json_is_string(reason)) ||
	    (json_object_get(body, "requester") &&
	     !json_is_string(json_object_get(body, "requester")))) {
		json_decref(body);
		reply_error(req, 400,
			    "\"reason\" and \"requester\" must be strings");
		return;
	}
	if (!text_member_ok(body, "reason") ||
	    !text_member_ok(body, "requester")) {
		json_decref(body);
		reply_error(req, 400,
			    "\"reason\" and \"requester\" must be printable "
			    "text, not blank, of at most %d bytes",
			    MAX_TEXT);
		return;
	}
	if (node && (!json_is_integer(node) || json_integer_value(node) < 1 ||
		     json_integer_value(node) > INT32_MAX)) {
		json_decref(body);
		reply_error(req, 400,
			    "\"node\" must be a member's generation, a "
			    "positive integer");
		return;
	}
	rot = rotation_start(cl, reason ? json_string_value(reason) : "forced",
			     requester_of(req, body, who, sizeof(who)),
			     node ? (int)json_integer_value(node) : ROTATE_ALL,
			     &status, err, sizeof(err));
	json_decref(body);
	if (!rot) {
		reply_error(req, status, "%s", err);
		return;
	}
	pthread_mutex_lock(&cl->lock);
	body = rotation_to_json(rot);
	pthread_mutex_unlock(&cl->lock);
	reply_json(req, 202, body);
}

static void get_snapshots(struct cluster *cl, struct evhttp_request *req)
{
	json_t *list = store_list(cl);
	json_t *j;

	pthread_mutex_lock(&cl->lock);
	j = json_pack("{s:o, s:b, s:s?}", "snapshots", list, "taking",
		      cl->snapshot_running, "last_error", cl->snapshot_error);
	pthread_mutex_unlock(&cl->lock);
	reply_json(req, 200, j);
}

static void post_snapshot(struct cluster *cl, struct evhttp_request *req)
{
	json_t *body = read_body(req);
	char err[512];

	if (!body)
		return;
	json_decref(body);
	if (daemon_snapshot(cl, err, sizeof(err)) == -1) {
		reply_error(req, 409, "%s", err);
		return;
	}
	reply_json(req, 202, json_pack("{s:b}", "taking", 1));
}

/* The cluster that snapshot or rotation ID ("NAME-...") belongs to. */
static struct cluster *cluster_of_id(struct api *api, const char *id)
{
	const char *dash = strrchr(id, '-');
	char name[64];

	if (!dash || dash - id >= (long)sizeof(name))
		return NULL;
	snprintf(name, sizeof(name), "%.*s", (int)(dash - id), id);
	return daemon_cluster(api->d, name);
}

/*
 * The last rotation to end is kept in state.json, so that it outlives the
 * in-memory history across restarts.  A copy if it is ID, or NULL.
 * Called with CL->lock held.
 */
static json_t *saved_rotation(struct cluster *cl, const char *id)
{
	const char *saved;

	if (!cl->last_rotation)
		return NULL;
	saved = json_string_value(json_object_get(cl->last_rotation, "id"));
	if (!saved || strcmp(saved, id) != 0)
		return NULL;
	return json_deep_copy(cl->last_rotation);
}

static void get_rotation(struct api *api, struct evhttp_request *req,
			 const char *id)
{
	struct cluster *cl = cluster_of_id(api, id);
	struct rotation *rot;
	json_t *j = NULL;

	if (cl) {
		pthread_mutex_lock(&cl->lock);
		rot = rotation_find(cl, id);
		if (rot)
			j = rotation_to_json(rot);
		else
			j = saved_rotation(cl, id);
		pthread_mutex_unlock(&cl->lock);
	}
	if (!j) {
		reply_error(req, 404, "no rotation \"%s\"", id);
		return;
	}
	reply_json(req, 200, j);
}

static void get_audit(struct api *api, struct evhttp_request *req)
{
	struct evkeyvalq query;
	const char *cluster, *limit;
	json_t *entries;

	evhttp_parse_query_str(
		evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)) ?: "",
		&query);
	cluster = evhttp_find_header(&query, "cluster");
	limit = evhttp_find_header(&query, "limit");
	if (limit && (limit[strspn(limit, "0123456789")] || !*limit)) {
		evhttp_clear_headers(&query);
		reply_error(req, 400, "limit must be a whole number");
		return;
	}
	entries = audit_read(api->d->audit_path, cluster,
			     limit ? strtoul(limit, NULL, 10) : 0);
	evhttp_clear_headers(&query);
	if (!entries) {
		reply_error(req, 500, "could not read the audit log");
		return;
	}
	reply_json(req, 200, json_pack("{s:o}", "entries", entries));
}

static json_t *verify_json(struct cluster *cl)
{
	json_t *j;

	pthread_mutex_lock(&cl->lock);
	j = json_pack("{s:s, s:s, s:s}", "snapshot", cl->verify_id, "state",
		      cl->verify_running  ? "running"
		      : cl->verify_passed ? "verified"
					  : "failed",
		      "reason", cl->verify_reason);
	pthread_mutex_unlock(&cl->lock);
	return j;
}

/*
 * Whether ID, of CL, names a restore point in the store: "NAME-" and
 * digits, a directory of that name.  Anything else is not looked at.
 */
static bool snapshot_exists(struct cluster *cl, const char *id)
{
	const char *digits = strrchr(id, '-') + 1;
	struct stat st;
	char *dir;
	bool found;

	if (!*digits || strspn(digits, "0123456789") != strlen(digits))
		return false;
	dir = store_path(cl, id);
	found = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
	free(dir);
	return found;
}

/*
 * POST /v1/snapshots/ID/verify starts a check of restore point ID from
 * scratch; GET on the same path says how the last check of it went.
 */
static void route_verify(struct api *api, struct evhttp_request *req,
			 enum evhttp_cmd_type method, const char *rest)
{
	const char *slash = strchr(rest, '/');
	struct cluster *cl;
	char id[64], err[512];
	bool known;

	if (!slash || strcmp(slash, "/verify") != 0 ||
	    slash - rest >= (long)sizeof(id)) {
		reply_error(req, 404, "no such resource");
		return;
	}
	snprintf(id, sizeof(id), "%.*s", (int)(slash - rest), rest);
	cl = cluster_of_id(api, id);
	if (!cl || !snapshot_exists(cl, id)) {
		reply_error(req, 404, "no snapshot \"%s\"", id);
		return;
	}
	if (method == EVHTTP_REQ_POST) {
		if (daemon_verify(cl, id, err, sizeof(err)) == -1)
			reply_error(req, 409, "%s", err);
		else
			reply_json(req, 202, verify_json(cl));
		return;
	}
	pthread_mutex_lock(&cl->lock);
	known = strcmp(cl->verify_id, id) == 0;
	pthread_mutex_unlock(&cl->lock);
	if (!known)
		reply_error(req, 404,
			    "no check of \"%s\" since the daemon started", id);
	else
		reply_json(req, 200, verify_json(cl));
}

/*
 * Route /v1/clusters/NAME[/rotate|/snapshots].  REST is what follows
 * "/v1/clusters/".
 */
static void route_cluster(struct api *api, struct evhttp_request *req,
			  enum evhttp_cmd_type method, const char *rest)
{
	const char *slash = strchr(rest, '/');
	const char *sub = slash ? slash + 1 : "";
	char name[64];
	struct cluster *cl;

	snprintf(name, sizeof(name), "%.*s",
		 (int)(slash ? slash - rest : (long)strlen(rest)), rest);
	cl = daemon_cluster(api->d, name);
	if (!cl) {
		reply_error(req, 404, "no cluster \"%s\"", name);
		return;
	}
	if (strcmp(sub, "") == 0 && method == EVHTTP_REQ_GET)
		reply_json(req, 200, cluster_json(cl));
	else if (strcmp(sub, "rotate") == 0 && method == EVHTTP_REQ_POST)
		post_rotate(api, req, cl);
	else if (strcmp(sub, "snapshots") == 0 && method == EVHTTP_REQ_GET)
		get_snapshots(cl, req);
	else if (strcmp(sub, "snapshots") == 0 && method == EVHTTP_REQ_POST)
		post_snapshot(cl, req);
	else if (strcmp(sub, "") == 0 || strcmp(sub, "rotate") == 0 ||
		 strcmp(sub, "snapshots") == 0)
		reply_error(req, 405, "method not allowed");
	else
		reply_error(req, 404, "no such resource");
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const char *path =
		evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	if (!path)
		path = "/";
	if (method == EVHTTP_REQ_POST && !authorized(api, req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "WWW-Authenticate", "Bearer");
		reply_error(req, 401, "missing or wrong bearer token");
		return;
	}
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_POST) {
		reply_error(req, 405, "method not allowed");
		return;
	}
	if (strcmp(path, "/v1/clusters") == 0 && method == EVHTTP_REQ_GET)
		get_clusters(api, req);
	else if (strncmp(path, "/v1/clusters/", 13) == 0 && path[13])
		route_cluster(api, req, method, path + 13);
	else if (strncmp(path, "/v1/rotations/", 14) == 0 &&
		 method == EVHTTP_REQ_GET)
		get_rotation(api, req, path + 14);
	else if (strcmp(path, "/v1/audit") == 0 && method == EVHTTP_REQ_GET)
		get_audit(api, req);
	else if (strncmp(path, "/v1/snapshots/", 14) == 0)
		route_verify(api, req, method, path + 14);
	else if (strcmp(path, "/v1/events") == 0 && method == EVHTTP_REQ_GET)
		reply_json(req, 200,
			   json_pack("{s:o}", "events", daemon_events(api->d)));
	else if (strcmp(path, "/v1/clusters") == 0 ||
		 strcmp(path, "/v1/audit") == 0 ||
		 strcmp(path, "/v1/events") == 0 ||
		 strncmp(path, "/v1/rotations/", 14) == 0)
		reply_error(req, 405, "method not allowed");
	else
		reply_error(req, 404, "no such resource");
}

struct api *api_new(struct daemon *d, const char *host, int port)
{
	struct api *api = xcalloc(1, sizeof(*api));

	api->d = d;
	api->http = evhttp_new(d->base);
	evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
						      EVHTTP_REQ_PUT |
						      EVHTTP_REQ_DELETE);
	evhttp_set_max_body_size(api->http, MAX_BODY * 2);
	evhttp_set_timeout(api->http, 30);
	evhttp_set_gencb(api->http, on_request, api);
	if (evhttp_bind_socket(api->http, host, (ev_uint16_t)port) != 0) {
		fprintf(stderr,
			"rotator: %s: api.listen: could not listen on %s:%d: %s\n",
			d->cfg->path, host, port, strerror(errno));
		api_free(api);
		return NULL;
	}
	return api;
}

void api_free(struct api *api)
{
	if (!api)
		return;
	if (api->http)
		evhttp_free(api->http);
	free(api);
}
