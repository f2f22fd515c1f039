/*
 * test_sentinel.c: the Sentinel emulation over plain sockets.
 *
 * A sentinel for master "orders" listens on 127.0.0.1:26390 on an event
 * loop run in its own thread.  The test thread talks RESP2 to it with
 * blocking sockets whose every wait is bounded, compares replies byte for
 * byte, and calls sentinel_update() from itself and from a third thread.
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
#include <event2/event.h>
#include <event2/thread.h>

#include "rotator/log.h"
#include "rotator/sentinel.h"
#include "rotator/util.h"

#define PORT 26390
#define WAIT_MS 5000
#define QUIET_MS 300

struct fixture {
	struct event_base *base;
	pthread_t loop;
	struct sentinel *s;
};

static const struct sentinel_addr node_a = {"127.0.0.1", 15901};
static const struct sentinel_addr node_b = {"127.0.0.1", 15902};
static const struct sentinel_addr replicas[2] = {
	{"127.0.0.1", 15903},
	{"127.0.0.1", 15904},
};

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

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char err[256];

	f->base = event_base_new();
	assert_non_null(f->base);
	f->s = sentinel_new(f->base, "orders", "127.0.0.1", PORT, err,
			    sizeof(err));
	if (!f->s)
		fail_msg("%s", err);
	assert_int_equal(pthread_create(&f->loop, NULL, loop_main, f), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(event_base_once(f->base, -1, EV_TIMEOUT, loop_stop_cb,
					 f->base, NULL),
			 0);
	pthread_join(f->loop, NULL);
	sentinel_free(f->s);
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

static int connect_rcvbuf(int rcvbuf)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	if (rcvbuf > 0)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
					    sizeof(rcvbuf)),
				 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(PORT);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	set_timeout(fd, SO_RCVTIMEO, WAIT_MS);
	set_timeout(fd, SO_SNDTIMEO, WAIT_MS);
	return fd;
}

static int connect_sentinel(void)
{
	return connect_rcvbuf(0);
}

static void send_len(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		assert_true(n > 0);
		buf += n;
		len -= (size_t)n;
	}
}

static void send_all(int fd, const char *text)
{
	send_len(fd, text, strlen(text));
}

/* Read exactly LEN bytes, or fewer at end of file or after TIMEOUT_MS. */
static size_t read_exact(int fd, char *buf, size_t len, int64_t timeout_ms)
{
	size_t got = 0;

	set_timeout(fd, SO_RCVTIMEO, timeout_ms);
	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	set_timeout(fd, SO_RCVTIMEO, WAIT_MS);
	return got;
}

/* The next bytes from FD are exactly WANT. */
static void expect_reply(int fd, const char *want)
{
	size_t len = strlen(want);
	char *got = xcalloc(1, len + 1);
	size_t n = read_exact(fd, got, len, WAIT_MS);

	got[n] = '\0';
	if (n != len || memcmp(got, want, len) != 0)
		fail_msg("wanted \"%s\", got \"%s\"", want, got);
	free(got);
}

/* Nothing arrives for QUIET_MS. */
static bool stays_silent(int fd)
{
	char c;

	return read_exact(fd, &c, 1, QUIET_MS) == 0;
}

/* FD reaches end of file (or a reset) soon, after any bytes at all. */
static bool sees_eof(int fd)
{
	char buf[4096];
	ssize_t n;

	do
		n = recv(fd, buf, sizeof(buf), 0);
	while (n > 0);
	return n == 0 || errno == ECONNRESET;
}

/* Send TEXT on a new connection and expect WANT. */
static void roundtrip(const char *text, const char *want)
{
	int fd = connect_sentinel();

	send_all(fd, text);
	expect_reply(fd, want);
	close(fd);
}

/* Builders for expected replies, appended to a growing string. */
struct resp {
	char buf[16384];
	size_t len;
};

static void resp_add(struct resp *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void resp_add(struct resp *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	r->len += (size_t)vsnprintf(r->buf + r->len, sizeof(r->buf) - r->len,
				    fmt, ap);
	va_end(ap);
	assert_true(r->len < sizeof(r->buf));
}

static void resp_bulk(struct resp *r, const char *text)
{
	resp_add(r, "$%zu\r\n%s\r\n", strlen(text), text);
}

/* A flat array of the NULL-terminated strings in ITEMS. */
static void resp_strings(struct resp *r, const char *const *items)
{
	size_t n = 0;

	while (items[n])
		n++;
	resp_add(r, "*%zu\r\n", n);
	for (size_t i = 0; i < n; i++)
		resp_bulk(r, items[i]);
}

/* What a real Sentinel 7 lists for a master, with our values. */
static void resp_master(struct resp *r, const char *port, const char *epoch)
{
	const char *items[] = {"name",
			       "orders",
			       "ip",
			       "127.0.0.1",
			       "port",
			       port,
			       "runid",
			       "",
			       "flags",
			       "master",
			       "link-pending-commands",
			       "0",
			       "link-refcount",
			       "1",
			       "last-ping-sent",
			       "0",
			       "last-ok-ping-reply",
			       "0",
			       "last-ping-reply",
			       "0",
			       "down-after-milliseconds",
			       "30000",
			       "info-refresh",
			       "0",
			       "role-reported",
			       "master",
			       "role-reported-time",
			       "0",
			       "config-epoch",
			       epoch,
			       "num-slaves",
			       "2",
			       "num-other-sentinels",
			       "0",
			       "quorum",
			       "1",
			       "failover-timeout",
			       "180000",
			       "parallel-syncs",
			       "1",
			       NULL};

	resp_strings(r, items);
}

static void resp_replica(struct resp *r, const char *port)
{
	char name[32];
	const char *items[] = {"name",
			       name,
			       "ip",
			       "127.0.0.1",
			       "port",
			       port,
			       "runid",
			       "",
			       "flags",
			       "slave",
			       "link-pending-commands",
			       "0",
			       "link-refcount",
			       "1",
			       "last-ping-sent",
			       "0",
			       "last-ok-ping-reply",
			       "0",
			       "last-ping-reply",
			       "0",
			       "down-after-milliseconds",
			       "30000",
			       "info-refresh",
			       "0",
			       "role-reported",
			       "slave",
			       "role-reported-time",
			       "0",
			       "master-link-down-time",
			       "0",
			       "master-link-status",
			       "ok",
			       "master-host",
			       "127.0.0.1",
			       "master-port",
			       "15901",
			       "slave-priority",
			       "100",
			       "slave-repl-offset",
			       "0",
			       "replica-announced",
			       "1",
			       NULL};

	snprintf(name, sizeof(name), "127.0.0.1:%s", port);
	resp_strings(r, items);
}

static void set_a(struct fixture *f)
{
	sentinel_update(f->s, &node_a, replicas, 2);
}

static void test_ping(void **state)
{
	int fd = connect_sentinel();

	send_all(fd, "*1\r\n$4\r\nPING\r\n");
	expect_reply(fd, "+PONG\r\n");
	send_all(fd, "ping\r\n");
	expect_reply(fd, "+PONG\r\n");
	send_all(fd, "PING  hello\r\n");
	expect_reply(fd, "$5\r\nhello\r\n");
	send_all(fd, "\r\n\r\nPiNg\n");
	expect_reply(fd, "+PONG\r\n");
	/* Pipelined, split mid-request, and mixed with an inline one. */
	send_all(fd, "*2\r\n$4\r\nPING\r\n$1\r\nx\r\nPING\r\n*1\r\n$4\r");
	expect_reply(fd, "$1\r\nx\r\n+PONG\r\n");
	assert_true(stays_silent(fd));
	send_all(fd, "\nPING\r\n");
	expect_reply(fd, "+PONG\r\n");
	send_all(fd, "*0\r\n*-1\r\nPING\r\n");
	expect_reply(fd, "+PONG\r\n");
	close(fd);
}

static void test_no_primary(void **state)
{
	roundtrip("SENTINEL get-master-addr-by-name orders\r\n", "*-1\r\n");
	roundtrip("SENTINEL masters\r\n", "*0\r\n");
	roundtrip("SENTINEL master orders\r\n",
		  "-ERR No such master with that name\r\n");
	roundtrip("SENTINEL replicas orders\r\n",
		  "-ERR No such master with that name\r\n");
	roundtrip("INFO\r\n",
		  "$145\r\n# Sentinel\r\nsentinel_masters:0\r\n"
		  "sentinel_tilt:0\r\nsentinel_running_scripts:0\r\n"
		  "sentinel_scripts_queue_length:0\r\n"
		  "sentinel_simulate_failure_flags:0\r\n\r\n");
}

static void test_master_addr(void **state)
{
	set_a(*state);
	roundtrip("*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n"
		  "$6\r\norders\r\n",
		  "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n15901\r\n");
	roundtrip("sentinel GET-MASTER-ADDR-BY-NAME orders\r\n",
		  "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n15901\r\n");
	roundtrip("SENTINEL get-master-addr-by-name mymaster\r\n", "*-1\r\n");
	roundtrip("SENTINEL get-master-addr-by-name ORDERS\r\n", "*-1\r\n");
	/* The primary going unknown again. */
	sentinel_update(((struct fixture *)*state)->s, NULL, NULL, 0);
	roundtrip("SENTINEL get-master-addr-by-name orders\r\n", "*-1\r\n");
}

static void test_masters(void **state)
{
	struct resp want = {.len = 0};

	set_a(*state);
	resp_add(&want, "*1\r\n");
	resp_master(&want, "15901", "0");
	roundtrip("SENTINEL masters\r\n", want.buf);

	want.len = 0;
	resp_master(&want, "15901", "0");
	roundtrip("SENTINEL MASTER orders\r\n", want.buf);
	roundtrip("SENTINEL master other\r\n",
		  "-ERR No such master with that name\r\n");

	/* The epoch counts switches. */
	sentinel_update(((struct fixture *)*state)->s, &node_b, replicas, 2);
	want.len = 0;
	resp_master(&want, "15902", "1");
	roundtrip("SENTINEL master orders\r\n", want.buf);
}

static void test_replicas(void **state)
{
	struct resp want = {.len = 0};

	set_a(*state);
	resp_add(&want, "*2\r\n");
	resp_replica(&want, "15903");
	resp_replica(&want, "15904");
	roundtrip("SENTINEL replicas orders\r\n", want.buf);
	roundtrip("SENTINEL slaves orders\r\n", want.buf);
	roundtrip("SENTINEL slaves other\r\n",
		  "-ERR No such master with that name\r\n");
	sentinel_update(((struct fixture *)*state)->s, &node_a, NULL, 0);
	roundtrip("SENTINEL replicas orders\r\n", "*0\r\n");
}

static void test_sentinels_ckquorum(void **state)
{
	set_a(*state);
	roundtrip("SENTINEL sentinels orders\r\n", "*0\r\n");
	roundtrip("SENTINEL ckquorum orders\r\n",
		  "+OK 1 usable Sentinels. Quorum and failover "
		  "authorization can be reached\r\n");
	roundtrip("SENTINEL ckquorum other\r\n",
		  "-ERR No such master with that name\r\n");
	roundtrip("SENTINEL failover orders\r\n",
		  "-ERR unknown subcommand or wrong number of arguments for "
		  "'failover'. Try SENTINEL HELP.\r\n");
	roundtrip("SENTINEL masters extra\r\n",
		  "-ERR unknown subcommand or wrong number of arguments for "
		  "'masters'. Try SENTINEL HELP.\r\n");
	roundtrip("SENTINEL\r\n",
		  "-ERR unknown subcommand or wrong number of arguments for "
		  "''. Try SENTINEL HELP.\r\n");
}

static void test_client_role_info_auth(void **state)
{
	int fd = connect_sentinel();
	char want[64];

	set_a(*state);
	send_all(fd, "CLIENT GETNAME\r\n");
	expect_reply(fd, "$-1\r\n");
	send_all(fd, "client setname app-1\r\nCLIENT GETNAME\r\n");
	expect_reply(fd, "+OK\r\n$5\r\napp-1\r\n");
	send_all(fd, "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$3\r\na b\r\n");
	expect_reply(fd, "-ERR Client names cannot contain spaces, newlines "
			 "or special characters.\r\n");
	send_all(fd, "CLIENT KILL x\r\n");
	expect_reply(fd, "-ERR unknown subcommand or wrong number of "
			 "arguments for 'KILL'. Try CLIENT HELP.\r\n");
	send_all(fd, "CLIENT ID\r\n");
	assert_int_equal(read_exact(fd, want, 1, WAIT_MS), 1);
	assert_int_equal(want[0], ':');
	close(fd);

	roundtrip("ROLE\r\n", "*2\r\n$8\r\nsentinel\r\n*1\r\n$6\r\norders\r\n");
	roundtrip("info\r\n",
		  "$221\r\n# Sentinel\r\nsentinel_masters:1\r\n"
		  "sentinel_tilt:0\r\nsentinel_running_scripts:0\r\n"
		  "sentinel_scripts_queue_length:0\r\n"
		  "sentinel_simulate_failure_flags:0\r\n"
		  "master0:name=orders,status=ok,address=127.0.0.1:15901,"
		  "slaves=2,sentinels=1\r\n\r\n");
	roundtrip("AUTH secret\r\n",
		  "-ERR AUTH <password> called without any password "
		  "configured for the default user. Are you sure your "
		  "configuration is correct?\r\n");
	roundtrip("AUTH\r\n",
		  "-ERR wrong number of arguments for 'auth' command\r\n");
}

static void test_quit(void **state)
{
	int fd = connect_sentinel();

	send_all(fd, "PING\r\nQUIT\r\nPING\r\n");
	expect_reply(fd, "+PONG\r\n+OK\r\n");
	assert_true(sees_eof(fd));
	close(fd);
}

static void *update_b_main(void *arg)
{
	struct fixture *f = arg;

	sentinel_update(f->s, &node_b, replicas, 1);
	return NULL;
}

static const char switch_text[] = "orders 127.0.0.1 15901 127.0.0.1 15902";

static void test_subscribe_switch(void **state)
{
	struct fixture *f = *state;
	int fd = connect_sentinel();
	pthread_t t;
	struct resp want = {.len = 0};

	send_all(fd, "SUBSCRIBE +switch-master\r\n");
	expect_reply(fd, "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n"
			 ":1\r\n");
	/* First known primary, then the same one: no message. */
	set_a(f);
	set_a(f);
	assert_true(stays_silent(fd));

	assert_int_equal(pthread_create(&t, NULL, update_b_main, f), 0);
	pthread_join(t, NULL);
	resp_add(&want, "*3\r\n");
	resp_bulk(&want, "message");
	resp_bulk(&want, "+switch-master");
	resp_bulk(&want, switch_text);
	expect_reply(fd, want.buf);
	sentinel_update(f->s, &node_b, NULL, 0);
	assert_true(stays_silent(fd));

	/* Subscribed mode: only the pub/sub commands and PING. */
	send_all(fd, "PING\r\nSENTINEL masters\r\n");
	expect_reply(fd, "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
			 "-ERR Can't execute 'SENTINEL': only (P)SUBSCRIBE / "
			 "(P)UNSUBSCRIBE / PING / QUIT are allowed in this "
			 "context\r\n");
	send_all(fd, "UNSUBSCRIBE\r\nUNSUBSCRIBE\r\nPING\r\n");
	expect_reply(fd, "*3\r\n$11\r\nunsubscribe\r\n$14\r\n+switch-master"
			 "\r\n:0\r\n*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
			 "+PONG\r\n");
	close(fd);
}

/* Back to a primary seen before counts as a switch too. */
static void test_switch_back(void **state)
{
	struct fixture *f = *state;
	int fd = connect_sentinel();
	struct resp want = {.len = 0};

	set_a(f);
	send_all(fd, "SUBSCRIBE a +switch-master\r\n");
	expect_reply(fd, "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
			 "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n"
			 ":2\r\n");
	sentinel_update(f->s, NULL, NULL, 0);
	sentinel_update(f->s, &node_b, NULL, 0);
	sentinel_update(f->s, &node_a, NULL, 0);
	resp_add(&want, "*3\r\n");
	resp_bulk(&want, "message");
	resp_bulk(&want, "+switch-master");
	resp_bulk(&want, switch_text);
	resp_add(&want, "*3\r\n");
	resp_bulk(&want, "message");
	resp_bulk(&want, "+switch-master");
	resp_bulk(&want, "orders 127.0.0.1 15902 127.0.0.1 15901");
	expect_reply(fd, want.buf);
	assert_true(stays_silent(fd));
	close(fd);
}

static void test_psubscribe(void **state)
{
	struct fixture *f = *state;
	int fd = connect_sentinel();
	struct resp want = {.len = 0};

	set_a(f);
	send_all(fd, "*3\r\n$10\r\nPSUBSCRIBE\r\n$8\r\n*switch*\r\n$2\r\n+s\r\n"
		     "PSUBSCRIBE *\r\n");
	expect_reply(fd, "*3\r\n$10\r\npsubscribe\r\n$8\r\n*switch*\r\n:1\r\n"
			 "*3\r\n$10\r\npsubscribe\r\n$2\r\n+s\r\n:2\r\n"
			 "*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:3\r\n");
	sentinel_update(f->s, &node_b, replicas, 2);
	resp_add(&want, "*4\r\n");
	resp_bulk(&want, "pmessage");
	resp_bulk(&want, "*switch*");
	resp_bulk(&want, "+switch-master");
	resp_bulk(&want, switch_text);
	resp_add(&want, "*4\r\n");
	resp_bulk(&want, "pmessage");
	resp_bulk(&want, "*");
	resp_bulk(&want, "+switch-master");
	resp_bulk(&want, switch_text);
	expect_reply(fd, want.buf);
	assert_true(stays_silent(fd));
	send_all(fd, "PUNSUBSCRIBE *switch*\r\n");
	expect_reply(fd, "*3\r\n$12\r\npunsubscribe\r\n$8\r\n*switch*\r\n"
			 ":2\r\n");
	close(fd);
}

static void test_unknown(void **state)
{
	roundtrip("FOO a b\r\n", "-ERR unknown command 'FOO', with args "
				 "beginning with: 'a' 'b' \r\n");
	roundtrip("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n",
		  "-ERR unknown command 'HELLO', with args beginning with: "
		  "'3' \r\n");
	roundtrip("GET\r\n",
		  "-ERR unknown command 'GET', with args beginning with: \r\n");
	/* A CR or LF inside a bulk string cannot end the error line. */
	roundtrip("*1\r\n$5\r\nA\r\nB\n\r\n",
		  "-ERR unknown command 'A  B ', with args beginning with: "
		  "\r\n");
}

/* TEXT gets the protocol error WHY and the connection is closed. */
static void expect_protocol_error(const char *text, size_t len, const char *why)
{
	int fd = connect_sentinel();
	char want[256];

	snprintf(want, sizeof(want), "-ERR Protocol error: %s\r\n", why);
	send_len(fd, text, len);
	expect_reply(fd, want);
	assert_true(sees_eof(fd));
	close(fd);
}

static void test_garbage(void **state)
{
	static char buf[70 * 1024];
	const size_t big = sizeof(buf);
	int fd;

	expect_protocol_error("*abc\r\n", 6, "invalid multibulk length");
	expect_protocol_error("*100000\r\n", 9, "invalid multibulk length");
	expect_protocol_error("*99999999999999999999999\r\n", 26,
			      "invalid multibulk length");
	expect_protocol_error("*1\r\n+PING\r\n", 11, "expected '$'");
	expect_protocol_error("*1\r\n$-1\r\n", 9, "invalid bulk length");
	expect_protocol_error("*1\r\n$99999999999\r\n", 19,
			      "invalid bulk length");
	expect_protocol_error("*1\r\n$x\r\n", 8, "invalid bulk length");
	expect_protocol_error("*1\r\n$4\r\nPINGxx", 14,
			      "expected CRLF after a bulk string");

	/* A request that never ends within 64 KiB. */
	memcpy(buf, "*2\r\n$4\r\nPING\r\n$65530\r\n", 22);
	memset(buf + 22, 'x', big - 22);
	expect_protocol_error(buf, big, "too big request");
	/* An inline line that never ends. */
	memset(buf, 'x', big);
	expect_protocol_error(buf, big, "too big inline request");

	/* Binary noise with line ends: answered or closed, never a crash. */
	for (size_t i = 0; i < 8192; i++)
		buf[i] = (char)((i * 7919 + (i >> 3)) & 0xff);
	fd = connect_sentinel();
	send(fd, buf, 8192, MSG_NOSIGNAL);
	close(fd);
	roundtrip("PING\r\n", "+PONG\r\n");
}

/*
 * A client that pipelines requests and never reads is dropped once its
 * replies pile up past the output limit, long before all are written.
 */
static void test_slow_client(void **state)
{
	const char req[] = "SENTINEL masters\r\n";
	size_t count = 40000;
	size_t len = count * (sizeof(req) - 1);
	char *buf = xmalloc(len);
	struct resp one = {.len = 0};
	size_t total = 0, sent = 0;
	char chunk[65536];
	ssize_t n;
	int fd;

	set_a(*state);
	resp_add(&one, "*1\r\n");
	resp_master(&one, "15901", "0");
	for (size_t i = 0; i < count; i++)
		memcpy(buf + i * (sizeof(req) - 1), req, sizeof(req) - 1);
	fd = connect_rcvbuf(4096);
	while (sent < len) {
		n = send(fd, buf + sent, len - sent, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	while ((n = recv(fd, chunk, sizeof(chunk), 0)) > 0)
		total += (size_t)n;
	assert_true(n == 0 || errno == ECONNRESET);
	assert_true(total < count * one.len);
	close(fd);
	roundtrip("PING\r\n", "+PONG\r\n");
	free(buf);
}

static void test_new_errors(void **state)
{
	struct fixture *f = *state;
	char err[256];

	assert_null(
		sentinel_new(f->base, "x", "nowhere", 26391, err, sizeof(err)));
	assert_string_equal(err, "invalid sentinel address \"nowhere:26391\"");
	assert_null(sentinel_new(f->base, "x", "127.0.0.1", PORT, err,
				 sizeof(err)));
	assert_string_equal(err, "could not listen on 127.0.0.1:26390: "
				 "Address already in use");
	sentinel_free(NULL);
}

static int group_setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR);
	return evthread_use_pthreads();
}

static int group_teardown(void **state)
{
	libevent_global_shutdown();
	return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_ping),
		T(test_no_primary),
		T(test_master_addr),
		T(test_masters),
		T(test_replicas),
		T(test_sentinels_ckquorum),
		T(test_client_role_info_auth),
		T(test_quit),
		T(test_subscribe_switch),
		T(test_switch_back),
		T(test_psubscribe),
		T(test_unknown),
		T(test_garbage),
		T(test_slow_client),
		T(test_new_errors),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
