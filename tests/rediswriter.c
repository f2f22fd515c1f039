/*
 * rediswriter.c: a Redis client that writes through rotator's endpoint
 * and then checks that every acknowledged write is on the final primary.
 * Used by the Redis tests.
 *
 *   rediswriter HOST PORT USER PASSWORD_FILE SECONDS [RATE [FINAL_PORT]]
 *
 * Each step is an RPUSH of the next sequence number onto a list and an
 * INCR of a counter (keys named after the writer's pid), RATE steps a
 * second (default 300, so 600 operations), for SECONDS or until SIGTERM
 * or SIGINT, reconnecting at once after an error.  Then it reads the list
 * and the counter from FINAL_PORT on HOST (default: through PORT) and
 * prints one JSON line: acknowledged (RPUSHes), increments (INCRs
 * acknowledged), counter, missing (acknowledged numbers not in the list),
 * errors, longest_pause_ms (the longest time between two
 * acknowledgements) and rate (operations a second).  Exits 0 when
 * nothing is missing and the counter equals the acknowledged increments.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "rotator/util.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

struct writer {
	const char *host;
	int port;
	const char *user;
	char *password;
	char list[64];
	char counter[64];
	int64_t *acked;
	size_t n_acked;
	size_t cap;
	long increments;
	long errors;
	int64_t last_ack;
	int64_t longest_pause;
};

static redisContext *connect_to(struct writer *w, int port)
{
	struct timeval tv = {.tv_sec = 2};
	redisContext *c = redisConnectWithTimeout(w->host, port, tv);
	redisReply *r;

	if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
		redisFree(c);
		return NULL;
	}
	r = redisCommand(c, "AUTH %s %s", w->user, w->password);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		freeReplyObject(r);
		redisFree(c);
		return NULL;
	}
	freeReplyObject(r);
	return c;
}

static void ack(struct writer *w, int64_t id)
{
	int64_t now = now_ms();

	if (w->n_acked == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 4096;
		w->acked = realloc(w->acked, w->cap * sizeof(*w->acked));
		if (!w->acked)
			abort();
	}
	w->acked[w->n_acked++] = id;
	if (now - w->last_ack > w->longest_pause)
		w->longest_pause = now - w->last_ack;
	w->last_ack = now;
}

/* One step on C: true when both commands were acknowledged. */
static bool step(struct writer *w, redisContext *c, int64_t id)
{
	redisReply *r =
		redisCommand(c, "RPUSH %s %lld", w->list, (long long)id);
	bool ok = r && r->type == REDIS_REPLY_INTEGER;

	freeReplyObject(r);
	if (!ok)
		return false;
	ack(w, id);
	r = redisCommand(c, "INCR %s", w->counter);
	ok = r && r->type == REDIS_REPLY_INTEGER;
	freeReplyObject(r);
	if (ok)
		w->increments++;
	return ok;
}

static void write_loop(struct writer *w, int64_t seconds, int rate)
{
	int64_t start = now_ms(), next = 0, id = 1;
	int64_t gap_us = 1000000 / rate;
	redisContext *c = NULL;

	w->last_ack = start;
	while (!stop && now_ms() - start < seconds * 1000) {
		if (!c && !(c = connect_to(w, w->port))) {
			w->errors++;
			sleep_ms(2);
			continue;
		}
		if (!step(w, c, id)) {
			w->errors++;
			redisFree(c);
			c = NULL;
		}
		id++;
		next += gap_us;
		while ((now_ms() - start) * 1000 < next && !stop)
			sleep_ms(1);
	}
	redisFree(c);
}

static int compare_ids(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Read the list and the counter from PORT.  Returns the number of
 * acknowledged ids missing, or -1 when the primary cannot be read.
 */
static long count_missing(struct writer *w, int port, long long *counter)
{
	redisContext *c = NULL;
	redisReply *r;
	int64_t *found;
	long missing = 0;
	size_t n;

	for (int i = 0; i < 200 && !c; i++)
		if (!(c = connect_to(w, port)))
			sleep_ms(50);
	if (!c)
		return -1;
	r = redisCommand(c, "GET %s", w->counter);
	*counter = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
	freeReplyObject(r);
	r = redisCommand(c, "LRANGE %s 0 -1", w->list);
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		redisFree(c);
		return -1;
	}
	n = r->elements;
	found = xcalloc(n ? n : 1, sizeof(*found));
	for (size_t i = 0; i < n; i++)
		found[i] = r->element[i]->str ? atoll(r->element[i]->str) : 0;
	freeReplyObject(r);
	redisFree(c);
	qsort(found, n, sizeof(*found), compare_ids);
	for (size_t i = 0; i < w->n_acked; i++)
		if (!bsearch(&w->acked[i], found, n, sizeof(*found),
			     compare_ids))
			missing++;
	free(found);
	return missing;
}

int main(int argc, char **argv)
{
	struct writer w = {0};
	int64_t seconds, started, elapsed;
	long long counter = 0;
	char err[256];
	long missing;
	int rate, final_port;

	if (argc < 6) {
		fprintf(stderr, "usage: rediswriter HOST PORT USER "
				"PASSWORD_FILE SECONDS [RATE [FINAL_PORT]]\n");
		return 2;
	}
	w.password = read_secret_file(argv[4], err, sizeof(err));
	if (!w.password) {
		fprintf(stderr, "rediswriter: %s\n", err);
		return 2;
	}
	w.host = argv[1];
	w.port = atoi(argv[2]);
	w.user = argv[3];
	seconds = atoll(argv[5]);
	rate = argc > 6 ? atoi(argv[6]) : 300;
	if (rate < 1)
		rate = 1;
	final_port = argc > 7 ? atoi(argv[7]) : w.port;
	snprintf(w.list, sizeof(w.list), "rotator:writer:%d:seq", getpid());
	snprintf(w.counter, sizeof(w.counter), "rotator:writer:%d:count",
		 getpid());
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	started = now_ms();
	write_loop(&w, seconds, rate);
	elapsed = now_ms() - started;
	missing = count_missing(&w, final_port, &counter);
	printf("{\"acknowledged\": %zu, \"increments\": %ld, \"counter\": "
	       "%lld, \"missing\": %ld, \"errors\": %ld, "
	       "\"longest_pause_ms\": %lld, \"rate\": %.0f}\n",
	       w.n_acked, w.increments, counter, missing, w.errors,
	       (long long)w.longest_pause,
	       elapsed > 0 ? (double)(w.n_acked + (size_t)w.increments) *
				     1000.0 / (double)elapsed
			   : 0.0);
	free(w.acked);
	explicit_bzero(w.password, strlen(w.password));
	free(w.password);
	return missing == 0 && counter == w.increments ? 0 : 1;
}
