/*
 * endpoint.h: where clients connect.
 *
 * An endpoint listens on one TCP address and forwards every connection,
 * byte for byte, to its current target (the primary), or in turn to one
 * of several (the replicas, behind endpoint.read_listen).  During a switch it
 * holds new connections: they are accepted, nothing is read from them,
 * and they wait, for at most hold_ms, until endpoint_release() names the
 * new target.  The endpoint runs on the daemon's event loop and never
 * blocks it.  endpoint_hold(), endpoint_release(), endpoint_set_target()
 * and endpoint_drop_sessions() may be called from any thread (libevent
 * must have been set up with evthread_use_pthreads()).
 */
#ifndef ROTATOR_ENDPOINT_H
#define ROTATOR_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "rotator/util.h"

struct event_base;
struct endpoint;

#define ENDPOINT_MAX_TARGETS 16

struct endpoint_target {
	char host[64];
	int port;
};

struct endpoint_stats {
	uint64_t accepted; /* connections accepted since start */
	uint64_t active;   /* sessions open now */
	uint64_t held;	   /* connections waiting now */
	uint64_t failed;   /* connections closed for want of a target */
	int holding;	   /* 1 while held */
};

/*
 * Listen on HOST:PORT and forward to nothing yet (connections are closed
 * until a target is set).  NAME labels log lines.  Returns NULL after
 * writing the reason into ERR.
 */
struct endpoint *endpoint_new(struct event_base *base, const char *name,
			      const char *host, int port, int64_t hold_ms,
			      char *err, size_t errlen);

/* Close the listener and every session.  endpoint_free(NULL) is a no-op. */
void endpoint_free(struct endpoint *ep);

/* Forward new connections to HOST:PORT from now on. */
void endpoint_set_target(struct endpoint *ep, const char *host, int port);

/*
 * Spread new connections over the N TARGETS (at most
 * ENDPOINT_MAX_TARGETS), in turn; N = 0 closes them.  Sessions already
 * open stay where they are until endpoint_drop_sessions().
 */
void endpoint_set_targets(struct endpoint *ep,
			  const struct endpoint_target *targets, int n);

/* How many sessions are open to HOST:PORT now. */
uint64_t endpoint_sessions_to(struct endpoint *ep, const char *host, int port);

/*
 * Hold new connections.  When this returns, no connection accepted after
 * it will be forwarded until endpoint_release().
 */
void endpoint_hold(struct endpoint *ep);

/*
 * Point at HOST:PORT (NULL keeps the current target) and let the held
 * connections through to it.
 */
void endpoint_release(struct endpoint *ep, const char *host, int port);

/* Close every session whose server side is not a current target. */
void endpoint_drop_sessions(struct endpoint *ep);

void endpoint_get_stats(struct endpoint *ep, struct endpoint_stats *stats);

#endif
