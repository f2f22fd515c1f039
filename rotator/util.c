/*
 * util.c: the helpers declared in util.h.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/evp.h>

#include "rotator/util.h"

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void format_time(int64_t ms, char *buf, size_t len)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	char stamp[24];

	gmtime_r(&sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", stamp, (int)(ms % 1000));
}

void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int parse_duration(const char *text, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t scale;
	} units[] = {
		{"ms", 1},	{"s", 1000},	 {"m", 60000},
		{"h", 3600000}, {"d", 86400000},
	};
	char *end;
	long long n;

	if (!text || !isdigit((unsigned char)*text))
		return -1;
	errno = 0;
	n = strtoll(text, &end, 10);
	if (errno || n <= 0 || n > 1000000000LL)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(*units); i++) {
		if (strcmp(end, units[i].unit) == 0) {
			*ms = n * units[i].scale;
			return 0;
		}
	}
	return -1;
}

int parse_hostport(const char *text, char **host, int *port)
{
	const char *colon = strrchr(text, ':');
	char *end;
	long n;

	if (!colon || colon == text)
		return -1;
	if (!isdigit((unsigned char)colon[1]) || colon[1] == '0')
		return -1;
	errno = 0;
	n = strtol(colon + 1, &end, 10);
	if (errno || *end || n < 1 || n > 65535)
		return -1;
	*host = strndup(text, (size_t)(colon - text));
	if (!*host)
		abort();
	*port = (int)n;
	return 0;
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (!p)
		abort();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		abort();
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		abort();
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t used = 0, cap = 0, n;

	if (!f)
		return NULL;
	do {
		if (cap - used < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		n = fread(buf + used, 1, cap - used - 1, f);
		used += n;
	} while (n > 0);
	if (ferror(f)) {
		int saved = errno;

		fclose(f);
		free(buf);
		errno = saved;
		return NULL;
	}
	fclose(f);
	buf[used] = '\0';
	if (len)
		*len = used;
	return buf;
}

char *read_secret_file(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *secret;
	size_t len;

	if (stat(path, &st) == -1) {
		snprintf(err, errlen, "could not read \"%s\": %s", path,
			 strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "\"%s\" is not a regular file", path);
		return NULL;
	}
	if (st.st_mode & 0077) {
		snprintf(err, errlen,
			 "\"%s\" has mode %04o: it must be 0600 or stricter",
			 path, (unsigned)(st.st_mode & 07777));
		return NULL;
	}
	secret = read_file(path, &len);
	if (!secret) {
		snprintf(err, errlen, "could not read \"%s\": %s", path,
			 strerror(errno));
		return NULL;
	}
	while (len > 0 && (secret[len - 1] == '\n' || secret[len - 1] == '\r'))
		secret[--len] = '\0';
	if (len == 0 || strlen(secret) != len) {
		snprintf(err, errlen, "\"%s\" holds no usable secret", path);
		free(secret);
		return NULL;
	}
	return secret;
}

int fsync_parent(const char *path)
{
	char *copy = xstrdup(path);
	int fd, rc;

	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
	free(copy);
	if (fd == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int append_line_synced(int fd, const char *line, size_t len, off_t *old_size,
		       char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (old_size)
		*old_size = st.st_size;
	while ((n = write(fd, line, len)) == -1 && errno == EINTR)
		;
	if (n >= 0 && (size_t)n != len)
		snprintf(err, errlen, "wrote %zd of %zu bytes", n, len);
	else if (n == -1 || fdatasync(fd) == -1)
		snprintf(err, errlen, "%s", strerror(errno));
	else
		return 0;
	if (ftruncate(fd, st.st_size) == -1 || fdatasync(fd) == -1) {
		size_t used = strlen(err);

		snprintf(err + used, errlen - used,
			 ", and could not cut the partial line off: %s",
			 strerror(errno));
	}
	return -1;
}

int write_file_durable(const char *path, const void *buf, size_t len,
		       mode_t mode)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd, saved;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd == -1)
		goto fail;
	if (write_all(fd, buf, len) == -1 || fsync(fd) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail;
	}
	if (close(fd) == -1 || rename(tmp, path) == -1)
		goto fail;
	free(tmp);
	return fsync_parent(path);

fail:
	saved = errno;
	unlink(tmp);
	free(tmp);
	errno = saved;
	return -1;
}

/*
 * mkdir, then chmod: the mode a directory gets does not depend on the
 * caller's umask, since nodes running as another user must search it.
 */
static int make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == -1)
		return errno == EEXIST ? 0 : -1;
	return chmod(path, mode);
}

int mkdir_p(const char *path, mode_t mode)
{
	char *copy = xstrdup(path);

	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (make_dir(copy, mode) == -1) {
			free(copy);
			return -1;
		}
		*p = '/';
	}
	free(copy);
	return make_dir(path, mode);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	return remove(path) == -1 && errno != ENOENT ? -1 : 0;
}

int remove_tree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == -1)
		return errno == ENOENT ? 0 : -1;
	return nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS);
}

static void to_hex(const unsigned char *md, unsigned int n, char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (unsigned int i = 0; i < n; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * n] = '\0';
}

void sha256_hex(const void *buf, size_t len, char hex[SHA256_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL);
	to_hex(md, n, hex);
}

int sha256_file(const char *path, char hex[SHA256_HEX_LEN + 1], uint64_t *size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	static const size_t chunk = 1 << 20;
	unsigned int n = 0;
	uint64_t total = 0;
	EVP_MD_CTX *ctx;
	char *buf;
	ssize_t got;
	int fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	ctx = EVP_MD_CTX_new();
	buf = xmalloc(chunk);
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	while ((got = read(fd, buf, chunk)) != 0) {
		if (got == -1) {
			if (errno == EINTR)
				continue;
			saved = errno;
			free(buf);
			EVP_MD_CTX_free(ctx);
			close(fd);
			errno = saved;
			return -1;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)got);
		total += (uint64_t)got;
	}
	EVP_DigestFinal_ex(ctx, md, &n);
	EVP_MD_CTX_free(ctx);
	free(buf);
	close(fd);
	to_hex(md, n, hex);
	if (size)
		*size = total;
	return 0;
}

int ipv4_sockaddr(const char *host, int port, struct sockaddr_in *sin)
{
	if (port < 0 || port > 65535)
		return -1;
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}
