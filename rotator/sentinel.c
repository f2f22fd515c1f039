/*
 * sentinel.c: Redis Sentinel emulation for one cluster.
 *
 * Each accepted connection is a client: a bufferevent, a hiredis reader
 * and the channels and patterns it subscribed to.  Requests are RESP2
 * arrays of bulk strings, or inline commands (a line split on blanks, as
 * telnet or nc send).  Replies are written into the bufferevent's output;
 * a client whose output grows past SENTINEL_MAX_OUTPUT is dropped.
 *
 * Parsing: hiredis 0.14 (Debian 12) neither bounds nor checks for
 * overflow the lengths in a request, so frame_scan() first finds where a
 * request ends and refuses bad or oversized lengths; only a whole,
 * bounded request is handed to redisReader, which builds its argument
 * vector.
 *
 * Threads: sockets and clients are touched on the loop thread only.
 * sentinel_update() changes the state under s->lock (primary, replicas,
 * queued switch messages) and wakes the loop with a user event, whose
 * callback publishes what was queued.  Commands read the state under the
 * same lock, so an answer is never older than the last update that
 * returned.
 */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>

#include "rotator/log.h"
#include "rotator/sentinel.h"
#include "rotator/util.h"

/* A request, inline line or array, may not be longer than this. */
#define SENTINEL_MAX_INPUT (64 * 1024)

/* Arguments in one request. */
#define SENTINEL_MAX_ARGS 1024

/* A client with more than this waiting to be written is dropped. */
#define SENTINEL_MAX_OUTPUT (1024 * 1024)

/* Channels plus patterns one client may subscribe to. */
#define SENTINEL_MAX_SUBS 64

/* Switch messages queued for the loop; older ones are dropped. */
#define SENTINEL_MAX_QUEUED 1024

/* Replicas kept from one update. */
#define SENTINEL_MAX_REPLICAS 64

/* Connections at once; more are closed as they come. */
#define SENTINEL_MAX_CLIENTS 1024

#define SWITCH_CHANNEL "+switch-master"

struct request {
	int argc;
	const char *argv[SENTINEL_MAX_ARGS];
	size_t len[SENTINEL_MAX_ARGS];
};

struct client {
	struct sentinel *s;
	struct bufferevent *bev;
	redisReader *reader;
	uint64_t id;
	char *name; /* CLIENT SETNAME, or NULL */
	char *subs[SENTINEL_MAX_SUBS];
	bool is_pattern[SENTINEL_MAX_SUBS];
	int n_subs;
	bool closing; /* flushing the last reply, then closed */
	struct client *prev;
	struct client *next;
};

/* What commands answer from: a copy of the shared state. */
struct view {
	bool has_primary;
	struct sentinel_addr primary;
	struct sentinel_addr replicas[SENTINEL_MAX_REPLICAS];
	int n_replicas;
	uint64_t epoch; /* switches so far */
};

struct sentinel {
	struct event_base *base;
	char *name;
	struct evconnlistener *listener;
	struct event *wakeup;
	struct event *accept_retry;
	struct client *clients; /* loop thread only */
	int n_clients;
	uint64_t next_id;

	pthread_mutex_t lock; /* guards everything below */
	struct view view;
	bool known; /* LAST holds the last primary that was not NULL */
	struct sentinel_addr last;
	char *queued[SENTINEL_MAX_QUEUED]; /* switch messages, oldest first */
	int n_queued;
};

/* Reply builders.  Every one appends to the client's output. */

static struct evbuffer *client_out(struct client *c)
{
	return bufferevent_get_output(c->bev);
}

static void reply_status(struct client *c, const char *text)
{
	evbuffer_add_printf(client_out(c), "+%s\r\n", text);
}

/*
 * An error line.  The text may carry what a client sent (a command name),
 * so control characters become blanks: a CR or LF would end the line.
 */
static void reply_error(struct client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void reply_error(struct client *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 127)
			*p = ' ';
	evbuffer_add_printf(client_out(c), "-%s\r\n", line);
}

static void reply_bulk_len(struct client *c, const char *text, size_t len)
{
	struct evbuffer *out = client_out(c);

	evbuffer_add_printf(out, "$%zu\r\n", len);
	evbuffer_add(out, text, len);
	evbuffer_add(out, "\r\n", 2);
}

static void reply_bulk(struct client *c, const char *text)
{
	reply_bulk_len(c, text, strlen(text));
}

static void reply_int(struct client *c, long long n)
{
	evbuffer_add_printf(client_out(c), ":%lld\r\n", n);
}

static void reply_array(struct client *c, long n)
{
	evbuffer_add_printf(client_out(c), "*%ld\r\n", n);
}

static void reply_nil(struct client *c)
{
	evbuffer_add(client_out(c), "$-1\r\n", 5);
}

static void reply_wrong_args(struct client *c, const char *cmd)
{
	reply_error(c, "ERR wrong number of arguments for '%.64s' command",
		    cmd);
}

static void reply_no_master(struct client *c)
{
	reply_error(c, "ERR No such master with that name");
}

/*
 * Field/value pairs of one Sentinel state array, gathered in BUF and
 * counted so that the array header can go first.
 */
struct fields {
	struct evbuffer *buf;
	int n;
};

static void field_str(struct fields *f, const char *key, const char *value)
{
	evbuffer_add_printf(f->buf, "$%zu\r\n%s\r\n$%zu\r\n%s\r\n", strlen(key),
			    key, strlen(value), value);
	f->n += 2;
}

static void field_int(struct fields *f, const char *key, long long value)
{
	char num[32];

	snprintf(num, sizeof(num), "%lld", value);
	field_str(f, key, num);
}

static void fields_flush(struct client *c, struct fields *f)
{
	reply_array(c, f->n);
	evbuffer_add_buffer(client_out(c), f->buf);
	evbuffer_free(f->buf);
}

/*
 * The fields that a Sentinel gives first for every instance, master or
 * replica, of role ROLE ("master" or "slave").  rotator keeps no
 * per-instance link state: the timings are zero.
 */
static void instance_fields(struct fields *f, const char *name,
			    const struct sentinel_addr *at, const char *role)
{
	field_str(f, "name", name);
	field_str(f, "ip", at->host);
	field_int(f, "port", at->port);
	field_str(f, "runid", "");
	field_str(f, "flags", role);
	field_int(f, "link-pending-commands", 0);
	field_int(f, "link-refcount", 1);
	field_int(f, "last-ping-sent", 0);
	field_int(f, "last-ok-ping-reply", 0);
	field_int(f, "last-ping-reply", 0);
	field_int(f, "down-after-milliseconds", 30000);
	field_int(f, "info-refresh", 0);
	field_str(f, "role-reported", role);
	field_int(f, "role-reported-time", 0);
}

/* The state array of the master, as SENTINEL MASTERS gives each entry. */
static void reply_master_state(struct client *c, const struct view *v)
{
	struct fields f = {evbuffer_new(), 0};

	instance_fields(&f, c->s->name, &v->primary, "master");
	field_int(&f, "config-epoch", (long long)v->epoch);
	field_int(&f, "num-slaves", v->n_replicas);
	field_int(&f, "num-other-sentinels", 0);
	field_int(&f, "quorum", 1);
	field_int(&f, "failover-timeout", 180000);
	field_int(&f, "parallel-syncs", 1);
	fields_flush(c, &f);
}

static void reply_replica_state(struct client *c, const struct view *v,
				const struct sentinel_addr *r)
{
	struct fields f = {evbuffer_new(), 0};
	char name[96];

	snprintf(name, sizeof(name), "%s:%d", r->host, r->port);
	instance_fields(&f, name, r, "slave");
	field_int(&f, "master-link-down-time", 0);
	field_str(&f, "master-link-status", "ok");
	field_str(&f, "master-host", v->primary.host);
	field_int(&f, "master-port", v->primary.port);
	field_int(&f, "slave-priority", 100);
	field_int(&f, "slave-repl-offset", 0);
	field_int(&f, "replica-announced", 1);
	fields_flush(c, &f);
}

/* Copy the shared state into V. */
static void sentinel_view(struct sentinel *s, struct view *v)
{
	pthread_mutex_lock(&s->lock);
	*v = s->view;
	pthread_mutex_unlock(&s->lock);
}

/* Argument I of REQ equals WORD, ignoring case. */
static bool arg_is(const struct request *req, int i, const char *word)
{
	size_t n = strlen(word);

	return i < req->argc && req->len[i] == n &&
	       strncasecmp(req->argv[i], word, n) == 0;
}

/* Argument I of REQ names this sentinel's master. */
static bool arg_is_master(struct client *c, const struct request *req, int i)
{
	size_t n = strlen(c->s->name);

	return req->len[i] == n && memcmp(req->argv[i], c->s->name, n) == 0;
}

/* SENTINEL get-master-addr-by-name NAME: [ip, port], or a null array. */
static void cmd_get_master_addr(struct client *c, const struct request *req,
				const struct view *v)
{
	char port[16];

	if (!arg_is_master(c, req, 2) || !v->has_primary) {
		evbuffer_add(client_out(c), "*-1\r\n", 5);
		return;
	}
	snprintf(port, sizeof(port), "%d", v->primary.port);
	reply_array(c, 2);
	reply_bulk(c, v->primary.host);
	reply_bulk(c, port);
}

static void cmd_replicas(struct client *c, const struct request *req,
			 const struct view *v)
{
	if (!arg_is_master(c, req, 2) || !v->has_primary) {
		reply_no_master(c);
		return;
	}
	reply_array(c, v->n_replicas);
	for (int i = 0; i < v->n_replicas; i++)
		reply_replica_state(c, v, &v->replicas[i]);
}

/* SENTINEL subcommands that name the master: ARGV[2] is NAME. */
static bool cmd_sentinel_named(struct client *c, const struct request *req,
			       const struct view *v)
{
	bool known = arg_is_master(c, req, 2) && v->has_primary;

	if (arg_is(req, 1, "get-master-addr-by-name")) {
		cmd_get_master_addr(c, req, v);
	} else if (arg_is(req, 1, "master")) {
		if (known)
			reply_master_state(c, v);
		else
			reply_no_master(c);
	} else if (arg_is(req, 1, "replicas") || arg_is(req, 1, "slaves")) {
		cmd_replicas(c, req, v);
	} else if (arg_is(req, 1, "sentinels")) {
		if (known)
			reply_array(c, 0);
		else
			reply_no_master(c);
	} else if (arg_is(req, 1, "ckquorum")) {
		if (known)
			reply_status(c,
				     "OK 1 usable Sentinels. Quorum and "
				     "failover authorization can be reached");
		else
			reply_no_master(c);
	} else {
		return false;
	}
	return true;
}

static void cmd_sentinel(struct client *c, const struct request *req)
{
	struct view v;

	sentinel_view(c->s, &v);
	if (req->argc == 2 && arg_is(req, 1, "masters")) {
		reply_array(c, v.has_primary ? 1 : 0);
		if (v.has_primary)
			reply_master_state(c, &v);
		return;
	}
	if (req->argc == 3 && cmd_sentinel_named(c, req, &v))
		return;
	reply_error(c,
		    "ERR unknown subcommand or wrong number of arguments for "
		    "'%.64s'. Try SENTINEL HELP.",
		    req->argc > 1 ? req->argv[1] : "");
}

/* Client names follow Redis: printable, no blanks. */
static bool valid_client_name(const char *name, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (name[i] <= ' ' || name[i] > '~')
			return false;
	return true;
}

static void cmd_client(struct client *c, const struct request *req)
{
	if (req->argc == 3 && arg_is(req, 1, "setname")) {
		if (!valid_client_name(req->argv[2], req->len[2])) {
			reply_error(c, "ERR Client names cannot contain "
				       "spaces, newlines or special "
				       "characters.");
			return;
		}
		free(c->name);
		c->name = req->len[2] ? xstrdup(req->argv[2]) : NULL;
		reply_status(c, "OK");
	} else if (req->argc == 2 && arg_is(req, 1, "getname")) {
		if (c->name)
			reply_bulk(c, c->name);
		else
			reply_nil(c);
	} else if (req->argc == 2 && arg_is(req, 1, "id")) {
		reply_int(c, (long long)c->id);
	} else {
		reply_error(c,
			    "ERR unknown subcommand or wrong number of "
			    "arguments for '%.64s'. Try CLIENT HELP.",
			    req->argc > 1 ? req->argv[1] : "");
	}
}

static void cmd_ping(struct client *c, const struct request *req)
{
	if (req->argc > 2) {
		reply_wrong_args(c, "ping");
		return;
	}
	if (c->n_subs > 0) {
		/* In subscribed mode a RESP2 PING answers with a push. */
		reply_array(c, 2);
		reply_bulk(c, "pong");
		reply_bulk_len(c, req->argc == 2 ? req->argv[1] : "",
			       req->argc == 2 ? req->len[1] : 0);
	} else if (req->argc == 2) {
		reply_bulk_len(c, req->argv[1], req->len[1]);
	} else {
		reply_status(c, "PONG");
	}
}

static void cmd_role(struct client *c)
{
	reply_array(c, 2);
	reply_bulk(c, "sentinel");
	reply_array(c, 1);
	reply_bulk(c, c->s->name);
}

static void cmd_info(struct client *c)
{
	struct evbuffer *text = evbuffer_new();
	struct view v;
	size_t len;

	sentinel_view(c->s, &v);
	evbuffer_add_printf(text,
			    "# Sentinel\r\n"
			    "sentinel_masters:%d\r\n"
			    "sentinel_tilt:0\r\n"
			    "sentinel_running_scripts:0\r\n"
			    "sentinel_scripts_queue_length:0\r\n"
			    "sentinel_simulate_failure_flags:0\r\n",
			    v.has_primary ? 1 : 0);
	if (v.has_primary)
		evbuffer_add_printf(text,
				    "master0:name=%s,status=ok,address=%s:%d,"
				    "slaves=%d,sentinels=1\r\n",
				    c->s->name, v.primary.host, v.primary.port,
				    v.n_replicas);
	len = evbuffer_get_length(text);
	evbuffer_add_printf(client_out(c), "$%zu\r\n", len);
	evbuffer_add_buffer(client_out(c), text);
	evbuffer_add(client_out(c), "\r\n", 2);
	evbuffer_free(text);
}

/* Index of the subscription NAME of the kind IS_PATTERN, or -1. */
static int sub_find(struct client *c, const char *name, size_t len,
		    bool is_pattern)
{
	for (int i = 0; i < c->n_subs; i++)
		if (c->is_pattern[i] == is_pattern &&
		    strlen(c->subs[i]) == len &&
		    memcmp(c->subs[i], name, len) == 0)
			return i;
	return -1;
}

/* Remove subscription I and return its name (caller frees). */
static char *sub_take(struct client *c, int i)
{
	char *name = c->subs[i];

	c->n_subs--;
	c->subs[i] = c->subs[c->n_subs];
	c->is_pattern[i] = c->is_pattern[c->n_subs];
	return name;
}

/* One confirmation: [KIND, NAME, count], NAME NULL for a nil. */
static void reply_sub_ack(struct client *c, const char *kind, const char *name,
			  size_t len)
{
	reply_array(c, 3);
	reply_bulk(c, kind);
	if (name)
		reply_bulk_len(c, name, len);
	else
		reply_nil(c);
	reply_int(c, c->n_subs);
}

static void cmd_subscribe(struct client *c, const struct request *req,
			  bool is_pattern)
{
	const char *kind = is_pattern ? "psubscribe" : "subscribe";

	if (req->argc < 2) {
		reply_wrong_args(c, kind);
		return;
	}
	for (int i = 1; i < req->argc; i++) {
		const char *name = req->argv[i];
		size_t len = req->len[i];

		if (sub_find(c, name, len, is_pattern) < 0) {
			if (c->n_subs == SENTINEL_MAX_SUBS ||
			    memchr(name, '\0', len)) {
				reply_error(c, "ERR could not subscribe: at "
					       "most 64 channels and patterns "
					       "without NUL bytes");
				continue;
			}
			c->subs[c->n_subs] = xstrdup(name);
			c->is_pattern[c->n_subs] = is_pattern;
			c->n_subs++;
		}
		reply_sub_ack(c, kind, name, len);
	}
}

static void unsubscribe_all(struct client *c, bool is_pattern, const char *kind)
{
	bool any = false;
	int i = 0;

	while (i < c->n_subs) {
		char *name;

		if (c->is_pattern[i] != is_pattern) {
			i++;
			continue;
		}
		name = sub_take(c, i);
		reply_sub_ack(c, kind, name, strlen(name));
		free(name);
		any = true;
	}
	if (!any)
		reply_sub_ack(c, kind, NULL, 0);
}

static void cmd_unsubscribe(struct client *c, const struct request *req,
			    bool is_pattern)
{
	const char *kind = is_pattern ? "punsubscribe" : "unsubscribe";

	if (req->argc == 1) {
		unsubscribe_all(c, is_pattern, kind);
		return;
	}
	for (int i = 1; i < req->argc; i++) {
		int at = sub_find(c, req->argv[i], req->len[i], is_pattern);

		if (at >= 0)
			free(sub_take(c, at));
		reply_sub_ack(c, kind, req->argv[i], req->len[i]);
	}
}

/* The unknown-command error, with the first arguments as Redis 7 has it. */
static void reply_unknown(struct client *c, const struct request *req)
{
	char args[256] = "";
	size_t used = 0;

	for (int i = 1; i < req->argc && used < sizeof(args) - 1; i++) {
		int n = snprintf(args + used, sizeof(args) - used, "'%.64s' ",
				 req->argv[i]);

		if (n < 0)
			break;
		used += (size_t)n;
	}
	reply_error(c,
		    "ERR unknown command '%.64s', with args beginning "
		    "with: %s",
		    req->argv[0], args);
}

/* Commands a subscribed client may still send. */
static bool allowed_subscribed(const struct request *req)
{
	return arg_is(req, 0, "subscribe") || arg_is(req, 0, "psubscribe") ||
	       arg_is(req, 0, "unsubscribe") ||
	       arg_is(req, 0, "punsubscribe") || arg_is(req, 0, "ping") ||
	       arg_is(req, 0, "quit");
}

/* Commands that are not about subscriptions. */
static bool dispatch_plain(struct client *c, const struct request *req)
{
	if (arg_is(req, 0, "sentinel"))
		cmd_sentinel(c, req);
	else if (arg_is(req, 0, "client"))
		cmd_client(c, req);
	else if (arg_is(req, 0, "role"))
		cmd_role(c);
	else if (arg_is(req, 0, "info"))
		cmd_info(c);
	else if (arg_is(req, 0, "auth") && req->argc >= 2)
		reply_error(c, "ERR AUTH <password> called without any "
			       "password configured for the default user. "
			       "Are you sure your configuration is correct?");
	else if (arg_is(req, 0, "auth"))
		reply_wrong_args(c, "auth");
	else
		return false;
	return true;
}

/* Answer the request REQ (argc >= 1).  HELLO is unknown: RESP2 only. */
static void dispatch(struct client *c, const struct request *req)
{
	if (c->n_subs > 0 && !allowed_subscribed(req)) {
		reply_error(c,
			    "ERR Can't execute '%.64s': only (P)SUBSCRIBE / "
			    "(P)UNSUBSCRIBE / PING / QUIT are allowed in "
			    "this context",
			    req->argv[0]);
		return;
	}
	if (arg_is(req, 0, "ping")) {
		cmd_ping(c, req);
	} else if (arg_is(req, 0, "quit")) {
		reply_status(c, "OK");
		c->closing = true;
	} else if (arg_is(req, 0, "subscribe")) {
		cmd_subscribe(c, req, false);
	} else if (arg_is(req, 0, "psubscribe")) {
		cmd_subscribe(c, req, true);
	} else if (arg_is(req, 0, "unsubscribe")) {
		cmd_unsubscribe(c, req, false);
	} else if (arg_is(req, 0, "punsubscribe")) {
		cmd_unsubscribe(c, req, true);
	} else if (!dispatch_plain(c, req)) {
		reply_unknown(c, req);
	}
}

/*
 * Read the header line "<type><number>\r\n" at BUF (LEN bytes, BUF[0] is
 * the type) into VALUE.  Returns the line's length, 0 when it is not
 * complete yet, -1 when it is malformed.
 */
static long scan_header(const char *buf, size_t len, long long *value)
{
	size_t i = 1;
	bool negative = false;
	long long n = 0;

	if (i < len && buf[i] == '-') {
		negative = true;
		i++;
	}
	for (; i < len && i < 20; i++) {
		if (buf[i] == '\r')
			break;
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		n = n * 10 + (buf[i] - '0');
		if (n > 1000000000000LL)
			return -1;
	}
	if (i == 20)
		return -1;
	if (i + 1 >= len)
		return 0;
	if (buf[i] != '\r' || buf[i + 1] != '\n' || i == (negative ? 2 : 1))
		return -1;
	*value = negative ? -n : n;
	return (long)(i + 2);
}

/*
 * Find the end of the request array at BUF (LEN bytes, BUF[0] is '*').
 * Returns its length, 0 when it is not complete yet, or -1 with the
 * reason in *WHY when it is malformed or breaks a limit.
 */
static long frame_scan(const char *buf, size_t len, const char **why)
{
	long long n, blen;
	size_t pos;
	long k;

	*why = "invalid multibulk length";
	k = scan_header(buf, len, &n);
	if (k <= 0)
		return k;
	if (n > SENTINEL_MAX_ARGS)
		return -1;
	pos = (size_t)k;
	for (long long i = 0; i < n; i++) {
		if (pos == len)
			return 0;
		*why = "expected '$'";
		if (buf[pos] != '$')
			return -1;
		*why = "invalid bulk length";
		k = scan_header(buf + pos, len - pos, &blen);
		if (k <= 0)
			return k;
		if (blen < 0 || blen > SENTINEL_MAX_INPUT)
			return -1;
		pos += (size_t)k;
		if (len - pos < (size_t)blen + 2)
			return 0;
		pos += (size_t)blen;
		*why = "expected CRLF after a bulk string";
		if (buf[pos] != '\r' || buf[pos + 1] != '\n')
			return -1;
		pos += 2;
	}
	return (long)pos;
}

/* Send "-ERR Protocol error: WHY" and close once it is written. */
static void client_protocol_error(struct client *c, const char *why)
{
	struct sentinel *s = c->s;

	slog_debug(s->name, "sentinel: closing client %" PRIu64 ": %s", c->id,
		   why);
	reply_error(c, "ERR Protocol error: %s", why);
	c->closing = true;
}

/*
 * Let the reader parse the whole request FRAME (LEN bytes, checked by
 * frame_scan()) and answer it.  Returns 0, or -1 after a protocol error.
 */
static int client_run_frame(struct client *c, const char *frame, size_t len)
{
	struct request *req;
	redisReply *reply = NULL;
	void *obj = NULL;

	if (redisReaderFeed(c->reader, frame, len) != REDIS_OK ||
	    redisReaderGetReply(c->reader, &obj) != REDIS_OK || !obj) {
		client_protocol_error(c, "malformed request");
		return -1;
	}
	reply = obj;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
		freeReplyObject(reply);
		return 0; /* "*0" and "*-1" are ignored, as Redis does */
	}
	req = xmalloc(sizeof(*req));
	req->argc = (int)reply->elements;
	for (int i = 0; i < req->argc; i++) {
		req->argv[i] = reply->element[i]->str;
		req->len[i] = reply->element[i]->len;
	}
	dispatch(c, req);
	free(req);
	freeReplyObject(reply);
	return 0;
}

/*
 * Answer the inline command LINE (LEN bytes, no line end): words split on
 * blanks.  An empty line is ignored.  Returns 0 or -1.
 */
static int client_run_inline(struct client *c, char *line, size_t len)
{
	struct request *req = xmalloc(sizeof(*req));
	char *p = line, *end = line + len;

	req->argc = 0;
	while (p < end) {
		char *word;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end)
			break;
		if (req->argc == SENTINEL_MAX_ARGS) {
			free(req);
			client_protocol_error(c, "too many arguments");
			return -1;
		}
		word = p;
		while (p < end && *p != ' ' && *p != '\t')
			p++;
		*p++ = '\0';
		req->argv[req->argc] = word;
		req->len[req->argc++] = strlen(word);
	}
	if (req->argc > 0)
		dispatch(c, req);
	free(req);
	return 0;
}

/* Take one inline line from INPUT.  Returns 1 when one was run, else 0. */
static int client_next_inline(struct client *c, struct evbuffer *input)
{
	size_t len;
	char *line;
	int rc;

	line = evbuffer_readln(input, &len, EVBUFFER_EOL_CRLF);
	if (!line) {
		if (evbuffer_get_length(input) > SENTINEL_MAX_INPUT)
			client_protocol_error(c, "too big inline request");
		return 0;
	}
	if (len > SENTINEL_MAX_INPUT) {
		free(line);
		client_protocol_error(c, "too big inline request");
		return 0;
	}
	rc = client_run_inline(c, line, len);
	free(line);
	return rc == 0 ? 1 : 0;
}

/*
 * Run the next whole request waiting in the client's input.  Returns 1
 * when one was run, 0 when more input is needed or the client is closing.
 */
static int client_next_request(struct client *c)
{
	struct evbuffer *input = bufferevent_get_input(c->bev);
	size_t avail = evbuffer_get_length(input);
	size_t scan = avail < SENTINEL_MAX_INPUT ? avail : SENTINEL_MAX_INPUT;
	const char *buf, *why;
	long n;

	if (avail == 0)
		return 0;
	buf = (const char *)evbuffer_pullup(input, 1);
	if (buf[0] != '*')
		return client_next_inline(c, input);
	buf = (const char *)evbuffer_pullup(input, (ssize_t)scan);
	n = frame_scan(buf, scan, &why);
	if (n == 0 && avail >= SENTINEL_MAX_INPUT) {
		why = "too big request";
		n = -1;
	}
	if (n < 0)
		client_protocol_error(c, why);
	if (n <= 0)
		return 0;
	if (client_run_frame(c, buf, (size_t)n) < 0)
		return 0;
	evbuffer_drain(input, (size_t)n);
	return 1;
}

static void client_unlink(struct client *c)
{
	struct sentinel *s = c->s;

	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

static void client_free(struct client *c)
{
	client_unlink(c);
	c->s->n_clients--;
	bufferevent_free(c->bev);
	if (c->reader)
		redisReaderFree(c->reader);
	for (int i = 0; i < c->n_subs; i++)
		free(c->subs[i]);
	free(c->name);
	free(c);
}

/*
 * After new output: drop a client whose output is over the limit, and
 * free a closing one whose output has drained.  Returns true when C was
 * freed.
 */
static bool client_settle(struct client *c)
{
	size_t pending = evbuffer_get_length(client_out(c));

	if (pending > SENTINEL_MAX_OUTPUT) {
		slog_warning(c->s->name,
			     "sentinel: dropping client %" PRIu64
			     ": %zu bytes of output not read",
			     c->id, pending);
		client_free(c);
		return true;
	}
	if (c->closing) {
		bufferevent_disable(c->bev, EV_READ);
		if (pending == 0) {
			client_free(c);
			return true;
		}
	}
	return false;
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	while (!c->closing && client_next_request(c))
		;
	client_settle(c);
}

/* The output drained: a closing client is done. */
static void client_write_cb(struct bufferevent *bev, void *arg)
{
	client_settle(arg);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		client_free(arg);
}

static void sentinel_accept_cb(struct evconnlistener *listener,
			       evutil_socket_t fd, struct sockaddr *addr,
			       int addrlen, void *arg)
{
	struct sentinel *s = arg;
	struct client *c;

	if (s->n_clients >= SENTINEL_MAX_CLIENTS) {
		slog_warning(s->name,
			     "sentinel: %d clients already; closing a new one",
			     s->n_clients);
		evutil_closesocket(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->s = s;
	c->id = ++s->next_id;
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->reader = redisReaderCreate();
	if (!c->bev || !c->reader) {
		slog_warning(s->name, "sentinel: could not set up a client");
		if (c->bev)
			bufferevent_free(c->bev);
		else
			evutil_closesocket(fd);
		if (c->reader)
			redisReaderFree(c->reader);
		free(c);
		return;
	}
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	s->n_clients++;
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb,
			  client_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/*
 * accept() failed, most likely for want of file descriptors: pause the
 * listener for a while rather than spin on the same error.
 */
static void sentinel_accept_error_cb(struct evconnlistener *listener, void *arg)
{
	struct sentinel *s = arg;
	struct timeval tv = {.tv_sec = 0, .tv_usec = 100 * 1000};

	slog_warning(s->name, "sentinel: could not accept a connection: %s",
		     evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	evconnlistener_disable(listener);
	evtimer_add(s->accept_retry, &tv);
}

static void sentinel_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sentinel *s = arg;

	evconnlistener_enable(s->listener);
}

/* Deliver one published TEXT on SWITCH_CHANNEL to C. */
static void client_publish(struct client *c, const char *text)
{
	for (int i = 0; i < c->n_subs; i++) {
		if (!c->is_pattern[i]) {
			if (strcmp(c->subs[i], SWITCH_CHANNEL) != 0)
				continue;
			reply_array(c, 3);
			reply_bulk(c, "message");
		} else {
			if (fnmatch(c->subs[i], SWITCH_CHANNEL, 0) != 0)
				continue;
			reply_array(c, 4);
			reply_bulk(c, "pmessage");
			reply_bulk(c, c->subs[i]);
		}
		reply_bulk(c, SWITCH_CHANNEL);
		reply_bulk(c, text);
	}
}

/* Loop thread: publish the queued switch messages to every subscriber. */
static void sentinel_wakeup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sentinel *s = arg;
	char *queued[SENTINEL_MAX_QUEUED];
	struct client *c, *next;
	int n;

	pthread_mutex_lock(&s->lock);
	n = s->n_queued;
	memcpy(queued, s->queued, sizeof(queued[0]) * (size_t)n);
	s->n_queued = 0;
	pthread_mutex_unlock(&s->lock);

	for (int i = 0; i < n; i++) {
		slog_info(s->name, "sentinel: publishing %s %s", SWITCH_CHANNEL,
			  queued[i]);
		for (c = s->clients; c; c = next) {
			next = c->next;
			client_publish(c, queued[i]);
			client_settle(c);
		}
		free(queued[i]);
	}
}

struct sentinel *sentinel_new(struct event_base *base, const char *name,
			      const char *host, int port, char *err,
			      size_t errlen)
{
	struct sentinel *s;
	struct sockaddr_in sin;
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
			 LEV_OPT_CLOSE_ON_EXEC;

	if (ipv4_sockaddr(host, port, &sin) < 0) {
		snprintf(err, errlen, "invalid sentinel address \"%s:%d\"",
			 host, port);
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->name = xstrdup(name);
	pthread_mutex_init(&s->lock, NULL);
	s->listener =
		evconnlistener_new_bind(base, sentinel_accept_cb, s, flags, -1,
					(struct sockaddr *)&sin, sizeof(sin));
	if (!s->listener) {
		snprintf(err, errlen, "could not listen on %s:%d: %s", host,
			 port, strerror(errno));
		sentinel_free(s);
		return NULL;
	}
	evconnlistener_set_error_cb(s->listener, sentinel_accept_error_cb);
	s->wakeup = event_new(base, -1, 0, sentinel_wakeup_cb, s);
	s->accept_retry = evtimer_new(base, sentinel_accept_retry_cb, s);
	if (!s->wakeup || !s->accept_retry) {
		snprintf(err, errlen, "could not create events for \"%s\"",
			 name);
		sentinel_free(s);
		return NULL;
	}
	slog_info(name, "sentinel: listening on %s:%d", host, port);
	return s;
}

void sentinel_free(struct sentinel *s)
{
	if (!s)
		return;
	if (s->listener)
		evconnlistener_free(s->listener);
	if (s->wakeup)
		event_free(s->wakeup);
	if (s->accept_retry)
		event_free(s->accept_retry);
	while (s->clients)
		client_free(s->clients);
	for (int i = 0; i < s->n_queued; i++)
		free(s->queued[i]);
	pthread_mutex_destroy(&s->lock);
	free(s->name);
	free(s);
}

static bool addr_equal(const struct sentinel_addr *a,
		       const struct sentinel_addr *b)
{
	return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* Copy SRC into DST with the host always terminated. */
static void addr_copy(struct sentinel_addr *dst,
		      const struct sentinel_addr *src)
{
	snprintf(dst->host, sizeof(dst->host), "%.*s",
		 (int)strnlen(src->host, sizeof(src->host)), src->host);
	dst->port = src->port;
}

/*
 * Queue "+switch-master" for a move from s->last to PRIMARY.  Call with
 * s->lock held.  A full queue drops its oldest message.
 */
static void queue_switch(struct sentinel *s, const struct sentinel_addr *to)
{
	char *text = xasprintf("%s %s %d %s %d", s->name, s->last.host,
			       s->last.port, to->host, to->port);

	if (s->n_queued == SENTINEL_MAX_QUEUED) {
		free(s->queued[0]);
		memmove(s->queued, s->queued + 1,
			sizeof(s->queued[0]) * (SENTINEL_MAX_QUEUED - 1));
		s->n_queued--;
	}
	s->queued[s->n_queued++] = text;
	s->view.epoch++;
}

void sentinel_update(struct sentinel *s, const struct sentinel_addr *primary,
		     const struct sentinel_addr *replicas, int n_replicas)
{
	struct sentinel_addr to;
	bool wake = false;

	if (n_replicas < 0 || !replicas)
		n_replicas = 0;
	if (n_replicas > SENTINEL_MAX_REPLICAS)
		n_replicas = SENTINEL_MAX_REPLICAS;
	pthread_mutex_lock(&s->lock);
	s->view.has_primary = primary != NULL;
	if (primary) {
		addr_copy(&to, primary);
		if (s->known && !addr_equal(&s->last, &to)) {
			queue_switch(s, &to);
			wake = true;
		}
		s->view.primary = to;
		s->last = to;
		s->known = true;
	}
	for (int i = 0; i < n_replicas; i++)
		addr_copy(&s->view.replicas[i], &replicas[i]);
	s->view.n_replicas = n_replicas;
	pthread_mutex_unlock(&s->lock);
	if (wake)
		event_active(s->wakeup, EV_READ, 0);
}
