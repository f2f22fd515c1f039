/*
 * test_journal.c: appending, replaying and compacting the rotation
 * journal, torn and corrupt lines, and appends from several threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rotator/journal.h"
#include "rotator/util.h"

#define ERR_LEN 512
#define N_THREADS 4
#define N_PER_THREAD 200

struct fixture {
	char dir[64];
	char *path;
};

static int setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_journal.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	fx->path = xasprintf("%s/journal", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	int rc = remove_tree(fx->dir);

	free(fx->path);
	free(fx);
	return rc;
}

static struct journal *open_journal(const char *path)
{
	char err[ERR_LEN] = "";
	struct journal *journal = journal_open(path, err, sizeof(err));

	assert_non_null(journal);
	return journal;
}

/* Append the record packed from FMT and its arguments. */
static void append(struct journal *journal, const char *fmt, ...)
{
	json_error_t jerr;
	json_t *record;
	va_list ap;

	va_start(ap, fmt);
	record = json_vpack_ex(&jerr, 0, fmt, ap);
	va_end(ap);
	assert_non_null(record);
	assert_int_equal(journal_append(journal, record), 0);
	json_decref(record);
}

/* Two rotations, interleaved, three and two steps. */
static void write_two_rotations(const char *path)
{
	struct journal *journal = open_journal(path);

	append(journal, "{s:s,s:s,s:i}", "rotation", "main-7", "state",
	       "provisioning", "generation", 7);
	append(journal, "{s:s,s:s}", "rotation", "cache-3", "state",
	       "provisioning");
	append(journal, "{s:s,s:s,s:i}", "rotation", "main-7", "state",
	       "catching_up", "port", 5433);
	append(journal, "{s:s,s:s,s:s}", "rotation", "cache-3", "state", "done",
	       "dir", "/var/lib/rotator/cache/3");
	append(journal, "{s:s,s:s}", "rotation", "main-7", "state", "fenced");
	journal_close(journal);
}

static void append_raw(const char *path, const char *text)
{
	FILE *f = fopen(path, "a");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static json_t *replay_ok(const char *path)
{
	char err[ERR_LEN] = "";
	json_t *active = journal_replay(path, err, sizeof(err));

	if (!active)
		fail_msg("replay failed: %s", err);
	return active;
}

static const char *state_of(json_t *active, const char *id)
{
	json_t *record = json_object_get(active, id);

	return json_string_value(json_object_get(record, "state"));
}

static int count_lines(const char *path)
{
	size_t len;
	char *buf = read_file(path, &len);
	int n = 0;

	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\n';
	free(buf);
	return n;
}

static void test_replay_merges(void **state)
{
	struct fixture *fx = *state;
	json_t *active, *main7;
	struct stat st;

	write_two_rotations(fx->path);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(count_lines(fx->path), 5);

	active = replay_ok(fx->path);
	assert_int_equal(json_object_size(active), 2);
	main7 = json_object_get(active, "main-7");
	assert_string_equal(state_of(active, "main-7"), "fenced");
	assert_int_equal(
		json_integer_value(json_object_get(main7, "generation")), 7);
	assert_int_equal(json_integer_value(json_object_get(main7, "port")),
			 5433);
	assert_string_equal(
		json_string_value(json_object_get(main7, "rotation")),
		"main-7");
	assert_true(json_is_string(json_object_get(main7, "time")));
	assert_string_equal(state_of(active, "cache-3"), "done");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(active, "cache-3"), "dir")),
			    "/var/lib/rotator/cache/3");
	assert_null(
		json_object_get(json_object_get(active, "cache-3"), "port"));
	json_decref(active);
}

static void test_append_needs_rotation(void **state)
{
	struct fixture *fx = *state;
	struct journal *journal = open_journal(fx->path);
	json_t *record;

	record = json_pack("{s:s}", "state", "fenced");
	assert_int_equal(journal_append(journal, record), -1);
	json_decref(record);
	record = json_pack("{s:i,s:s}", "rotation", 7, "state", "fenced");
	assert_int_equal(journal_append(journal, record), -1);
	json_decref(record);
	record = json_pack("[s]", "rotation");
	assert_int_equal(journal_append(journal, record), -1);
	json_decref(record);
	journal_close(journal);
	assert_int_equal(count_lines(fx->path), 0);
}

static void test_append_leaves_record_alone(void **state)
{
	struct fixture *fx = *state;
	struct journal *journal = open_journal(fx->path);
	json_t *record = json_pack("{s:s}", "rotation", "main-1");

	assert_int_equal(journal_append(journal, record), 0);
	assert_int_equal(json_object_size(record), 1);
	assert_null(json_object_get(record, "time"));
	json_decref(record);
	journal_close(journal);
}

static void test_torn_final_line_skipped(void **state)
{
	struct fixture *fx = *state;
	json_t *active;

	write_two_rotations(fx->path);
	append_raw(fx->path, "{\"rotation\":\"main-7\",\"state\":\"prom");
	active = replay_ok(fx->path);
	assert_string_equal(state_of(active, "main-7"), "fenced");
	json_decref(active);
}

static void test_final_line_without_newline_skipped(void **state)
{
	struct fixture *fx = *state;
	json_t *active;

	write_two_rotations(fx->path);
	append_raw(fx->path,
		   "{\"rotation\":\"main-7\",\"state\":\"promoted\"}");
	active = replay_ok(fx->path);
	assert_string_equal(state_of(active, "main-7"), "fenced");
	json_decref(active);
}

static void test_unparsable_final_line_skipped(void **state)
{
	struct fixture *fx = *state;
	json_t *active;

	write_two_rotations(fx->path);
	append_raw(fx->path, "{\"rotation\":\"main-7\",\"sta\n");
	active = replay_ok(fx->path);
	assert_string_equal(state_of(active, "main-7"), "fenced");
	json_decref(active);
}

/* An append after a torn tail must not glue the new record onto it. */
static void test_append_after_torn_tail(void **state)
{
	struct fixture *fx = *state;
	struct journal *journal;
	json_t *active;

	write_two_rotations(fx->path);
	append_raw(fx->path, "{\"rotation\":\"main-7\",\"state\":\"prom");
	journal = open_journal(fx->path);
	append(journal, "{s:s,s:s}", "rotation", "main-7", "state", "promoted");
	journal_close(journal);
	assert_int_equal(count_lines(fx->path), 6);
	active = replay_ok(fx->path);
	assert_string_equal(state_of(active, "main-7"), "promoted");
	json_decref(active);
}

static void test_corrupt_middle_line(void **state)
{
	struct fixture *fx = *state;
	struct journal *journal;
	char err[ERR_LEN] = "";
	char *expected;

	journal = open_journal(fx->path);
	append(journal, "{s:s,s:s}", "rotation", "main-7", "state", "start");
	journal_close(journal);
	append_raw(fx->path, "{\"rotation\":\"main-7\",\"st\n");
	journal = open_journal(fx->path);
	append(journal, "{s:s,s:s}", "rotation", "main-7", "state", "fenced");
	journal_close(journal);

	assert_null(journal_replay(fx->path, err, sizeof(err)));
	expected = xasprintf("%s: line 2: could not parse journal record: ",
			     fx->path);
	if (strncmp(err, expected, strlen(expected)) != 0)
		fail_msg("unexpected error: %s", err);
	assert_true(strlen(err) > strlen(expected));
	free(expected);
}

static void test_compact_keeps_only_active(void **state)
{
	struct fixture *fx = *state;
	json_t *active, *kept, *after;
	struct stat st;

	write_two_rotations(fx->path);
	active = replay_ok(fx->path);
	kept = json_deep_copy(active);
	assert_int_equal(json_object_del(kept, "cache-3"), 0);
	assert_int_equal(journal_compact(fx->path, kept), 0);
	assert_int_equal(count_lines(fx->path), 1);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	after = replay_ok(fx->path);
	assert_true(json_equal(after, kept));
	assert_null(json_object_get(after, "cache-3"));
	json_decref(after);

	assert_int_equal(json_object_clear(kept), 0);
	assert_int_equal(journal_compact(fx->path, kept), 0);
	assert_int_equal(count_lines(fx->path), 0);
	after = replay_ok(fx->path);
	assert_int_equal(json_object_size(after), 0);
	json_decref(after);
	json_decref(kept);
	json_decref(active);
}

/*
 * Trimming an open journal drops the rotation that ended, keeps the one in
 * flight merged, and later appends land in the trimmed file.
 */
static void test_trim_open_journal(void **state)
{
	struct fixture *fx = *state;
	struct journal *journal;
	json_t *active;

	write_two_rotations(fx->path);
	journal = open_journal(fx->path);
	assert_int_equal(journal_trim(journal), 0);
	assert_int_equal(count_lines(fx->path), 1);
	active = replay_ok(fx->path);
	assert_null(json_object_get(active, "cache-3"));
	assert_string_equal(state_of(active, "main-7"), "fenced");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(active, "main-7"), "port")),
			 5433);
	json_decref(active);

	append(journal, "{s:s,s:s}", "rotation", "main-7", "state", "aborted");
	append(journal, "{s:s,s:s}", "rotation", "cache-4", "state",
	       "provisioning");
	assert_int_equal(count_lines(fx->path), 3);
	assert_int_equal(journal_trim(journal), 0);
	active = replay_ok(fx->path);
	assert_int_equal(json_object_size(active), 1);
	assert_string_equal(state_of(active, "cache-4"), "provisioning");
	json_decref(active);
	journal_close(journal);
}

static void test_missing_file_is_empty(void **state)
{
	struct fixture *fx = *state;
	json_t *active = replay_ok(fx->path);

	assert_true(json_is_object(active));
	assert_int_equal(json_object_size(active), 0);
	json_decref(active);
}

struct writer {
	struct journal *journal;
	int id;
	int failures;
};

static void *write_many(void *arg)
{
	struct writer *writer = arg;
	char rotation[32];

	snprintf(rotation, sizeof(rotation), "thread-%d", writer->id);
	for (int i = 0; i < N_PER_THREAD; i++) {
		json_t *record = json_pack("{s:s,s:i,s:s}", "rotation",
					   rotation, "i", i, "padding",
					   "some text to make the line longer");

		if (journal_append(writer->journal, record) != 0)
			writer->failures++;
		json_decref(record);
	}
	return NULL;
}

/* Every line whole, and each thread's records in the order it wrote. */
static void check_lines_whole(const char *path)
{
	int next[N_THREADS] = {0};
	char *buf = read_file(path, NULL), *line, *save = NULL;
	int lines = 0;

	assert_non_null(buf);
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		json_t *record = json_loads(line, 0, NULL);
		const char *rotation;
		int id;

		assert_non_null(record);
		rotation =
			json_string_value(json_object_get(record, "rotation"));
		assert_non_null(rotation);
		assert_int_equal(sscanf(rotation, "thread-%d", &id), 1);
		assert_in_range(id, 0, N_THREADS - 1);
		assert_int_equal(
			json_integer_value(json_object_get(record, "i")),
			next[id]);
		next[id]++;
		lines++;
		json_decref(record);
	}
	assert_int_equal(lines, N_THREADS * N_PER_THREAD);
	free(buf);
}

static void test_concurrent_appends(void **state)
{
	struct fixture *fx = *state;
	struct journal *journal = open_journal(fx->path);
	struct writer writers[N_THREADS];
	pthread_t threads[N_THREADS];
	json_t *active;

	for (int i = 0; i < N_THREADS; i++) {
		writers[i] = (struct writer){.journal = journal, .id = i};
		assert_int_equal(pthread_create(&threads[i], NULL, write_many,
						&writers[i]),
				 0);
	}
	for (int i = 0; i < N_THREADS; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		assert_int_equal(writers[i].failures, 0);
	}
	journal_close(journal);

	assert_int_equal(count_lines(fx->path), N_THREADS * N_PER_THREAD);
	check_lines_whole(fx->path);
	active = replay_ok(fx->path);
	assert_int_equal(json_object_size(active), N_THREADS);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(active, "thread-2"), "i")),
			 N_PER_THREAD - 1);
	json_decref(active);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_replay_merges),
		T(test_append_needs_rotation),
		T(test_append_leaves_record_alone),
		T(test_torn_final_line_skipped),
		T(test_final_line_without_newline_skipped),
		T(test_unparsable_final_line_skipped),
		T(test_append_after_torn_tail),
		T(test_corrupt_middle_line),
		T(test_compact_keeps_only_active),
		T(test_trim_open_journal),
		T(test_missing_file_is_empty),
		T(test_concurrent_appends),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
