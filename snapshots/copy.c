/*
 * copy.c: copy a file while hashing it (see copy.h).
 *
 * The copier (the caller's thread) reads a chunk into a free slot of a
 * small ring, writes it out, and hands the slot to the hasher thread,
 * which feeds the slots to SHA-256 in the order they were filled and
 * gives them back.  A slot is reused only once it has been hashed, so
 * every byte hashed is a byte written.  Small files are not worth a
 * thread and are hashed inline.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "rotator/util.h"
#include "snapshots/copy.h"

#define CHUNK (64 << 10)     /* larger writes are slower on some disks */
#define READ_CHUNK (1 << 20) /* reading only: fewer, larger reads */
#define SLOTS 32
#define THREAD_MIN_SIZE (8 << 20) /* smaller files are hashed inline */
#define WRITEBACK_STEP (8 << 20)  /* start writing back every 8 MiB */

struct ring {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *buf[SLOTS];
	size_t len[SLOTS];
	int filled; /* slots the copier filled that are not yet hashed */
	bool eof;   /* the copier fills no more */
	EVP_MD_CTX *ctx;
};

static void *hasher_main(void *arg)
{
	struct ring *r = arg;

	for (int tail = 0;; tail = (tail + 1) % SLOTS) {
		pthread_mutex_lock(&r->mu);
		while (r->filled == 0 && !r->eof)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->filled == 0) {
			pthread_mutex_unlock(&r->mu);
			return NULL;
		}
		pthread_mutex_unlock(&r->mu);

		EVP_DigestUpdate(r->ctx, r->buf[tail], r->len[tail]);

		pthread_mutex_lock(&r->mu);
		r->filled--;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Every WRITEBACK_STEP bytes written to OUT, ask the kernel to start
 * writing them to disk, without waiting: the caller's final sync then
 * finds little left to do, and the disk works while we still copy and
 * hash.  *MARK is where the last request ended.  A failure only loses
 * the overlap; durability comes from that final sync.
 */
static void start_writeback(int out, int64_t written, int64_t *mark)
{
	if (out == -1 || written - *mark < WRITEBACK_STEP)
		return;
	(void)sync_file_range(out, *mark, written - *mark,
			      SYNC_FILE_RANGE_WRITE);
	*mark = written;
}

static ssize_t read_some(int fd, char *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n == -1 && errno == EINTR);
	return n;
}

/* The copier's side, with the hasher running.  Returns bytes or -1. */
static int64_t copy_ring(struct ring *r, int in, int out)
{
	int64_t total = 0, mark = 0;
	int saved = 0;

	for (int head = 0;; head = (head + 1) % SLOTS) {
		ssize_t n;

		pthread_mutex_lock(&r->mu);
		while (r->filled == SLOTS)
			pthread_cond_wait(&r->cv, &r->mu);
		pthread_mutex_unlock(&r->mu);

		n = read_some(in, r->buf[head], CHUNK);
		if (n <= 0 || (out != -1 &&
			       write_all(out, r->buf[head], (size_t)n) == -1)) {
			saved = n == 0 ? 0 : errno;
			break;
		}
		total += n;
		start_writeback(out, total, &mark);

		pthread_mutex_lock(&r->mu);
		r->len[head] = (size_t)n;
		r->filled++;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
	errno = saved;
	return saved ? -1 : total;
}

static int64_t copy_inline(EVP_MD_CTX *ctx, char *buf, size_t chunk, int in,
			   int out)
{
	int64_t total = 0, mark = 0;
	ssize_t n;

	while ((n = read_some(in, buf, chunk)) > 0) {
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		if (out != -1 && write_all(out, buf, (size_t)n) == -1)
			return -1;
		total += n;
		start_writeback(out, total, &mark);
	}
	return n == 0 ? total : -1;
}

static void to_hex(EVP_MD_CTX *ctx, char hex[COPY_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	EVP_DigestFinal_ex(ctx, md, &len);
	for (unsigned int i = 0; i < len && 2 * i < COPY_HEX_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

int64_t copy_hashed(int in, int out, char hex[COPY_HEX_LEN + 1])
{
	struct ring r = {.ctx = EVP_MD_CTX_new()};
	struct stat st;
	pthread_t hasher;
	int64_t total;
	int saved;

	if (!r.ctx || !EVP_DigestInit_ex(r.ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(r.ctx);
		errno = ENOMEM;
		return -1;
	}
	for (int i = 0; i < SLOTS; i++)
		r.buf[i] = xmalloc(i == 0 ? READ_CHUNK : CHUNK);

	/*
	 * Only a copy gains from the second thread: reading alone is
	 * cheap beside SHA-256, and is done inline in large reads.
	 */
	if (out == -1) {
		total = copy_inline(r.ctx, r.buf[0], READ_CHUNK, in, out);
	} else if (fstat(in, &st) == -1 || st.st_size < THREAD_MIN_SIZE) {
		total = copy_inline(r.ctx, r.buf[0], CHUNK, in, out);
	} else {
		pthread_mutex_init(&r.mu, NULL);
		pthread_cond_init(&r.cv, NULL);
		if (pthread_create(&hasher, NULL, hasher_main, &r) != 0)
			abort();
		total = copy_ring(&r, in, out);
		saved = errno;
		pthread_mutex_lock(&r.mu);
		r.eof = true;
		pthread_cond_signal(&r.cv);
		pthread_mutex_unlock(&r.mu);
		pthread_join(hasher, NULL);
		pthread_cond_destroy(&r.cv);
		pthread_mutex_destroy(&r.mu);
		errno = saved;
	}
	saved = errno;
	if (total >= 0)
		to_hex(r.ctx, hex);
	EVP_MD_CTX_free(r.ctx);
	for (int i = 0; i < SLOTS; i++)
		free(r.buf[i]);
	errno = saved;
	return total;
}
