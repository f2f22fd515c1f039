/*
 * test_endpoint.c: the endpoint against echo backends on 127.0.0.1.
 *
 * The endpoint and three backends share one event loop, run in its own
 * thread.  Backends A and B echo what they read after a prefix ("A:" or
 * "B:") sent on accept, so a client knows which one answered; backends C
 * and D send "C:" or "D:" and a pattern of FLOOD_LEN or BIG_FLOOD_LEN
 * bytes, then close.  The test thread drives the
 * endpoint through its thread-safe calls and talks to it with blocking
 * sockets whose every wait is bounded.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "rotator/endpoint.h"
#include "rotator/log.h"
#include "rotator/util.h"

#define PAYLOAD_LEN (1024 * 1024)
#define FLOOD_LEN (1024 * 1024)
#define BIG_FLOOD_LEN (8 * 1024 * 1024)
#define SLOW_RCVBUF (16 * 1024)
#define WAIT_MS 5000
#define LONG_HOLD_MS 3000
#define SHORT_HOLD_MS 400

struct echo_conn;

struct backend {
	const char *prefix; /* sent first on every connection */
	size_t flood_len;   /* > 0: send this many bytes and close */
	struct evconnlistener *listener;
	int port;
	struct echo_conn *conns;
};

struct echo_conn {
	struct backend *backend;
	struct bufferevent *bev;
	struct echo_conn *prev;
	struct echo_conn *next;
};

struct fixture {
	struct event_base *base;
	pthread_t loop;
	bool loop_started;
	struct backend a;
	struct backend b;
	struct backend c;
	struct backend d;
	struct endpoint *ep;
	int port;	  /* the endpoint's */
	int refused_port; /* nothing listens here */
};

struct sender {
	int fd;
	const char *buf;
	size_t len;
	bool ok;
};

static void fill_pattern(char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(i * 131 + (i >> 10));
}

static void echo_free(struct echo_conn *c)
{
	struct backend *b = c->backend;

	if (c->prev)
		c->prev->next = c->next;
	else
		b->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	bufferevent_free(c->bev);
	free(c);
}

static void echo_read_cb(struct bufferevent *bev, void *arg)
{
	struct echo_conn *c = arg;
	struct evbuffer *input = bufferevent_get_input(bev);

	if (c->backend->flood_len > 0)
		evbuffer_drain(input, evbuffer_get_length(input));
	else
		evbuffer_add_buffer(bufferevent_get_output(bev), input);
}

/* The output has drained: a flooding backend closes now. */
static void echo_write_cb(struct bufferevent *bev, void *arg)
{
	struct echo_conn *c = arg;

	if (c->backend->flood_len > 0)
		echo_free(c);
}

static void echo_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		echo_free(arg);
}

static void echo_accept_cb(struct evconnlistener *listener, evutil_socket_t fd,
			   struct sockaddr *addr, int addrlen, void *arg)
{
	struct backend *b = arg;
	struct echo_conn *c = xcalloc(1, sizeof(*c));
	struct evbuffer *output;

	c->backend = b;
	c->bev = bufferevent_socket_new(evconnlistener_get_base(listener), fd,
					BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(c->bev);
	c->next = b->conns;
	if (b->conns)
		b->conns->prev = c;
	b->conns = c;
	bufferevent_setcb(c->bev, echo_read_cb, echo_write_cb, echo_event_cb,
			  c);
	output = bufferevent_get_output(c->bev);
	evbuffer_add(output, b->prefix, strlen(b->prefix));
	if (b->flood_len > 0) {
		char *flood = xmalloc(b->flood_len);

		fill_pattern(flood, b->flood_len);
		evbuffer_add(output, flood, b->flood_len);
		free(flood);
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static int bound_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sin;
}

/* A port the kernel just handed out and nobody listens on. */
static int free_port(void)
{
	struct sockaddr_in sin = loopback(0);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	port = bound_port(fd);
	close(fd);
	return port;
}

static void backend_start(struct fixture *f, struct backend *b,
			  const char *prefix, size_t flood_len)
{
	struct sockaddr_in sin = loopback(0);

	b->prefix = prefix;
	b->flood_len = flood_len;
	b->listener = evconnlistener_new_bind(
		f->base, echo_accept_cb, b,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
		(struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(b->listener);
	b->port = bound_port(evconnlistener_get_fd(b->listener));
}

static void backend_stop(struct backend *b)
{
	while (b->conns)
		echo_free(b->conns);
	if (b->listener)
		evconnlistener_free(b->listener);
}

/*
 * Runs on the loop thread.  A loopbreak from another thread is lost when
 * it comes before the loop has started, so teardown stops it from here.
 */
static void loop_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void *loop_main(void *arg)
{
	struct fixture *f = arg;

	event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/*
 * Make an endpoint "orders" on a free port (retried a few times, as the
 * port is only known to be free when it is picked) and start the loop.
 */
static int setup_with_hold(void **state, int64_t hold_ms)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char err[256] = "";

	*state = f;
	f->base = event_base_new();
	assert_non_null(f->base);
	backend_start(f, &f->a, "A:", 0);
	backend_start(f, &f->b, "B:", 0);
	backend_start(f, &f->c, "C:", FLOOD_LEN);
	backend_start(f, &f->d, "D:", BIG_FLOOD_LEN);
	f->refused_port = free_port();
	for (int i = 0; i < 10 && !f->ep; i++) {
		f->port = free_port();
		f->ep = endpoint_new(f->base, "orders", "127.0.0.1", f->port,
				     hold_ms, err, sizeof(err));
	}
	if (!f->ep)
		fail_msg("%s", err);
	assert_int_equal(pthread_create(&f->loop, NULL, loop_main, f), 0);
	f->loop_started = true;
	return 0;
}

static int setup(void **state)
{
	return setup_with_hold(state, LONG_HOLD_MS);
}

static int setup_short_hold(void **state)
{
	return setup_with_hold(state, SHORT_HOLD_MS);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct timeval now = {0, 0};

	if (f->loop_started) {
		if (event_base_once(f->base, -1, EV_TIMEOUT, loop_stop_cb,
				    f->base, &now) < 0)
			return -1;
		pthread_join(f->loop, NULL);
	}
	endpoint_free(f->ep);
	backend_stop(&f->a);
	backend_stop(&f->b);
	backend_stop(&f->c);
	backend_stop(&f->d);
	event_base_free(f->base);
	free(f);
	return 0;
}

static void set_timeout(int fd, int option, int64_t ms)
{
	struct timeval tv = {.tv_sec = ms / 1000,
			     .tv_usec = (ms % 1000) * 1000};

	assert_int_equal(setsockopt(fd, SOL_SOCKET, option, &tv, sizeof(tv)),
			 0);
}

/*
 * Connect to PORT with bounded waits.  A RCVBUF above 0 shrinks the
 * receive buffer, so that a client slow to read backs data up into the
 * endpoint instead of the kernel.
 */
static int client_connect_rcvbuf(int port, int rcvbuf)
{
	struct sockaddr_in sin = loopback(port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	if (rcvbuf > 0)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
					    sizeof(rcvbuf)),
				 0);
	set_timeout(fd, SO_RCVTIMEO, WAIT_MS);
	set_timeout(fd, SO_SNDTIMEO, WAIT_MS);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static int client_connect(int port)
{
	return client_connect_rcvbuf(port, 0);
}

static void send_all(int fd, const char *text)
{
	size_t len = strlen(text);

	assert_int_equal(send(fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Read LEN bytes within TIMEOUT_MS.  Returns how many arrived. */
static size_t read_exact(int fd, char *buf, size_t len, int64_t timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	size_t got = 0;

	while (got < len && now_ms() < deadline) {
		ssize_t n = recv(fd, buf + got, len - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static void expect_reply(int fd, const char *want)
{
	size_t len = strlen(want);
	char buf[256];

	assert_true(len < sizeof(buf));
	assert_int_equal(read_exact(fd, buf, len, WAIT_MS), len);
	buf[len] = '\0';
	assert_string_equal(buf, want);
}

/* True when FD reaches end of file (or a reset) within WAIT_MS. */
static bool sees_eof(int fd)
{
	int64_t deadline = now_ms() + WAIT_MS;
	char buf[4096];

	for (int i = 0; i < 1024 && now_ms() < deadline; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n == 0)
			return true;
		if (n < 0)
			return errno == ECONNRESET;
	}
	return false;
}

/* True when nothing arrives on FD for MS milliseconds. */
static bool stays_silent(int fd, int64_t ms)
{
	char c;
	ssize_t n;

	set_timeout(fd, SO_RCVTIMEO, ms);
	n = recv(fd, &c, 1, MSG_PEEK);
	set_timeout(fd, SO_RCVTIMEO, WAIT_MS);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static uint64_t stat_field(const struct endpoint_stats *st, size_t offset)
{
	uint64_t v;

	memcpy(&v, (const char *)st + offset, sizeof(v));
	return v;
}

/* Poll the stats until the field at OFFSET equals WANT, for WAIT_MS. */
static bool wait_stat(struct endpoint *ep, size_t offset, uint64_t want)
{
	struct endpoint_stats st;

	for (int i = 0; i < WAIT_MS / 10; i++) {
		endpoint_get_stats(ep, &st);
		if (stat_field(&st, offset) == want)
			return true;
		sleep_ms(10);
	}
	return false;
}

#define assert_stat_becomes(ep, field, want)                                   \
	assert_true(wait_stat((ep), offsetof(struct endpoint_stats, field),    \
			      (want)))

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	size_t sent = 0;

	while (sent < s->len) {
		ssize_t n =
			send(s->fd, s->buf + sent, s->len - sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		sent += (size_t)n;
	}
	s->ok = true;
	return NULL;
}

/*
 * 1 MiB through the endpoint to A and back.  The reader starts late so
 * that the buffers fill and the endpoint has to pause and resume.
 */
static void test_forward_large_payload(void **state)
{
	struct fixture *f = *state;
	char *payload = xmalloc(PAYLOAD_LEN);
	char *reply = xmalloc(PAYLOAD_LEN + 2);
	struct sender sender;
	pthread_t thread;
	int fd;

	fill_pattern(payload, PAYLOAD_LEN);
	endpoint_set_target(f->ep, "127.0.0.1", f->a.port);
	fd = client_connect_rcvbuf(f->port, SLOW_RCVBUF);
	sender = (struct sender){.fd = fd, .buf = payload, .len = PAYLOAD_LEN};
	assert_int_equal(pthread_create(&thread, NULL, sender_main, &sender),
			 0);
	sleep_ms(200);
	assert_int_equal(read_exact(fd, reply, PAYLOAD_LEN + 2, 3 * WAIT_MS),
			 PAYLOAD_LEN + 2);
	pthread_join(thread, NULL);
	assert_true(sender.ok);
	assert_memory_equal(reply, "A:", 2);
	assert_memory_equal(reply + 2, payload, PAYLOAD_LEN);
	close(fd);
	assert_stat_becomes(f->ep, active, 0);
	free(payload);
	free(reply);
}

/*
 * Connect through the endpoint to B, a flooding backend, and read all it
 * sends, starting late: the prefix and LEN bytes of pattern, then EOF.
 */
static void expect_flood(struct fixture *f, struct backend *b, size_t len,
			 int rcvbuf)
{
	char *want = xmalloc(len);
	char *reply = xmalloc(len + 2);
	int fd;

	fill_pattern(want, len);
	endpoint_set_target(f->ep, "localhost", b->port);
	fd = client_connect_rcvbuf(f->port, rcvbuf);
	sleep_ms(300);
	assert_int_equal(read_exact(fd, reply, len + 2, 3 * WAIT_MS), len + 2);
	assert_memory_equal(reply, b->prefix, 2);
	assert_memory_equal(reply + 2, want, len);
	assert_true(sees_eof(fd));
	close(fd);
	assert_stat_becomes(f->ep, active, 0);
	free(want);
	free(reply);
}

/*
 * A server that sends and closes while the client is not reading: what
 * the endpoint still holds for the client reaches it before the EOF.
 */
static void test_server_close_flushes(void **state)
{
	struct fixture *f = *state;

	expect_flood(f, &f->c, FLOOD_LEN, 0);
}

/*
 * More than the kernel buffers hold, to a client with a small receive
 * buffer that starts late: the endpoint must stop reading the server and
 * resume once the client catches up, losing nothing.
 */
static void test_backpressure(void **state)
{
	struct fixture *f = *state;

	expect_flood(f, &f->d, BIG_FLOOD_LEN, SLOW_RCVBUF);
}

/* A client that arrives during a hold waits, then reaches the new target. */
static void test_hold_then_release(void **state)
{
	struct fixture *f = *state;
	struct endpoint_stats st;
	int fd;

	endpoint_set_target(f->ep, "127.0.0.1", f->a.port);
	endpoint_hold(f->ep);
	endpoint_get_stats(f->ep, &st);
	assert_int_equal(st.holding, 1);
	fd = client_connect(f->port);
	send_all(fd, "hello");
	assert_true(stays_silent(fd, 300));
	assert_stat_becomes(f->ep, held, 1);

	endpoint_release(f->ep, "127.0.0.1", f->b.port);
	expect_reply(fd, "B:hello");
	endpoint_get_stats(f->ep, &st);
	assert_int_equal(st.holding, 0);
	assert_int_equal(st.held, 0);
	close(fd);
	assert_stat_becomes(f->ep, active, 0);
}

/* A session opened before the hold keeps forwarding during it. */
static void test_session_survives_hold(void **state)
{
	struct fixture *f = *state;
	int fd;

	endpoint_set_target(f->ep, "127.0.0.1", f->a.port);
	fd = client_connect(f->port);
	expect_reply(fd, "A:");
	endpoint_hold(f->ep);
	send_all(fd, "ping");
	expect_reply(fd, "ping");
	endpoint_release(f->ep, NULL, 0);
	send_all(fd, "pong");
	expect_reply(fd, "pong");
	close(fd);
	assert_stat_becomes(f->ep, active, 0);
}

/* With no release, the hold ends after hold_ms, towards the new target. */
static void test_hold_expiry(void **state)
{
	struct fixture *f = *state;
	struct endpoint_stats st;
	int64_t start, elapsed;
	int fd;

	endpoint_set_target(f->ep, "127.0.0.1", f->a.port);
	start = now_ms();
	endpoint_hold(f->ep);
	endpoint_set_target(f->ep, "127.0.0.1", f->b.port);
	fd = client_connect(f->port);
	send_all(fd, "x");
	assert_true(stays_silent(fd, SHORT_HOLD_MS / 4));
	expect_reply(fd, "B:x");
	elapsed = now_ms() - start;
	assert_true(elapsed >= SHORT_HOLD_MS - 1);
	assert_true(elapsed < SHORT_HOLD_MS + WAIT_MS);
	endpoint_get_stats(f->ep, &st);
	assert_int_equal(st.holding, 0);
	assert_int_equal(st.held, 0);
	assert_int_equal(st.active, 1);
	close(fd);
}

/* Sessions to the old target are closed; those to the new one stay. */
static void test_drop_sessions(void **state)
{
	struct fixture *f = *state;
	int old_fd, new_fd;

	endpoint_set_target(f->ep, "127.0.0.1", f->a.port);
	old_fd = client_connect(f->port);
	expect_reply(old_fd, "A:");
	endpoint_set_target(f->ep, "127.0.0.1", f->b.port);
	new_fd = client_connect(f->port);
	expect_reply(new_fd, "B:");

	endpoint_drop_sessions(f->ep);
	assert_true(sees_eof(old_fd));
	send_all(new_fd, "still");
	expect_reply(new_fd, "still");
	assert_stat_becomes(f->ep, active, 1);
	close(old_fd);
	close(new_fd);
	assert_stat_becomes(f->ep, active, 0);
}

/*
 * Two targets take connections in turn; a target removed keeps its
 * sessions, counted, until endpoint_drop_sessions() closes them.
 */
static void test_several_targets(void **state)
{
	struct fixture *f = *state;
	struct endpoint_target two[2] = {{"127.0.0.1", f->a.port},
					 {"127.0.0.1", f->b.port}};
	int fd[4];
	int a = 0, b = 0;
	char buf[2];

	endpoint_set_targets(f->ep, two, 2);
	for (int i = 0; i < 4; i++) {
		fd[i] = client_connect(f->port);
		assert_int_equal(read_exact(fd[i], buf, 2, WAIT_MS), 2);
		a += buf[0] == 'A';
		b += buf[0] == 'B';
	}
	assert_int_equal(a, 2);
	assert_int_equal(b, 2);
	assert_int_equal(endpoint_sessions_to(f->ep, "127.0.0.1", f->a.port),
			 2);

	/* A leaves the set: new sessions go to B, A's stay open. */
	endpoint_set_targets(f->ep, two + 1, 1);
	for (int i = 0; i < 2; i++) {
		int extra = client_connect(f->port);

		expect_reply(extra, "B:");
		close(extra);
	}
	assert_int_equal(endpoint_sessions_to(f->ep, "127.0.0.1", f->a.port),
			 2);
	endpoint_drop_sessions(f->ep);
	for (int i = 0;
	     i < 10 && endpoint_sessions_to(f->ep, "127.0.0.1", f->a.port) > 0;
	     i++)
		sleep_ms(50);
	assert_int_equal(endpoint_sessions_to(f->ep, "127.0.0.1", f->a.port),
			 0);
	assert_stat_becomes(f->ep, active, 2);
	for (int i = 0; i < 4; i++)
		close(fd[i]);
	assert_stat_becomes(f->ep, active, 0);
	assert_int_equal(endpoint_sessions_to(f->ep, "127.0.0.1", f->b.port),
			 0);

	/* No target at all: connections are closed. */
	endpoint_set_targets(f->ep, NULL, 0);
	fd[0] = client_connect(f->port);
	assert_true(sees_eof(fd[0]));
	close(fd[0]);
}

static void test_no_target(void **state)
{
	struct fixture *f = *state;
	struct endpoint_stats st;
	int fd;

	fd = client_connect(f->port);
	assert_true(sees_eof(fd));
	close(fd);
	assert_stat_becomes(f->ep, failed, 1);
	endpoint_get_stats(f->ep, &st);
	assert_int_equal(st.accepted, 1);
	assert_int_equal(st.active, 0);
}

/* A target that refuses closes the client; later clients still get in. */
static void test_refused_target(void **state)
{
	struct fixture *f = *state;
	int fd;

	endpoint_set_target(f->ep, "127.0.0.1", f->refused_port);
	for (int i = 0; i < 2; i++) {
		fd = client_connect(f->port);
		assert_true(sees_eof(fd));
		close(fd);
	}
	assert_stat_becomes(f->ep, failed, 2);
	assert_stat_becomes(f->ep, active, 0);

	endpoint_set_target(f->ep, "127.0.0.1", f->a.port);
	fd = client_connect(f->port);
	expect_reply(fd, "A:");
	send_all(fd, "hi");
	expect_reply(fd, "hi");
	close(fd);
	assert_stat_becomes(f->ep, active, 0);
}

static void test_stats(void **state)
{
	struct fixture *f = *state;
	struct endpoint_stats st;
	int c1, c2, c3;

	endpoint_set_target(f->ep, "127.0.0.1", f->a.port);
	c1 = client_connect(f->port);
	expect_reply(c1, "A:");
	endpoint_get_stats(f->ep, &st);
	assert_int_equal(st.accepted, 1);
	assert_int_equal(st.active, 1);
	assert_int_equal(st.held, 0);
	assert_int_equal(st.holding, 0);

	endpoint_hold(f->ep);
	c2 = client_connect(f->port);
	send_all(c2, "two");
	c3 = client_connect(f->port);
	send_all(c3, "three");
	assert_stat_becomes(f->ep, held, 2);
	endpoint_get_stats(f->ep, &st);
	assert_int_equal(st.accepted, 3);
	assert_int_equal(st.active, 1);
	assert_int_equal(st.holding, 1);

	endpoint_release(f->ep, "127.0.0.1", f->b.port);
	expect_reply(c2, "B:two");
	expect_reply(c3, "B:three");
	endpoint_get_stats(f->ep, &st);
	assert_int_equal(st.held, 0);
	assert_int_equal(st.active, 3);
	assert_int_equal(st.holding, 0);

	close(c1);
	assert_stat_becomes(f->ep, active, 2);
	close(c2);
	close(c3);
	assert_stat_becomes(f->ep, active, 0);
	endpoint_get_stats(f->ep, &st);
	assert_int_equal(st.accepted, 3);
	assert_int_equal(st.failed, 0);
}

/* A port in use or a host that is no IPv4 address: NULL and a reason. */
static void test_new_errors(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	char want[64];

	assert_null(endpoint_new(f->base, "dup", "127.0.0.1", f->a.port, 100,
				 err, sizeof(err)));
	snprintf(want, sizeof(want),
		 "could not listen on 127.0.0.1:%d: ", f->a.port);
	assert_memory_equal(err, want, strlen(want));
	assert_null(endpoint_new(f->base, "bad", "db.example.com", 5432, 100,
				 err, sizeof(err)));
	assert_string_equal(err,
			    "invalid listen address \"db.example.com:5432\"");
}

static int group_setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_WARNING);
	return evthread_use_pthreads();
}

static int group_teardown(void **state)
{
	libevent_global_shutdown();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_forward_large_payload,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_close_flushes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_hold_then_release, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_session_survives_hold,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_expiry,
						setup_short_hold, teardown),
		cmocka_unit_test_setup_teardown(test_drop_sessions, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_several_targets, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_target, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refused_target, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_errors, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
