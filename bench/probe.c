/*
 * probe.c: the write probe of "make bench".  It commits one write per
 * operation through a TCP address (rotator's endpoint, or a plain
 * primary), at most one every INTERVAL microseconds, reconnects at once
 * after an error, and records the monotonic time of every acknowledgement
 * and every error.  When told to stop (SIGTERM, SIGINT or --seconds) it
 * reads the whole key back from the final primary, counts what was
 * acknowledged but is missing, reads the rotation intervals the harness
 * wrote and prints one JSON object on standard output.
 *
 *   probe [OPTIONS] postgres|redis HOST:PORT
 *
 * postgres: INSERT INTO KEY (seq) VALUES (N), one autocommit statement.
 * redis: RPUSH KEY N.  With --follow the probe finds the primary among
 * the listed addresses (the one whose ROLE is master) after an error, as
 * a client that asks Sentinel would; the Redis baseline uses that.
 *
 * The intervals file holds one line per rotation, "LABEL START END", in
 * wall-clock milliseconds since the epoch.  They are mapped onto the
 * monotonic clock by the offset between the two clocks taken at start.
 * For each interval the probe reports the write window (the longest time
 * between two consecutive acknowledgements that overlaps the interval),
 * the acknowledged writes that are missing and the failed operations.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#define MAX_FOLLOW 8
#define MAX_WINDOWS 64
#define LABEL_LEN 64

static volatile sig_atomic_t stop_flag;

struct addr {
	char host[64];
	char port[8];
};

struct seqs {
	int64_t *v;
	size_t n, cap;
};

struct window {
	char label[LABEL_LEN];
	int64_t start_us, end_us; /* monotonic */
	int64_t gap_us, gap_at_us;
	long lost, failed, acked;
};

struct probe {
	bool redis;
	struct addr target;
	struct addr follow[MAX_FOLLOW];
	int n_follow;
	const char *user, *password, *key, *ready_path, *windows_path;
	int64_t interval_us, limit_us;
	int64_t clock_offset_us; /* wall minus monotonic */
	PGconn *pg;
	redisContext *rc;
	struct seqs acked_seq, acked_us, error_us;
	struct window windows[MAX_WINDOWS];
	int n_windows;
	int64_t started_us, stopped_us;
};

static int64_t clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

static void sleep_until_us(int64_t when)
{
	struct timespec ts = {.tv_sec = when / 1000000,
			      .tv_nsec = (when % 1000000) * 1000};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
		       EINTR &&
	       !stop_flag)
		;
}

static void on_signal(int sig)
{
	stop_flag = 1;
}

static void push(struct seqs *s, int64_t v)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 65536;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v) {
			fprintf(stderr, "probe: out of memory\n");
			exit(1);
		}
	}
	s->v[s->n++] = v;
}

static int parse_addr(const char *text, struct addr *a)
{
	const char *colon = strrchr(text, ':');

	if (!colon || colon == text ||
	    (size_t)(colon - text) >= sizeof(a->host) ||
	    strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(a->port))
		return -1;
	memcpy(a->host, text, (size_t)(colon - text));
	a->host[colon - text] = '\0';
	strcpy(a->port, colon + 1);
	return 0;
}

static char *read_password(const char *path)
{
	char buf[1024];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return strdup(buf);
}

/* ---- PostgreSQL ---- */

static PGconn *pg_open(struct probe *p)
{
	const char *keys[] = {"host",	 "port",
			      "user",	 "password",
			      "dbname",	 "connect_timeout",
			      "sslmode", "application_name",
			      NULL};
	const char *values[] = {p->target.host, p->target.port,	 p->user,
				p->password,	"postgres",	 "10",
				"disable",	"rotator-probe", NULL};
	PGconn *conn = PQconnectdbParams(keys, values, 0);

	if (PQstatus(conn) != CONNECTION_OK) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

static bool pg_command(PGconn *conn, const char *sql, const char *param)
{
	const char *params[] = {param};
	PGresult *res = PQexecParams(conn, sql, param ? 1 : 0, NULL, params,
				     NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	PQclear(res);
	return ok;
}

static int pg_prepare(struct probe *p, int64_t *first)
{
	char sql[256];
	PGresult *res;
	PGconn *conn = pg_open(p);

	if (!conn)
		return -1;
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE IF NOT EXISTS %s (seq bigint PRIMARY KEY)",
		 p->key);
	pg_command(conn, "SET client_min_messages = warning", NULL);
	if (!pg_command(conn, sql, NULL)) {
		fprintf(stderr, "probe: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return -1;
	}
	snprintf(sql, sizeof(sql), "SELECT coalesce(max(seq), 0) + 1 FROM %s",
		 p->key);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		*first = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(conn);
	return 0;
}

static bool pg_write(struct probe *p, int64_t seq)
{
	char sql[128], text[32];

	if (!p->pg && !(p->pg = pg_open(p)))
		return false;
	snprintf(sql, sizeof(sql), "INSERT INTO %s (seq) VALUES ($1)", p->key);
	snprintf(text, sizeof(text), "%lld", (long long)seq);
	if (pg_command(p->pg, sql, text))
		return true;
	PQfinish(p->pg);
	p->pg = NULL;
	return false;
}

static int pg_fetch(struct probe *p, struct seqs *out)
{
	char sql[128];
	PGresult *res;
	int rc = -1;

	snprintf(sql, sizeof(sql), "SELECT seq FROM %s ORDER BY seq", p->key);
	res = PQexec(p->pg, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		for (int i = 0; i < PQntuples(res); i++)
			push(out, strtoll(PQgetvalue(res, i, 0), NULL, 10));
		rc = 0;
	}
	PQclear(res);
	return rc;
}

/* ---- Redis ---- */

static redisContext *redis_open(struct probe *p, const struct addr *a)
{
	struct timeval tv = {.tv_sec = 10};
	redisContext *c;
	redisReply *r;

	c = redisConnectWithTimeout(a->host, atoi(a->port), tv);
	if (!c || c->err) {
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (!p->password)
		return c;
	if (p->user)
		r = redisCommand(c, "AUTH %s %s", p->user, p->password);
	else
		r = redisCommand(c, "AUTH %s", p->password);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		freeReplyObject(r);
		redisFree(c);
		return NULL;
	}
	freeReplyObject(r);
	return c;
}

static bool redis_is_master(redisContext *c)
{
	redisReply *r = redisCommand(c, "ROLE");
	bool master = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
		      r->element[0]->type == REDIS_REPLY_STRING &&
		      strcmp(r->element[0]->str, "master") == 0;

	freeReplyObject(r);
	return master;
}

/* With --follow: the first listed address whose ROLE is master. */
static redisContext *redis_find_master(struct probe *p)
{
	for (int i = 0; i < p->n_follow; i++) {
		redisContext *c = redis_open(p, &p->follow[i]);

		if (c && redis_is_master(c))
			return c;
		redisFree(c);
	}
	return NULL;
}

static redisContext *redis_connect(struct probe *p)
{
	if (p->n_follow > 0)
		return redis_find_master(p);
	return redis_open(p, &p->target);
}

static bool redis_write(struct probe *p, int64_t seq)
{
	redisReply *r;
	bool ok;

	if (!p->rc && !(p->rc = redis_connect(p)))
		return false;
	r = redisCommand(p->rc, "RPUSH %s %lld", p->key, (long long)seq);
	ok = r && r->type == REDIS_REPLY_INTEGER;
	freeReplyObject(r);
	if (!ok) {
		redisFree(p->rc);
		p->rc = NULL;
	}
	return ok;
}

static int redis_fetch(struct probe *p, struct seqs *out)
{
	redisReply *r = redisCommand(p->rc, "LRANGE %s 0 -1", p->key);
	int rc = -1;

	if (r && r->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < r->elements; i++)
			push(out, strtoll(r->element[i]->str, NULL, 10));
		rc = 0;
	}
	freeReplyObject(r);
	return rc;
}

static int64_t redis_first(struct probe *p)
{
	redisContext *c = redis_connect(p);
	redisReply *r;
	int64_t first = 1;

	if (!c)
		return -1;
	r = redisCommand(c, "LINDEX %s -1", p->key);
	if (r && r->type == REDIS_REPLY_STRING)
		first = strtoll(r->str, NULL, 10) + 1;
	freeReplyObject(r);
	redisFree(c);
	return first;
}

/* ---- the write loop ---- */

static bool write_one(struct probe *p, int64_t seq)
{
	return p->redis ? redis_write(p, seq) : pg_write(p, seq);
}

static void mark_ready(struct probe *p)
{
	FILE *f;

	if (!p->ready_path || !(f = fopen(p->ready_path, "w")))
		return;
	fprintf(f, "%lld\n", (long long)(mono_us() + p->clock_offset_us));
	fclose(f);
}

/*
 * Write SEQ, SEQ+1, ... until told to stop.  One operation per
 * interval; when an operation takes longer the next starts at once, and
 * missed slots are not made up.  Every acknowledgement and every error
 * is recorded with its monotonic time.
 */
static void write_loop(struct probe *p, int64_t seq)
{
	int64_t next = mono_us();

	p->started_us = next;
	while (!stop_flag && mono_us() - p->started_us < p->limit_us) {
		bool ok = write_one(p, seq);
		int64_t now = mono_us();

		if (ok) {
			if (p->acked_seq.n == 0)
				mark_ready(p);
			push(&p->acked_seq, seq);
			push(&p->acked_us, now);
			seq++;
		} else {
			push(&p->error_us, now);
		}
		next += p->interval_us;
		if (next < now)
			next = now;
		else
			sleep_until_us(next);
	}
	p->stopped_us = mono_us();
}

/* ---- the final check ---- */

static int compare_seq(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Every value on the final primary, sorted; -1 when it cannot be read. */
static int fetch_final(struct probe *p, struct seqs *found)
{
	int rc = -1;

	for (int i = 0; i < 600 && rc == -1; i++) {
		if (p->redis) {
			redisFree(p->rc);
			p->rc = redis_connect(p);
			rc = p->rc ? redis_fetch(p, found) : -1;
		} else {
			PQfinish(p->pg);
			p->pg = pg_open(p);
			rc = p->pg ? pg_fetch(p, found) : -1;
		}
		if (rc == -1) {
			found->n = 0;
			sleep_until_us(mono_us() + 50000);
		}
	}
	if (rc == 0)
		qsort(found->v, found->n, sizeof(*found->v), compare_seq);
	return rc;
}

static void read_windows(struct probe *p)
{
	char line[256], label[LABEL_LEN];
	long long start, end;
	FILE *f;

	if (!p->windows_path || !(f = fopen(p->windows_path, "r")))
		return;
	while (fgets(line, sizeof(line), f) && p->n_windows < MAX_WINDOWS) {
		struct window *w = &p->windows[p->n_windows];

		if (sscanf(line, "%63s %lld %lld", label, &start, &end) != 3)
			continue;
		for (char *c = label; *c; c++)
			if (*c == '"' || *c == '\\')
				*c = '_';
		memset(w, 0, sizeof(*w));
		strcpy(w->label, label);
		w->start_us = start * 1000 - p->clock_offset_us;
		w->end_us = end * 1000 - p->clock_offset_us;
		p->n_windows++;
	}
	fclose(f);
}

static int find_window(struct probe *p, int64_t t)
{
	for (int i = 0; i < p->n_windows; i++)
		if (t >= p->windows[i].start_us && t <= p->windows[i].end_us)
			return i;
	return -1;
}

/*
 * The longest gap between consecutive acknowledgements that overlaps W;
 * the probe's stop ends the last gap.
 */
static void measure_window(struct probe *p, struct window *w)
{
	const int64_t *t = p->acked_us.v;
	size_t n = p->acked_us.n;

	for (size_t i = 0; i < n; i++) {
		int64_t from = t[i];
		int64_t to = i + 1 < n ? t[i + 1] : p->stopped_us;

		if (to < w->start_us || from > w->end_us)
			continue;
		if (from >= w->start_us)
			w->acked++;
		if (to - from > w->gap_us) {
			w->gap_us = to - from;
			w->gap_at_us = from;
		}
	}
}

/* Count missing acknowledgements, in total and per window. */
static long count_lost(struct probe *p, const struct seqs *found)
{
	long lost = 0;

	for (size_t i = 0; i < p->acked_seq.n; i++) {
		int at;

		if (bsearch(&p->acked_seq.v[i], found->v, found->n,
			    sizeof(*found->v), compare_seq))
			continue;
		lost++;
		at = find_window(p, p->acked_us.v[i]);
		if (at >= 0)
			p->windows[at].lost++;
	}
	return lost;
}

static long count_failed(struct probe *p)
{
	long outside = 0;

	for (size_t i = 0; i < p->error_us.n; i++) {
		int at = find_window(p, p->error_us.v[i]);

		if (at >= 0)
			p->windows[at].failed++;
		else
			outside++;
	}
	return outside;
}

static double ms(int64_t us)
{
	return (double)us / 1000.0;
}

static void print_report(struct probe *p, long lost, long outside)
{
	int64_t run = p->stopped_us - p->started_us;
	int64_t longest = 0;

	for (size_t i = 1; i < p->acked_us.n; i++)
		if (p->acked_us.v[i] - p->acked_us.v[i - 1] > longest)
			longest = p->acked_us.v[i] - p->acked_us.v[i - 1];
	printf("{\"engine\": \"%s\", \"acknowledged\": %zu, \"failed\": %zu, "
	       "\"failed_outside\": %ld, \"lost\": %ld, \"duration_ms\": %.0f, "
	       "\"rate\": %.1f, \"longest_gap_ms\": %.1f, \"rotations\": [",
	       p->redis ? "redis" : "postgres", p->acked_seq.n, p->error_us.n,
	       outside, lost, ms(run),
	       run > 0 ? (double)p->acked_seq.n * 1e6 / (double)run : 0.0,
	       ms(longest));
	for (int i = 0; i < p->n_windows; i++) {
		struct window *w = &p->windows[i];

		printf("%s\n  {\"label\": \"%s\", \"window_ms\": %.1f, "
		       "\"window_at_ms\": %.0f, \"acked\": %ld, \"lost\": %ld, "
		       "\"failed\": %ld}",
		       i ? "," : "", w->label, ms(w->gap_us),
		       ms(w->gap_at_us + p->clock_offset_us), w->acked,
		       lost < 0 ? -1 : w->lost, w->failed);
	}
	printf("]}\n");
}

/* ---- command line ---- */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: probe [OPTIONS] postgres|redis HOST:PORT\n"
		"  -U, --user USER           database user (postgres: rotator)\n"
		"  -P, --password-file FILE  password (redis: AUTH if given)\n"
		"  -f, --follow ADDR,...     redis: after an error, find the master\n"
		"  -k, --key NAME            table or list (bench_probe)\n"
		"  -i, --interval-us N       one write every N us (1000)\n"
		"  -t, --seconds N           stop after N seconds (3600)\n"
		"  -r, --ready FILE          created at the first acknowledgement\n"
		"  -w, --windows FILE        rotation intervals, read at the end\n");
}

static int parse_follow(struct probe *p, char *list)
{
	for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
		if (p->n_follow == MAX_FOLLOW ||
		    parse_addr(s, &p->follow[p->n_follow]) == -1)
			return -1;
		p->n_follow++;
	}
	return 0;
}

static int parse_args(struct probe *p, int argc, char **argv)
{
	static const struct option opts[] = {
		{"user", required_argument, NULL, 'U'},
		{"password-file", required_argument, NULL, 'P'},
		{"follow", required_argument, NULL, 'f'},
		{"key", required_argument, NULL, 'k'},
		{"interval-us", required_argument, NULL, 'i'},
		{"seconds", required_argument, NULL, 't'},
		{"ready", required_argument, NULL, 'r'},
		{"windows", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *password_file = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "U:P:f:k:i:t:r:w:h", opts, NULL)) !=
	       -1) {
		switch (c) {
		case 'U':
			p->user = optarg;
			break;
		case 'P':
			password_file = optarg;
			break;
		case 'f':
			if (parse_follow(p, optarg) == -1)
				return -1;
			break;
		case 'k':
			p->key = optarg;
			break;
		case 'i':
			p->interval_us = atoll(optarg);
			break;
		case 't':
			p->limit_us = atoll(optarg) * 1000000;
			break;
		case 'r':
			p->ready_path = optarg;
			break;
		case 'w':
			p->windows_path = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (argc - optind != 2 || parse_addr(argv[optind + 1], &p->target))
		return -1;
	if (strcmp(argv[optind], "redis") == 0)
		p->redis = true;
	else if (strcmp(argv[optind], "postgres") != 0)
		return -1;
	if (password_file && !(p->password = read_password(password_file))) {
		fprintf(stderr, "probe: could not read \"%s\": %s\n",
			password_file, strerror(errno));
		return -1;
	}
	if (!p->redis && !p->user)
		p->user = "rotator";
	return p->interval_us > 0 && p->limit_us > 0 ? 0 : -1;
}

static void catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
	struct probe p = {.key = "bench_probe",
			  .interval_us = 1000,
			  .limit_us = 3600 * (int64_t)1000000};
	struct seqs found = {0};
	int64_t first = 1;
	long lost = -1, outside;

	if (parse_args(&p, argc, argv) == -1) {
		usage(stderr);
		return 2;
	}
	catch_signals();
	p.clock_offset_us = clock_us(CLOCK_REALTIME) - mono_us();
	if (p.redis ? (first = redis_first(&p)) < 0
		    : pg_prepare(&p, &first) == -1) {
		fprintf(stderr, "probe: could not reach %s:%s\n", p.target.host,
			p.target.port);
		return 1;
	}
	write_loop(&p, first);
	if (fetch_final(&p, &found) == 0)
		lost = 0;
	else
		fprintf(stderr, "probe: could not read the final primary\n");
	read_windows(&p);
	for (int i = 0; i < p.n_windows; i++)
		measure_window(&p, &p.windows[i]);
	if (lost == 0)
		lost = count_lost(&p, &found);
	outside = count_failed(&p);
	print_report(&p, lost, outside);
	PQfinish(p.pg);
	redisFree(p.rc);
	return lost == 0 ? 0 : 1;
}
