/*
 * endpoint.c: the TCP forwarder clients connect to.
 *
 * Each accepted connection becomes a session: a client bufferevent and a
 * server bufferevent connected to the target of the moment, with bytes
 * moved between their evbuffers and reading paused while the other side
 * has more than ENDPOINT_MAX_PENDING bytes waiting to be written.
 *
 * Threads: every socket, bufferevent and timer is touched on the loop
 * thread only.  The public calls other than endpoint_new() and
 * endpoint_free() may come from any thread: they change the state guarded
 * by ep->lock (target, holding flag, held queue, pending work) and wake
 * the loop with a user event, whose callback does the socket work.  The
 * accept callback reads the holding flag under the same lock, which is
 * what makes endpoint_hold() take effect as soon as it returns.
 *
 * The process must ignore SIGPIPE: libevent writes with writev().
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "rotator/endpoint.h"
#include "rotator/log.h"

/* Stop reading one side while the other has this much left to write. */
#define ENDPOINT_MAX_PENDING (256 * 1024)

/* How long to wait before accepting again after accept() failed. */
#define ENDPOINT_ACCEPT_RETRY_MS 100

/*
 * Sessions per server address, the current targets and the ones just
 * removed (a draining replica), so that a caller can wait for the last
 * session to an old target to end.  Entries at zero are reused.
 */
#define ENDPOINT_MAX_TALLIES 32

struct tally {
	char host[64];
	int port;
	uint64_t sessions;
};

struct session {
	struct endpoint *ep;
	struct bufferevent *client;
	struct bufferevent *server; /* NULL while held */
	char *host;		    /* the target at connect time */
	int port;
	bool connected; /* the server side is up */
	bool closing;	/* one side is gone, flushing the other */
	struct session *prev;
	struct session *next; /* in ep->sessions, or the held queue */
};

struct endpoint {
	struct event_base *base;
	char *name;
	int64_t hold_ms;
	struct evconnlistener *listener;
	struct event *hold_timer;
	struct event *wakeup; /* runs queued work on the loop thread */
	struct event *accept_retry;
	struct session *sessions; /* loop thread only */
	int64_t warned_at;	  /* loop thread only: ep_warning() */
	unsigned suppressed;

	pthread_mutex_t lock; /* guards everything below */
	struct endpoint_target targets[ENDPOINT_MAX_TARGETS];
	int n_targets;	      /* 0 until a target is set */
	unsigned next_target; /* round robin over targets */
	struct tally tallies[ENDPOINT_MAX_TALLIES];
	int n_tallies;
	bool holding;
	int64_t hold_deadline;	   /* now_ms() when the hold expires */
	struct session *held_head; /* held queue, oldest first */
	struct session **held_tail;
	uint64_t release_count; /* held entries to let through */
	bool drop_pending;	/* endpoint_drop_sessions() was called */
	struct endpoint_stats stats;
};

/*
 * A warning about one connection, at most one a second per endpoint: a
 * client, or anyone who can reach the port, opening connections while the
 * primary is down must not fill the disk with the daemon's log.  The
 * warnings held back are counted in the next one.  Loop thread only.
 */
static void ep_warning(struct endpoint *ep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void ep_warning(struct endpoint *ep, const char *fmt, ...)
{
	int64_t now = now_ms();
	char text[512];
	va_list ap;

	if (ep->warned_at && now - ep->warned_at < 1000) {
		ep->suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (ep->suppressed)
		log_warning("endpoint \"%s\": %s (and %u more held back "
			    "since the last)",
			    ep->name, text, ep->suppressed);
	else
		log_warning("endpoint \"%s\": %s", ep->name, text);
	ep->warned_at = now;
	ep->suppressed = 0;
}

static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_write_cb(struct bufferevent *bev, void *arg);
static void session_event_cb(struct bufferevent *bev, short what, void *arg);

static void set_nodelay(struct endpoint *ep, evutil_socket_t fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		log_debug("endpoint \"%s\": could not set TCP_NODELAY: %s",
			  ep->name, strerror(errno));
}

static struct timeval ms_to_timeval(int64_t ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}

static void session_link(struct session *s)
{
	struct endpoint *ep = s->ep;

	s->prev = NULL;
	s->next = ep->sessions;
	if (ep->sessions)
		ep->sessions->prev = s;
	ep->sessions = s;
}

static void session_unlink(struct session *s)
{
	struct endpoint *ep = s->ep;

	if (s->prev)
		s->prev->next = s->next;
	else
		ep->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

/*
 * Count one session more (DELTA 1) or less (-1) to HOST:PORT.  Call with
 * ep->lock held.  With every entry in use the count is lost, which only
 * makes a drain wait its whole bound.
 */
static void tally(struct endpoint *ep, const char *host, int port, int delta)
{
	struct tally *free_slot = NULL;

	for (int i = 0; i < ep->n_tallies; i++) {
		struct tally *t = &ep->tallies[i];

		if (t->port == port && strcmp(t->host, host) == 0) {
			if (delta > 0 || t->sessions > 0)
				t->sessions += (uint64_t)(int64_t)delta;
			return;
		}
		if (t->sessions == 0 && !free_slot)
			free_slot = t;
	}
	if (delta < 0)
		return;
	if (!free_slot && ep->n_tallies < ENDPOINT_MAX_TALLIES)
		free_slot = &ep->tallies[ep->n_tallies++];
	if (!free_slot)
		return;
	snprintf(free_slot->host, sizeof(free_slot->host), "%s", host);
	free_slot->port = port;
	free_slot->sessions = 1;
}

/* Close both sides of the linked session S at once and free it. */
static void session_free(struct session *s)
{
	struct endpoint *ep = s->ep;

	if (s->client)
		bufferevent_free(s->client);
	if (s->server)
		bufferevent_free(s->server);
	session_unlink(s);
	pthread_mutex_lock(&ep->lock);
	ep->stats.active--;
	tally(ep, s->host, s->port, -1);
	pthread_mutex_unlock(&ep->lock);
	free(s->host);
	free(s);
}

/*
 * Like session_free(), for a session that never reached its target: a
 * target that cannot be reached counts in stats.failed like no target.
 */
static void session_fail(struct session *s)
{
	struct endpoint *ep = s->ep;

	pthread_mutex_lock(&ep->lock);
	ep->stats.failed++;
	pthread_mutex_unlock(&ep->lock);
	session_free(s);
}

static struct bufferevent *session_peer(struct session *s,
					struct bufferevent *bev)
{
	return bev == s->client ? s->server : s->client;
}

/*
 * Copy a current target into S, the next one in turn when there are
 * several.  Returns false, after counting a failure, when there is none.
 * Otherwise S counts as active.
 */
static bool session_take_target(struct session *s)
{
	struct endpoint *ep = s->ep;
	const struct endpoint_target *t;
	bool found;

	pthread_mutex_lock(&ep->lock);
	found = ep->n_targets > 0;
	if (found) {
		t = &ep->targets[ep->next_target++ % (unsigned)ep->n_targets];
		s->host = xstrdup(t->host);
		s->port = t->port;
		ep->stats.active++;
		tally(ep, s->host, s->port, 1);
	} else {
		ep->stats.failed++;
	}
	pthread_mutex_unlock(&ep->lock);
	return found;
}

/* Whether HOST:PORT is one of EP's targets.  Call with ep->lock held. */
static bool is_target(struct endpoint *ep, const char *host, int port)
{
	for (int i = 0; i < ep->n_targets; i++)
		if (ep->targets[i].port == port &&
		    strcmp(ep->targets[i].host, host) == 0)
			return true;
	return false;
}

/*
 * Connect the new or held session S, whose client bufferevent is set up
 * with reading disabled, to the current target.  Forwarding starts when
 * the connect completes (session_event_cb).  Without a target, or when
 * the connect cannot even start, closes the client and frees S.  Runs on
 * the loop thread and does not block.
 */
static void session_connect(struct session *s)
{
	struct endpoint *ep = s->ep;
	struct sockaddr_in sin;

	if (!session_take_target(s)) {
		ep_warning(ep, "no target, closing connection");
		bufferevent_free(s->client);
		free(s);
		return;
	}
	session_link(s);
	if (ipv4_sockaddr(s->host, s->port, &sin) < 0) {
		ep_warning(ep, "invalid target address \"%s:%d\"", s->host,
			   s->port);
		session_fail(s);
		return;
	}

	/*
	 * Set the callbacks only after the connect has started: a connect
	 * that fails at once runs the event callback from inside
	 * bufferevent_socket_connect(), and we handle that failure here.
	 */
	s->server = bufferevent_socket_new(ep->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!s->server ||
	    bufferevent_socket_connect(s->server, (struct sockaddr *)&sin,
				       sizeof(sin)) < 0) {
		ep_warning(ep, "could not connect to %s:%d: %s", s->host,
			   s->port, strerror(errno));
		session_fail(s);
		return;
	}
	set_nodelay(ep, bufferevent_getfd(s->server));
	bufferevent_setcb(s->client, session_read_cb, session_write_cb,
			  session_event_cb, s);
	bufferevent_setcb(s->server, session_read_cb, session_write_cb,
			  session_event_cb, s);
}

/*
 * Move what BEV has read to the other side's output.  When that output
 * grows past ENDPOINT_MAX_PENDING, stop reading BEV until the other side
 * has written half of it (session_write_cb).  While closing, the other
 * side is gone and the bytes are discarded.
 */
static void session_read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct bufferevent *peer = session_peer(s, bev);
	struct evbuffer *input = bufferevent_get_input(bev);
	struct evbuffer *output;

	if (!peer) {
		evbuffer_drain(input, evbuffer_get_length(input));
		return;
	}
	output = bufferevent_get_output(peer);

	/*
	 * With nothing queued for PEER, write to its socket at once: the
	 * bytes stay in order, and a message that fits in the socket's
	 * buffer never arms PEER's write event, which would cost two
	 * epoll_ctl calls and a turn of the loop per message.  What the
	 * socket does not take (or an error, which the write event then
	 * reports) goes through PEER's output as before.
	 */
	if (evbuffer_get_length(output) == 0)
		(void)evbuffer_write(input, bufferevent_getfd(peer));
	if (evbuffer_get_length(input) > 0)
		evbuffer_add_buffer(output, input);
	if (evbuffer_get_length(output) >= ENDPOINT_MAX_PENDING) {
		bufferevent_setwatermark(peer, EV_WRITE,
					 ENDPOINT_MAX_PENDING / 2, 0);
		bufferevent_disable(bev, EV_READ);
	}
}

/*
 * BEV's output fell to its low watermark.  While closing, free the session
 * once it is empty; otherwise resume reading the other side if it was
 * paused for backpressure.
 */
static void session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct bufferevent *peer = session_peer(s, bev);

	if (s->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			session_free(s);
		return;
	}
	if (!s->connected || !peer || (bufferevent_get_enabled(peer) & EV_READ))
		return;
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_enable(peer, EV_READ);
}

/* The connect to the target ended with WHAT: start forwarding or give up. */
static void session_connect_done(struct session *s, short what)
{
	struct endpoint *ep = s->ep;
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		s->connected = true;
		log_debug("endpoint \"%s\": connected to %s:%d", ep->name,
			  s->host, s->port);
		bufferevent_enable(s->server, EV_READ);
		bufferevent_enable(s->client, EV_READ);
		return;
	}
	if (!(what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)))
		return;
	ep_warning(ep, "could not connect to %s:%d: %s", s->host, s->port,
		   err ? evutil_socket_error_to_string(err)
		       : "connection closed");
	session_fail(s);
}

/*
 * BEV reached end of file or failed.  Hand what it read to the other side,
 * close BEV, and close the other side once its output has drained (at
 * once if it is empty, or if the other side fails too).
 */
static void session_close_side(struct session *s, struct bufferevent *bev,
			       short what)
{
	struct endpoint *ep = s->ep;
	struct bufferevent *peer = session_peer(s, bev);
	const char *side = bev == s->client ? "client" : "server";

	if (what & BEV_EVENT_ERROR)
		log_debug("endpoint \"%s\": %s connection failed: %s", ep->name,
			  side,
			  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	if (peer && !s->connected) {
		session_free(s);
		return;
	}
	if (peer)
		evbuffer_add_buffer(bufferevent_get_output(peer),
				    bufferevent_get_input(bev));
	if (bev == s->client)
		s->client = NULL;
	else
		s->server = NULL;
	bufferevent_free(bev);
	if (!peer || evbuffer_get_length(bufferevent_get_output(peer)) == 0) {
		session_free(s);
		return;
	}

	/*
	 * Keep reading (and discarding) from PEER: closing a socket with
	 * unread bytes would reset it and lose what is still in flight.
	 */
	s->closing = true;
	bufferevent_setwatermark(peer, EV_WRITE, 0, 0);
	bufferevent_enable(peer, EV_READ);
}

static void session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if (bev == s->server && !s->connected)
		session_connect_done(s, what);
	else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		session_close_side(s, bev, what);
}

/* Append S to the held queue.  Call with ep->lock held. */
static void held_push(struct endpoint *ep, struct session *s)
{
	s->next = NULL;
	*ep->held_tail = s;
	ep->held_tail = &s->next;
	ep->stats.held++;
}

/*
 * Detach the N oldest held entries and return them as a list linked by
 * next.  Call with ep->lock held.
 */
static struct session *held_take(struct endpoint *ep, uint64_t n)
{
	struct session *batch = NULL;
	struct session **tail = &batch;
	struct session *s;

	while (n > 0 && (s = ep->held_head) != NULL) {
		ep->held_head = s->next;
		s->next = NULL;
		*tail = s;
		tail = &s->next;
		ep->stats.held--;
		n--;
	}
	if (!ep->held_head)
		ep->held_tail = &ep->held_head;
	return batch;
}

static void endpoint_accept_cb(struct evconnlistener *listener,
			       evutil_socket_t fd, struct sockaddr *addr,
			       int addrlen, void *arg)
{
	struct endpoint *ep = arg;
	struct session *s;
	bool held;

	set_nodelay(ep, fd);
	s = xcalloc(1, sizeof(*s));
	s->ep = ep;
	s->client = bufferevent_socket_new(ep->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!s->client) {
		ep_warning(ep, "could not set up a connection");
		evutil_closesocket(fd);
		free(s);
		return;
	}
	/* Held or connecting, the client is not read until its server is up. */
	bufferevent_disable(s->client, EV_READ);

	pthread_mutex_lock(&ep->lock);
	ep->stats.accepted++;
	held = ep->holding;
	if (held)
		held_push(ep, s);
	pthread_mutex_unlock(&ep->lock);

	if (held)
		log_debug("endpoint \"%s\": holding a new connection",
			  ep->name);
	else
		session_connect(s);
}

/*
 * accept() failed, most likely for want of file descriptors.  Pause the
 * listener for a while rather than spin on the same error.
 */
static void endpoint_accept_error_cb(struct evconnlistener *listener, void *arg)
{
	struct endpoint *ep = arg;
	struct timeval tv = ms_to_timeval(ENDPOINT_ACCEPT_RETRY_MS);
	int err = EVUTIL_SOCKET_ERROR();

	ep_warning(ep, "could not accept a connection: %s",
		   evutil_socket_error_to_string(err));
	evconnlistener_disable(listener);
	evtimer_add(ep->accept_retry, &tv);
}

static void endpoint_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct endpoint *ep = arg;

	evconnlistener_enable(ep->listener);
}

/*
 * Close every session whose target is not a current one.  Loop thread
 * only: session_free() takes ep->lock itself, so the targets are read
 * per session.
 */
static void endpoint_drop_stale(struct endpoint *ep)
{
	struct session *s, *next;
	int dropped = 0;
	bool keep;

	for (s = ep->sessions; s; s = next) {
		next = s->next;
		pthread_mutex_lock(&ep->lock);
		keep = is_target(ep, s->host, s->port);
		pthread_mutex_unlock(&ep->lock);
		if (keep)
			continue;
		session_free(s);
		dropped++;
	}
	log_info("endpoint \"%s\": closed %d sessions to old targets", ep->name,
		 dropped);
}

/*
 * Arm the hold timer for what is left of the hold, or cancel it when
 * nothing is held.  Loop thread only, so that timer changes never race.
 */
static void endpoint_sync_timer(struct endpoint *ep)
{
	struct timeval tv;
	bool holding;
	int64_t left;

	pthread_mutex_lock(&ep->lock);
	holding = ep->holding;
	left = ep->hold_deadline - now_ms();
	pthread_mutex_unlock(&ep->lock);

	if (!holding) {
		evtimer_del(ep->hold_timer);
		return;
	}
	tv = ms_to_timeval(left);
	evtimer_add(ep->hold_timer, &tv);
}

/*
 * Do on the loop thread what the other threads asked for: drop stale
 * sessions, connect the held connections that were released, and bring
 * the hold timer in line with the holding flag.
 */
static void endpoint_run_queued(struct endpoint *ep)
{
	struct session *batch, *s;
	bool drop;

	pthread_mutex_lock(&ep->lock);
	batch = held_take(ep, ep->release_count);
	ep->release_count = 0;
	drop = ep->drop_pending;
	ep->drop_pending = false;
	pthread_mutex_unlock(&ep->lock);

	if (drop)
		endpoint_drop_stale(ep);
	while ((s = batch) != NULL) {
		batch = s->next;
		s->next = NULL;
		session_connect(s);
	}
	endpoint_sync_timer(ep);
}

static void endpoint_wakeup_cb(evutil_socket_t fd, short what, void *arg)
{
	endpoint_run_queued(arg);
}

/* The hold timer fired: release everything held if the hold is over. */
static void endpoint_hold_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct endpoint *ep = arg;
	bool expired;
	uint64_t n = 0;

	pthread_mutex_lock(&ep->lock);
	expired = ep->holding && now_ms() >= ep->hold_deadline;
	if (expired) {
		ep->holding = false;
		ep->release_count = n = ep->stats.held;
	}
	pthread_mutex_unlock(&ep->lock);

	if (expired)
		log_warning("endpoint \"%s\": hold expired after %" PRId64
			    " ms, releasing %" PRIu64 " connections",
			    ep->name, ep->hold_ms, n);
	endpoint_run_queued(ep);
}

/* Ask the loop thread to run endpoint_run_queued(). */
static void endpoint_wake(struct endpoint *ep)
{
	event_active(ep->wakeup, EV_READ, 0);
}

struct endpoint *endpoint_new(struct event_base *base, const char *name,
			      const char *host, int port, int64_t hold_ms,
			      char *err, size_t errlen)
{
	struct endpoint *ep;
	struct sockaddr_in sin;
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
			 LEV_OPT_CLOSE_ON_EXEC;

	if (ipv4_sockaddr(host, port, &sin) < 0) {
		snprintf(err, errlen, "invalid listen address \"%s:%d\"", host,
			 port);
		return NULL;
	}
	ep = xcalloc(1, sizeof(*ep));
	ep->base = base;
	ep->name = xstrdup(name);
	ep->hold_ms = hold_ms;
	ep->held_tail = &ep->held_head;
	pthread_mutex_init(&ep->lock, NULL);

	ep->listener =
		evconnlistener_new_bind(base, endpoint_accept_cb, ep, flags, -1,
					(struct sockaddr *)&sin, sizeof(sin));
	if (!ep->listener) {
		snprintf(err, errlen, "could not listen on %s:%d: %s", host,
			 port, strerror(errno));
		endpoint_free(ep);
		return NULL;
	}
	evconnlistener_set_error_cb(ep->listener, endpoint_accept_error_cb);
	ep->hold_timer = evtimer_new(base, endpoint_hold_timer_cb, ep);
	ep->wakeup = event_new(base, -1, 0, endpoint_wakeup_cb, ep);
	ep->accept_retry = evtimer_new(base, endpoint_accept_retry_cb, ep);
	if (!ep->hold_timer || !ep->wakeup || !ep->accept_retry) {
		snprintf(err, errlen, "could not create events for \"%s\"",
			 name);
		endpoint_free(ep);
		return NULL;
	}
	log_info("endpoint \"%s\": listening on %s:%d", name, host, port);
	return ep;
}

/*
 * Call on the loop thread, or once the loop has stopped.  Closes held
 * connections and sessions at once, without flushing.
 */
void endpoint_free(struct endpoint *ep)
{
	struct session *s;

	if (!ep)
		return;
	if (ep->listener)
		evconnlistener_free(ep->listener);
	if (ep->hold_timer)
		event_free(ep->hold_timer);
	if (ep->wakeup)
		event_free(ep->wakeup);
	if (ep->accept_retry)
		event_free(ep->accept_retry);
	while (ep->sessions)
		session_free(ep->sessions);
	while ((s = ep->held_head) != NULL) {
		ep->held_head = s->next;
		bufferevent_free(s->client);
		free(s);
	}
	pthread_mutex_destroy(&ep->lock);
	free(ep->name);
	free(ep);
}

/* Replace the targets by one.  Call with ep->lock held; HOST not NULL. */
static void endpoint_set_target_locked(struct endpoint *ep, const char *host,
				       int port)
{
	snprintf(ep->targets[0].host, sizeof(ep->targets[0].host), "%s", host);
	ep->targets[0].port = port;
	ep->n_targets = 1;
}

void endpoint_set_target(struct endpoint *ep, const char *host, int port)
{
	pthread_mutex_lock(&ep->lock);
	endpoint_set_target_locked(ep, host, port);
	pthread_mutex_unlock(&ep->lock);
	log_info("endpoint \"%s\": target is now %s:%d", ep->name, host, port);
}

void endpoint_set_targets(struct endpoint *ep,
			  const struct endpoint_target *targets, int n)
{
	char list[ENDPOINT_MAX_TARGETS * 72] = "";
	size_t len = 0;
	bool same;

	if (n > ENDPOINT_MAX_TARGETS)
		n = ENDPOINT_MAX_TARGETS;
	pthread_mutex_lock(&ep->lock);
	same = n == ep->n_targets;
	for (int i = 0; same && i < n; i++)
		same = is_target(ep, targets[i].host, targets[i].port);
	if (n > 0)
		memcpy(ep->targets, targets, sizeof(*targets) * (size_t)n);
	ep->n_targets = n;
	pthread_mutex_unlock(&ep->lock);
	if (same)
		return;
	for (int i = 0; i < n && len < sizeof(list); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len,
					"%s%s:%d", i ? ", " : "",
					targets[i].host, targets[i].port);
	log_info("endpoint \"%s\": targets are now %s", ep->name,
		 n ? list : "none");
}

uint64_t endpoint_sessions_to(struct endpoint *ep, const char *host, int port)
{
	uint64_t n;

	pthread_mutex_lock(&ep->lock);
	n = 0;
	for (int i = 0; i < ep->n_tallies; i++)
		if (ep->tallies[i].port == port &&
		    strcmp(ep->tallies[i].host, host) == 0)
			n = ep->tallies[i].sessions;
	pthread_mutex_unlock(&ep->lock);
	return n;
}

void endpoint_hold(struct endpoint *ep)
{
	pthread_mutex_lock(&ep->lock);
	ep->holding = true;
	ep->hold_deadline = now_ms() + ep->hold_ms;
	pthread_mutex_unlock(&ep->lock);
	endpoint_wake(ep);
	log_info("endpoint \"%s\": holding new connections for at most %" PRId64
		 " ms",
		 ep->name, ep->hold_ms);
}

void endpoint_release(struct endpoint *ep, const char *host, int port)
{
	char target[300] = "no target";
	uint64_t n;

	pthread_mutex_lock(&ep->lock);
	if (host)
		endpoint_set_target_locked(ep, host, port);
	if (ep->n_targets > 0)
		snprintf(target, sizeof(target), "%s:%d", ep->targets[0].host,
			 ep->targets[0].port);
	ep->holding = false;
	ep->release_count = n = ep->stats.held;
	pthread_mutex_unlock(&ep->lock);
	endpoint_wake(ep);
	log_info("endpoint \"%s\": releasing %" PRIu64 " connections to %s",
		 ep->name, n, target);
}

void endpoint_drop_sessions(struct endpoint *ep)
{
	pthread_mutex_lock(&ep->lock);
	ep->drop_pending = true;
	pthread_mutex_unlock(&ep->lock);
	endpoint_wake(ep);
}

void endpoint_get_stats(struct endpoint *ep, struct endpoint_stats *stats)
{
	pthread_mutex_lock(&ep->lock);
	*stats = ep->stats;
	stats->holding = ep->holding;
	pthread_mutex_unlock(&ep->lock);
}
