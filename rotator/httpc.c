/*
 * httpc.c: the CLI's HTTP client (see httpc.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "rotator/httpc.h"
#include "rotator/util.h"

struct call {
	int status;
	json_t *reply;
	char *err;
	size_t errlen;
};

static void on_done(struct evhttp_request *req, void *arg)
{
	struct call *call = arg;
	struct evbuffer *in;
	json_error_t jerr;
	size_t len;

	if (!req || evhttp_request_get_response_code(req) == 0) {
		snprintf(call->err, call->errlen,
			 "could not reach the daemon's API: connection failed");
		return;
	}
	call->status = evhttp_request_get_response_code(req);
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	if (len > 0)
		call->reply = json_loadb((const char *)evbuffer_pullup(in, -1),
					 len, 0, &jerr);
}

int httpc_request(const char *host, int port, const char *method,
		  const char *path, json_t *body, const char *token,
		  int timeout_s, json_t **reply, char *err, size_t errlen)
{
	struct call call = {.status = -1, .err = err, .errlen = errlen};
	struct event_base *base = event_base_new();
	struct evhttp_connection *conn;
	struct evhttp_request *req;
	struct evkeyvalq *headers;
	char hostport[128];

	err[0] = '\0';
	conn = evhttp_connection_base_new(base, NULL, host, (ev_uint16_t)port);
	evhttp_connection_set_timeout(conn, timeout_s);
	req = evhttp_request_new(on_done, &call);
	headers = evhttp_request_get_output_headers(req);
	snprintf(hostport, sizeof(hostport), "%s:%d", host, port);
	evhttp_add_header(headers, "Host", hostport);
	evhttp_add_header(headers, "Connection", "close");
	if (token) {
		char *auth = xasprintf("Bearer %s", token);

		evhttp_add_header(headers, "Authorization", auth);
		free(auth);
	}
	if (body) {
		char *text = json_dumps(body, JSON_COMPACT);

		evhttp_add_header(headers, "Content-Type", "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(req), text,
			     strlen(text));
		free(text);
	}
	if (evhttp_make_request(conn, req,
				strcmp(method, "POST") == 0 ? EVHTTP_REQ_POST
							    : EVHTTP_REQ_GET,
				path) == 0)
		event_base_dispatch(base);
	evhttp_connection_free(conn);
	event_base_free(base);
	if (call.status == -1 && !err[0])
		snprintf(err, errlen, "could not reach the daemon at %s:%d",
			 host, port);
	if (reply)
		*reply = call.reply;
	else
		json_decref(call.reply);
	return call.status;
}
