/*
 * api.h: the HTTP/1.1 JSON API on api.listen (evhttp, on the loop).
 *
 * Reads are open; every POST needs "Authorization: Bearer TOKEN".  Errors
 * are JSON bodies {"error": "..."} with 400, 401, 404, 405 or 409.
 */
#ifndef ROTATOR_API_H
#define ROTATOR_API_H

#include <stddef.h>

struct api;
struct daemon;
struct cluster;

/* Listen on HOST:PORT.  Returns NULL after logging. */
struct api *api_new(struct daemon *d, const char *host, int port);

void api_free(struct api *api);

/*
 * Start a snapshot job of CL (daemon.c).  Returns 0, or -1 after writing
 * ERR when one runs already or the cluster is not ready.
 */
int daemon_snapshot(struct cluster *cl, char *err, size_t errlen);

/*
 * Start checking restore point ID of CL from scratch (daemon.c); the
 * outcome lands in CL's verify_* members and the audit log.  Returns 0,
 * or -1 after writing ERR when a check of CL is already running.
 */
int daemon_verify(struct cluster *cl, const char *id, char *err, size_t errlen);

#endif
