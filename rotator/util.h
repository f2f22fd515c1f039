/*
 * util.h: small helpers shared by every module: time, durations, durable
 * file writes, secret files and SHA-256.
 */
#ifndef ROTATOR_UTIL_H
#define ROTATOR_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WUR __attribute__((warn_unused_result))

#define SHA256_HEX_LEN 64

/* Milliseconds since an arbitrary point, monotonic. */
int64_t now_ms(void);

/* Wall-clock milliseconds since the epoch. */
int64_t wall_ms(void);

/* Format wall-clock MS as "2026-12-03T14:16:12.345Z" into BUF (>= 32). */
void format_time(int64_t ms, char *buf, size_t len);

/* Sleep for MS milliseconds. */
void sleep_ms(int64_t ms);

/*
 * Parse a duration such as "250ms", "30s", "15m", "6h" or "2d" into
 * milliseconds.  Returns 0, or -1 on a malformed or non-positive value.
 */
int parse_duration(const char *text, int64_t *ms) WUR;

/*
 * Parse "HOST:PORT" into a newly allocated HOST (caller frees) and PORT.
 * Returns 0, or -1 when the form or the port is invalid.
 */
int parse_hostport(const char *text, char **host, int *port) WUR;

struct sockaddr_in;

/*
 * Fill SIN with HOST:PORT, HOST an IPv4 literal or "localhost".  Returns
 * 0, or -1 when HOST is not such an address or PORT is out of range.
 */
int ipv4_sockaddr(const char *host, int port, struct sockaddr_in *sin) WUR;

/* Like malloc/strdup, but abort on exhaustion. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Read the whole of PATH into a new NUL-terminated buffer (caller frees).
 * Returns NULL with errno set on failure.
 */
char *read_file(const char *path, size_t *len);

/*
 * Read a secret (password or token) from PATH.  The file must be a regular
 * file of mode 0600 or stricter; trailing newlines are stripped.  Returns a
 * new string (caller frees) or NULL after writing the reason into ERR.
 */
char *read_secret_file(const char *path, char *err, size_t errlen);

/*
 * Write LEN bytes to PATH durably: a temporary file beside it, fsync,
 * rename over PATH, fsync of the directory.  MODE is the file's mode.
 * Returns 0, or -1 with errno set.
 */
int write_file_durable(const char *path, const void *buf, size_t len,
		       mode_t mode) WUR;

/*
 * Append LINE (LEN bytes, newline included) to FD, opened with O_APPEND,
 * in one write(), and fdatasync it.  On failure whatever was written is
 * cut off again, so that the file is as it was.  The size before the
 * append goes into OLD_SIZE (may be NULL).  Returns 0, or -1 after
 * writing the reason into ERR.
 */
int append_line_synced(int fd, const char *line, size_t len, off_t *old_size,
		       char *err, size_t errlen) WUR;

/* fsync the directory that holds PATH.  Returns 0 or -1. */
int fsync_parent(const char *path) WUR;

/*
 * mkdir -p with MODE, whatever the umask, for every directory created.
 * Returns 0 or -1.
 */
int mkdir_p(const char *path, mode_t mode) WUR;

/* rm -rf PATH; a missing PATH is success.  Returns 0 or -1. */
int remove_tree(const char *path) WUR;

/* SHA-256 of BUF as 64 lowercase hex digits and a NUL into HEX. */
void sha256_hex(const void *buf, size_t len, char hex[SHA256_HEX_LEN + 1]);

/*
 * SHA-256 of the file at PATH into HEX, and its size into SIZE (may be
 * NULL).  Returns 0, or -1 with errno set.
 */
int sha256_file(const char *path, char hex[SHA256_HEX_LEN + 1],
		uint64_t *size) WUR;

#endif
