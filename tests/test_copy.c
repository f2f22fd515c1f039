/*
 * test_copy.c: copy_hashed() against a one-shot SHA-256 of the same
 * bytes, for files under and over the size that takes the hasher thread,
 * sizes that do and do not fill the last chunk, and read-only checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rotator/util.h"
#include "snapshots/copy.h"

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/rotator-copy-XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = remove_tree(f->dir);

	free(f);
	return rc;
}

/* LEN bytes of a pattern that differs in every chunk. */
static char *pattern(size_t len)
{
	char *buf = xmalloc(len ? len : 1);
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (char)x;
	}
	return buf;
}

static void write_file(const char *path, const char *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* Copy LEN bytes and check the copy and its hash. */
static void check_copy(struct fixture *f, size_t len)
{
	char *src = xasprintf("%s/src", f->dir),
	     *dst = xasprintf("%s/dst", f->dir);
	char *buf = pattern(len), *back = xmalloc(len + 1);
	char want[SHA256_HEX_LEN + 1], got[COPY_HEX_LEN + 1];
	int in, out;

	write_file(src, buf, len);
	sha256_hex(buf, len, want);
	in = open(src, O_RDONLY);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(in >= 0 && out >= 0);
	assert_int_equal(copy_hashed(in, out, got), (int64_t)len);
	close(in);
	close(out);
	assert_string_equal(got, want);

	in = open(dst, O_RDONLY);
	assert_int_equal(read(in, back, len + 1), (ssize_t)len);
	close(in);
	assert_memory_equal(back, buf, len);

	/* Read only: the same hash, nothing written. */
	in = open(src, O_RDONLY);
	assert_int_equal(copy_hashed(in, -1, got), (int64_t)len);
	close(in);
	assert_string_equal(got, want);

	unlink(src);
	unlink(dst);
	free(src);
	free(dst);
	free(buf);
	free(back);
}

static void test_empty(void **state)
{
	check_copy(*state, 0);
}

static void test_small(void **state)
{
	check_copy(*state, 12345);
}

static void test_inline_chunks(void **state)
{
	check_copy(*state, (3u << 20) + 17);
}

/* Over the threshold: the hasher thread, a ring that wraps many times. */
static void test_threaded(void **state)
{
	check_copy(*state, (37u << 20) + 4093);
}

static void test_threaded_whole_chunks(void **state)
{
	check_copy(*state, 16u << 20);
}

/* A write that fails is an error with errno, not a wrong hash. */
static void test_write_error(void **state)
{
	struct fixture *f = *state;
	char *src = xasprintf("%s/src", f->dir);
	char *buf = pattern(9u << 20);
	char got[COPY_HEX_LEN + 1];
	int in, out;

	write_file(src, buf, 9u << 20);
	in = open(src, O_RDONLY);
	out = open(src, O_RDONLY); /* not open for writing */
	assert_int_equal(copy_hashed(in, out, got), -1);
	assert_int_equal(errno, EBADF);
	close(in);
	close(out);
	free(src);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inline_chunks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_threaded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threaded_whole_chunks,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_error, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
