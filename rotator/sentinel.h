/*
 * sentinel.h: a Redis Sentinel look-alike for one cluster.
 *
 * Clients that find their primary through Redis Sentinel can be pointed at
 * rotator instead: it answers the Sentinel commands those clients use
 * (SENTINEL get-master-addr-by-name, masters, master, replicas, ...) for
 * one master, the cluster, and publishes "+switch-master" to subscribers
 * when a rotation moves the primary.  It speaks RESP2 only, on the
 * daemon's event loop, and never blocks it.  sentinel_update() may be
 * called from any thread (libevent must have been set up with
 * evthread_use_pthreads()); sentinel_new() and sentinel_free() belong to
 * the loop thread.
 */
#ifndef ROTATOR_SENTINEL_H
#define ROTATOR_SENTINEL_H

#include <stddef.h>

struct event_base;
struct sentinel;

struct sentinel_addr {
	char host[64];
	int port;
};

/*
 * Listen on HOST:PORT (an IPv4 literal or "localhost") for master NAME
 * (the cluster's name) on BASE's loop.  No primary is known until the
 * first sentinel_update().  Returns NULL after writing the reason into
 * ERR.
 */
struct sentinel *sentinel_new(struct event_base *base, const char *name,
			      const char *host, int port, char *err,
			      size_t errlen);

/*
 * Close the listener and every client connection at once.  Call on the
 * loop thread or once the loop has stopped.  sentinel_free(NULL) is a
 * no-op.
 */
void sentinel_free(struct sentinel *s);

/*
 * Any thread: the current primary (NULL: none known) and the caught-up
 * replicas (N_REPLICAS entries, may be NULL when 0).  Both are borrowed
 * and copied.  When the primary changes from a known address to another,
 * "+switch-master NAME OLDHOST OLDPORT NEWHOST NEWPORT" is published to
 * subscribers from the loop thread; "known" is the last primary that was
 * not NULL, so a primary that goes unknown and comes back elsewhere is a
 * switch too.  Setting the first primary or the same one publishes
 * nothing.
 */
void sentinel_update(struct sentinel *s, const struct sentinel_addr *primary,
		     const struct sentinel_addr *replicas, int n_replicas);

#endif
