/*
 * httpc.h: a small blocking HTTP client for the CLI, on libevent's evhttp.
 */
#ifndef ROTATOR_HTTPC_H
#define ROTATOR_HTTPC_H

#include <stddef.h>

#include <jansson.h>

/*
 * Send METHOD ("GET" or "POST") PATH to HOST:PORT with BODY (borrowed,
 * may be NULL) and, when TOKEN is not NULL, "Authorization: Bearer".
 * Waits at most TIMEOUT_S.  Returns the HTTP status with the decoded
 * reply in *REPLY (new reference, may be NULL), or -1 after writing ERR
 * when no reply came.
 */
int httpc_request(const char *host, int port, const char *method,
		  const char *path, json_t *body, const char *token,
		  int timeout_s, json_t **reply, char *err, size_t errlen);

#endif
