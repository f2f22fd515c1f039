/*
 * redis.c: the Redis 7 adapter.
 *
 * A node is one redis-server, daemonized, with everything in its node
 * directory: redis.conf (written by rotator, mode 0600, owned by run_as),
 * redis.pid, redis.log and the RDB file dump.rdb.  It listens on
 * 127.0.0.1 only.  The default user is off; rotator, the clients and the
 * replicas use the ACL user auth.user, whose password the configuration
 * holds only as a SHA-256 hash.  masterauth, which a replica needs in
 * clear, is in the same 0600 file; no password is ever in argv.
 *
 * A snapshot is an RDB file fetched over the replication protocol, as a
 * replica gets it (PSYNC ? -1, then the $LEN or $EOF:MARK payload).  It
 * carries the primary's replication id and offset, so that a node seeded
 * from it can continue with a partial resynchronisation while the
 * primary's backlog still covers that offset.
 *
 * The switch: the old primary's writes are paused (CLIENT PAUSE WRITE)
 * until the switch deadline; its replication offset is the fence point.
 * To promote, the old primary first becomes a replica of the fresh node,
 * then the fresh node stops replicating: at no moment are two nodes
 * masters.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "adapters/adapter.h"
#include "adapters/rdb.h"
#include "rotator/cluster.h"
#include "rotator/log.h"
#include "rotator/provisioner.h"
#include "snapshots/copy.h"

#define RD_CONNECT_MS 2000
#define RD_QUERY_MS 10000
#define RD_POLL_MS 1000	   /* bound of each catch-up question */
#define RD_START_MS 300000 /* a node loading a large RDB */
#define RD_SNAPSHOT_MS (10 * 60 * 1000)
#define RD_IDLE_MS 60000 /* silence allowed during a transfer */
#define RD_TOOL_MS (10 * 60 * 1000)
#define RD_STOP_STEP_MS 10000
/*
 * The fence's write pause outlasts the switch deadline by this much, so
 * that the promotion always finds the old primary still paused and can
 * demote it, or kill it when it does not answer, before it could take
 * a write again.
 */
#define RD_PAUSE_MARGIN_MS 2000
#define RD_VALUE_LEN 256
#define RDB_FILE "dump.rdb"
#define COPY_CHUNK (1 << 20)
#define EOF_MARK_LEN 40
#define MAX_CANARY_ARGS 64

/* Paths of one node, each a new string. */
static char *conf_path(const struct node *n)
{
	return xasprintf("%s/redis.conf", n->dir);
}

static char *pid_path(const struct node *n)
{
	return xasprintf("%s/redis.pid", n->dir);
}

/* The account to reach N with: borrowed, or read from a file. */
struct creds {
	const char *user;
	char *password;
	bool owned;
};

/*
 * An adopted node may be reached with connection.user and
 * connection.password_file; every other node with auth.user.  Returns 0,
 * or -1 after writing ERR.  Release with creds_release().
 */
static int creds_for(struct cluster *cl, const struct node *n, struct creds *cr,
		     char *err, size_t errlen)
{
	*cr = (struct creds){cl->cfg->auth_user, cl->password, false};
	if (!n->adopted || !cl->cfg->adopt_password_file)
		return 0;
	cr->password =
		read_secret_file(cl->cfg->adopt_password_file, err, errlen);
	if (!cr->password)
		return -1;
	cr->owned = true;
	cr->user = cl->cfg->adopt_user ? cl->cfg->adopt_user : "default";
	return 0;
}

static void creds_release(struct creds *cr)
{
	if (cr->owned) {
		explicit_bzero(cr->password, strlen(cr->password));
		free(cr->password);
	}
	cr->password = NULL;
}

static struct timeval tv_ms(int64_t ms)
{
	if (ms < 100)
		ms = 100;
	return (struct timeval){.tv_sec = ms / 1000,
				.tv_usec = (ms % 1000) * 1000};
}

/* Why the last call on C failed, in words. */
static const char *ctx_error(const redisContext *c)
{
	if (!c->errstr[0])
		return "connection lost";
	if (strstr(c->errstr, "temporarily unavailable"))
		return "timed out";
	return c->errstr;
}

/*
 * Run one command on C.  Returns the reply (caller frees with
 * freeReplyObject()), or NULL after writing ERR, for an error reply too.
 * After an I/O error or a time-out C is unusable.
 */
static redisReply *rd_command(redisContext *c, char *err, size_t errlen,
			      const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (!r) {
		snprintf(err, errlen, "%s failed: %s", fmt, ctx_error(c));
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		/* The command's name only: its arguments may be secret. */
		snprintf(err, errlen, "%.*s failed: %s", (int)strcspn(fmt, " "),
			 fmt, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* rd_command() for a reply that is only checked, then freed. */
static int rd_ok(redisContext *c, char *err, size_t errlen, const char *fmt,
		 ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "%.*s failed: %s", (int)strcspn(fmt, " "),
			 fmt, r ? r->str : (ctx_error(c)));
		freeReplyObject(r);
		return -1;
	}
	freeReplyObject(r);
	return 0;
}

/*
 * Connect to HOST:PORT and authenticate as CR, every call on the
 * connection bounded by TIMEOUT_MS.  Returns a context (caller frees it
 * with redisFree()) or NULL after writing ERR.
 */
static redisContext *rd_connect_to(const char *host, int port,
				   const struct creds *cr, int64_t timeout_ms,
				   char *err, size_t errlen)
{
	int64_t connect_ms =
		timeout_ms < RD_CONNECT_MS ? timeout_ms : RD_CONNECT_MS;
	redisContext *c =
		redisConnectWithTimeout(host, port, tv_ms(connect_ms));
	redisReply *r;

	if (!c || c->err) {
		snprintf(err, errlen, "could not connect to %s:%d: %s", host,
			 port, c ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	if (redisSetTimeout(c, tv_ms(timeout_ms)) != REDIS_OK) {
		snprintf(err, errlen, "could not set a time-out on %s:%d", host,
			 port);
		redisFree(c);
		return NULL;
	}
	r = redisCommand(c, "AUTH %s %s", cr->user, cr->password);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen,
			 "could not authenticate to %s:%d as "
			 "\"%s\": %s",
			 host, port, cr->user, r ? r->str : ctx_error(c));
		freeReplyObject(r);
		redisFree(c);
		return NULL;
	}
	freeReplyObject(r);
	return c;
}

static redisContext *rd_connect(struct cluster *cl, const struct node *n,
				int64_t timeout_ms, char *err, size_t errlen)
{
	struct creds cr;
	redisContext *c;

	if (creds_for(cl, n, &cr, err, errlen) == -1)
		return NULL;
	c = rd_connect_to(n->host, n->port, &cr, timeout_ms, err, errlen);
	creds_release(&cr);
	return c;
}

/* Time left until DEADLINE, at least 100 ms. */
static int64_t left_ms(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	return left < 100 ? 100 : left;
}

/*
 * The value of FIELD in INFO output TEXT into BUF ("" when absent).
 * Returns true when it was there.
 */
static bool info_field(const char *text, const char *field, char *buf,
		       size_t len)
{
	size_t flen = strlen(field);
	const char *p = text;

	buf[0] = '\0';
	while (p && *p) {
		if (strncmp(p, field, flen) == 0 && p[flen] == ':') {
			p += flen + 1;
			snprintf(buf, len, "%.*s", (int)strcspn(p, "\r\n"), p);
			return true;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

/* INFO SECTION on C as a new string, or NULL after writing ERR. */
static char *rd_info(redisContext *c, const char *section, char *err,
		     size_t errlen)
{
	redisReply *r = rd_command(c, err, errlen, "INFO %s", section);
	char *text = NULL;

	if (r && r->type == REDIS_REPLY_STRING)
		text = xstrdup(r->str);
	else if (r)
		snprintf(err, errlen, "INFO returned no text");
	freeReplyObject(r);
	return text;
}

static int64_t info_int(const char *text, const char *field)
{
	char v[RD_VALUE_LEN];

	if (!info_field(text, field, v, sizeof(v)) || !v[0])
		return -1;
	return strtoll(v, NULL, 10);
}

/*
 * ROLE of C: "master", or "slave" with the replica's processed offset in
 * *OFFSET (-1 while it has no link).  Returns 0 or -1 after writing ERR.
 */
static int rd_role(redisContext *c, char *role, size_t len, int64_t *offset,
		   char *err, size_t errlen)
{
	redisReply *r = rd_command(c, err, errlen, "ROLE");
	int rc = -1;

	*offset = -1;
	if (!r)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING) {
		snprintf(err, errlen, "ROLE gave an unexpected reply");
		goto out;
	}
	snprintf(role, len, "%s", r->element[0]->str);
	if (strcmp(role, "master") == 0)
		*offset = r->elements > 1 && r->element[1]->type ==
						     REDIS_REPLY_INTEGER
				  ? r->element[1]->integer
				  : -1;
	else if (r->elements > 4 && r->element[4]->type == REDIS_REPLY_INTEGER)
		*offset = r->element[4]->integer;
	rc = 0;
out:
	freeReplyObject(r);
	return rc;
}

/*
 * VALUE as one argument of a configuration line: in double quotes, with
 * backslash, quote and anything unprintable escaped.  A new string.
 */
static char *quote_arg(const char *value)
{
	char *out = xmalloc(4 * strlen(value) + 3), *o = out;

	*o++ = '"';
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (*p == '"' || *p == '\\') {
			*o++ = '\\';
			*o++ = (char)*p;
		} else if (*p < 0x20 || *p >= 0x7f) {
			o += sprintf(o, "\\x%02x", *p);
		} else {
			*o++ = (char)*p;
		}
	}
	*o++ = '"';
	*o = '\0';
	return out;
}

/* Append a formatted line to the growing string *TEXT. */
static void append(char **text, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void append(char **text, const char *fmt, ...)
{
	char *line, *next;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) == -1)
		abort();
	va_end(ap);
	next = xasprintf("%s%s", *text, line);
	free(line);
	free(*text);
	*text = next;
}

/*
 * The lines that give the ACL user and the replication credentials.
 * The user's password is given as its SHA-256; masterauth, for the
 * replica side, has to be in clear.
 */
static void append_auth(char **text, struct cluster *cl,
			const struct creds *upstream)
{
	char sha[SHA256_HEX_LEN + 1];
	char *user = quote_arg(cl->cfg->auth_user);
	char *muser = quote_arg(upstream->user);
	char *mpass = quote_arg(upstream->password);

	sha256_hex(cl->password, strlen(cl->password), sha);
	append(text, "user default off\n");
	append(text, "user %s reset on #%s ~* &* +@all\n", user, sha);
	append(text, "masteruser %s\nmasterauth %s\n", muser, mpass);
	explicit_bzero(mpass, strlen(mpass));
	free(mpass);
	free(muser);
	free(user);
}

/*
 * Write N's redis.conf: rotator's tunable defaults, then the
 * server_settings, then what rotator needs (later lines win), and, for a
 * replica, whom it follows.
 */
static int write_node_conf(struct cluster *cl, const struct node *n,
			   const struct node *upstream, char *err,
			   size_t errlen)
{
	char *path = conf_path(n), *text = xstrdup("");
	struct creds cr;
	int rc = -1;

	if (creds_for(cl, upstream ? upstream : n, &cr, err, errlen) == -1)
		goto out;
	append(&text, "# written by rotator for node %s/%d; do not edit\n",
	       cl->cfg->name, n->generation);
	/*
	 * A full sync writes the RDB to disk and streams it, rather than
	 * diskless: after a diskless sync the primary holds the replica's
	 * command stream back until the replica's first REPLCONF ACK, sent
	 * once a second, and an ACK that arrives before the primary has
	 * seen its sync child end is not counted.  The replica then looks
	 * level for up to a second while it receives nothing, and a switch
	 * in that second waits for it with writes paused.
	 */
	append(&text, "repl-diskless-sync no\n");
	append(&text, "repl-diskless-sync-delay 0\n");
	for (int i = 0; i < cl->cfg->n_settings; i++) {
		char *value = quote_arg(cl->cfg->settings[i].value);

		append(&text, "%s %s\n", cl->cfg->settings[i].name, value);
		free(value);
	}
	append(&text,
	       "port %d\nbind 127.0.0.1\nprotected-mode yes\n"
	       "daemonize yes\npidfile \"%s/redis.pid\"\n"
	       "logfile \"%s/redis.log\"\ndir \"%s\"\n"
	       "dbfilename " RDB_FILE "\nrdbchecksum yes\n"
	       "replica-serve-stale-data no\nreplica-read-only yes\n",
	       n->port, n->dir, n->dir, n->dir);
	append_auth(&text, cl, &cr);
	creds_release(&cr);
	if (upstream)
		append(&text, "replicaof %s %d\n", upstream->host,
		       upstream->port);
	rc = prov_write_file(cl, path, text, strlen(text), err, errlen);
out:
	explicit_bzero(text, strlen(text));
	free(text);
	free(path);
	return rc;
}

/* The pid in N's pidfile, or 0. */
static pid_t node_pid(const struct node *n)
{
	char *path;
	pid_t pid;

	if (!n->dir)
		return 0;
	path = pid_path(n);
	pid = prov_read_pid(path);
	free(path);
	return pid;
}

/*
 * Wait until N answers ROLE (it has loaded its data) or DEADLINE passes
 * or its process is gone.  Returns 0 or -1 after writing ERR.
 */
static int wait_ready(struct cluster *cl, const struct node *n,
		      int64_t deadline, char *err, size_t errlen)
{
	char role[32];
	int64_t offset;
	int64_t started = now_ms();

	for (;;) {
		redisContext *c = rd_connect(cl, n, 1000, err, errlen);
		int rc =
			c ? rd_role(c, role, sizeof(role), &offset, err, errlen)
			  : -1;

		redisFree(c);
		if (rc == 0)
			return 0;
		if (now_ms() - started > 1000 && !prov_pid_alive(node_pid(n))) {
			snprintf(err, errlen,
				 "redis-server of %s/%d exited; see \"%s/"
				 "redis.log\"",
				 cl->cfg->name, n->generation, n->dir);
			return -1;
		}
		if (now_ms() > deadline)
			return -1;
		sleep_ms(10);
	}
}

/*
 * Start N from its redis.conf.  With READY, wait until it answers (it has
 * loaded its data); without, only until its pidfile names a live
 * process: a fresh replica's loading is part of its catching up, which
 * has its own deadline.
 */
static int rd_start(struct cluster *cl, const struct node *n, bool ready,
		    char *err, size_t errlen)
{
	char *conf = conf_path(n);
	const char *argv[] = {conf, NULL};
	int64_t deadline = now_ms() + RD_CONNECT_MS * 5;
	int rc;

	rc = prov_run(cl, "redis-server", argv, NULL, NULL, 60000, err, errlen);
	free(conf);
	if (rc == -1)
		return -1;
	if (ready)
		return wait_ready(cl, n, now_ms() + RD_START_MS, err, errlen);
	while (!prov_pid_alive(node_pid(n))) {
		if (now_ms() > deadline) {
			snprintf(err, errlen,
				 "redis-server of %s/%d did not start; see "
				 "\"%s/redis.log\"",
				 cl->cfg->name, n->generation, n->dir);
			return -1;
		}
		sleep_ms(2);
	}
	return 0;
}

static int rd_bootstrap(struct cluster *cl, struct node *n, char *err,
			size_t errlen)
{
	if (write_node_conf(cl, n, NULL, err, errlen) == -1)
		return -1;
	return rd_start(cl, n, true, err, errlen);
}

/*
 * Take over the running Redis 7 master at N's host and port.  It must be
 * on this host, answer as a master to the credentials, and be version 7.
 * N keeps no directory: rotator never removes the adopted server's files.
 */
static int rd_adopt(struct cluster *cl, struct node *n, char *err,
		    size_t errlen)
{
	char role[32], ver[RD_VALUE_LEN];
	redisContext *c;
	int64_t offset;
	char *text;
	int rc = -1;

	if (strcmp(n->host, "127.0.0.1") && strcmp(n->host, "localhost")) {
		snprintf(err, errlen,
			 "cannot adopt %s: the server must run on this host",
			 n->host);
		return -1;
	}
	c = rd_connect(cl, n, RD_QUERY_MS, err, errlen);
	if (!c)
		return -1;
	if (rd_role(c, role, sizeof(role), &offset, err, errlen) == -1)
		goto out;
	if (strcmp(role, "master") != 0) {
		snprintf(err, errlen, "%s:%d is a %s, not a master", n->host,
			 n->port, role);
		goto out;
	}
	text = rd_info(c, "server", err, errlen);
	if (!text)
		goto out;
	info_field(text, "redis_version", ver, sizeof(ver));
	free(text);
	if (strncmp(ver, "7.", 2) != 0) {
		snprintf(err, errlen, "server version %s is not 7", ver);
		goto out;
	}

	/*
	 * Adopted with an account of its own: give it auth.user too, so
	 * that clients can use the account that every later node has from
	 * the start.  In memory only (no ACL SAVE): the adopted server
	 * goes at its first rotation.
	 */
	if (cl->cfg->adopt_user &&
	    strcmp(cl->cfg->adopt_user, cl->cfg->auth_user) != 0 &&
	    rd_ok(c, err, errlen, "ACL SETUSER %s on >%s ~* &* +@all",
		  cl->cfg->auth_user, cl->password) == -1) {
		/* The server's answer may quote the password: not kept. */
		snprintf(err, errlen,
			 "could not add user \"%s\" to the adopted server "
			 "(ACL SETUSER failed)",
			 cl->cfg->auth_user);
		goto out;
	}
	free(n->dir);
	n->dir = NULL;
	rc = 0;
out:
	redisFree(c);
	return rc;
}

/*
 * Stop N for good: SHUTDOWN NOSAVE over a connection, then SIGTERM and
 * SIGKILL to the pid (each with SIGCONT, for a stopped process), waiting
 * RD_STOP_STEP_MS after each.  An adopted node's pid comes from its own
 * "pidfile" setting.
 */
static int rd_stop(struct cluster *cl, struct node *n, char *err, size_t errlen)
{
	static const int sigs[] = {0, SIGTERM, SIGKILL};
	pid_t pid = node_pid(n);
	bool shut;
	redisContext *c =
		n->port > 0 ? rd_connect(cl, n, 2000, err, errlen) : NULL;

	if (c && n->adopted) {
		redisReply *r =
			rd_command(c, err, errlen, "CONFIG GET pidfile");
		char *text;

		if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		    r->element[1]->str &&
		    (text = read_file(r->element[1]->str, NULL)) != NULL) {
			pid = (pid_t)atol(text);
			free(text);
		}
		freeReplyObject(r);
	}
	if (c)
		freeReplyObject(redisCommand(c, "SHUTDOWN NOSAVE"));
	shut = c != NULL;
	redisFree(c);
	if (pid <= 0 && n->port <= 0)
		return 0;
	if (pid <= 0) {
		/* No pid: gone when the port no longer answers. */
		int64_t deadline = now_ms() + RD_STOP_STEP_MS;

		while ((c = rd_connect(cl, n, 500, err, errlen)) != NULL) {
			redisFree(c);
			if (now_ms() > deadline) {
				snprintf(err, errlen, "node %s:%d did not stop",
					 n->host, n->port);
				return -1;
			}
			sleep_ms(10);
		}
		return 0;
	}
	for (size_t i = shut ? 0 : 1; i < sizeof(sigs) / sizeof(*sigs); i++) {
		if (sigs[i]) {
			log_warning("redis-server %d of %s/%d: sending "
				    "signal %d",
				    (int)pid, cl->cfg->name, n->generation,
				    sigs[i]);
			kill(pid, SIGCONT);
			if (kill(pid, sigs[i]) == -1 && errno == ESRCH)
				return 0;
		}
		if (prov_wait_gone(pid, now_ms() + RD_STOP_STEP_MS))
			return 0;
	}
	snprintf(err, errlen, "could not stop redis-server %d", (int)pid);
	return -1;
}

static bool rd_running(struct cluster *cl, struct node *n)
{
	char err[256];
	redisContext *c;

	if (!n->adopted) {
		pid_t pid = node_pid(n);

		return pid == -1 || prov_pid_alive(pid);
	}
	c = rd_connect(cl, n, RD_QUERY_MS, err, sizeof(err));
	redisFree(c);
	return c != NULL;
}

static int rd_ensure_running(struct cluster *cl, struct node *n, char *err,
			     size_t errlen)
{
	redisContext *c;

	if (n->adopted) {
		c = rd_connect(cl, n, RD_QUERY_MS, err, errlen);
		redisFree(c);
		return c ? 0 : -1;
	}
	if (prov_pid_alive(node_pid(n)))
		return wait_ready(cl, n, now_ms() + RD_START_MS, err, errlen);
	return rd_start(cl, n, true, err, errlen);
}

/*
 * Read one line (up to "\r\n") from FD into BUF, skipping the bare "\n"
 * a master sends to keep a waiting replica's link alive.  Byte by byte,
 * so that nothing after the line is consumed.  Returns 0 or -1.
 */
static int read_line(int fd, char *buf, size_t len, int64_t deadline, char *err,
		     size_t errlen)
{
	size_t used = 0;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - now_ms();
		char ch;
		ssize_t n;

		if (left <= 0 ||
		    poll(&pfd, 1,
			 (int)(left > RD_IDLE_MS ? RD_IDLE_MS : left)) == 0) {
			snprintf(err, errlen,
				 "the primary sent nothing in "
				 "time");
			return -1;
		}
		n = read(fd, &ch, 1);
		if (n <= 0) {
			if (n == -1 && (errno == EINTR || errno == EAGAIN))
				continue;
			snprintf(err, errlen, "the primary closed the link");
			return -1;
		}
		if (ch == '\n' && used == 0)
			continue;
		if (ch == '\n') {
			buf[used > 0 && buf[used - 1] == '\r' ? used - 1 : used] =
				'\0';
			return 0;
		}
		if (used + 1 >= len) {
			snprintf(err, errlen, "the primary sent a long line");
			return -1;
		}
		buf[used++] = ch;
	}
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read at most LEN bytes from FD, waiting at most until DEADLINE. */
static ssize_t read_some(int fd, char *buf, size_t len, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - now_ms();
		int rc;
		ssize_t n;

		if (left <= 0)
			return -2;
		rc = poll(&pfd, 1,
			  (int)(left > RD_IDLE_MS ? RD_IDLE_MS : left));
		if (rc == 0)
			return -2;
		if (rc == -1 && errno == EINTR)
			continue;
		n = read(fd, buf, len);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		return n;
	}
}

/*
 * The payload after +FULLRESYNC: "$LEN" and LEN bytes, or
 * "$EOF:MARK" and bytes up to the 40-byte MARK.  Written to OUT.
 * Returns 0 or -1 after writing ERR.
 */
static int receive_rdb(int fd, int out, int64_t deadline, char *err,
		       size_t errlen)
{
	char line[128], mark[EOF_MARK_LEN];
	char *buf = xmalloc(COPY_CHUNK + EOF_MARK_LEN);
	bool eof_form;
	uint64_t want = 0, got = 0;
	size_t held = 0; /* bytes kept back: they may be the mark */
	int rc = -1;

	if (read_line(fd, line, sizeof(line), deadline, err, errlen) == -1)
		goto out;
	eof_form = strncmp(line, "$EOF:", 5) == 0;
	if (eof_form && strlen(line) == 5 + EOF_MARK_LEN) {
		memcpy(mark, line + 5, EOF_MARK_LEN);
	} else if (line[0] == '$' && !eof_form) {
		want = strtoull(line + 1, NULL, 10);
	} else {
		snprintf(err, errlen, "the primary sent \"%.40s\", not an RDB",
			 line);
		goto out;
	}
	for (;;) {
		size_t room = COPY_CHUNK;
		ssize_t n;

		if (!eof_form && got == want)
			break;
		if (!eof_form && want - got < room)
			room = (size_t)(want - got);
		n = read_some(fd, buf + held, room, deadline);
		if (n <= 0) {
			snprintf(err, errlen,
				 "the transfer stopped after %" PRIu64
				 " bytes: %s",
				 got,
				 n == -2 ? "timed out" : "the link closed");
			goto out;
		}
		got += (uint64_t)n;
		held += (size_t)n;
		if (eof_form && held >= EOF_MARK_LEN &&
		    memcmp(buf + held - EOF_MARK_LEN, mark, EOF_MARK_LEN) ==
			    0) {
			held -= EOF_MARK_LEN;
			break;
		}
		if (eof_form && held > EOF_MARK_LEN) {
			if (write_all(out, buf, held - EOF_MARK_LEN) == -1)
				goto io_error;
			memmove(buf, buf + held - EOF_MARK_LEN, EOF_MARK_LEN);
			held = EOF_MARK_LEN;
		} else if (!eof_form) {
			if (write_all(out, buf, held) == -1)
				goto io_error;
			held = 0;
		}
	}
	if (write_all(out, buf, held) == -1 || fsync(out) == -1)
		goto io_error;
	rc = 0;
	goto out;
io_error:
	snprintf(err, errlen, "could not write the RDB file: %s",
		 strerror(errno));
out:
	free(buf);
	return rc;
}

/*
 * Fetch an RDB from PRIMARY as a replica would, into PATH (owned by
 * run_as), and the replication id and offset of +FULLRESYNC:
 *
 * 1. connect and authenticate (hiredis, every call bounded);
 * 2. REPLCONF capa eof capa psync2: a diskless payload is welcome;
 * 3. PSYNC ? -1 on the raw socket: nothing is buffered in hiredis then;
 * 4. read +FULLRESYNC REPLID OFFSET, then the payload.
 */
static int fetch_rdb(struct cluster *cl, struct node *primary, const char *path,
		     char *replid, int64_t *offset, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + RD_SNAPSHOT_MS;
	redisContext *c = rd_connect(cl, primary, RD_QUERY_MS, err, errlen);
	static const char psync[] = "PSYNC ? -1\r\n";
	char line[256];
	uid_t uid;
	gid_t gid;
	int out = -1, rc = -1;

	/* Steps 1 and 2. */
	if (!c || rd_ok(c, err, errlen, "REPLCONF capa eof capa psync2") == -1)
		goto out;

	/* Step 3. */
	if (write_all(c->fd, psync, sizeof(psync) - 1) == -1) {
		snprintf(err, errlen, "could not send PSYNC: %s",
			 strerror(errno));
		goto out;
	}

	/* Step 4. */
	if (read_line(c->fd, line, sizeof(line), deadline, err, errlen) == -1)
		goto out;
	if (sscanf(line, "+FULLRESYNC %40s %" SCNd64, replid, offset) != 2) {
		snprintf(err, errlen, "PSYNC got \"%.80s\", not +FULLRESYNC",
			 line);
		goto out;
	}
	if (prov_owner(cl, &uid, &gid, err, errlen) == -1)
		goto out;
	out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out == -1 || fchown(out, uid, gid) == -1) {
		snprintf(err, errlen, "could not create \"%s\": %s", path,
			 strerror(errno));
		goto out;
	}
	rc = receive_rdb(c->fd, out, deadline, err, errlen);
out:
	if (out != -1)
		close(out);
	redisFree(c);
	return rc;
}

/*
 * The version a program prints for --version: the "v=7.0.15" word of
 * redis-server, the last word of redis-check-rdb.  Into VER.
 */
static int tool_version(struct cluster *cl, const char *program, char *ver,
			size_t len, char *err, size_t errlen)
{
	char tmpl[] = "/tmp/rotator-version-XXXXXX";
	const char *argv[] = {"--version", NULL};
	char *text = NULL, *p;
	int fd = mkstemp(tmpl), rc = -1;
	uid_t uid;
	gid_t gid;

	if (fd == -1) {
		snprintf(err, errlen, "could not create temporary file: %s",
			 strerror(errno));
		return -1;
	}
	if (prov_owner(cl, &uid, &gid, err, errlen) == 0 &&
	    fchown(fd, uid, gid) == 0 &&
	    prov_run(cl, program, argv, NULL, tmpl, 60000, err, errlen) == 0)
		text = read_file(tmpl, NULL);
	close(fd);
	unlink(tmpl);
	if (!text)
		return -1;
	text[strcspn(text, "\n")] = '\0';
	p = strstr(text, " v=");
	if (p)
		p += 3;
	else
		p = strrchr(text, ' ') ? strrchr(text, ' ') + 1 : text;
	p[strcspn(p, " ")] = '\0';
	if (*p) {
		snprintf(ver, len, "%s", p);
		rc = 0;
	} else {
		snprintf(err, errlen, "%s printed no version", program);
	}
	free(text);
	return rc;
}

/*
 * redis-check-rdb on PATH, after checking that it is the same version as
 * redis-server.  The version goes into VER.
 */
static int run_check_rdb(struct cluster *cl, const char *path, char *ver,
			 size_t len, char *err, size_t errlen)
{
	char server[64], tool[64];
	const char *argv[] = {path, NULL};

	if (tool_version(cl, "redis-server", server, sizeof(server), err,
			 errlen) == -1 ||
	    tool_version(cl, "redis-check-rdb", tool, sizeof(tool), err,
			 errlen) == -1)
		return -1;
	if (strcmp(server, tool) != 0) {
		snprintf(err, errlen,
			 "redis-check-rdb is version %s, redis-server %s", tool,
			 server);
		return -1;
	}
	snprintf(ver, len, "%s", server);
	return prov_run(cl, "redis-check-rdb", argv, NULL, "/dev/null",
			RD_TOOL_MS, err, errlen);
}

/* What the RDB walk found, for the manifest: a new reference. */
static json_t *describe_rdb(const struct rdb_info *info)
{
	json_t *dbs = json_array();
	char crc[17];

	for (int i = 0; i < info->n_dbs; i++) {
		const struct rdb_db *d = &info->dbs[i];
		json_t *db = json_pack("{s:I, s:I}", "db", (json_int_t)d->db,
				       "keys", (json_int_t)d->keys);

		if (d->resized) {
			json_object_set_new(db, "resizedb_keys",
					    json_integer(d->resize_keys));
			json_object_set_new(db, "resizedb_expires",
					    json_integer(d->resize_expires));
		}
		json_array_append_new(dbs, db);
	}
	snprintf(crc, sizeof(crc), "%016" PRIx64, info->crc64);
	return json_pack("{s:i, s:s, s:s, s:o, s:b, s:s}", "version",
			 info->version, "crc64", crc, "redis_version",
			 info->redis_ver, "databases", dbs, "keys_counted",
			 info->counted, "keys_note",
			 info->counted ? "every key parsed" : info->uncounted);
}

static int rd_snapshot(struct cluster *cl, struct node *primary,
		       const char *dir, json_t *manifest, char *err,
		       size_t errlen)
{
	char *path = xasprintf("%s/" RDB_FILE, dir);
	char replid[41] = "", sha[SHA256_HEX_LEN + 1], ver[64];
	struct rdb_info info;
	int64_t offset = -1;
	uint64_t size;
	int rc = -1;

	if (fetch_rdb(cl, primary, path, replid, &offset, err, errlen) == -1 ||
	    rdb_check_file(path, &info, sha, &size, err, errlen) == -1 ||
	    run_check_rdb(cl, path, ver, sizeof(ver), err, errlen) == -1)
		goto out;
	if (info.repl_id[0] &&
	    (strcmp(info.repl_id, replid) || info.repl_offset != offset))
		log_warning("RDB of %s/%d says %s:%" PRId64
			    ", +FULLRESYNC said %s:%" PRId64,
			    cl->cfg->name, primary->generation, info.repl_id,
			    info.repl_offset, replid, offset);
	json_object_set_new(manifest, "size", json_integer((json_int_t)size));
	json_object_set_new(manifest, "position",
			    json_pack("{s:s, s:I}", "replication_id", replid,
				      "offset", (json_int_t)offset));
	json_object_set_new(manifest, "files",
			    json_pack("[{s:s, s:I, s:s}]", "path", RDB_FILE,
				      "size", (json_int_t)size, "sha256", sha));
	json_object_set_new(manifest, "rdb", describe_rdb(&info));
	json_object_set_new(manifest, "server_version", json_string(ver));
	rc = 0;
out:
	free(path);
	return rc;
}

/* The manifest's entry for the RDB file: size and SHA-256. */
static int expected_rdb(json_t *manifest, uint64_t *size, const char **sha,
			char *err, size_t errlen)
{
	json_t *f = json_array_get(json_object_get(manifest, "files"), 0);
	const char *path = json_string_value(json_object_get(f, "path"));

	*sha = json_string_value(json_object_get(f, "sha256"));
	*size = (uint64_t)json_integer_value(json_object_get(f, "size"));
	if (!*sha || !path || strcmp(path, RDB_FILE) != 0) {
		snprintf(err, errlen, "manifest lists no \"" RDB_FILE "\"");
		return -1;
	}
	return 0;
}

/*
 * Check the snapshot's RDB where it lies: size and SHA-256 against the
 * manifest first (a changed file is named as such), then the end marker
 * and CRC-64, then redis-check-rdb.
 */
static int rd_verify_snapshot(struct cluster *cl, const char *dir,
			      json_t *manifest, char *err, size_t errlen)
{
	char *path = xasprintf("%s/" RDB_FILE, dir);
	char sha[SHA256_HEX_LEN + 1] = "", ver[64], why[512] = "";
	struct rdb_info info;
	const char *want;
	uint64_t size = 0, want_size;
	int checked, rc = -1;

	if (expected_rdb(manifest, &want_size, &want, err, errlen) == -1)
		goto out;
	checked = rdb_check_file(path, &info, sha, &size, why, sizeof(why));
	if (sha[0] && (size != want_size || strcmp(sha, want) != 0))
		snprintf(err, errlen,
			 "file \"" RDB_FILE "\" of the snapshot does not match "
			 "its manifest");
	else if (checked == -1)
		snprintf(err, errlen, "%s", why);
	else
		rc = run_check_rdb(cl, path, ver, sizeof(ver), err, errlen);
out:
	free(path);
	return rc;
}

/*
 * Copy SRC to DST (new, mode 0600, owned by run_as) while hashing it.
 * Returns 0, -2 when its size or hash differ from WANT_SIZE and WANT, or
 * -1 for an I/O failure, after writing ERR.
 */
static int copy_rdb(struct cluster *cl, const char *src, const char *dst,
		    uint64_t want_size, const char *want, char *err,
		    size_t errlen)
{
	char hex[COPY_HEX_LEN + 1];
	int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
	int64_t size;
	uid_t uid;
	gid_t gid;

	if (in == -1 || prov_owner(cl, &uid, &gid, err, errlen) == -1)
		goto io_error;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out == -1 || fchown(out, uid, gid) == -1)
		goto io_error;
	size = copy_hashed(in, out, hex);
	if (size == -1 || fsync(out) == -1)
		goto io_error;
	if ((uint64_t)size != want_size || strcmp(hex, want) != 0) {
		snprintf(err, errlen,
			 "file \"" RDB_FILE "\" of the snapshot does not match "
			 "its manifest (%" PRId64 " bytes, SHA-256 %.12s...)",
			 size, hex);
		rc = -2;
		goto out;
	}
	rc = 0;
	goto out;
io_error:
	snprintf(err, errlen, "could not copy \"%s\": %s", src,
		 strerror(errno));
out:
	if (in != -1)
		close(in);
	if (out != -1)
		close(out);
	return rc;
}

/*
 * Lay a restore point down into FRESH and start it as a replica of
 * PRIMARY:
 *
 * 1. copy the RDB into FRESH's directory as its dbfilename, hashing it,
 *    and refuse it (-2) if size or SHA-256 differ from the manifest;
 * 2. check the copy's end marker and CRC-64 before any server reads it;
 * 3. write redis.conf with replicaof PRIMARY;
 * 4. start it: it loads the RDB, then asks PRIMARY for a partial
 *    resynchronisation from the RDB's replication id and offset.
 */
static int rd_seed(struct cluster *cl, const char *dir, json_t *manifest,
		   struct node *fresh, struct node *primary, char *err,
		   size_t errlen)
{
	char *src = xasprintf("%s/" RDB_FILE, dir);
	char *dst = xasprintf("%s/" RDB_FILE, fresh->dir);
	char sha[SHA256_HEX_LEN + 1];
	struct rdb_info info;
	const char *want;
	uint64_t size;
	int rc = -1;

	err[0] = '\0';
	if (expected_rdb(manifest, &size, &want, err, errlen) == -1) {
		rc = -2;
		goto out;
	}

	/* Steps 1 and 2. */
	rc = copy_rdb(cl, src, dst, size, want, err, errlen);
	if (rc != 0)
		goto out;
	if (rdb_check_file(dst, &info, sha, &size, err, errlen) == -1) {
		rc = -2;
		goto out;
	}

	/* Steps 3 and 4. */
	rc = -1;
	if (fsync_parent(dst) == -1) {
		snprintf(err, errlen, "could not sync \"%s\": %s", fresh->dir,
			 strerror(errno));
		goto out;
	}
	if (write_node_conf(cl, fresh, primary, err, errlen) == -1 ||
	    rd_start(cl, fresh, false, err, errlen) == -1)
		goto out;
	rc = 0;
out:
	free(dst);
	free(src);
	return rc;
}

/* The replication state of a replica, from INFO replication. */
struct replica_state {
	char role[32];
	char master_host[64];
	int64_t master_port;
	bool link_up;
	bool syncing;
	int64_t offset;
};

static int replica_state(redisContext *c, struct replica_state *st, char *err,
			 size_t errlen)
{
	char *text = rd_info(c, "replication", err, errlen);
	char v[RD_VALUE_LEN];

	if (!text)
		return -1;
	info_field(text, "role", st->role, sizeof(st->role));
	info_field(text, "master_host", st->master_host,
		   sizeof(st->master_host));
	st->master_port = info_int(text, "master_port");
	info_field(text, "master_link_status", v, sizeof(v));
	st->link_up = strcmp(v, "up") == 0;
	st->syncing = info_int(text, "master_sync_in_progress") > 0;
	st->offset = info_int(text, "slave_repl_offset");
	free(text);
	return 0;
}

/*
 * The offset the primary last heard acknowledged by its online replica
 * on PORT ("slaveN:ip=...,port=P,state=online,offset=O,lag=L"), or -1.
 */
static int64_t acked_offset(const char *repl, int port)
{
	char want[32];
	const char *line, *at;

	snprintf(want, sizeof(want), ",port=%d,", port);
	for (line = repl; line && *line; line = strchr(line, '\n')) {
		while (*line == '\n' || *line == '\r')
			line++;
		if (strncmp(line, "slave", 5) != 0)
			continue;
		at = strstr(line, want);
		if (!at || (strchr(line, '\n') && at > strchr(line, '\n')))
			continue;
		if (strncmp(at + strlen(want), "state=online,offset=", 20) != 0)
			return -1;
		return strtoll(at + strlen(want) + 20, NULL, 10);
	}
	return -1;
}

/*
 * The primary's master_repl_offset, its full and partial syncs, and
 * what its replica on PORT has acknowledged (-1 when not online).
 */
static int primary_state(struct cluster *cl, struct node *primary, int port,
			 int64_t *offset, int64_t *acked, int64_t *full,
			 int64_t *partial, char *err, size_t errlen)
{
	redisContext *c = rd_connect(cl, primary, RD_POLL_MS, err, errlen);
	char *repl = NULL, *stats = NULL;
	int rc = -1;

	if (!c)
		return -1;
	repl = rd_info(c, "replication", err, errlen);
	if (repl)
		stats = rd_info(c, "stats", err, errlen);
	if (stats) {
		*offset = info_int(repl, "master_repl_offset");
		*acked = acked_offset(repl, port);
		*full = info_int(stats, "sync_full");
		*partial = info_int(stats, "sync_partial_ok");
		rc = 0;
	}
	free(stats);
	free(repl);
	redisFree(c);
	return rc;
}

static bool follows(const struct replica_state *st, const struct node *primary)
{
	return strcmp(st->role, "slave") == 0 &&
	       strcmp(st->master_host, primary->host) == 0 &&
	       st->master_port == primary->port;
}

/*
 * Caught up means: a replica of PRIMARY, link up, initial sync done, and
 * both its processed offset and the offset the primary last heard it
 * acknowledge within the lag bound of the primary's.  The second matters
 * after a full sync: the primary holds the replica's command stream back
 * until its first REPLCONF ACK, which a replica sends once a second, so
 * a replica that looks level may receive nothing for up to a second, a
 * second that would otherwise fall inside the write pause.
 */
static int rd_catch_up(struct cluster *cl, struct node *fresh,
		       struct node *primary, struct catch_up *state, char *err,
		       size_t errlen)
{
	redisContext *c = rd_connect(cl, fresh, RD_POLL_MS, err, errlen);
	struct replica_state st = {0};
	int64_t offset, acked, full, partial, behind;
	int rc;

	if (!c)
		return -1;
	rc = replica_state(c, &st, err, errlen);
	redisFree(c);
	if (rc == -1 || primary_state(cl, primary, fresh->port, &offset, &acked,
				      &full, &partial, err, errlen) == -1)
		return -1;
	state->streaming = follows(&st, primary) && st.link_up && !st.syncing &&
			   acked >= 0;
	behind = st.offset < acked ? st.offset : acked;
	state->lag_bytes = offset > behind ? offset - behind : 0;
	if (behind < 0)
		state->lag_bytes = offset > 0 ? offset : 0;
	snprintf(state->detail, sizeof(state->detail),
		 "link %s%s, replica at offset %" PRId64
		 ", acknowledged %" PRId64 ", primary at %" PRId64
		 "; the primary served %" PRId64 " full and %" PRId64
		 " partial syncs",
		 st.link_up ? "up" : "down", st.syncing ? ", syncing" : "",
		 st.offset, acked, offset, full, partial);
	return 0;
}

/*
 * A canary line as a command: split on blanks, no quoting.  Returns the
 * number of words put into ARGV (pointers into the copy LINE).
 */
static int split_words(char *line, const char **argv, int max)
{
	int argc = 0;

	for (char *save = NULL, *w = strtok_r(line, " \t", &save);
	     w && argc < max; w = strtok_r(NULL, " \t", &save))
		argv[argc++] = w;
	return argc;
}

static int run_canaries(struct cluster *cl, redisContext *c, char *err,
			size_t errlen)
{
	for (int i = 0; i < cl->cfg->n_canary; i++) {
		char *line = xstrdup(cl->cfg->canary[i]);
		const char *argv[MAX_CANARY_ARGS];
		int argc = split_words(line, argv, MAX_CANARY_ARGS);
		redisReply *r =
			argc ? redisCommandArgv(c, argc, argv, NULL) : NULL;

		if (!r || r->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen, "canary command %d failed: %s",
				 i + 1,
				 r ? r->str
				   : (argc ? ctx_error(c) : "no command"));
			freeReplyObject(r);
			free(line);
			return -1;
		}
		freeReplyObject(r);
		free(line);
	}
	return 0;
}

/*
 * Before a fresh node may replace PRIMARY it must be a replica of it with
 * its link up, within the lag bound, and answer the canary commands.
 */
static int rd_verify_replica(struct cluster *cl, struct node *fresh,
			     struct node *primary, char *err, size_t errlen)
{
	redisContext *c = rd_connect(cl, fresh, RD_QUERY_MS, err, errlen);
	struct replica_state st = {0};
	struct catch_up cu = {0};
	int rc = -1;

	if (!c)
		return -1;
	if (replica_state(c, &st, err, errlen) == -1)
		goto out;
	if (!follows(&st, primary))
		snprintf(err, errlen,
			 "fresh node is a %s of %s:%" PRId64 ", not a replica "
			 "of %s:%d",
			 st.role, st.master_host, st.master_port, primary->host,
			 primary->port);
	else if (!st.link_up || st.syncing)
		snprintf(err, errlen,
			 "fresh node's link to the primary is "
			 "not up");
	else if (rd_catch_up(cl, fresh, primary, &cu, err, errlen) == -1)
		; /* err says why */
	else if (cu.lag_bytes > cl->cfg->max_lag_bytes)
		snprintf(err, errlen, "fresh node is %" PRId64 " bytes behind",
			 cu.lag_bytes);
	else
		rc = run_canaries(cl, c, err, errlen);
out:
	redisFree(c);
	return rc;
}

static int rd_prepare_switch(struct cluster *cl, struct node *old, char *err,
			     size_t errlen)
{
	redisContext *c = rd_connect(cl, old, RD_QUERY_MS, err, errlen);
	int rc;

	if (!c)
		return -1;
	rc = rd_ok(c, err, errlen, "PING");
	redisFree(c);
	return rc;
}

/*
 * Pause writes on C until DEADLINE and read where its history stands
 * then: commands run one at a time, so no write is applied after the
 * offset read once the pause is in force.
 */
static int pause_and_offset(redisContext *c, int64_t deadline, int64_t *offset,
			    char *err, size_t errlen)
{
	char *text;
	char role[32];

	if (rd_ok(c, err, errlen, "CLIENT PAUSE %lld WRITE",
		  (long long)left_ms(deadline)) == -1)
		return -1;
	text = rd_info(c, "replication", err, errlen);
	if (!text)
		return -1;
	info_field(text, "role", role, sizeof(role));
	*offset = info_int(text, "master_repl_offset");
	free(text);
	if (strcmp(role, "master") != 0 || *offset < 0) {
		snprintf(err, errlen, "old primary is a %s, not a master",
			 role);
		return -1;
	}
	return 0;
}

/*
 * Fence: writes on the old primary are paused until RD_PAUSE_MARGIN_MS
 * past the deadline (the pause ends by itself if rotator dies); its
 * master_repl_offset is the fence point.
 */
static int rd_fence(struct cluster *cl, struct node *old,
		    struct fence_point *point, int64_t deadline, char *err,
		    size_t errlen)
{
	redisContext *c = rd_connect(cl, old, left_ms(deadline), err, errlen);
	int64_t offset;
	int rc;

	if (!c)
		return -1;
	rc = pause_and_offset(c, deadline + RD_PAUSE_MARGIN_MS, &offset, err,
			      errlen);
	redisFree(c);
	if (rc == -1)
		return -1;
	point->value = (uint64_t)offset;
	snprintf(point->position, sizeof(point->position), "offset %" PRId64,
		 offset);
	return 0;
}

static int rd_unfence(struct cluster *cl, struct node *old, char *err,
		      size_t errlen)
{
	redisContext *c = rd_connect(cl, old, RD_QUERY_MS, err, errlen);
	int rc;

	if (!c)
		return -1;
	rc = rd_ok(c, err, errlen, "CLIENT UNPAUSE");
	redisFree(c);
	return rc;
}

/*
 * Poll ROLE on C, every millisecond, until the replica has processed
 * OFFSET or DEADLINE passes.
 */
static int wait_offset(redisContext *c, int64_t offset, int64_t deadline,
		       char *err, size_t errlen)
{
	char role[32];
	int64_t at;

	for (;;) {
		if (rd_role(c, role, sizeof(role), &at, err, errlen) == -1)
			return -1;
		if (strcmp(role, "slave") == 0 && at >= offset)
			return 0;
		if (now_ms() > deadline) {
			snprintf(err, errlen,
				 "fresh node is at offset %" PRId64
				 ", not %" PRId64,
				 at, offset);
			return -1;
		}
		sleep_ms(1);
	}
}

static int rd_wait_replayed(struct cluster *cl, struct node *fresh,
			    const struct fence_point *point, int64_t deadline,
			    char *err, size_t errlen)
{
	redisContext *c = rd_connect(cl, fresh, left_ms(deadline), err, errlen);
	int rc;

	if (!c)
		return -1;
	rc = wait_offset(c, (int64_t)point->value, deadline, err, errlen);
	redisFree(c);
	return rc;
}

/*
 * The old primary did not answer while its write pause still holds:
 * kill it (SIGKILL, with SIGCONT for a stopped process) and wait until
 * it is gone, so that it can acknowledge nothing once the pause ends.
 * An adopted node whose pid rotator does not know cannot be killed: then
 * -1, and FRESH is not promoted.
 */
static int kill_old(struct cluster *cl, struct node *old, const char *reason,
		    char *err, size_t errlen)
{
	pid_t pid = node_pid(old);
	char why[256];

	snprintf(why, sizeof(why), "%s", reason);
	if (pid <= 0 || !prov_pid_alive(pid)) {
		snprintf(err, errlen,
			 "old primary does not answer (%s) and rotator "
			 "knows no process of it to stop",
			 why);
		return -1;
	}
	slog_warning(cl->scope,
		     "old primary %s:%d does not answer (%s): killing "
		     "redis-server %d before its write pause ends",
		     old->host, old->port, why, (int)pid);
	kill(pid, SIGCONT);
	kill(pid, SIGKILL);
	if (!prov_wait_gone(pid, now_ms() + RD_STOP_STEP_MS)) {
		snprintf(err, errlen, "could not kill redis-server %d",
			 (int)pid);
		return -1;
	}
	return 0;
}

/*
 * Make the old primary OLD a replica of FRESH, after making sure (again)
 * that FRESH has everything OLD holds: the pause may have lapsed since
 * the fence if this is a second request.  If OLD does not answer in
 * half the time left, it is killed instead (kill_old()): a node that
 * does not answer might still, once its pause has ended, take writes
 * that FRESH never sees.  Returns 0 or -1.
 */
static int demote_old(struct cluster *cl, redisContext *fc, struct node *old,
		      struct node *fresh, int64_t deadline, char *err,
		      size_t errlen)
{
	int64_t budget = left_ms(deadline) / 2;
	int64_t half = now_ms() + (budget < 50 ? 50 : budget);
	redisContext *c = rd_connect(cl, old, left_ms(half), err, errlen);
	char role[32];
	int64_t offset;
	int rc = -1;

	if (!c)
		return kill_old(cl, old, err, err, errlen);
	if (rd_role(c, role, sizeof(role), &offset, err, errlen) == -1)
		goto failed;
	if (strcmp(role, "master") != 0) {
		rc = 0;
		goto out;
	}
	if (pause_and_offset(c, deadline, &offset, err, errlen) == -1)
		goto failed;
	if (wait_offset(fc, offset, deadline, err, errlen) == -1)
		goto out; /* FRESH lacks writes: OLD must stay the primary */
	if (old->adopted &&
	    rd_ok(c, err, errlen, "CONFIG SET masteruser %s masterauth %s",
		  cl->cfg->auth_user, cl->password) == -1)
		slog_warning(cl->scope, "old primary: %s", err);
	rc = rd_ok(c, err, errlen, "REPLICAOF %s %d", fresh->host, fresh->port);
	if (rc == -1)
		goto failed;
	goto out;
failed:
	rc = kill_old(cl, old, err, err, errlen);
out:
	redisFree(c);
	return rc;
}

/* After the promotion: the old node's clients must reconnect. */
static void drop_old_clients(struct cluster *cl, struct node *old)
{
	char err[256];
	redisContext *c = rd_connect(cl, old, RD_POLL_MS, err, sizeof(err));

	if (!c)
		return;
	if (rd_ok(c, err, sizeof(err), "CLIENT KILL TYPE normal") == -1 ||
	    rd_ok(c, err, sizeof(err), "CLIENT KILL TYPE pubsub") == -1)
		slog_warning(cl->scope, "old primary: %s", err);
	redisFree(c);
}

/*
 * Promote FRESH.  cluster_primary() is still the old primary then (the
 * members change after): it is made a replica of FRESH first, so that
 * there is no moment with two masters, then FRESH stops replicating and
 * its ROLE confirms it.  Asked again, a FRESH that is already a master is
 * only confirmed.
 */
static int rd_promote(struct cluster *cl, struct node *fresh, int64_t deadline,
		      char *err, size_t errlen)
{
	redisContext *c = rd_connect(cl, fresh, left_ms(deadline), err, errlen);
	struct node old = {0};
	bool have_old = false;
	char role[32];
	int64_t offset;
	int rc = -1;

	if (!c)
		return -1;
	pthread_mutex_lock(&cl->lock);
	if (cluster_primary(cl) &&
	    cluster_primary(cl)->generation != fresh->generation) {
		node_copy(&old, cluster_primary(cl));
		have_old = true;
	}
	pthread_mutex_unlock(&cl->lock);
	if (rd_role(c, role, sizeof(role), &offset, err, errlen) == -1)
		goto out;
	if (strcmp(role, "master") != 0) {
		if (have_old &&
		    demote_old(cl, c, &old, fresh, deadline, err, errlen) == -1)
			goto out;
		if (rd_ok(c, err, errlen, "REPLICAOF NO ONE") == -1 ||
		    rd_role(c, role, sizeof(role), &offset, err, errlen) == -1)
			goto out;
		if (strcmp(role, "master") != 0) {
			snprintf(err, errlen, "fresh node is still a %s", role);
			goto out;
		}
	}
	rc = 0;
	if (have_old)
		drop_old_clients(cl, &old);

	/* It follows no one now; the old node, if kept, follows it. */
	if (write_node_conf(cl, fresh, NULL, err, errlen) == -1)
		slog_warning(cl->scope, "%s", err);
	if (have_old && !old.adopted && old.dir &&
	    write_node_conf(cl, &old, fresh, err, errlen) == -1)
		slog_warning(cl->scope, "%s", err);
out:
	node_release(&old);
	redisFree(c);
	return rc;
}

/*
 * REPLICAOF PRIMARY on REPLICA, then wait until its link is up and the
 * sync done, at most until DEADLINE.
 */
static int rd_follow(struct cluster *cl, struct node *replica,
		     struct node *primary, int64_t deadline, char *err,
		     size_t errlen)
{
	redisContext *c =
		rd_connect(cl, replica, left_ms(deadline), err, errlen);
	struct replica_state st = {0};
	int rc = -1;

	if (!c)
		return -1;
	if (rd_ok(c, err, errlen, "REPLICAOF %s %d", primary->host,
		  primary->port) == -1)
		goto out;
	if (replica->dir &&
	    write_node_conf(cl, replica, primary, err, errlen) == -1)
		goto out;
	for (;;) {
		if (replica_state(c, &st, err, errlen) == -1)
			goto out;
		if (follows(&st, primary) && st.link_up && !st.syncing)
			break;
		if (now_ms() > deadline) {
			snprintf(err, errlen,
				 "replica's link to %s:%d is not up in time",
				 primary->host, primary->port);
			goto out;
		}
		sleep_ms(2);
	}
	rc = 0;
out:
	redisFree(c);
	return rc;
}

const struct adapter redis_adapter = {
	.name = "redis",
	.bootstrap = rd_bootstrap,
	.adopt = rd_adopt,
	.snapshot = rd_snapshot,
	.verify_snapshot = rd_verify_snapshot,
	.seed = rd_seed,
	.catch_up = rd_catch_up,
	.verify_replica = rd_verify_replica,
	.prepare_switch = rd_prepare_switch,
	.fence = rd_fence,
	.unfence = rd_unfence,
	.wait_replayed = rd_wait_replayed,
	.promote = rd_promote,
	.follow = rd_follow,
	.ensure_running = rd_ensure_running,
	.running = rd_running,
	.stop = rd_stop,
};
