/*
 * daemon.h: the coordinator process ("rotator serve").
 *
 * One libevent loop runs the endpoints, the HTTP API and a one-second
 * tick that drives the schedules.  Rotations and snapshots, which block on
 * databases and child processes, run in worker threads; they touch shared
 * state only under the cluster's lock and talk to the endpoint through its
 * thread-safe calls, so nothing they do blocks the loop.
 */
#ifndef ROTATOR_DAEMON_H
#define ROTATOR_DAEMON_H

#include <pthread.h>
#include <stdbool.h>

#include <stddef.h>

#include <jansson.h>

#include "rotator/config.h"

struct event_base;
struct audit;
struct journal;
struct cluster;

#define DAEMON_EVENTS 256

struct daemon {
	struct config *cfg;
	struct config **old_cfgs; /* kept until exit: threads borrow */
	int n_old_cfgs;
	struct event_base *base;
	struct audit *audit;
	char *audit_path;
	struct journal *journal;
	char *journal_path;
	char *token;
	int lock_fd; /* flock on STATE_DIR/rotator.lock */
	struct cluster **clusters;
	int n_clusters;
	volatile bool stopping;

	pthread_mutex_t events_lock; /* guards the ring below */
	json_t *events[DAEMON_EVENTS];
	unsigned long n_events;
};

/* "rotator serve": returns the process exit status. */
int daemon_serve(const char *config_path);

/* The cluster called NAME, or NULL. */
struct cluster *daemon_cluster(struct daemon *d, const char *name);

/*
 * Record a milestone: TOKEN is stable ("+rotation-start", "+fenced",
 * "-rotation-abort"), SUBJECT the rotation or snapshot id, DETAIL free
 * text.  Logged at info (warning for a '-' token) and kept in the event
 * list that GET /v1/events serves.  Safe from any thread.
 */
void daemon_event(struct daemon *d, const char *cluster, const char *token,
		  const char *subject, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* The newest events as a new JSON array, oldest first. */
json_t *daemon_events(struct daemon *d);

/*
 * Start a snapshot job of CL.  Returns 0, or -1 after writing
 * ERR when one runs already or the cluster is not ready.
 */
int daemon_snapshot(struct cluster *cl, char *err, size_t errlen);

/*
 * Start checking restore point ID of CL from scratch; the
 * outcome lands in CL's verify_* members and the audit log.  Returns 0,
 * or -1 after writing ERR when a check of CL is already running.
 */
int daemon_verify(struct cluster *cl, const char *id, char *err, size_t errlen);

#endif
