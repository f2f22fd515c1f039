/*
 * config.c: read and check the JSON configuration file.
 *
 * jansson parses the whole file first; then one parse_* function per kind
 * of object walks it, checks the object's keys against the ones it allows,
 * reads its members with the get_* helpers and fills its part of struct
 * config.  The first problem stops the walk and becomes the one message
 * handed back, "FILE: KEYPATH: reason".  Checks between clusters (names,
 * listen addresses, port ranges) run once every cluster has been read.
 *
 * Nothing here reads the password or token files: only their paths are
 * kept, for the daemon to open later.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "rotator/config.h"
#include "rotator/log.h"

#define PATH_LEN 256
#define NAME_MAX_LEN 32
#define USER_MAX_LEN 63 /* PostgreSQL's NAMEDATALEN - 1 */

enum presence {
	KEY_OPTIONAL,
	KEY_REQUIRED,
};

/* Where to report a problem. */
struct parser {
	const char *file;
	char *err;
	size_t errlen;
};

/* An object of the file and its key path, "clusters[0].auth". */
struct node {
	json_t *json; /* borrowed from the parsed document */
	char path[PATH_LEN];
};

/* The second halves of reasons too long to share a line with their call. */
static const char duration_hint[] = "use a number followed by ms, s, m, h or d";
static const char range_hint[] =
	"expected \"LOW-HIGH\" with 1 <= LOW <= HIGH <= 65535";
static const char level_hint[] = "expected error, warning, info or debug";
static const char name_hint[] = "use 1 to 32 letters, digits or underscores";
static const char user_hint[] =
	"use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter "
	"or '_' and not with \"pg_\"";
static const char bootstrap_hint[] =
	"expected \"initdb\", \"empty\" or \"adopt\"";
static const char engine_hint[] = "expected \"postgres\" or \"redis\"";
static const char kind_hint[] = "only \"local\" is supported";
static const char setting_hint[] =
	"use lowercase letters, digits, underscores, dots and dashes, "
	"not a dash first";

static void path_format(char *buf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Format a key path into BUF of PATH_LEN bytes.  A path longer than that
 * (only a very long unknown key makes one) is cut short, which does no
 * harm in a message.
 */
static void path_format(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, PATH_LEN, fmt, ap);
	va_end(ap);
}

/* PATH.KEY into BUF of PATH_LEN bytes; PATH or KEY may be "" or NULL. */
static void join_path(char *buf, const char *path, const char *key)
{
	if (!key || !*key)
		path_format(buf, "%s", path);
	else if (!*path)
		path_format(buf, "%s", key);
	else
		path_format(buf, "%s.%s", path, key);
}

static int fail(struct parser *p, const char *path, const char *key,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Write "FILE: PATH.KEY: reason" into the caller's buffer and return -1,
 * so that a parser can end with "return fail(...)".  With PATH "" and KEY
 * NULL the message is about the file itself: "FILE: reason".
 */
static int fail(struct parser *p, const char *path, const char *key,
		const char *fmt, ...)
{
	char where[PATH_LEN];
	char reason[CONFIG_ERR_LEN];
	va_list ap;

	join_path(where, path, key);
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (*where)
		snprintf(p->err, p->errlen, "%s: %s: %s", p->file, where,
			 reason);
	else
		snprintf(p->err, p->errlen, "%s: %s", p->file, reason);
	return -1;
}

static bool in_list(const char *word, const char *const *list)
{
	for (; *list; list++) {
		if (strcmp(word, *list) == 0)
			return true;
	}
	return false;
}

/* Refuse any key of N that is not in ALLOWED (NULL-terminated). */
static int check_keys(struct parser *p, const struct node *n,
		      const char *const *allowed)
{
	const char *key;
	json_t *val;

	json_object_foreach (n->json, key, val) {
		if (!*key)
			return fail(p, n->path, NULL, "unknown key \"\"");
		if (!in_list(key, allowed))
			return fail(p, n->path, key, "unknown key");
	}
	return 0;
}

/*
 * Find KEY in N.  Returns 1 with *VAL borrowed from N, 0 when KEY is
 * absent and optional, or -1 after reporting a missing required key.
 */
static int member(struct parser *p, const struct node *n, const char *key,
		  enum presence need, json_t **val)
{
	*val = json_object_get(n->json, key);
	if (*val)
		return 1;
	if (need == KEY_REQUIRED)
		return fail(p, n->path, key, "missing required key");
	return 0;
}

/*
 * The non-empty string KEY of N into *TEXT, borrowed from N.  Returns 1,
 * 0 when absent and optional (*TEXT untouched), or -1 after an error.
 */
static int get_text(struct parser *p, const struct node *n, const char *key,
		    enum presence need, const char **text)
{
	json_t *val;
	int rc = member(p, n, key, need, &val);

	if (rc <= 0)
		return rc;
	if (!json_is_string(val))
		return fail(p, n->path, key, "expected a string");
	if (json_string_length(val) == 0)
		return fail(p, n->path, key, "must not be empty");
	*text = json_string_value(val);
	return 1;
}

/*
 * The string KEY of N as a new copy in *OUT, which replaces (and frees)
 * the default already there.  Absent and optional leaves *OUT alone.
 */
static int get_string(struct parser *p, const struct node *n, const char *key,
		      enum presence need, char **out)
{
	const char *text;
	int rc = get_text(p, n, key, need, &text);

	if (rc <= 0)
		return rc;
	free(*out);
	*out = xstrdup(text);
	return 0;
}

/*
 * The integer KEY of N, within MIN..MAX, into *OUT.  A MAX of INT_MAX or
 * more stands for "no upper bound" in the message.
 */
static int get_int(struct parser *p, const struct node *n, const char *key,
		   enum presence need, int64_t min, int64_t max, int64_t *out)
{
	json_t *val;
	long long v;
	int rc = member(p, n, key, need, &val);

	if (rc <= 0)
		return rc;
	if (!json_is_integer(val))
		return fail(p, n->path, key, "expected an integer");
	v = json_integer_value(val);
	if (v >= min && v <= max) {
		*out = v;
		return 0;
	}
	if (max >= INT_MAX)
		return fail(p, n->path, key,
			    "%lld is out of range: expected at least %lld", v,
			    (long long)min);
	return fail(p, n->path, key,
		    "%lld is out of range: expected %lld to %lld", v,
		    (long long)min, (long long)max);
}

/* The duration KEY of N ("30s", "6h") into *MS. */
static int get_duration(struct parser *p, const struct node *n, const char *key,
			enum presence need, int64_t *ms)
{
	json_t *val;
	int rc = member(p, n, key, need, &val);

	if (rc <= 0)
		return rc;
	if (!json_is_string(val))
		return fail(p, n->path, key, "expected a string");
	if (parse_duration(json_string_value(val), ms) < 0)
		return fail(p, n->path, key, "invalid duration \"%s\": %s",
			    json_string_value(val), duration_hint);
	return 0;
}

/* The "HOST:PORT" KEY of N; a new *HOST replaces the default there. */
static int get_address(struct parser *p, const struct node *n, const char *key,
		       enum presence need, char **host, int *port)
{
	const char *text;
	char *h;
	int rc = get_text(p, n, key, need, &text);

	if (rc <= 0)
		return rc;
	if (parse_hostport(text, &h, port) < 0)
		return fail(p, n->path, key,
			    "invalid address \"%s\": expected \"HOST:PORT\"",
			    text);
	free(*host);
	*host = h;
	return 0;
}

/* One port of a range at *S, which is moved past it. */
static int read_port(const char **s, long *port)
{
	char *end;

	if (!isdigit((unsigned char)**s))
		return -1;
	errno = 0;
	*port = strtol(*s, &end, 10);
	if (errno || *port < 1 || *port > 65535)
		return -1;
	*s = end;
	return 0;
}

/* The port range "LOW-HIGH" KEY of N into *LO and *HI. */
static int get_port_range(struct parser *p, const struct node *n,
			  const char *key, enum presence need, int *lo, int *hi)
{
	const char *text, *s;
	long a, b;
	int rc = get_text(p, n, key, need, &text);

	if (rc <= 0)
		return rc;
	s = text;
	if (read_port(&s, &a) < 0 || *s++ != '-' || read_port(&s, &b) < 0 ||
	    *s || a > b)
		return fail(p, n->path, key, "invalid port range \"%s\": %s",
			    text, range_hint);
	*lo = (int)a;
	*hi = (int)b;
	return 0;
}

/*
 * The object KEY of PARENT into CHILD, with its key path, after checking
 * its keys against ALLOWED (NULL: any key).  Returns 1, 0 when absent and
 * optional, or -1 after an error.
 */
static int get_object(struct parser *p, const struct node *parent,
		      const char *key, enum presence need,
		      const char *const *allowed, struct node *child)
{
	int rc = member(p, parent, key, need, &child->json);

	if (rc <= 0)
		return rc;
	if (!json_is_object(child->json))
		return fail(p, parent->path, key, "expected an object");
	join_path(child->path, parent->path, key);
	if (allowed && check_keys(p, child, allowed) < 0)
		return -1;
	return 1;
}

static bool valid_name(const char *name)
{
	size_t len = strlen(name);

	if (len < 1 || len > NAME_MAX_LEN)
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz0123456789_") == len;
}

/*
 * The user goes into initdb, connection strings, redis.conf and ACL rules,
 * each with its own quoting; a name that needs none is the one that works
 * in all of them.  PostgreSQL keeps "pg_" for its own roles.
 */
static bool valid_user(const char *user)
{
	size_t len = strlen(user);

	if (len < 1 || len > USER_MAX_LEN || strncmp(user, "pg_", 3) == 0 ||
	    !(isalpha((unsigned char)user[0]) || user[0] == '_'))
		return false;
	return strspn(user, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

static int parse_name(struct parser *p, const struct node *n,
		      struct config_cluster *c)
{
	if (get_string(p, n, "name", KEY_REQUIRED, &c->name) < 0)
		return -1;
	if (!valid_name(c->name))
		return fail(p, n->path, "name",
			    "invalid cluster name \"%s\": %s", c->name,
			    name_hint);
	return 0;
}

static int parse_engine(struct parser *p, const struct node *n,
			struct config_cluster *c)
{
	if (get_string(p, n, "engine", KEY_REQUIRED, &c->engine) < 0)
		return -1;
	if (strcmp(c->engine, "postgres") != 0 &&
	    strcmp(c->engine, "redis") != 0)
		return fail(p, n->path, "engine", "unknown engine \"%s\": %s",
			    c->engine, engine_hint);
	return 0;
}

/* Read bootstrap, which must suit the engine already read. */
static int parse_bootstrap(struct parser *p, const struct node *n,
			   struct config_cluster *c)
{
	static const char *const names[] = {
		[BOOTSTRAP_INITDB] = "initdb",
		[BOOTSTRAP_EMPTY] = "empty",
		[BOOTSTRAP_ADOPT] = "adopt",
		NULL,
	};
	static const char *const engines[] = {
		[BOOTSTRAP_INITDB] = "postgres",
		[BOOTSTRAP_EMPTY] = "redis",
		[BOOTSTRAP_ADOPT] = NULL, /* either */
	};
	const char *text;
	int i;

	if (get_text(p, n, "bootstrap", KEY_REQUIRED, &text) < 0)
		return -1;
	for (i = 0; names[i] && strcmp(text, names[i]) != 0; i++)
		;
	if (!names[i])
		return fail(p, n->path, "bootstrap",
			    "unknown bootstrap \"%s\": %s", text,
			    bootstrap_hint);
	if (engines[i] && strcmp(c->engine, engines[i]) != 0)
		return fail(p, n->path, "bootstrap",
			    "bootstrap \"%s\" requires engine \"%s\"", text,
			    engines[i]);
	c->bootstrap = (enum bootstrap)i;
	return 0;
}

/* connection: the primary to adopt, there only with bootstrap "adopt". */
static int parse_connection(struct parser *p, const struct node *n,
			    struct config_cluster *c)
{
	static const char *const keys[] = {"host", "port", "user",
					   "password_file", NULL};
	bool adopt = c->bootstrap == BOOTSTRAP_ADOPT;
	bool present = json_object_get(n->json, "connection") != NULL;
	struct node conn;
	int64_t port;

	if (adopt && !present)
		return fail(p, n->path, "connection",
			    "missing required key for bootstrap \"adopt\"");
	if (!adopt && present)
		return fail(p, n->path, "connection",
			    "only allowed with bootstrap \"adopt\"");
	if (!adopt)
		return 0;
	if (get_object(p, n, "connection", KEY_REQUIRED, keys, &conn) < 0 ||
	    get_string(p, &conn, "host", KEY_REQUIRED, &c->adopt_host) < 0 ||
	    get_int(p, &conn, "port", KEY_REQUIRED, 1, 65535, &port) < 0 ||
	    get_string(p, &conn, "user", KEY_OPTIONAL, &c->adopt_user) < 0 ||
	    get_string(p, &conn, "password_file", KEY_OPTIONAL,
		       &c->adopt_password_file) < 0)
		return -1;
	c->adopt_port = (int)port;
	if (strcmp(c->engine, "redis") != 0 &&
	    (c->adopt_user || c->adopt_password_file))
		return fail(p, n->path,
			    c->adopt_user ? "connection.user"
					  : "connection.password_file",
			    "only allowed with engine \"redis\"; postgres "
			    "adopts with auth.user");
	return 0;
}

/* replicas: how many replicas to keep beside the primary. */
static int parse_replicas(struct parser *p, const struct node *n,
			  struct config_cluster *c)
{
	int64_t count = 0;

	if (get_int(p, n, "replicas", KEY_OPTIONAL, 0, MAX_REPLICAS, &count) <
	    0)
		return -1;
	c->replicas = (int)count;
	return 0;
}

static int parse_auth(struct parser *p, const struct node *n,
		      struct config_cluster *c)
{
	static const char *const keys[] = {"user", "password_file", NULL};
	struct node auth;

	if (get_object(p, n, "auth", KEY_REQUIRED, keys, &auth) < 0 ||
	    get_string(p, &auth, "user", KEY_REQUIRED, &c->auth_user) < 0 ||
	    get_string(p, &auth, "password_file", KEY_REQUIRED,
		       &c->auth_password_file) < 0)
		return -1;
	if (!valid_user(c->auth_user))
		return fail(p, auth.path, "user", "invalid user \"%s\": %s",
			    c->auth_user, user_hint);
	return 0;
}

static int parse_endpoint(struct parser *p, const struct node *n,
			  struct config_cluster *c)
{
	static const char *const keys[] = {"listen", "hold_ms", "read_listen",
					   "sentinel_listen", NULL};
	struct node ep;

	if (get_object(p, n, "endpoint", KEY_REQUIRED, keys, &ep) < 0 ||
	    get_address(p, &ep, "listen", KEY_REQUIRED, &c->endpoint_host,
			&c->endpoint_port) < 0 ||
	    get_int(p, &ep, "hold_ms", KEY_OPTIONAL, 1, 600000, &c->hold_ms) <
		    0 ||
	    get_address(p, &ep, "read_listen", KEY_OPTIONAL, &c->read_host,
			&c->read_port) < 0 ||
	    get_address(p, &ep, "sentinel_listen", KEY_OPTIONAL,
			&c->sentinel_host, &c->sentinel_port) < 0)
		return -1;
	if (c->sentinel_host && strcmp(c->engine, "redis") != 0)
		return fail(p, ep.path, "sentinel_listen",
			    "only allowed with engine \"redis\"");
	return 0;
}

static int parse_provisioner(struct parser *p, const struct node *n,
			     struct config_cluster *c)
{
	static const char *const keys[] = {
		"kind", "bin_dir", "ports", "run_as", NULL,
	};
	struct node prov;

	if (get_object(p, n, "provisioner", KEY_REQUIRED, keys, &prov) < 0 ||
	    get_string(p, &prov, "kind", KEY_OPTIONAL, &c->prov_kind) < 0)
		return -1;
	if (strcmp(c->prov_kind, "local") != 0)
		return fail(p, prov.path, "kind",
			    "unknown provisioner kind \"%s\": %s", c->prov_kind,
			    kind_hint);
	if (get_string(p, &prov, "bin_dir", KEY_REQUIRED, &c->bin_dir) < 0 ||
	    get_port_range(p, &prov, "ports", KEY_REQUIRED, &c->port_min,
			   &c->port_max) < 0 ||
	    get_string(p, &prov, "run_as", KEY_OPTIONAL, &c->run_as) < 0)
		return -1;
	return 0;
}

static int parse_schedule(struct parser *p, const struct node *n,
			  struct config_cluster *c)
{
	static const char *const keys[] = {"every", NULL};
	struct node sched;
	int rc = get_object(p, n, "schedule", KEY_OPTIONAL, keys, &sched);

	if (rc <= 0)
		return rc;
	return get_duration(p, &sched, "every", KEY_OPTIONAL,
			    &c->schedule_every_ms);
}

static int parse_snapshots(struct parser *p, const struct node *n,
			   struct config_cluster *c)
{
	static const char *const keys[] = {"every", "keep", NULL};
	struct node snap;
	int64_t keep = c->snapshot_keep;
	int rc = get_object(p, n, "snapshots", KEY_OPTIONAL, keys, &snap);

	if (rc <= 0)
		return rc;
	if (get_duration(p, &snap, "every", KEY_OPTIONAL,
			 &c->snapshot_every_ms) < 0 ||
	    get_int(p, &snap, "keep", KEY_OPTIONAL, 1, INT_MAX, &keep) < 0)
		return -1;
	c->snapshot_keep = (int)keep;
	return 0;
}

static int parse_rotation(struct parser *p, const struct node *n,
			  struct config_cluster *c)
{
	static const char *const keys[] = {
		"max_lag_bytes",
		"catch_up_timeout",
		"switch_timeout",
		NULL,
	};
	struct node rot;
	int rc = get_object(p, n, "rotation", KEY_OPTIONAL, keys, &rot);

	if (rc <= 0)
		return rc;
	if (get_int(p, &rot, "max_lag_bytes", KEY_OPTIONAL, 0, INT64_MAX,
		    &c->max_lag_bytes) < 0 ||
	    get_duration(p, &rot, "catch_up_timeout", KEY_OPTIONAL,
			 &c->catch_up_timeout_ms) < 0 ||
	    get_duration(p, &rot, "switch_timeout", KEY_OPTIONAL,
			 &c->switch_timeout_ms) < 0)
		return -1;
	return 0;
}

/* verify.canary: queries to run on a fresh node, kept NULL-terminated. */
static int parse_verify(struct parser *p, const struct node *n,
			struct config_cluster *c)
{
	static const char *const keys[] = {"canary", NULL};
	struct node verify;
	char path[PATH_LEN];
	json_t *list, *query;
	size_t i;
	int rc = get_object(p, n, "verify", KEY_OPTIONAL, keys, &verify);

	if (rc <= 0)
		return rc;
	rc = member(p, &verify, "canary", KEY_OPTIONAL, &list);
	if (rc <= 0)
		return rc;
	if (!json_is_array(list))
		return fail(p, verify.path, "canary", "expected an array");
	free(c->canary);
	c->canary = xcalloc(json_array_size(list) + 1, sizeof(*c->canary));
	json_array_foreach (list, i, query) {
		path_format(path, "%s.canary[%zu]", verify.path, i);
		if (!json_is_string(query) || json_string_length(query) == 0)
			return fail(p, path, NULL,
				    "expected a non-empty string");
		c->canary[i] = xstrdup(json_string_value(query));
		c->n_canary++;
	}
	return 0;
}

static bool valid_setting_name(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && name[0] != '-' &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

/*
 * A server setting's value as new text: strings as they are, numbers in
 * decimal, booleans as "on" or "off".  NULL for any other type.
 */
static char *setting_text(json_t *val)
{
	char buf[32];
	double d;

	switch (json_typeof(val)) {
	case JSON_STRING:
		return xstrdup(json_string_value(val));
	case JSON_INTEGER:
		return xasprintf("%" JSON_INTEGER_FORMAT,
				 json_integer_value(val));
	case JSON_REAL:
		/* The shortest form that reads back as the same number. */
		d = json_real_value(val);
		snprintf(buf, sizeof(buf), "%.15g", d);
		if (strtod(buf, NULL) != d)
			snprintf(buf, sizeof(buf), "%.17g", d);
		return xstrdup(buf);
	case JSON_TRUE:
		return xstrdup("on");
	case JSON_FALSE:
		return xstrdup("off");
	default:
		return NULL;
	}
}

/*
 * server_settings: any name of [a-z0-9_.-]+ not starting with "-", each
 * value kept as text.
 */
static int parse_settings(struct parser *p, const struct node *n,
			  struct config_cluster *c)
{
	struct node gucs;
	const char *name;
	json_t *val;
	char *text;
	int rc = get_object(p, n, "server_settings", KEY_OPTIONAL, NULL, &gucs);

	if (rc <= 0)
		return rc;
	c->settings =
		xcalloc(json_object_size(gucs.json), sizeof(*c->settings));
	json_object_foreach (gucs.json, name, val) {
		if (!valid_setting_name(name))
			return fail(p, gucs.path, name,
				    "invalid setting name \"%s\": %s", name,
				    setting_hint);
		text = setting_text(val);
		if (!text)
			return fail(p, gucs.path, name,
				    "expected a string, number or boolean");
		c->settings[c->n_settings].name = xstrdup(name);
		c->settings[c->n_settings].value = text;
		c->n_settings++;
	}
	return 0;
}

/* The defaults of every optional member, set before a cluster is read. */
static void cluster_defaults(struct config_cluster *c)
{
	c->hold_ms = 5000;
	c->prov_kind = xstrdup("local");
	c->snapshot_keep = 3;
	c->max_lag_bytes = 16 * 1024 * 1024;
	c->catch_up_timeout_ms = 30 * 60 * 1000;
	c->switch_timeout_ms = 10 * 1000;
	c->canary = xcalloc(1, sizeof(*c->canary));
}

typedef int (*cluster_part)(struct parser *p, const struct node *n,
			    struct config_cluster *c);

static int parse_cluster(struct parser *p, const struct node *n,
			 struct config_cluster *c)
{
	static const char *const keys[] = {
		"name",	     "engine",	 "bootstrap",	"connection",
		"auth",	     "endpoint", "provisioner", "schedule",
		"snapshots", "rotation", "verify",	"server_settings",
		"replicas",  NULL,
	};
	/* In this order: bootstrap needs the engine, connection both. */
	static const cluster_part parts[] = {
		parse_name,	   parse_engine,   parse_bootstrap,
		parse_connection,  parse_auth,	   parse_endpoint,
		parse_provisioner, parse_schedule, parse_snapshots,
		parse_rotation,	   parse_verify,   parse_settings,
		parse_replicas,
	};

	cluster_defaults(c);
	if (!json_is_object(n->json))
		return fail(p, n->path, NULL, "expected an object");
	if (check_keys(p, n, keys) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(parts) / sizeof(*parts); i++) {
		if (parts[i](p, n, c) < 0)
			return -1;
	}
	return 0;
}

static int parse_clusters(struct parser *p, const struct node *root,
			  struct config *cfg)
{
	json_t *list;
	size_t i;

	if (member(p, root, "clusters", KEY_REQUIRED, &list) < 0)
		return -1;
	if (!json_is_array(list))
		return fail(p, root->path, "clusters", "expected an array");
	if (json_array_size(list) == 0)
		return fail(p, root->path, "clusters",
			    "expected at least one cluster");
	cfg->n_clusters = (int)json_array_size(list);
	cfg->clusters = xcalloc(json_array_size(list), sizeof(*cfg->clusters));
	for (i = 0; i < json_array_size(list); i++) {
		struct node n = {.json = json_array_get(list, i)};

		path_format(n.path, "clusters[%zu]", i);
		if (parse_cluster(p, &n, &cfg->clusters[i]) < 0)
			return -1;
	}
	return 0;
}

static int parse_api(struct parser *p, const struct node *root,
		     struct config *cfg)
{
	static const char *const keys[] = {"listen", "token_file", NULL};
	struct node api;

	cfg->api_host = xstrdup("127.0.0.1");
	cfg->api_port = 7070;
	if (get_object(p, root, "api", KEY_REQUIRED, keys, &api) < 0 ||
	    get_address(p, &api, "listen", KEY_OPTIONAL, &cfg->api_host,
			&cfg->api_port) < 0 ||
	    get_string(p, &api, "token_file", KEY_REQUIRED,
		       &cfg->api_token_file) < 0)
		return -1;
	return 0;
}

/*
 * Whether two listen addresses would clash: the same port on the same
 * host ("localhost" being 127.0.0.1), or on any host when either side
 * listens on every interface.
 */
static bool same_address(const char *host_a, int port_a, const char *host_b,
			 int port_b)
{
	static const char *const any[] = {"0.0.0.0", "::", "*", NULL};

	if (port_a != port_b)
		return false;
	if (strcmp(host_a, "localhost") == 0)
		host_a = "127.0.0.1";
	if (strcmp(host_b, "localhost") == 0)
		host_b = "127.0.0.1";
	return strcmp(host_a, host_b) == 0 || in_list(host_a, any) ||
	       in_list(host_b, any);
}

/* Refuse a listen PORT (at PATH) inside any cluster's provisioner range. */
static int check_port_free(struct parser *p, const struct config *cfg,
			   const char *path, int port)
{
	const struct config_cluster *o;
	char other[PATH_LEN];

	for (int j = 0; j < cfg->n_clusters; j++) {
		o = &cfg->clusters[j];
		if (port < o->port_min || port > o->port_max)
			continue;
		path_format(other, "clusters[%d].provisioner.ports", j);
		return fail(p, path, NULL, "port %d lies inside %s (%d-%d)",
			    port, other, o->port_min, o->port_max);
	}
	return 0;
}

/* The listen addresses of one cluster, with their key paths. */
struct listen_set {
	int n;
	const char *host[3];
	int port[3];
	char path[3][PATH_LEN];
};

static void listen_set(const struct config_cluster *c, const char *path,
		       struct listen_set *set)
{
	set->n = 0;
	set->host[set->n] = c->endpoint_host;
	set->port[set->n] = c->endpoint_port;
	join_path(set->path[set->n++], path, "endpoint.listen");
	if (c->read_host) {
		set->host[set->n] = c->read_host;
		set->port[set->n] = c->read_port;
		join_path(set->path[set->n++], path, "endpoint.read_listen");
	}
	if (c->sentinel_host) {
		set->host[set->n] = c->sentinel_host;
		set->port[set->n] = c->sentinel_port;
		join_path(set->path[set->n++], path,
			  "endpoint.sentinel_listen");
	}
}

/*
 * Refuse what cluster C (at PATH) shares with the earlier cluster O (at
 * OPATH): its name, a listen address or part of its port range.  The
 * message names C, the later of the two.
 */
static int check_pair(struct parser *p, const struct config_cluster *c,
		      const char *path, const struct config_cluster *o,
		      const char *opath)
{
	struct listen_set mine, theirs;
	char other[PATH_LEN];

	if (strcmp(c->name, o->name) == 0)
		return fail(p, path, "name",
			    "duplicate cluster name \"%s\" (first at %s.name)",
			    c->name, opath);
	listen_set(c, path, &mine);
	listen_set(o, opath, &theirs);
	for (int i = 0; i < mine.n; i++)
		for (int j = 0; j < theirs.n; j++)
			if (same_address(mine.host[i], mine.port[i],
					 theirs.host[j], theirs.port[j]))
				return fail(p, mine.path[i], NULL,
					    "address \"%s:%d\" is already used "
					    "by %s",
					    mine.host[i], mine.port[i],
					    theirs.path[j]);
	join_path(other, opath, "provisioner.ports");
	if (c->port_min <= o->port_max && o->port_min <= c->port_max)
		return fail(p, path, "provisioner.ports",
			    "port range %d-%d overlaps %s (%d-%d)", c->port_min,
			    c->port_max, other, o->port_min, o->port_max);
	return 0;
}

/*
 * Check cluster I's listen addresses against api.listen, one another,
 * the clusters before it and every provisioner port range.
 */
static int check_cluster(struct parser *p, const struct config *cfg, int i)
{
	const struct config_cluster *c = &cfg->clusters[i];
	char path[PATH_LEN], opath[PATH_LEN];
	struct listen_set set;

	path_format(path, "clusters[%d]", i);
	listen_set(c, path, &set);
	for (int k = 0; k < set.n; k++) {
		if (same_address(set.host[k], set.port[k], cfg->api_host,
				 cfg->api_port))
			return fail(p, set.path[k], NULL,
				    "address \"%s:%d\" is already used by "
				    "api.listen",
				    set.host[k], set.port[k]);
		for (int j = 0; j < k; j++)
			if (same_address(set.host[k], set.port[k], set.host[j],
					 set.port[j]))
				return fail(p, set.path[k], NULL,
					    "address \"%s:%d\" is already used "
					    "by %s",
					    set.host[k], set.port[k],
					    set.path[j]);
		if (check_port_free(p, cfg, set.path[k], set.port[k]) < 0)
			return -1;
	}
	for (int j = 0; j < i; j++) {
		path_format(opath, "clusters[%d]", j);
		if (check_pair(p, c, path, &cfg->clusters[j], opath) < 0)
			return -1;
	}
	return 0;
}

static int parse_root(struct parser *p, json_t *json, struct config *cfg)
{
	static const char *const keys[] = {
		"state_dir", "api", "log_level", "clusters", NULL,
	};
	struct node root = {.json = json, .path = ""};
	enum log_level level;

	if (!json_is_object(json))
		return fail(p, "", NULL, "expected an object at the top level");
	cfg->log_level = xstrdup("info");
	if (check_keys(p, &root, keys) < 0 ||
	    get_string(p, &root, "state_dir", KEY_REQUIRED, &cfg->state_dir) <
		    0 ||
	    parse_api(p, &root, cfg) < 0 ||
	    get_string(p, &root, "log_level", KEY_OPTIONAL, &cfg->log_level) <
		    0)
		return -1;
	if (log_parse_level(cfg->log_level, &level) < 0)
		return fail(p, "", "log_level", "unknown log level \"%s\": %s",
			    cfg->log_level, level_hint);

	/*
	 * The state directory is written into the servers' archive and
	 * restore commands, which PostgreSQL expands ('%') and a shell runs
	 * inside quotes.
	 */
	if (cfg->state_dir[0] != '/' || strpbrk(cfg->state_dir, "'\"\\$`%\n"))
		return fail(
			p, "", "state_dir",
			"\"%s\" must be an absolute path without quotes, backslashes, '$', '`' or '%%'",
			cfg->state_dir);
	if (parse_clusters(p, &root, cfg) < 0)
		return -1;
	for (int i = 0; i < cfg->n_clusters; i++) {
		if (check_cluster(p, cfg, i) < 0)
			return -1;
	}
	return check_port_free(p, cfg, "api.listen", cfg->api_port);
}

/*
 * Open and parse the file.  Returns a new reference, or NULL after
 * reporting why the file could not be read or is not valid JSON.
 */
static json_t *load_json(struct parser *p)
{
	json_error_t jerr;
	struct stat st;
	json_t *json;
	FILE *f;

	f = fopen(p->file, "r");
	if (!f) {
		fail(p, "", NULL, "could not open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		fail(p, "", NULL, "could not open: %s", strerror(EISDIR));
		return NULL;
	}
	json = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
	fclose(f);
	/* An empty file ends before its first column: count that as 1. */
	if (!json)
		snprintf(p->err, p->errlen, "%s:%d:%d: invalid JSON: %s",
			 p->file, jerr.line < 1 ? 1 : jerr.line,
			 jerr.column < 1 ? 1 : jerr.column, jerr.text);
	return json;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	struct parser p = {.file = path, .err = err, .errlen = errlen};
	struct config *cfg;
	json_t *json;

	json = load_json(&p);
	if (!json)
		return NULL;
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(path);
	if (parse_root(&p, json, cfg) < 0) {
		config_free(cfg);
		cfg = NULL;
	}
	json_decref(json);
	return cfg;
}

static void cluster_release(struct config_cluster *c)
{
	free(c->name);
	free(c->engine);
	free(c->adopt_user);
	free(c->adopt_password_file);
	free(c->read_host);
	free(c->sentinel_host);
	free(c->adopt_host);
	free(c->auth_user);
	free(c->auth_password_file);
	free(c->endpoint_host);
	free(c->prov_kind);
	free(c->bin_dir);
	free(c->run_as);
	for (int i = 0; i < c->n_canary; i++)
		free(c->canary[i]);
	free(c->canary);
	for (int i = 0; i < c->n_settings; i++) {
		free(c->settings[i].name);
		free(c->settings[i].value);
	}
	free(c->settings);
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (int i = 0; i < cfg->n_clusters; i++)
		cluster_release(&cfg->clusters[i]);
	free(cfg->clusters);
	free(cfg->path);
	free(cfg->state_dir);
	free(cfg->api_host);
	free(cfg->api_token_file);
	free(cfg->log_level);
	free(cfg);
}

struct config_cluster *config_cluster(struct config *cfg, const char *name)
{
	if (!cfg)
		return NULL;
	for (int i = 0; i < cfg->n_clusters; i++) {
		if (strcmp(cfg->clusters[i].name, name) == 0)
			return &cfg->clusters[i];
	}
	return NULL;
}
