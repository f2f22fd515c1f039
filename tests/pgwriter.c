/*
 * pgwriter.c: a PostgreSQL client that commits sequential ids through
 * rotator's endpoint and then checks that every acknowledged one is
 * there.  Used by the tests and "make demo".
 *
 *   pgwriter HOST PORT USER PASSWORD_FILE SECONDS [RATE]
 *
 * Runs for SECONDS (or until SIGTERM/SIGINT), RATE commits a second
 * (default 400), reconnecting at once after an error.  Then prints one
 * JSON line: acknowledged, missing (acknowledged but not on the final
 * primary), errors, longest_pause_ms (the longest time between two
 * acknowledgements) and rate.  Exits 0 when nothing is missing.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "rotator/util.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

struct writer {
	const char *keys[8];
	const char *values[8];
	int64_t *acked;
	size_t n_acked;
	size_t cap;
	long errors;
	int64_t longest_pause;
};

static PGconn *connect_db(struct writer *w)
{
	PGconn *conn = PQconnectdbParams(w->keys, w->values, 0);

	if (PQstatus(conn) != CONNECTION_OK) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

static bool exec_ok(PGconn *conn, const char *sql, int n,
		    const char *const *params)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	PQclear(res);
	return ok;
}

static void ack(struct writer *w, int64_t id)
{
	if (w->n_acked == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 4096;
		w->acked = realloc(w->acked, w->cap * sizeof(*w->acked));
		if (!w->acked)
			abort();
	}
	w->acked[w->n_acked++] = id;
}

/* Ids continue after those of earlier runs on the same table. */
static int64_t first_id(PGconn *conn)
{
	PGresult *res = PQexec(conn, "SELECT coalesce(max(id), 0) + 1 "
				     "FROM rotator_writer");
	int64_t id = 1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return id;
}

static void write_loop(struct writer *w, int64_t id, int64_t seconds, int rate)
{
	int64_t start = now_ms(), last_ack = start, next = 0;
	int64_t gap_us = 1000000 / rate;
	PGconn *conn = NULL;

	while (!stop && now_ms() - start < seconds * 1000) {
		char text[32];
		const char *params[] = {text};

		if (!conn && !(conn = connect_db(w))) {
			w->errors++;
			sleep_ms(2);
			continue;
		}
		snprintf(text, sizeof(text), "%lld", (long long)id);
		if (exec_ok(conn, "INSERT INTO rotator_writer (id) VALUES ($1)",
			    1, params)) {
			int64_t now = now_ms();

			ack(w, id);
			if (now - last_ack > w->longest_pause)
				w->longest_pause = now - last_ack;
			last_ack = now;
		} else {
			w->errors++;
			PQfinish(conn);
			conn = NULL;
		}
		id++;
		next += gap_us;
		while ((now_ms() - start) * 1000 < next && !stop)
			sleep_ms(1);
	}
	PQfinish(conn);
}

static int compare_ids(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Count acknowledged ids missing from the final primary, or -1. */
static long count_missing(struct writer *w)
{
	PGconn *conn = NULL;
	PGresult *res;
	int64_t *found;
	long missing = 0;
	int n;

	for (int i = 0; i < 200 && !conn; i++)
		if (!(conn = connect_db(w)))
			sleep_ms(50);
	if (!conn)
		return -1;
	res = PQexec(conn, "SELECT id FROM rotator_writer ORDER BY id");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		PQfinish(conn);
		return -1;
	}
	n = PQntuples(res);
	found = xcalloc((size_t)n, sizeof(*found));
	for (int i = 0; i < n; i++)
		found[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	PQfinish(conn);
	for (size_t i = 0; i < w->n_acked; i++)
		if (!bsearch(&w->acked[i], found, (size_t)n, sizeof(*found),
			     compare_ids))
			missing++;
	free(found);
	return missing;
}

int main(int argc, char **argv)
{
	struct writer w = {0};
	char err[256], *password;
	int64_t seconds, started, id;
	long missing;
	PGconn *conn;
	int rate;

	if (argc < 6) {
		fprintf(stderr,
			"usage: pgwriter HOST PORT USER PASSWORD_FILE SECONDS [RATE]\n");
		return 2;
	}
	password = read_secret_file(argv[4], err, sizeof(err));
	if (!password) {
		fprintf(stderr, "pgwriter: %s\n", err);
		return 2;
	}
	seconds = atoll(argv[5]);
	rate = argc > 6 ? atoi(argv[6]) : 400;
	if (rate < 1)
		rate = 1;
	w = (struct writer){
		.keys = {"host", "port", "user", "password", "dbname",
			 "connect_timeout", "sslmode", NULL},
		.values = {argv[1], argv[2], argv[3], password, "postgres",
			   "10", "disable", NULL},
	};
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	conn = connect_db(&w);
	if (!conn ||
	    !exec_ok(conn, "SET client_min_messages = warning", 0, NULL) ||
	    !exec_ok(conn,
		     "CREATE TABLE IF NOT EXISTS rotator_writer "
		     "(id bigint PRIMARY KEY, at timestamptz "
		     "NOT NULL DEFAULT now())",
		     0, NULL)) {
		fprintf(stderr, "pgwriter: could not prepare the table: %s",
			conn ? PQerrorMessage(conn) : "no connection\n");
		PQfinish(conn);
		return 1;
	}
	id = first_id(conn);
	PQfinish(conn);
	started = now_ms();
	write_loop(&w, id, seconds, rate);
	seconds = now_ms() - started;
	missing = count_missing(&w);
	printf("{\"acknowledged\": %zu, \"missing\": %ld, \"errors\": %ld, "
	       "\"longest_pause_ms\": %lld, \"rate\": %.0f}\n",
	       w.n_acked, missing, w.errors, (long long)w.longest_pause,
	       seconds > 0 ? w.n_acked * 1000.0 / (double)seconds : 0.0);
	free(w.acked);
	free(password);
	return missing == 0 ? 0 : 1;
}
