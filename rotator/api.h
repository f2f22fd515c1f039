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

/* Listen on HOST:PORT.  Returns NULL after printing the reason. */
struct api *api_new(struct daemon *d, const char *host, int port);

void api_free(struct api *api);

#endif
