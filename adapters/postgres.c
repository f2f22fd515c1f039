/*
 * postgres.c: the PostgreSQL 15 adapter.
 *
 * A node is one postmaster with its data directory in NODE_DIR/data, its
 * log in NODE_DIR/postgres.log, listening on 127.0.0.1 only.  rotator's
 * settings live in NODE_DIR/data/rotator.conf, which postgresql.conf
 * includes last, so that a node laid down from a snapshot can be given
 * its own port and upstream without touching the files the snapshot's
 * manifest covers.
 *
 * WAL continuity.  A fresh node needs all WAL from its snapshot's start
 * to now, however old the snapshot and however little WAL the primary
 * keeps.  Every node therefore archives completed segments into the
 * cluster's archive (CLUSTER_DIR/wal) and every replica restores from it
 * before it streams; the archive is pruned only up to the oldest kept
 * restore point.  Because the archive outlives nodes, a snapshot taken on
 * an old timeline can still seed a node after any number of switchovers
 * (recovery_target_timeline = latest follows the history files).
 *
 * Secrets.  Programs and replicas find the password in a passfile
 * (CLUSTER_DIR/pgpass, mode 0600, owned by run_as), never in argv or in a
 * configuration file; rotator's own connections pass it to libpq in
 * memory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "adapters/adapter.h"
#include "rotator/cluster.h"
#include "rotator/log.h"
#include "rotator/provisioner.h"
#include "snapshots/copy.h"

#define PG_TOOL_TIMEOUT_MS (10 * 60 * 1000)
#define PG_START_TIMEOUT_MS (300 * 1000)
#define PG_START_POLL_MS 5
#define PG_SPAWN_MS (15 * 1000) /* to write postmaster.pid at all */
#define PG_HAND_MS 500		/* replay stuck this long: hand_segment() */
#define MAX_ORPHANS 256
#define ORPHAN_WAIT_MS 5000
#define PG_LIVE_MS 5000 /* for the fresh node to replay a record */
#define PG_WAL_SEGMENT (16 * 1024 * 1024)
#define PG_VALUE_LEN 512
#define PG_QUERY_TIMEOUT_MS 30000

/*
 * The replication slot that keeps an adopted primary's WAL from its
 * newest restore point on: rotator's archive does not have that WAL.
 */
#define ADOPT_SLOT "rotator_adopt"

/*
 * Paths of one node or cluster; each a new string.  An adopted node's
 * directory is the server's own data directory.
 */
static char *data_dir(const struct node *n)
{
	return n->adopted ? xstrdup(n->dir) : xasprintf("%s/data", n->dir);
}

static char *archive_dir(const struct cluster *cl)
{
	return xasprintf("%s/wal", cl->dir);
}

static char *passfile(const struct cluster *cl)
{
	return xasprintf("%s/pgpass", cl->dir);
}

/* "X/Y" to a number; returns 0 or -1. */
static int parse_lsn(const char *text, uint64_t *lsn)
{
	unsigned int hi, lo;

	if (!text || sscanf(text, "%X/%X", &hi, &lo) != 2)
		return -1;
	*lsn = ((uint64_t)hi << 32) | lo;
	return 0;
}

/*
 * Connect to node N as auth.user.  Returns a connection or NULL after
 * writing ERR.  Caller finishes it with PQfinish().
 */
static PGconn *pg_connect(struct cluster *cl, const struct node *n, char *err,
			  size_t errlen)
{
	char port[16];
	const char *keys[] = {"host",	 "port",
			      "user",	 "password",
			      "dbname",	 "connect_timeout",
			      "sslmode", "application_name",
			      NULL};
	const char *values[] = {n->host,      port,	  cl->cfg->auth_user,
				cl->password, "postgres", "5",
				"disable",    "rotator",  NULL};
	PGconn *conn;

	snprintf(port, sizeof(port), "%d", n->port);
	conn = PQconnectdbParams(keys, values, 0);
	if (PQstatus(conn) != CONNECTION_OK) {
		snprintf(err, errlen, "could not connect to %s:%d: %s", n->host,
			 n->port, PQerrorMessage(conn));
		err[strcspn(err, "\n")] = '\0';
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/*
 * Run SQL, which returns one row, on CONN and copy its columns into
 * VALUES (NCOLS buffers of LEN bytes; NULL becomes "").  Returns 0 or -1
 * after writing ERR.
 */
/*
 * Run SQL on CONN and wait at most TIMEOUT_MS for its result: a server
 * that stops answering (frozen, or behind a dead link) must not hold a
 * rotation past its deadlines.  Returns the last result (caller clears
 * it), or NULL after writing ERR; after a time-out CONN is unusable and
 * the caller only finishes it.
 */
static PGresult *exec_within(PGconn *conn, const char *sql, int64_t timeout_ms,
			     char *err, size_t errlen)
{
	int64_t deadline = now_ms() + timeout_ms;
	PGresult *res, *last = NULL;

	if (!PQsendQuery(conn, sql))
		goto failed;
	for (;;) {
		while (PQisBusy(conn)) {
			struct pollfd pfd = {.fd = PQsocket(conn),
					     .events = POLLIN};
			int64_t left = deadline - now_ms();

			if (left <= 0) {
				snprintf(err, errlen,
					 "query timed out after %" PRId64 " ms",
					 timeout_ms);
				PQclear(last);
				return NULL;
			}
			if (poll(&pfd, 1, left > 1000 ? 1000 : (int)left) ==
				    -1 &&
			    errno != EINTR)
				goto failed;
			if (!PQconsumeInput(conn))
				goto failed;
		}
		res = PQgetResult(conn);
		if (!res)
			break;
		PQclear(last);
		last = res;
	}
	if (last)
		return last;
failed:
	snprintf(err, errlen, "query failed: %s", PQerrorMessage(conn));
	err[strcspn(err, "\n")] = '\0';
	PQclear(last);
	return NULL;
}

/*
 * Like pg_row(), with the time-out given: at least 100 ms, so that a
 * deadline just passed still allows one quick question.
 */
static int pg_row_within(PGconn *conn, const char *sql,
			 char values[][PG_VALUE_LEN], int ncols,
			 int64_t timeout_ms, char *err, size_t errlen)
{
	PGresult *res = exec_within(
		conn, sql, timeout_ms < 100 ? 100 : timeout_ms, err, errlen);
	int rc = -1;

	if (!res)
		return -1;
	if (PQresultStatus(res) != PGRES_TUPLES_OK &&
	    PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "query failed: %s",
			 PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		goto out;
	}
	if (ncols > 0 && (PQntuples(res) != 1 || PQnfields(res) < ncols)) {
		snprintf(err, errlen, "query returned %d rows", PQntuples(res));
		goto out;
	}
	for (int i = 0; i < ncols; i++)
		snprintf(values[i], PG_VALUE_LEN, "%s", PQgetvalue(res, 0, i));
	rc = 0;
out:
	PQclear(res);
	return rc;
}

static int pg_row(PGconn *conn, const char *sql, char values[][PG_VALUE_LEN],
		  int ncols, char *err, size_t errlen)
{
	return pg_row_within(conn, sql, values, ncols, PG_QUERY_TIMEOUT_MS, err,
			     errlen);
}

/* Connect, run one statement, disconnect. */
static int pg_once(struct cluster *cl, const struct node *n, const char *sql,
		   char values[][PG_VALUE_LEN], int ncols, char *err,
		   size_t errlen)
{
	PGconn *conn = pg_connect(cl, n, err, errlen);
	int rc;

	if (!conn)
		return -1;
	rc = pg_row(conn, sql, values, ncols, err, errlen);
	PQfinish(conn);
	return rc;
}

/* A passfile line field: ':' and '\' are escaped. */
static void append_escaped(char *out, size_t cap, const char *s)
{
	size_t used = strlen(out);

	for (; *s && used + 2 < cap; s++) {
		if (*s == ':' || *s == '\\')
			out[used++] = '\\';
		out[used++] = *s;
	}
	out[used] = '\0';
}

static int write_passfile(struct cluster *cl, char *err, size_t errlen)
{
	static const char *const hosts[] = {"127.0.0.1", "localhost"};
	char *path = passfile(cl);
	char text[2048] = "";
	int rc;

	for (size_t i = 0; i < sizeof(hosts) / sizeof(*hosts); i++) {
		strcat(text, hosts[i]);
		strcat(text, ":*:*:");
		append_escaped(text, sizeof(text) - 2, cl->cfg->auth_user);
		strcat(text, ":");
		append_escaped(text, sizeof(text) - 2, cl->password);
		strcat(text, "\n");
	}
	rc = prov_write_file(cl, path, text, strlen(text), err, errlen);
	explicit_bzero(text, sizeof(text));
	free(path);
	return rc;
}

/*
 * VALUE as the inside of a single-quoted setting: the configuration
 * parser reads backslash escapes there, so backslashes are doubled, and
 * so are quotes.
 */
static char *quote_setting(const char *value)
{
	char *out = xmalloc(2 * strlen(value) + 1), *o = out;

	for (; *value; value++) {
		if (*value == '\'' || *value == '\\')
			*o++ = *value;
		*o++ = *value;
	}
	*o = '\0';
	return out;
}

/*
 * VALUE as one value of a libpq connection string: in single quotes, with
 * quotes and backslashes escaped, so that a space in a path does not end
 * it.
 */
static char *conninfo_value(const char *value)
{
	char *out = xmalloc(2 * strlen(value) + 3), *o = out;

	*o++ = '\'';
	for (; *value; value++) {
		if (*value == '\'' || *value == '\\')
			*o++ = '\\';
		*o++ = *value;
	}
	*o++ = '\'';
	*o = '\0';
	return out;
}

/*
 * Write NODE_DIR/data/rotator.conf: the node's own port and, for a
 * replica, where it streams from.  The archive and restore commands are
 * the same on every node.
 */
static int write_node_conf(struct cluster *cl, const struct node *n,
			   const struct node *upstream, char *err,
			   size_t errlen)
{
	char *dir = data_dir(n), *arch = archive_dir(cl), *pass = passfile(cl);
	char *path = xasprintf("%s/rotator.conf", dir);
	char *text, *primary = xstrdup(""), *extra = xstrdup("");
	int rc;

	if (upstream) {
		char *user = conninfo_value(cl->cfg->auth_user);
		char *file = conninfo_value(pass);
		char *conninfo =
			xasprintf("host=%s port=%d user=%s passfile=%s "
				  "application_name=%s_%d sslmode=disable",
				  upstream->host, upstream->port, user, file,
				  cl->cfg->name, n->generation);
		char *quoted = quote_setting(conninfo);

		free(primary);
		primary = xasprintf("primary_conninfo = '%s'\n%s", quoted,
				    upstream->adopted
					    ? "primary_slot_name = '" ADOPT_SLOT
					      "'\n"
					    : "");
		free(quoted);
		free(conninfo);
		free(file);
		free(user);
	}
	/*
	 * The operator's server_settings come first, so that rotator's own
	 * lines after them (port, archive, upstream) win.
	 */
	for (int i = 0; i < cl->cfg->n_settings; i++) {
		char *value = quote_setting(cl->cfg->settings[i].value);
		char *next = xasprintf("%s%s = '%s'\n", extra,
				       cl->cfg->settings[i].name, value);

		free(value);
		free(extra);
		extra = next;
	}
	/*
	 * wal_retrieve_retry_interval: when the old primary's fast shutdown
	 * ends the stream, the startup process goes round its sources
	 * (stream, archive, pg_wal); a round that finds nothing new would
	 * otherwise wait 5 s, longer than a switch may take, before it
	 * reads the shutdown checkpoint the receiver has just written.
	 */
	text = xasprintf(
		"# written by rotator for node %s/%d; do not edit\n"
		"%s"
		"port = %d\n"
		"listen_addresses = '%s'\n"
		"unix_socket_directories = ''\n"
		"cluster_name = '%s_%d'\n"
		"wal_level = replica\n"
		"max_wal_senders = 10\n"
		"hot_standby = on\n"
		"password_encryption = 'scram-sha-256'\n"
		"archive_mode = on\n"
		"archive_command = 'test ! -f \"%s/%%f\" && "
		"cp \"%%p\" \"%s/%%f.part\" && sync \"%s/%%f.part\" && "
		"mv \"%s/%%f.part\" \"%s/%%f\" && sync \"%s\" || "
		"cmp -s \"%%p\" \"%s/%%f\"'\n"
		"restore_command = 'cp \"%s/%%f\" \"%%p\"'\n"
		"recovery_target_timeline = 'latest'\n"
		"wal_receiver_status_interval = 1s\n"
		"wal_retrieve_retry_interval = 100ms\n"
		"%s",
		cl->cfg->name, n->generation, extra, n->port, n->host,
		cl->cfg->name, n->generation, arch, arch, arch, arch, arch,
		arch, arch, arch, primary);
	rc = prov_write_file(cl, path, text, strlen(text), err, errlen);
	free(text);
	free(primary);
	free(extra);
	free(path);
	free(pass);
	free(arch);
	free(dir);
	return rc;
}

static int write_hba(struct cluster *cl, const struct node *n, char *err,
		     size_t errlen)
{
	static const char hba[] =
		"# written by rotator; password authentication only\n"
		"local all all scram-sha-256\n"
		"host all all 127.0.0.1/32 scram-sha-256\n"
		"host replication all 127.0.0.1/32 scram-sha-256\n";
	char *path = xasprintf("%s/data/pg_hba.conf", n->dir);
	int rc = prov_write_file(cl, path, hba, sizeof(hba) - 1, err, errlen);

	free(path);
	return rc;
}

/*
 * Make postgresql.conf include rotator.conf, last.  A snapshot of an
 * adopted server whose configuration lives outside its data directory
 * (Debian's layout) has no postgresql.conf: it gets one that holds only
 * the include, and pg_hba.conf is written too.
 */
static int include_node_conf(struct cluster *cl, const struct node *n,
			     char *err, size_t errlen)
{
	char *path = xasprintf("%s/data/postgresql.conf", n->dir);
	char *hba = xasprintf("%s/data/pg_hba.conf", n->dir);
	char *text = read_file(path, NULL);
	FILE *f;
	int rc = 0;

	if (access(hba, F_OK) == -1 && write_hba(cl, n, err, errlen) == -1)
		rc = -1;
	free(hba);
	if (rc == -1 ||
	    (text && strstr(text, "include_if_exists = 'rotator.conf'"))) {
		free(text);
		free(path);
		return rc;
	}
	free(text);
	if (access(path, F_OK) == -1 &&
	    prov_write_file(cl, path, "", 0, err, errlen) == -1) {
		free(path);
		return -1;
	}
	f = fopen(path, "a");
	if (!f || fputs("\ninclude_if_exists = 'rotator.conf'\n", f) < 0 ||
	    fflush(f) != 0 || fsync(fileno(f)) != 0) {
		snprintf(err, errlen, "could not append to \"%s\": %s", path,
			 strerror(errno));
		rc = -1;
	}
	if (f)
		fclose(f);
	free(path);
	return rc;
}

/*
 * Lines 1 (pid), 3 (start time) and 8 (status) of DIR's postmaster.pid
 * into PID, START and STATUS; empty when there is no such file.
 */
static void read_pid_file(const char *path, long *pid, char *start,
			  size_t startlen, char *status, size_t statuslen)
{
	char line[128];
	FILE *f = fopen(path, "re");

	*pid = 0;
	start[0] = status[0] = '\0';
	for (int i = 1; f && i <= 8 && fgets(line, sizeof(line), f); i++) {
		line[strcspn(line, " \n")] = '\0';
		if (i == 1)
			*pid = strtol(line, NULL, 10);
		else if (i == 3)
			snprintf(start, startlen, "%s", line);
		else if (i == 8)
			snprintf(status, statuslen, "%s", line);
	}
	if (f)
		fclose(f);
}

/*
 * Wait until the postmaster of data directory DIR says, in its
 * postmaster.pid, that it accepts connections ("ready", or "standby" for
 * a hot standby), as pg_ctl -w does, but every PG_START_POLL_MS rather
 * than every 100 ms: a fresh node's start is part of every rotation.  A
 * file left by a postmaster that died (STALE_START, its start time) does
 * not count.
 */
static int wait_ready(const char *dir, const char *logf,
		      const char *stale_start, char *err, size_t errlen)
{
	char *path = xasprintf("%s/postmaster.pid", dir);
	int64_t started = now_ms(), deadline = started + PG_START_TIMEOUT_MS;
	char start[32], status[32];
	bool seen = false;
	int rc = -1;
	long pid;

	while (rc == -1 && now_ms() < deadline) {
		read_pid_file(path, &pid, start, sizeof(start), status,
			      sizeof(status));
		if (pid > 0 && strcmp(start, stale_start) != 0) {
			seen = true;
			if (!prov_pid_alive((pid_t)pid)) {
				snprintf(err, errlen,
					 "server in \"%s\" stopped while "
					 "starting; see \"%s\"",
					 dir, logf);
				free(path);
				return -1;
			}
			if (strcmp(status, "ready") == 0 ||
			    strcmp(status, "standby") == 0)
				rc = 0;
		} else if (seen || now_ms() - started > PG_SPAWN_MS) {
			/*
			 * A postmaster writes its lock file first thing; one
			 * that never does, or removes it again, failed to
			 * start (a port in use, a lock file it will not
			 * override): waiting out the start's bound would
			 * leave the node down for minutes.
			 */
			snprintf(err, errlen, "server in \"%s\" %s; see \"%s\"",
				 dir,
				 seen ? "stopped while starting"
				      : "did not create postmaster.pid",
				 logf);
			free(path);
			return -1;
		}
		if (rc == -1)
			sleep_ms(PG_START_POLL_MS);
	}
	if (rc == -1)
		snprintf(err, errlen,
			 "server in \"%s\" did not start within %d s; see "
			 "\"%s\"",
			 dir, PG_START_TIMEOUT_MS / 1000, logf);
	free(path);
	return rc;
}

/*
 * The live postgres processes that work in data directory DIR, at most
 * MAX of them into PIDS (which may be NULL); returns how many there are,
 * or -1 when /proc cannot be read.  Every process of a PostgreSQL server,
 * the postmaster and any backend it left behind when it was killed, runs
 * the postgres binary with the data directory as its working directory;
 * an operator's shell there is not one.  Processes this user may not look
 * at are not of this node.
 */
static bool runs_postgres(int pid)
{
	char link[64], exe[PATH_MAX];
	ssize_t len;
	const char *base;

	snprintf(link, sizeof(link), "/proc/%d/exe", pid);
	len = readlink(link, exe, sizeof(exe) - 1);
	if (len < 0)
		return false;
	exe[len] = '\0';
	base = strrchr(exe, '/');
	return strcmp(base ? base + 1 : exe, "postgres") == 0;
}

/*
 * Whether PID is a live postgres process working in REAL, a resolved data
 * directory: 1, 0, or -1 when its working directory cannot be read for
 * another reason than that it is gone.
 */
static int works_in(int pid, const char *real)
{
	char link[64], cwd[PATH_MAX];
	ssize_t len;

	snprintf(link, sizeof(link), "/proc/%d/cwd", pid);
	len = readlink(link, cwd, sizeof(cwd) - 1);
	if (len < 0)
		return errno == ENOENT ? 0 : -1;
	cwd[len] = '\0';
	return strcmp(cwd, real) == 0 && runs_postgres(pid) &&
	       prov_pid_alive(pid);
}

static int dir_processes(const char *dir, pid_t *pids, int max)
{
	char real[PATH_MAX];
	DIR *proc = opendir("/proc");
	struct dirent *de;
	int n = 0;

	if (!proc || !realpath(dir, real)) {
		if (proc)
			closedir(proc);
		return -1;
	}
	while ((de = readdir(proc)) != NULL) {
		int pid = atoi(de->d_name);

		if (pid <= 0 || works_in(pid, real) != 1)
			continue;
		if (pids && n < max)
			pids[n] = pid;
		n++;
	}
	closedir(proc);
	return n;
}

/*
 * PostgreSQL refuses to start while kill(pid, 0) succeeds on the pid in
 * postmaster.pid, which it does on a killed postmaster that init has not
 * reaped yet, and on an unrelated process that got the pid since.  When
 * no live process works in the directory the file is stale for certain,
 * and it is removed.
 */
static void clear_stale_lock(const char *dir)
{
	char *path = xasprintf("%s/postmaster.pid", dir);
	pid_t pid = prov_read_pid(path);

	if (pid > 0 && dir_processes(dir, NULL, 0) == 0) {
		log_warning("removing \"%s\", left by postmaster %d, which is "
			    "gone",
			    path, (int)pid);
		if (unlink(path) == -1 && errno != ENOENT)
			log_error("could not remove \"%s\": %s", path,
				  strerror(errno));
	}
	free(path);
}

static int pg_start(struct cluster *cl, const struct node *n, char *err,
		    size_t errlen)
{
	char *dir = data_dir(n), *conf = NULL;
	char *logf = n->adopted ? xasprintf("%s/logs/adopted-%d.log", cl->dir,
					    n->generation)
				: xasprintf("%s/postgres.log", n->dir);
	const char *argv[] = {"-D",    dir,  "-l", logf, "-W",
			      "start", NULL, NULL, NULL};
	int rc = 0;

	/* An adopted server logs beside rotator's state, as run_as. */
	if (n->adopted) {
		char *logs = xasprintf("%s/logs", cl->dir);

		rc = prov_mkdir(cl, logs, 0700, err, errlen);
		free(logs);
	}

	/* An adopted server may keep its configuration elsewhere. */
	if (n->conf_file) {
		conf = xasprintf("-c config_file=%s", n->conf_file);
		argv[5] = "-o";
		argv[6] = conf;
		argv[7] = "start";
	}
	if (rc == 0) {
		char *pidfile = xasprintf("%s/postmaster.pid", dir);
		char stale[32], status[32];
		long pid;

		clear_stale_lock(dir);
		read_pid_file(pidfile, &pid, stale, sizeof(stale), status,
			      sizeof(status));
		free(pidfile);
		rc = prov_run(cl, "pg_ctl", argv, NULL, NULL,
			      PG_TOOL_TIMEOUT_MS, err, errlen);
		if (rc == 0)
			rc = wait_ready(dir, logf, stale, err, errlen);
	}
	free(conf);
	free(logf);
	free(dir);
	return rc;
}

/* The postmaster's pid from postmaster.pid, or 0 when there is none. */
static pid_t postmaster_pid(const struct node *n)
{
	char *dir = data_dir(n), *path = xasprintf("%s/postmaster.pid", dir);
	pid_t pid = prov_read_pid(path);

	free(dir);
	free(path);
	return pid;
}

/*
 * Whether N's postmaster runs: the pid in its postmaster.pid is a live
 * postgres process working in N's data directory.  A pid that another
 * process got since (after a host restart, say) does not count.  Returns
 * 1, 0, or -1 when it cannot be told now (the file or /proc cannot be
 * read): then nothing must be done to the node on that ground.
 */
static int postmaster_state(const struct node *n, pid_t *pidp)
{
	char *dir = data_dir(n), real[PATH_MAX];
	pid_t pid = postmaster_pid(n);
	int state = 0;

	*pidp = pid;
	if (pid == -1)
		state = -1;
	else if (prov_pid_alive(pid) && realpath(dir, real))
		state = works_in(pid, real);
	else if (prov_pid_alive(pid))
		state = errno == ENOENT ? 0 : -1;
	free(dir);
	return state;
}

static bool pg_running(struct cluster *cl, struct node *n)
{
	pid_t pid;

	return postmaster_state(n, &pid) != 0;
}

/*
 * Stop N for good: fast shutdown, given FAST_MS to finish, then
 * immediate, then SIGKILL, each with a bound.  Success means the
 * postmaster is gone (its children follow it: they exit when they notice
 * it died).
 */
/*
 * Backends of a postmaster that was killed (by rotator's last signal, or
 * by anyone) exit when they notice, which a stopped one, or one waiting
 * for a client to authenticate, may not do for a long time: they hold the
 * node's shared memory, so that it cannot start again, and its directory.
 * Each is sent SIGKILL, and given ORPHAN_WAIT_MS to go.
 */
static int end_orphans(struct cluster *cl, struct node *n, char *err,
		       size_t errlen)
{
	char *dir = data_dir(n);
	pid_t pids[MAX_ORPHANS];
	int64_t deadline = now_ms() + ORPHAN_WAIT_MS;
	int count;

	while ((count = dir_processes(dir, pids, MAX_ORPHANS)) > 0 &&
	       now_ms() < deadline) {
		log_warning("ending %d process%s left in \"%s\"", count,
			    count == 1 ? "" : "es", dir);
		for (int i = 0; i < count && i < MAX_ORPHANS; i++) {
			kill(pids[i], SIGCONT);
			kill(pids[i], SIGKILL);
		}
		sleep_ms(100);
	}
	free(dir);
	if (count <= 0)
		return 0;
	snprintf(err, errlen, "%d processes of %s/%d outlive SIGKILL", count,
		 cl->cfg->name, n->generation);
	return -1;
}

static int stop_postmaster(struct cluster *cl, struct node *n, int64_t fast_ms,
			   char *err, size_t errlen)
{
	const struct {
		int sig;
		int64_t wait_ms;
	} steps[] = {{SIGINT, fast_ms}, {SIGQUIT, 10000}, {SIGKILL, 10000}};
	pid_t pid;
	int state = postmaster_state(n, &pid);
	bool gone = state == 0;

	/* A pid another process got since is not signalled. */
	if (state == -1) {
		snprintf(err, errlen,
			 "could not tell whether postmaster %d runs", (int)pid);
		return -1;
	}

	/*
	 * Each signal comes with a SIGCONT, so that a stopped postmaster can
	 * act on it.  Its children are in sessions of their own (PostgreSQL
	 * calls setsid() in each), out of reach of a signal to its group:
	 * end_orphans() deals with those that outlive it.
	 */
	for (size_t i = 0; !gone && i < sizeof(steps) / sizeof(*steps); i++) {
		kill(pid, SIGCONT);
		if (kill(pid, steps[i].sig) == -1 && errno == ESRCH)
			gone = true;
		else if (prov_wait_gone(pid, now_ms() + steps[i].wait_ms))
			gone = true;
		else
			log_warning("postmaster %d of %s/%d ignored signal %d",
				    pid, cl->cfg->name, n->generation,
				    steps[i].sig);
	}
	if (!gone) {
		snprintf(err, errlen, "could not stop postmaster %d", (int)pid);
		return -1;
	}
	return end_orphans(cl, n, err, errlen);
}

static int pg_stop(struct cluster *cl, struct node *n, char *err, size_t errlen)
{
	return stop_postmaster(cl, n, 30000, err, errlen);
}

static int pg_ensure_running(struct cluster *cl, struct node *n, char *err,
			     size_t errlen)
{
	pid_t pid;

	switch (postmaster_state(n, &pid)) {
	case 1:
		return 0;
	case -1:
		snprintf(err, errlen,
			 "could not tell whether postmaster %d runs", (int)pid);
		return -1;
	}
	if (end_orphans(cl, n, err, errlen) == -1)
		return -1;
	return pg_start(cl, n, err, errlen);
}

static int pg_bootstrap(struct cluster *cl, struct node *n, char *err,
			size_t errlen)
{
	char *arch = archive_dir(cl), *dir = data_dir(n);
	char *pwfile = xasprintf("%s/initdb.pw", n->dir);
	char *pwopt = xasprintf("--pwfile=%s", pwfile);
	const char *argv[] = {"-D",
			      dir,
			      "-U",
			      cl->cfg->auth_user,
			      pwopt,
			      "-A",
			      "scram-sha-256",
			      "-E",
			      "UTF8",
			      "--locale=C",
			      "--data-checksums",
			      NULL};
	char *initlog = xasprintf("%s/initdb.log", n->dir);
	int rc = -1;

	if (prov_mkdir(cl, arch, 0700, err, errlen) == -1 ||
	    write_passfile(cl, err, errlen) == -1 ||
	    prov_write_file(cl, pwfile, cl->password, strlen(cl->password), err,
			    errlen) == -1)
		goto out;
	rc = prov_run(cl, "initdb", argv, NULL, initlog, PG_TOOL_TIMEOUT_MS,
		      err, errlen);
	if (unlink(pwfile) == -1)
		log_warning("could not remove \"%s\": %s", pwfile,
			    strerror(errno));
	if (rc == -1)
		goto out;
	rc = -1;
	if (write_hba(cl, n, err, errlen) == -1 ||
	    include_node_conf(cl, n, err, errlen) == -1 ||
	    write_node_conf(cl, n, NULL, err, errlen) == -1 ||
	    pg_start(cl, n, err, errlen) == -1)
		goto out;
	rc = 0;
out:
	free(initlog);
	free(pwopt);
	free(pwfile);
	free(dir);
	free(arch);
	return rc;
}

/*
 * Read pg_controldata's output for the data directory DIR into a new
 * string (caller frees), or NULL after writing ERR.
 */
static char *controldata(struct cluster *cl, const char *dir, char *err,
			 size_t errlen)
{
	char tmpl[] = "/tmp/rotator-controldata-XXXXXX";
	const char *argv[] = {"-D", dir, NULL};
	char *text = NULL;
	int fd = mkstemp(tmpl);
	uid_t uid;
	gid_t gid;

	if (fd == -1) {
		snprintf(err, errlen, "could not create temporary file: %s",
			 strerror(errno));
		return NULL;
	}
	if (prov_owner(cl, &uid, &gid, err, errlen) == 0 &&
	    fchown(fd, uid, gid) == 0 &&
	    prov_run(cl, "pg_controldata", argv, NULL, tmpl, 60000, err,
		     errlen) == 0)
		text = read_file(tmpl, NULL);
	close(fd);
	unlink(tmpl);
	return text;
}

/* The value after "KEY:" in pg_controldata output, into BUF. */
static int control_field(const char *text, const char *key, char *buf,
			 size_t len)
{
	const char *p = strstr(text, key);
	size_t n;

	if (!p)
		return -1;
	p += strlen(key);
	p += strspn(p, ": \t");
	n = strcspn(p, "\n");
	snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), p);
	return 0;
}

/*
 * Entries of the backup's own manifest by path: a new object mapping
 * each path to {"size": N, "sha256": HEX}, plus rotator's list of WAL
 * files.  Returns NULL after writing ERR.
 */
static json_t *expected_files(const char *data, json_t *manifest,
			      bool *mismatch, char *err, size_t errlen)
{
	char *path = xasprintf("%s/backup_manifest", data);
	json_t *bm = NULL, *files, *f, *expected = NULL;
	char sha[SHA256_HEX_LEN + 1];
	json_error_t jerr;
	const char *want;
	size_t i;

	*mismatch = true;
	if (sha256_file(path, sha, NULL) == -1) {
		snprintf(err, errlen, "could not read \"%s\": %s", path,
			 strerror(errno));
		goto out;
	}
	want = json_string_value(
		json_object_get(manifest, "backup_manifest_sha256"));
	if (!want || strcmp(want, sha) != 0) {
		snprintf(err, errlen,
			 "\"%s\" has SHA-256 %s, the manifest says %s", path,
			 sha, want ? want : "nothing");
		goto out;
	}
	bm = json_load_file(path, 0, &jerr);
	files = json_object_get(bm, "Files");
	if (!json_is_array(files)) {
		snprintf(err, errlen, "could not parse \"%s\": %s", path,
			 bm ? "no Files" : jerr.text);
		goto out;
	}
	expected = json_object();
	json_array_foreach (files, i, f) {
		const char *p = json_string_value(json_object_get(f, "Path"));
		const char *c =
			json_string_value(json_object_get(f, "Checksum"));

		if (!p || !c) {
			snprintf(err, errlen,
				 "\"%s\": entry %zu lacks a checksum", path, i);
			json_decref(expected);
			expected = NULL;
			goto out;
		}
		json_object_set_new(expected, p,
				    json_pack("{s:O, s:s}", "size",
					      json_object_get(f, "Size"),
					      "sha256", c));
	}
	json_array_foreach (json_object_get(manifest, "wal_files"), i, f)
		json_object_set(expected,
				json_string_value(json_object_get(f, "path")),
				f);
out:
	json_decref(bm);
	free(path);
	return expected;
}

/*
 * The walk over a snapshot's files.  nftw() takes no argument for its
 * callback, so the walk's state is thread-local.
 */
struct walk {
	const char *src;  /* snapshot data directory */
	const char *dst;  /* node data directory, or NULL to only check */
	json_t *expected; /* path -> {size, sha256}; entries removed */
	uid_t uid;
	gid_t gid;
	char *err;
	size_t errlen;
	uint64_t bytes;
	bool mismatch; /* the snapshot itself is at fault, not the copy */
};

static __thread struct walk *walk_state;

/*
 * Copy (or only read) SRC to DST, hashing as it goes, and compare size
 * and hash with WANT.  Returns 0 or -1 after writing the walk's ERR.
 */
static int copy_verified(struct walk *w, const char *rel, const char *src,
			 json_t *want)
{
	char *dst = w->dst ? xasprintf("%s/%s", w->dst, rel) : NULL;
	char hex[COPY_HEX_LEN + 1];
	int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
	int64_t size;

	if (in == -1)
		goto io_error;
	if (dst) {
		out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (out == -1 || fchown(out, w->uid, w->gid) == -1)
			goto io_error;
	}
	size = copy_hashed(in, out, hex);
	if (size == -1)
		goto io_error;
	if (json_integer_value(json_object_get(want, "size")) != size ||
	    strcmp(json_string_value(json_object_get(want, "sha256")), hex)) {
		snprintf(
			w->err, w->errlen,
			"file \"%s\" of the snapshot does not match its manifest",
			rel);
		w->mismatch = true;
		goto out;
	}
	w->bytes += (uint64_t)size;
	rc = 0;
	goto out;
io_error:
	snprintf(w->err, w->errlen, "could not copy \"%s\": %s", rel,
		 strerror(errno));
out:
	if (in != -1)
		close(in);
	if (out != -1)
		close(out);
	free(dst);
	return rc;
}

static int walk_entry(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	struct walk *w = walk_state;
	const char *rel = path + strlen(w->src);
	json_t *want;

	if (*rel == '/')
		rel++;
	if (flag == FTW_D) {
		char *dst;
		int rc = 0;

		if (!w->dst || *rel == '\0')
			return 0;
		dst = xasprintf("%s/%s", w->dst, rel);
		if (mkdir(dst, 0700) == -1 ||
		    chown(dst, w->uid, w->gid) == -1) {
			snprintf(w->err, w->errlen,
				 "could not create \"%s\": %s", dst,
				 strerror(errno));
			rc = -1;
		}
		free(dst);
		return rc;
	}
	if (flag != FTW_F) {
		snprintf(w->err, w->errlen,
			 "snapshot holds \"%s\", which is not a regular file",
			 rel);
		w->mismatch = true;
		return -1;
	}
	if (strcmp(rel, "backup_manifest") == 0)
		return 0;
	want = json_object_get(w->expected, rel);
	if (!want) {
		snprintf(w->err, w->errlen,
			 "snapshot holds \"%s\", which no manifest lists", rel);
		w->mismatch = true;
		return -1;
	}
	if (copy_verified(w, rel, path, want) == -1)
		return -1;
	json_object_del(w->expected, rel);
	return 0;
}

/*
 * Walk the snapshot data directory SRC: every file must be listed by a
 * manifest and match it, and every listed file must be there.  With DST,
 * copy the tree there as it is checked, owned by run_as.  Returns 0, -2
 * when the snapshot does not match its manifests, or -1 for any other
 * failure, after writing ERR.
 */
static int walk_snapshot(struct cluster *cl, const char *src, const char *dst,
			 json_t *manifest, char *err, size_t errlen)
{
	struct walk w = {.src = src, .dst = dst, .err = err, .errlen = errlen};
	int rc = -1;

	err[0] = '\0';
	w.expected = expected_files(src, manifest, &w.mismatch, err, errlen);
	if (!w.expected)
		return w.mismatch ? -2 : -1;
	w.mismatch = false;
	if (prov_owner(cl, &w.uid, &w.gid, err, errlen) == -1)
		goto out;
	walk_state = &w;
	if (nftw(src, walk_entry, 64, FTW_PHYS) != 0) {
		if (!err[0])
			snprintf(err, errlen, "could not walk \"%s\": %s", src,
				 strerror(errno));
		goto out;
	}
	if (json_object_size(w.expected) > 0) {
		snprintf(err, errlen,
			 "snapshot lacks \"%s\", which its manifest lists",
			 json_object_iter_key(json_object_iter(w.expected)));
		w.mismatch = true;
		goto out;
	}
	log_debug("checked %" PRIu64 " bytes of \"%s\"", w.bytes, src);
	rc = 0;
out:
	walk_state = NULL;
	json_decref(w.expected);
	return rc == -1 && w.mismatch ? -2 : rc;
}

/*
 * Describe the files under DATA/pg_wal (segments, and the archive status
 * marks beside them) for the manifest: backup_manifest does not list
 * them.  REL is the directory relative to DATA.
 */
static int list_wal(const char *data, const char *rel, json_t *files, char *err,
		    size_t errlen)
{
	char *dir = xasprintf("%s/%s", data, rel);
	DIR *d = opendir(dir);
	struct dirent *de;
	int rc = 0;

	if (!d) {
		snprintf(err, errlen, "could not open \"%s\": %s", dir,
			 strerror(errno));
		free(dir);
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		char *sub = xasprintf("%s/%s", rel, de->d_name);
		char *path = xasprintf("%s/%s", data, sub);
		char sha[SHA256_HEX_LEN + 1];
		uint64_t size;

		if (de->d_name[0] == '.')
			;
		else if (de->d_type == DT_DIR)
			rc = list_wal(data, sub, files, err, errlen);
		else if (sha256_file(path, sha, &size) == -1) {
			snprintf(err, errlen, "could not read \"%s\": %s", path,
				 strerror(errno));
			rc = -1;
		} else {
			json_array_append_new(
				files, json_pack("{s:s, s:I, s:s}", "path", sub,
						 "size", (json_int_t)size,
						 "sha256", sha));
		}
		free(path);
		free(sub);
	}
	closedir(d);
	free(dir);
	return rc;
}

/*
 * Fill the manifest from what pg_basebackup left in DATA: the WAL range
 * and the size from backup_manifest, the system identifier from
 * pg_control, the hash of backup_manifest.
 */
static int describe_backup(struct cluster *cl, const char *data,
			   json_t *manifest, char *err, size_t errlen)
{
	char *path = xasprintf("%s/backup_manifest", data);
	char sha[SHA256_HEX_LEN + 1], sysid[64];
	json_t *bm, *range, *f;
	json_int_t size = 0;
	json_error_t jerr;
	char *control = NULL;
	size_t i;
	int rc = -1;

	bm = json_load_file(path, 0, &jerr);
	range = json_array_get(json_object_get(bm, "WAL-Ranges"), 0);
	if (!range || sha256_file(path, sha, NULL) == -1) {
		snprintf(err, errlen, "could not read \"%s\": %s", path,
			 bm ? "no WAL-Ranges" : jerr.text);
		goto out;
	}
	json_array_foreach (json_object_get(bm, "Files"), i, f)
		size += json_integer_value(json_object_get(f, "Size"));
	control = controldata(cl, data, err, errlen);
	if (!control)
		goto out;
	if (control_field(control, "Database system identifier", sysid,
			  sizeof(sysid)) == -1) {
		snprintf(err, errlen,
			 "pg_controldata gave no system identifier");
		goto out;
	}
	json_object_set_new(manifest, "size", json_integer(size));
	json_object_set_new(manifest, "backup_manifest_sha256",
			    json_string(sha));
	json_object_set_new(
		manifest, "position",
		json_pack("{s:O, s:O, s:O, s:s}", "timeline",
			  json_object_get(range, "Timeline"), "start_lsn",
			  json_object_get(range, "Start-LSN"), "end_lsn",
			  json_object_get(range, "End-LSN"),
			  "system_identifier", sysid));
	json_object_set_new(manifest, "wal_files", json_array());
	rc = list_wal(data, "pg_wal", json_object_get(manifest, "wal_files"),
		      err, errlen);
out:
	free(control);
	json_decref(bm);
	free(path);
	return rc;
}

/*
 * Take over the running primary at N's host and port.  It must be a
 * PostgreSQL 15 primary on this host (the fence stops its postmaster),
 * reachable as a superuser and for replication, with its data directory
 * owned by run_as.  N's directory becomes that data directory.
 */
static int pg_adopt(struct cluster *cl, struct node *n, char *err,
		    size_t errlen)
{
	static const char sql[] =
		"SELECT current_setting('server_version_num')::int, "
		"pg_is_in_recovery(), current_setting('data_directory'), "
		"current_setting('config_file'), current_setting('wal_level'), "
		"current_setting('max_wal_senders')::int, "
		"(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)";
	char v[7][PG_VALUE_LEN], *own_conf, *arch, *logs;
	int rc;
	struct stat st;
	uid_t uid;
	gid_t gid;

	if (strcmp(n->host, "127.0.0.1") && strcmp(n->host, "localhost")) {
		snprintf(
			err, errlen,
			"cannot adopt %s: the server must run on this host, where rotator can fence it",
			n->host);
		return -1;
	}
	if (pg_once(cl, n, sql, v, 7, err, errlen) == -1 ||
	    prov_owner(cl, &uid, &gid, err, errlen) == -1)
		return -1;
	err[0] = '\0';
	if (atoi(v[0]) < 150000 || atoi(v[0]) >= 160000)
		snprintf(err, errlen, "server version %s is not 15", v[0]);
	else if (strcmp(v[1], "f") != 0)
		snprintf(err, errlen, "server is in recovery, not a primary");
	else if (strcmp(v[4], "minimal") == 0 || atoi(v[5]) < 2)
		snprintf(
			err, errlen,
			"server needs wal_level replica and max_wal_senders of at least 2");
	else if (strcmp(v[6], "t") != 0)
		snprintf(err, errlen, "role \"%s\" is not a superuser",
			 cl->cfg->auth_user);
	else if (stat(v[2], &st) == -1 || st.st_uid != uid)
		snprintf(
			err, errlen,
			"data directory \"%s\" is not owned by provisioner.run_as",
			v[2]);
	if (err[0])
		return -1;

	free(n->dir);
	free(n->conf_file);
	n->dir = xstrdup(v[2]);
	own_conf = xasprintf("%s/postgresql.conf", v[2]);
	n->conf_file = strcmp(own_conf, v[3]) ? xstrdup(v[3]) : NULL;
	free(own_conf);
	if (!prov_pid_alive(postmaster_pid(n))) {
		snprintf(err, errlen, "no postmaster runs in \"%s\"", v[2]);
		return -1;
	}
	/* rotator's archive, and a directory for the server's own log. */
	arch = archive_dir(cl);
	logs = xasprintf("%s/logs", cl->dir);
	rc = prov_mkdir(cl, arch, 0700, err, errlen);
	if (rc == 0)
		rc = prov_mkdir(cl, logs, 0700, err, errlen);
	free(logs);
	free(arch);
	return rc == -1 ? -1 : write_passfile(cl, err, errlen);
}

/*
 * The WAL of an adopted primary is not in rotator's archive: its
 * snapshot creates the slot ADOPT_SLOT as the backup starts (dropping the
 * slot of an earlier snapshot), so the primary keeps every segment from
 * there on for the fresh node that will stream through that slot.
 */
static int reset_adopt_slot(struct cluster *cl, struct node *primary, char *err,
			    size_t errlen)
{
	return pg_once(
		cl, primary,
		"SELECT count(pg_drop_replication_slot(slot_name)) "
		"FROM pg_replication_slots WHERE slot_name = '" ADOPT_SLOT
		"' AND NOT active",
		NULL, 0, err, errlen);
}

static int pg_snapshot(struct cluster *cl, struct node *primary,
		       const char *dir, json_t *manifest, char *err,
		       size_t errlen)
{
	char *data = xasprintf("%s/data", dir), *pass = passfile(cl);
	char *env_pass = xasprintf("PGPASSFILE=%s", pass);
	char port[16], label[PG_VALUE_LEN];
	const char *env[] = {env_pass, NULL};
	const char *basebackup[] = {
		"-h",	primary->host, "-p",
		port,	"-U",	       cl->cfg->auth_user,
		"-D",	data,	       "-Fp",
		"-X",	"stream",      "-c",
		"fast", "-w",	       "--manifest-checksums=SHA256",
		"-l",	label,	       NULL,
		NULL,	NULL,	       NULL, /* room for the adopted slot */
	};
	const char *verify[] = {"--quiet", data, NULL};
	int rc = -1;

	if (primary->adopted) {
		basebackup[17] = "-C";
		basebackup[18] = "-S";
		basebackup[19] = ADOPT_SLOT;
		json_object_set_new(manifest, "source_adopted", json_true());
		if (reset_adopt_slot(cl, primary, err, errlen) == -1)
			goto out;
	}
	snprintf(port, sizeof(port), "%d", primary->port);
	snprintf(label, sizeof(label), "rotator %s",
		 json_string_value(json_object_get(manifest, "id")));
	if (write_passfile(cl, err, errlen) == -1 ||
	    prov_run(cl, "pg_basebackup", basebackup, env, NULL,
		     PG_TOOL_TIMEOUT_MS, err, errlen) == -1 ||
	    prov_run(cl, "pg_verifybackup", verify, NULL, NULL,
		     PG_TOOL_TIMEOUT_MS, err, errlen) == -1 ||
	    describe_backup(cl, data, manifest, err, errlen) == -1)
		goto out;
	rc = 0;
out:
	free(env_pass);
	free(pass);
	free(data);
	return rc;
}

/* pg_verifybackup, run beside walk_snapshot() by pg_verify_snapshot(). */
struct verify_tool {
	struct cluster *cl;
	const char *data;
	int rc;
	char err[512];
};

static void *verify_tool_main(void *arg)
{
	struct verify_tool *v = arg;
	const char *argv[] = {"--quiet", "--skip-checksums", v->data, NULL};

	v->rc = prov_run(v->cl, "pg_verifybackup", argv, NULL, NULL,
			 PG_TOOL_TIMEOUT_MS, v->err, sizeof(v->err));
	return NULL;
}

/*
 * walk_snapshot() hashes every file against backup_manifest and
 * rotator's manifest; pg_verifybackup checks the rest (the manifest's
 * own checksum, the WAL it needs, parsed) with --skip-checksums, so that
 * no byte is hashed twice, and in a thread of its own, so that its time
 * hides behind the hashing.  Both must pass.
 */
static int pg_verify_snapshot(struct cluster *cl, const char *dir,
			      json_t *manifest, char *err, size_t errlen)
{
	struct verify_tool v = {.cl = cl, .data = xasprintf("%s/data", dir)};
	pthread_t tool;
	int rc;

	if (pthread_create(&tool, NULL, verify_tool_main, &v) != 0)
		abort();
	rc = walk_snapshot(cl, v.data, NULL, manifest, err, errlen) == 0 ? 0
									 : -1;
	pthread_join(tool, NULL);
	if (rc == 0 && v.rc != 0) {
		snprintf(err, errlen, "%s", v.err);
		rc = -1;
	}
	free((char *)v.data);
	return rc;
}

static int sync_tree(const char *dir, char *err, size_t errlen)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd == -1 ? -1 : syncfs(fd);

	if (rc == -1)
		snprintf(err, errlen, "could not sync \"%s\": %s", dir,
			 strerror(errno));
	if (fd != -1)
		close(fd);
	return rc;
}

/*
 * Lay a restore point down into FRESH and start it as a standby of
 * PRIMARY:
 *
 * 1. copy every file of the snapshot, hashing each as it is copied and
 *    refusing any that its manifest does not list or that differs;
 * 2. flush the whole tree to disk;
 * 3. write rotator.conf (own port, primary_conninfo) and standby.signal;
 * 4. start it; it restores the archived WAL, then streams.
 */
static int pg_seed(struct cluster *cl, const char *dir, json_t *manifest,
		   struct node *fresh, struct node *primary, char *err,
		   size_t errlen)
{
	char *src = xasprintf("%s/data", dir), *dst = data_dir(fresh);
	char *signal = xasprintf("%s/standby.signal", dst);
	int rc = -1;

	if (prov_mkdir(cl, dst, 0700, err, errlen) == -1)
		goto out;

	/* Step 1 and 2. */
	rc = walk_snapshot(cl, src, dst, manifest, err, errlen);
	if (rc != 0)
		goto out;
	rc = -1;
	if (sync_tree(dst, err, errlen) == -1)
		goto out;

	/* Step 3. */
	if (write_passfile(cl, err, errlen) == -1 ||
	    include_node_conf(cl, fresh, err, errlen) == -1 ||
	    write_node_conf(cl, fresh, primary, err, errlen) == -1 ||
	    prov_write_file(cl, signal, "", 0, err, errlen) == -1)
		goto out;

	/* Step 4. */
	rc = pg_start(cl, fresh, err, errlen);
out:
	free(signal);
	free(dst);
	free(src);
	return rc;
}

#define PRIMARY_TIMELINE_SQL                                                   \
	"('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))"         \
	"::bit(32)::int"

/*
 * Caught up means: streaming from the primary on the primary's own
 * timeline (a node born from an older timeline's snapshot first follows
 * the history files), and replayed to within the lag bound.
 */
static int pg_catch_up(struct cluster *cl, struct node *fresh,
		       struct node *primary, struct catch_up *state, char *err,
		       size_t errlen)
{
	char f[4][PG_VALUE_LEN], p[2][PG_VALUE_LEN];
	uint64_t replay, current;

	if (pg_once(cl, fresh,
		    "SELECT pg_is_in_recovery(), coalesce((SELECT status "
		    "FROM pg_stat_wal_receiver), 'none'), "
		    "coalesce(pg_last_wal_replay_lsn()::text, '0/0'), "
		    "coalesce((SELECT received_tli FROM pg_stat_wal_receiver), 0)",
		    f, 4, err, errlen) == -1 ||
	    pg_once(cl, primary,
		    "SELECT pg_current_wal_lsn(), " PRIMARY_TIMELINE_SQL, p, 2,
		    err, errlen) == -1)
		return -1;
	if (strcmp(f[0], "t") != 0) {
		snprintf(err, errlen, "fresh node is not in recovery");
		return -1;
	}
	if (parse_lsn(f[2], &replay) == -1 || parse_lsn(p[0], &current) == -1) {
		snprintf(err, errlen, "could not parse LSN \"%s\" or \"%s\"",
			 f[2], p[0]);
		return -1;
	}
	state->streaming =
		strcmp(f[1], "streaming") == 0 && strcmp(f[3], p[1]) == 0;
	state->lag_bytes = current > replay ? (int64_t)(current - replay) : 0;
	snprintf(state->detail, sizeof(state->detail),
		 "receiver %s on timeline %s, replayed %s, primary at %s on "
		 "timeline %s",
		 f[1], f[3], f[2], p[0], p[1]);
	return 0;
}

static int run_canaries(struct cluster *cl, PGconn *conn, char *err,
			size_t errlen)
{
	for (int i = 0; i < cl->cfg->n_canary; i++) {
		PGresult *res = PQexec(conn, cl->cfg->canary[i]);
		ExecStatusType st = PQresultStatus(res);

		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			snprintf(err, errlen, "canary query %d failed: %s",
				 i + 1, PQresultErrorMessage(res));
			err[strcspn(err, "\n")] = '\0';
			PQclear(res);
			return -1;
		}
		PQclear(res);
	}
	return 0;
}

/*
 * Before a fresh node may replace the primary it must be in recovery,
 * streaming, on the primary's timeline, with the primary's system
 * identifier, within the lag bound, and answer the canary queries.
 */
static int pg_verify_replica(struct cluster *cl, struct node *fresh,
			     struct node *primary, char *err, size_t errlen)
{
	static const char fresh_sql[] =
		"SELECT pg_is_in_recovery(), "
		"coalesce((SELECT status FROM pg_stat_wal_receiver), 'none'), "
		"coalesce((SELECT received_tli FROM pg_stat_wal_receiver), 0), "
		"(SELECT system_identifier FROM pg_control_system())";
	static const char primary_sql[] =
		"SELECT " PRIMARY_TIMELINE_SQL ", "
		"(SELECT system_identifier FROM pg_control_system())";
	char f[4][PG_VALUE_LEN], p[2][PG_VALUE_LEN];
	struct catch_up cu = {0};
	PGconn *conn;
	int rc = -1;

	if (pg_once(cl, primary, primary_sql, p, 2, err, errlen) == -1)
		return -1;
	conn = pg_connect(cl, fresh, err, errlen);
	if (!conn)
		return -1;
	if (pg_row(conn, fresh_sql, f, 4, err, errlen) == -1)
		goto out;
	if (strcmp(f[0], "t") != 0)
		snprintf(err, errlen, "fresh node is not in recovery");
	else if (strcmp(f[1], "streaming") != 0)
		snprintf(err, errlen, "fresh node is not streaming (%s)", f[1]);
	else if (strcmp(f[2], p[0]) != 0)
		snprintf(err, errlen,
			 "fresh node is on timeline %s, the primary on %s",
			 f[2], p[0]);
	else if (strcmp(f[3], p[1]) != 0)
		snprintf(err, errlen,
			 "fresh node has system identifier %s, the primary %s",
			 f[3], p[1]);
	else if (pg_catch_up(cl, fresh, primary, &cu, err, errlen) == -1)
		; /* err says why */
	else if (cu.lag_bytes > cl->cfg->max_lag_bytes)
		snprintf(err, errlen, "fresh node is %" PRId64 " bytes behind",
			 cu.lag_bytes);
	else
		rc = run_canaries(cl, conn, err, errlen);
out:
	PQfinish(conn);
	return rc;
}

/* A checkpoint of a busy primary may take long: it is not yet held. */
static int pg_wait_replayed(struct cluster *cl, struct node *fresh,
			    const struct fence_point *point, int64_t deadline,
			    char *err, size_t errlen);

/*
 * A WAL record written on OLD now (a transaction that only takes an xid
 * and commits), and the fresh node seen replaying it within PG_LIVE_MS:
 * the stream is live at this very moment, not only reported so.  A
 * fresh node that has replayed a whole restored segment may yet have to
 * start streaming the next one, and if the next record it needed were
 * the old primary's shutdown checkpoint, it could miss the switch's
 * deadline waiting for it.
 */
static int stream_live(struct cluster *cl, PGconn *old, int fresh_gen,
		       char *err, size_t errlen)
{
	struct fence_point point = {0};
	struct node *n, fresh = {0};
	char v[1][PG_VALUE_LEN];
	int rc = 0;

	if (pg_row_within(old, "SELECT txid_current()", v, 1,
			  PG_QUERY_TIMEOUT_MS, err, errlen) == -1 ||
	    pg_row_within(old, "SELECT pg_current_wal_lsn()", v, 1,
			  PG_QUERY_TIMEOUT_MS, err, errlen) == -1 ||
	    parse_lsn(v[0], &point.value) == -1)
		return -1;
	snprintf(point.position, sizeof(point.position), "%s", v[0]);
	point.value--; /* pg_wait_replayed() waits for past it */
	pthread_mutex_lock(&cl->lock);
	n = cluster_node(cl, fresh_gen);
	if (n)
		node_copy(&fresh, n);
	pthread_mutex_unlock(&cl->lock);
	if (fresh.generation)
		rc = pg_wait_replayed(cl, &fresh, &point, now_ms() + PG_LIVE_MS,
				      err, errlen);
	node_release(&fresh);
	return rc;
}

/*
 * Before the switch, while the old primary still serves:
 *
 * - a CHECKPOINT, so that the shutdown checkpoint has little to write;
 * - a record that the fresh node must replay at once (stream_live());
 * - every WAL sender but the fresh node's is ended.  A fast shutdown
 *   waits until each WAL sender has sent everything and heard it
 *   flushed, so one replica that hangs would hold the fence past its
 *   deadline.  The other replicas lose nothing: they reconnect (a hung
 *   one cannot), and after the switch they follow the fresh node, which
 *   has all the old primary wrote.
 */
static int pg_prepare_switch(struct cluster *cl, struct node *old, char *err,
			     size_t errlen)
{
	PGconn *conn = pg_connect(cl, old, err, errlen);
	char sql[256];
	int fresh = 0, rc;

	if (!conn)
		return -1;
	rc = pg_row_within(conn, "CHECKPOINT", NULL, 0,
			   cl->cfg->catch_up_timeout_ms, err, errlen);
	pthread_mutex_lock(&cl->lock);
	for (int i = 0; i < cl->n_nodes; i++)
		if (cl->nodes[i].role == NODE_FRESH)
			fresh = cl->nodes[i].generation;
	pthread_mutex_unlock(&cl->lock);
	snprintf(sql, sizeof(sql),
		 "SELECT count(pg_terminate_backend(pid)) FROM "
		 "pg_stat_replication WHERE application_name <> '%s_%d'",
		 cl->cfg->name, fresh);
	if (rc == 0 && fresh > 0)
		rc = stream_live(cl, conn, fresh, err, errlen);
	if (rc == 0 && fresh > 0)
		rc = pg_row_within(conn, sql, NULL, 0, PG_QUERY_TIMEOUT_MS, err,
				   errlen);
	PQfinish(conn);
	return rc;
}

/*
 * Fence the old primary: a fast shutdown, which ends every session,
 * writes a shutdown checkpoint and, before the postmaster exits, hands
 * all WAL up to it to the connected standbys.  pg_controldata then says
 * where that checkpoint is: the fresh node must replay past it.
 */
/*
 * The path of the WAL segment, in data directory DIR, that holds the
 * fence point, into POINT->source; left empty when pg_controldata's
 * CONTROL output does not tell the timeline or the segment size.
 */
static void segment_of(const char *control, const char *dir,
		       struct fence_point *point)
{
	char tli[32], size[32];
	unsigned long long seg_size, segno;

	point->source[0] = '\0';
	if (control_field(control, "Latest checkpoint's TimeLineID", tli,
			  sizeof(tli)) == -1 ||
	    control_field(control, "Bytes per WAL segment", size,
			  sizeof(size)) == -1)
		return;
	seg_size = strtoull(size, NULL, 10);
	if (seg_size == 0 || 0x100000000ULL % seg_size != 0)
		return;
	segno = point->value / seg_size;
	snprintf(point->source, sizeof(point->source),
		 "%s/pg_wal/%08lX%08llX%08llX", dir, strtoul(tli, NULL, 10),
		 segno / (0x100000000ULL / seg_size),
		 segno % (0x100000000ULL / seg_size));
}

static int pg_fence(struct cluster *cl, struct node *old,
		    struct fence_point *point, int64_t deadline, char *err,
		    size_t errlen)
{
	pid_t pid = postmaster_pid(old);
	char *dir = data_dir(old), *control = NULL;
	char state[64], where[64];
	int rc = -1;

	if (!prov_pid_alive(pid)) {
		snprintf(err, errlen, "old primary is not running");
		goto out;
	}
	if (kill(pid, SIGINT) == -1) {
		snprintf(err, errlen, "could not signal postmaster %d: %s",
			 (int)pid, strerror(errno));
		goto out;
	}
	if (!prov_wait_gone(pid, deadline)) {
		snprintf(err, errlen, "old primary did not shut down in time");
		goto out;
	}
	control = controldata(cl, dir, err, errlen);
	if (!control)
		goto out;
	if (control_field(control, "Database cluster state", state,
			  sizeof(state)) == -1 ||
	    control_field(control, "Latest checkpoint location", where,
			  sizeof(where)) == -1 ||
	    parse_lsn(where, &point->value) == -1) {
		snprintf(err, errlen, "could not read the shutdown checkpoint");
		goto out;
	}
	if (strcmp(state, "shut down") != 0) {
		snprintf(err, errlen, "old primary stopped in state \"%s\"",
			 state);
		goto out;
	}
	snprintf(point->position, sizeof(point->position), "%s", where);
	segment_of(control, dir, point);
	rc = 0;
out:
	free(control);
	free(dir);
	return rc;
}

static int pg_unfence(struct cluster *cl, struct node *old, char *err,
		      size_t errlen)
{
	/*
	 * A fast shutdown can hang on a walsender that waits for a standby
	 * which no longer answers: pg_stop() escalates to an immediate
	 * shutdown and then to SIGKILL, which lose nothing committed (the
	 * WAL is on disk; the start does crash recovery).
	 */
	if (stop_postmaster(cl, old, 5000, err, errlen) == -1)
		return -1;
	return pg_start(cl, old, err, errlen);
}

/*
 * Copy the WAL segment file SOURCE (of the stopped old primary) into
 * FRESH's pg_wal under its own name, as run_as, by rename so that
 * recovery never reads half of it.  The bytes are the ones the stream
 * would have brought.  Logged, never fatal: the deadline still decides.
 */
static void hand_segment(struct cluster *cl, const struct node *fresh,
			 const char *source)
{
	const char *name = strrchr(source, '/');
	char *dir = data_dir(fresh), *tmp, *dest, err[512];
	size_t len;
	char *buf = read_file(source, &len);

	name = name ? name + 1 : source;
	tmp = xasprintf("%s/pg_wal/%s.rotator", dir, name);
	dest = xasprintf("%s/pg_wal/%s", dir, name);
	if (!buf)
		log_warning("could not read \"%s\": %s", source,
			    strerror(errno));
	else if (prov_write_file(cl, tmp, buf, len, err, sizeof(err)) == -1)
		log_warning("could not write \"%s\": %s", tmp, err);
	else if (rename(tmp, dest) == -1)
		log_warning("could not rename \"%s\": %s", tmp,
			    strerror(errno));
	else
		log_info("handed WAL segment %s of the old primary to "
			 "generation %d",
			 name, fresh->generation);
	free(buf);
	free(dest);
	free(tmp);
	free(dir);
}

static int pg_wait_replayed(struct cluster *cl, struct node *fresh,
			    const struct fence_point *point, int64_t deadline,
			    char *err, size_t errlen)
{
	PGconn *conn = pg_connect(cl, fresh, err, errlen);
	int64_t hand_at = now_ms() + PG_HAND_MS;
	char v[1][PG_VALUE_LEN];
	bool handed = false;
	uint64_t replay = 0;
	int rc = -1;

	if (!conn)
		return -1;
	for (;;) {
		if (pg_row_within(conn,
				  "SELECT coalesce(pg_last_wal_replay_lsn()"
				  "::text, '0/0')",
				  v, 1, deadline - now_ms(), err, errlen) == -1)
			break;
		if (parse_lsn(v[0], &replay) == 0 && replay > point->value) {
			rc = 0;
			break;
		}
		if (now_ms() > deadline) {
			snprintf(err, errlen,
				 "fresh node replayed only to %s, not past %s",
				 v[0], point->position);
			break;
		}

		/*
		 * With archive_mode on, a shutdown switches WAL segments, so
		 * the shutdown checkpoint is the first record of a new one.
		 * A fresh node has been seen stopping at that boundary, its
		 * stream gone with the old primary and the segment neither
		 * streamed nor archived: it then waits out the switch.  The
		 * old primary, stopped, holds the segment in its pg_wal; put
		 * it in the fresh node's, where recovery looks next.
		 */
		if (point->source[0] && !handed && now_ms() >= hand_at) {
			handed = true;
			hand_segment(cl, fresh, point->source);
		}
		sleep_ms(1);
	}
	PQfinish(conn);
	return rc;
}

/*
 * Promote FRESH.  pg_promote(wait => false) returns at once; polling
 * pg_is_in_recovery() every millisecond sees the end of recovery sooner
 * than pg_promote's own 100 ms wait loop would.
 */
static int pg_promote(struct cluster *cl, struct node *fresh, int64_t deadline,
		      char *err, size_t errlen)
{
	PGconn *conn = pg_connect(cl, fresh, err, errlen);
	char v[1][PG_VALUE_LEN];
	int rc = -1;

	if (!conn)
		return -1;

	/*
	 * pg_promote() raises an error on a server out of recovery: asked
	 * again (a retry, or recovery after a crash), a node that was
	 * already promoted is simply confirmed.
	 */
	if (pg_row_within(conn, "SELECT pg_is_in_recovery()", v, 1,
			  deadline - now_ms(), err, errlen) == -1 ||
	    (strcmp(v[0], "t") == 0 &&
	     pg_row_within(conn, "SELECT pg_promote(false)", v, 1,
			   deadline - now_ms(), err, errlen) == -1))
		goto out;
	for (;;) {
		if (pg_row_within(conn, "SELECT pg_is_in_recovery()", v, 1,
				  deadline - now_ms(), err, errlen) == -1)
			goto out;
		if (strcmp(v[0], "f") == 0)
			break;
		if (now_ms() > deadline) {
			snprintf(err, errlen,
				 "fresh node is still in recovery");
			goto out;
		}
		sleep_ms(1);
	}

	/* It follows no one now: drop primary_conninfo from its settings. */
	if (write_node_conf(cl, fresh, NULL, err, errlen) == -1 ||
	    pg_row_within(conn, "SELECT pg_reload_conf()", v, 1,
			  deadline - now_ms(), err, errlen) == -1)
		log_warning("%s/%d: %s", cl->cfg->name, fresh->generation, err);
	rc = 0;
out:
	PQfinish(conn);
	return rc;
}

/*
 * Point REPLICA at PRIMARY, just promoted: a new primary_conninfo and a
 * reload (PostgreSQL 13 and later restart the WAL receiver on it).  With
 * recovery_target_timeline 'latest' and the archive holding the new
 * timeline's history file, the replica switches to that timeline by
 * itself.  Confirmed once its receiver streams from PRIMARY's port on
 * PRIMARY's timeline.
 */
static int pg_follow(struct cluster *cl, struct node *replica,
		     struct node *primary, int64_t deadline, char *err,
		     size_t errlen)
{
	char v[2][PG_VALUE_LEN], p[1][PG_VALUE_LEN], port[16];
	PGconn *conn;
	int rc = -1;

	if (write_node_conf(cl, replica, primary, err, errlen) == -1)
		return -1;
	conn = pg_connect(cl, replica, err, errlen);
	if (!conn)
		return -1;
	if (pg_row_within(conn, "SELECT pg_reload_conf()", v, 1,
			  deadline - now_ms(), err, errlen) == -1 ||
	    pg_once(cl, primary, "SELECT " PRIMARY_TIMELINE_SQL, p, 1, err,
		    errlen) == -1)
		goto out;
	snprintf(port, sizeof(port), "%d", primary->port);
	for (;;) {
		if (pg_row_within(conn,
				  "SELECT coalesce((SELECT status || ':' || "
				  "sender_port FROM pg_stat_wal_receiver), "
				  "'none'), coalesce((SELECT received_tli "
				  "FROM pg_stat_wal_receiver), 0)",
				  v, 2, deadline - now_ms(), err, errlen) == -1)
			goto out;
		if (strncmp(v[0], "streaming:", 10) == 0 &&
		    strcmp(v[0] + 10, port) == 0 && strcmp(v[1], p[0]) == 0)
			break;
		if (now_ms() > deadline) {
			snprintf(err, errlen,
				 "replica does not stream from port %s on "
				 "timeline %s (receiver %s, timeline %s)",
				 port, p[0], v[0], v[1]);
			goto out;
		}
		sleep_ms(20);
	}
	rc = 0;
out:
	PQfinish(conn);
	return rc;
}

/* Remove archived segments older than the oldest kept restore point. */
static void pg_prune_archive(struct cluster *cl, json_t *oldest)
{
	json_t *pos = json_object_get(oldest, "position");
	const char *start =
		json_string_value(json_object_get(pos, "start_lsn"));
	json_int_t tli = json_integer_value(json_object_get(pos, "timeline"));
	char *arch = archive_dir(cl);
	char walfile[32], err[512];
	const char *argv[] = {arch, walfile, NULL};
	uint64_t lsn;

	if (parse_lsn(start, &lsn) == 0 && tli > 0) {
		snprintf(walfile, sizeof(walfile), "%08X%08X%08X",
			 (unsigned)tli, (unsigned)(lsn >> 32),
			 (unsigned)((lsn & 0xffffffffu) / PG_WAL_SEGMENT));
		if (prov_run(cl, "pg_archivecleanup", argv, NULL, NULL, 60000,
			     err, sizeof(err)) == -1)
			log_warning("could not prune the WAL archive: %s", err);
	}
	free(arch);
}

static void pg_release_restore_point(struct cluster *cl, struct node *primary)
{
	char err[512];

	if (primary->adopted &&
	    reset_adopt_slot(cl, primary, err, sizeof(err)) == -1)
		log_warning("could not drop slot \"" ADOPT_SLOT
			    "\" of %s/%d: %s",
			    cl->cfg->name, primary->generation, err);
}

const struct adapter postgres_adapter = {
	.restart_lost_primary = true,
	.name = "postgres",
	.bootstrap = pg_bootstrap,
	.adopt = pg_adopt,
	.snapshot = pg_snapshot,
	.verify_snapshot = pg_verify_snapshot,
	.seed = pg_seed,
	.catch_up = pg_catch_up,
	.verify_replica = pg_verify_replica,
	.prepare_switch = pg_prepare_switch,
	.fence = pg_fence,
	.unfence = pg_unfence,
	.wait_replayed = pg_wait_replayed,
	.promote = pg_promote,
	.follow = pg_follow,
	.ensure_running = pg_ensure_running,
	.running = pg_running,
	.prune_archive = pg_prune_archive,
	.release_restore_point = pg_release_restore_point,
	.stop = pg_stop,
};
