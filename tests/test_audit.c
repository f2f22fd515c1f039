/*
 * test_audit.c: the audit log's chain, its head, and the tampering that
 * audit_verify() must find, each at the line it names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rotator/audit.h"
#include "rotator/util.h"

#define ERR_LEN 512

struct fixture {
	char dir[64];
	char *path;
	char *head_path;
};

static int setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_audit.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	fx->path = xasprintf("%s/audit.log", fx->dir);
	fx->head_path = xasprintf("%s.head", fx->path);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	int rc = remove_tree(fx->dir);

	free(fx->head_path);
	free(fx->path);
	free(fx);
	return rc;
}

/* Append COUNT events "step1", "step2" ... to a log open for the test. */
static void append_events(const char *path, int count)
{
	char err[ERR_LEN] = "";
	struct audit *audit = audit_open(path, err, sizeof(err));

	assert_non_null(audit);
	for (int i = 1; i <= count; i++) {
		char event[32];
		json_t *fields =
			json_pack("{s:i,s:s}", "step", i, "node", "pg-a:5432");

		snprintf(event, sizeof(event), "step%d", i);
		assert_int_equal(audit_append(audit, event, "main", fields), 0);
		json_decref(fields);
	}
	audit_close(audit);
}

static char *slurp(const char *path, size_t *len)
{
	char *buf = read_file(path, len);

	assert_non_null(buf);
	return buf;
}

static void put_file(const char *path, const char *buf, size_t len)
{
	assert_int_equal(write_file_durable(path, buf, len, 0600), 0);
}

/* Where line N (1-based) of BUF starts, and its length with the newline. */
static void line_span(const char *buf, int n, size_t *off, size_t *len)
{
	const char *p = buf, *nl;

	for (int i = 1; i < n; i++) {
		p = strchr(p, '\n');
		assert_non_null(p);
		p++;
	}
	nl = strchr(p, '\n');
	*off = (size_t)(p - buf);
	*len = nl ? (size_t)(nl - p) + 1 : strlen(p);
}

/* Line N of the file at PATH as a new string without its newline. */
static char *line_of(const char *path, int n)
{
	size_t len, off, span;
	char *buf = slurp(path, &len), *line;

	line_span(buf, n, &off, &span);
	line = strndup(buf + off, span - 1);
	free(buf);
	return line;
}

static void remove_line(const char *path, int n)
{
	size_t len, off, span;
	char *buf = slurp(path, &len);

	line_span(buf, n, &off, &span);
	memmove(buf + off, buf + off + span, len - off - span);
	put_file(path, buf, len - span);
	free(buf);
}

/* Swap line N with line N+1. */
static void swap_lines(const char *path, int n)
{
	size_t len, off_a, span_a, off_b, span_b;
	char *buf = slurp(path, &len), *out = xmalloc(len);

	line_span(buf, n, &off_a, &span_a);
	line_span(buf, n + 1, &off_b, &span_b);
	memcpy(out, buf, off_a);
	memcpy(out + off_a, buf + off_b, span_b);
	memcpy(out + off_a + span_b, buf + off_a, span_a);
	memcpy(out + off_a + span_a + span_b, buf + off_b + span_b,
	       len - off_b - span_b);
	put_file(path, out, len);
	free(out);
	free(buf);
}

/* Insert TEXT (newline included) after line N. */
static void insert_after(const char *path, int n, const char *text)
{
	size_t len, off, span, add = strlen(text);
	char *buf = slurp(path, &len), *out = xmalloc(len + add);

	line_span(buf, n, &off, &span);
	memcpy(out, buf, off + span);
	memcpy(out + off + span, text, add);
	memcpy(out + off + span + add, buf + off + span, len - off - span);
	put_file(path, out, len + add);
	free(out);
	free(buf);
}

static void assert_verify_fails(const char *path, const char *expected)
{
	char err[ERR_LEN] = "";
	uint64_t n = 99;

	assert_int_equal(audit_verify(path, &n, err, sizeof(err)), -1);
	assert_string_equal(err, expected);
}

static void test_append_and_verify(void **state)
{
	struct fixture *fx = *state;
	char err[ERR_LEN] = "";
	uint64_t n = 0;
	char *line;
	json_t *entry;

	append_events(fx->path, 3);
	assert_int_equal(audit_verify(fx->path, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);

	line = line_of(fx->path, 1);
	assert_true(strncmp(line, "{\"seq\":1,\"time\":\"", 17) == 0);
	assert_true(strstr(line, "\"time\"") < strstr(line, "\"prev\""));
	assert_true(strstr(line, "\"prev\"") < strstr(line, "\"event\""));
	assert_true(strstr(line, "\"event\"") < strstr(line, "\"cluster\""));
	assert_true(strstr(line, "\"cluster\"") < strstr(line, "\"step\""));
	entry = json_loads(line, 0, NULL);
	assert_non_null(entry);
	assert_string_equal(json_string_value(json_object_get(entry, "prev")),
			    "00000000000000000000000000000000"
			    "00000000000000000000000000000000");
	assert_string_equal(json_string_value(json_object_get(entry, "event")),
			    "step1");
	assert_string_equal(json_string_value(json_object_get(entry, "node")),
			    "pg-a:5432");
	assert_int_equal(
		strlen(json_string_value(json_object_get(entry, "time"))), 24);
	json_decref(entry);
	free(line);
}

static void test_null_cluster_omitted(void **state)
{
	struct fixture *fx = *state;
	char err[ERR_LEN] = "";
	struct audit *audit = audit_open(fx->path, err, sizeof(err));
	char *line;

	assert_non_null(audit);
	assert_int_equal(audit_append(audit, "daemon_start", NULL, NULL), 0);
	audit_close(audit);
	line = line_of(fx->path, 1);
	assert_null(strstr(line, "\"cluster\""));
	free(line);
}

static void test_empty_and_absent(void **state)
{
	struct fixture *fx = *state;
	char err[ERR_LEN] = "";
	uint64_t n = 99;

	assert_int_equal(audit_verify(fx->path, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	put_file(fx->path, "", 0);
	n = 99;
	assert_int_equal(audit_verify(fx->path, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
}

static void test_reopen_continues_chain(void **state)
{
	struct fixture *fx = *state;
	char hash[SHA256_HEX_LEN + 1];
	char err[ERR_LEN] = "";
	uint64_t n = 0;
	char *third, *fourth;
	json_t *entry;

	append_events(fx->path, 3);
	append_events(fx->path, 1);
	assert_int_equal(audit_verify(fx->path, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 4);

	third = line_of(fx->path, 3);
	fourth = line_of(fx->path, 4);
	sha256_hex(third, strlen(third), hash);
	entry = json_loads(fourth, 0, NULL);
	assert_non_null(entry);
	assert_int_equal(json_integer_value(json_object_get(entry, "seq")), 4);
	assert_string_equal(json_string_value(json_object_get(entry, "prev")),
			    hash);
	json_decref(entry);
	free(fourth);
	free(third);
}

static void test_edit_one_byte(void **state)
{
	struct fixture *fx = *state;
	size_t len, off, span;
	char *buf, *at;

	append_events(fx->path, 3);
	buf = slurp(fx->path, &len);
	at = strstr(buf, "\"step2\"");
	assert_non_null(at);
	at[5] = '9';
	put_file(fx->path, buf, len);
	free(buf);
	assert_verify_fails(fx->path,
			    "line 3: prev does not match the hash of line 2");

	/* Every single byte of line 2, one at a time, must be noticed. */
	assert_int_equal(unlink(fx->path), 0);
	assert_int_equal(unlink(fx->head_path), 0);
	append_events(fx->path, 3);
	buf = slurp(fx->path, &len);
	line_span(buf, 2, &off, &span);
	for (size_t i = off; i < off + span - 1; i++) {
		char saved = buf[i], err[ERR_LEN] = "";

		buf[i] = saved == 'x' ? 'y' : 'x';
		put_file(fx->path, buf, len);
		assert_int_equal(audit_verify(fx->path, NULL, err, sizeof(err)),
				 -1);
		assert_true(strncmp(err, "line 2: ", 8) == 0 ||
			    strncmp(err, "line 3: ", 8) == 0);
		buf[i] = saved;
	}
	free(buf);
}

static void test_edit_seq_field(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	char *buf, *at;

	append_events(fx->path, 3);
	buf = slurp(fx->path, &len);
	at = strstr(buf, "{\"seq\":2,");
	assert_non_null(at);
	at[7] = '7';
	put_file(fx->path, buf, len);
	free(buf);
	assert_verify_fails(fx->path,
			    "line 2: sequence number 7 where 2 was expected");
}

static void test_insert_forged_line(void **state)
{
	struct fixture *fx = *state;
	char hash[SHA256_HEX_LEN + 1];
	char *first, *forged;

	append_events(fx->path, 3);
	first = line_of(fx->path, 1);
	sha256_hex(first, strlen(first), hash);
	forged = xasprintf("{\"seq\":2,\"time\":\"2026-12-03T14:16:12.345Z\","
			   "\"prev\":\"%s\",\"event\":\"forged\"}\n",
			   hash);
	insert_after(fx->path, 1, forged);
	assert_verify_fails(fx->path,
			    "line 3: sequence number 2 where 3 was expected");
	free(forged);
	free(first);
}

static void test_append_forged_line(void **state)
{
	struct fixture *fx = *state;
	char hash[SHA256_HEX_LEN + 1];
	char *last, *forged;

	append_events(fx->path, 3);
	last = line_of(fx->path, 3);
	sha256_hex(last, strlen(last), hash);
	forged = xasprintf("{\"seq\":4,\"time\":\"2026-12-03T14:16:12.345Z\","
			   "\"prev\":\"%s\",\"event\":\"forged\"}\n",
			   hash);
	insert_after(fx->path, 3, forged);
	assert_verify_fails(fx->path,
			    "line 4: not in the head, which records 3 lines");
	free(forged);
	free(last);
}

static void test_delete_middle_line(void **state)
{
	struct fixture *fx = *state;

	append_events(fx->path, 3);
	remove_line(fx->path, 2);
	assert_verify_fails(fx->path,
			    "line 2: sequence number 3 where 2 was expected");
}

static void test_delete_last_line(void **state)
{
	struct fixture *fx = *state;

	append_events(fx->path, 3);
	remove_line(fx->path, 3);
	assert_verify_fails(
		fx->path,
		"line 3: missing: the head records 3 lines but the log has 2");
}

static void test_delete_everything(void **state)
{
	struct fixture *fx = *state;

	append_events(fx->path, 3);
	put_file(fx->path, "", 0);
	assert_verify_fails(
		fx->path,
		"line 1: missing: the head records 3 lines but the log has 0");
	unlink(fx->path);
	assert_verify_fails(
		fx->path,
		"line 1: missing: the head records 3 lines but the log has 0");
}

static void test_swap_lines(void **state)
{
	struct fixture *fx = *state;

	append_events(fx->path, 3);
	swap_lines(fx->path, 2);
	assert_verify_fails(fx->path,
			    "line 2: sequence number 3 where 2 was expected");
}

static void test_truncated_last_line(void **state)
{
	struct fixture *fx = *state;
	size_t len, off, span;
	char *buf;

	append_events(fx->path, 3);
	buf = slurp(fx->path, &len);
	line_span(buf, 3, &off, &span);
	put_file(fx->path, buf, off + span / 2);
	free(buf);
	assert_verify_fails(fx->path, "line 3: truncated");
}

static void test_missing_head(void **state)
{
	struct fixture *fx = *state;
	char *expected;

	append_events(fx->path, 2);
	assert_int_equal(unlink(fx->head_path), 0);
	expected = xasprintf("head file \"%s\" is missing", fx->head_path);
	assert_verify_fails(fx->path, expected);
	free(expected);
}

static void test_head_hash_mismatch(void **state)
{
	struct fixture *fx = *state;
	char *head;

	append_events(fx->path, 2);
	head = xasprintf("{\"seq\":2,\"hash\":\"%064d\"}", 1);
	put_file(fx->head_path, head, strlen(head));
	free(head);
	assert_verify_fails(fx->path, "line 2: hash does not match the head");
}

static void test_open_refuses_broken_log(void **state)
{
	struct fixture *fx = *state;
	char *expected, *before, *after;
	char err[ERR_LEN] = "";
	size_t len_before, len_after;

	append_events(fx->path, 3);
	remove_line(fx->path, 2);
	before = slurp(fx->path, &len_before);
	assert_null(audit_open(fx->path, err, sizeof(err)));
	expected = xasprintf(
		"audit log \"%s\" does not verify: line 2: sequence number 3 where 2 was expected",
		fx->path);
	assert_string_equal(err, expected);
	after = slurp(fx->path, &len_after);
	assert_int_equal(len_before, len_after);
	assert_memory_equal(before, after, len_after);
	free(after);
	free(before);
	free(expected);
}

static void test_open_refuses_torn_log(void **state)
{
	struct fixture *fx = *state;
	char err[ERR_LEN] = "";
	size_t len;
	char *buf;

	append_events(fx->path, 2);
	buf = slurp(fx->path, &len);
	put_file(fx->path, buf, len - 1);
	free(buf);
	assert_null(audit_open(fx->path, err, sizeof(err)));
	assert_non_null(strstr(err, ": line 2: missing: the head records 2"));
}

/* A crash inside an append, before the head moved: the torn tail goes. */
static void test_open_settles_torn_append(void **state)
{
	struct fixture *fx = *state;
	char err[ERR_LEN] = "";
	struct audit *a;
	uint64_t n = 0;
	size_t len;
	char *buf, *torn;

	append_events(fx->path, 2);
	buf = slurp(fx->path, &len);
	torn = xasprintf("%s{\"seq\":3,\"time\":\"2026-", buf);
	put_file(fx->path, torn, strlen(torn));
	a = audit_open(fx->path, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(audit_append(a, "after", NULL, NULL), 0);
	audit_close(a);
	assert_int_equal(audit_verify(fx->path, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	free(torn);
	free(buf);
}

/* A crash after the line was synced but before the head was renamed. */
static void test_open_settles_head_behind(void **state)
{
	struct fixture *fx = *state;
	char hash[SHA256_HEX_LEN + 1], err[ERR_LEN] = "";
	char *head_path = xasprintf("%s.head", fx->path);
	char *second, *head;
	struct audit *a;
	uint64_t n = 0;

	append_events(fx->path, 3);
	second = line_of(fx->path, 2);
	sha256_hex(second, strlen(second), hash);
	head = xasprintf("{\"seq\":2,\"hash\":\"%s\"}\n", hash);
	put_file(head_path, head, strlen(head));
	assert_int_equal(audit_verify(fx->path, &n, err, sizeof(err)), -1);
	a = audit_open(fx->path, err, sizeof(err));
	assert_non_null(a);
	audit_close(a);
	assert_int_equal(audit_verify(fx->path, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	free(head);
	free(second);
	free(head_path);
}

static void test_reserved_fields_refused(void **state)
{
	static const char *const keys[] = {
		"seq", "time", "prev", "event", "cluster",
	};
	struct fixture *fx = *state;
	char err[ERR_LEN] = "";
	struct audit *audit;
	uint64_t n = 0;
	json_t *fields;

	append_events(fx->path, 1);
	audit = audit_open(fx->path, err, sizeof(err));
	assert_non_null(audit);
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		fields = json_pack("{s:i,s:i}", "fine", 1, keys[i], 5);
		assert_int_equal(audit_append(audit, "x", NULL, fields), -1);
		json_decref(fields);
	}
	fields = json_pack("{s:i}", "fine", 1);
	assert_int_equal(audit_append(audit, "y", "main", fields), 0);
	json_decref(fields);
	audit_close(audit);
	assert_int_equal(audit_verify(fx->path, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
}

static void append_for(struct audit *audit, const char *cluster, int step)
{
	json_t *fields = json_pack("{s:i}", "step", step);

	assert_int_equal(audit_append(audit, "rotation_step", cluster, fields),
			 0);
	json_decref(fields);
}

static int step_of(json_t *entries, size_t i)
{
	json_t *entry = json_array_get(entries, i);

	return (int)json_integer_value(json_object_get(entry, "step"));
}

static void test_read_filter_and_limit(void **state)
{
	struct fixture *fx = *state;
	char err[ERR_LEN] = "";
	struct audit *audit = audit_open(fx->path, err, sizeof(err));
	json_t *entries;

	assert_non_null(audit);
	append_for(audit, "a", 1);
	append_for(audit, "b", 2);
	append_for(audit, "a", 3);
	append_for(audit, NULL, 4);
	append_for(audit, "a", 5);
	audit_close(audit);

	entries = audit_read(fx->path, NULL, 0);
	assert_int_equal(json_array_size(entries), 5);
	assert_int_equal(step_of(entries, 0), 1);
	assert_int_equal(step_of(entries, 4), 5);
	json_decref(entries);

	entries = audit_read(fx->path, "a", 0);
	assert_int_equal(json_array_size(entries), 3);
	assert_int_equal(step_of(entries, 0), 1);
	assert_int_equal(step_of(entries, 1), 3);
	assert_int_equal(step_of(entries, 2), 5);
	json_decref(entries);

	entries = audit_read(fx->path, "a", 2);
	assert_int_equal(json_array_size(entries), 2);
	assert_int_equal(step_of(entries, 0), 3);
	assert_int_equal(step_of(entries, 1), 5);
	json_decref(entries);

	entries = audit_read(fx->path, NULL, 1);
	assert_int_equal(json_array_size(entries), 1);
	assert_int_equal(step_of(entries, 0), 5);
	json_decref(entries);

	entries = audit_read(fx->path, "b", 10);
	assert_int_equal(json_array_size(entries), 1);
	assert_int_equal(step_of(entries, 0), 2);
	json_decref(entries);

	entries = audit_read(fx->path, "nobody", 0);
	assert_int_equal(json_array_size(entries), 0);
	json_decref(entries);
}

static void test_read_missing_file(void **state)
{
	struct fixture *fx = *state;

	assert_null(audit_read(fx->path, NULL, 0));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_append_and_verify),
		T(test_null_cluster_omitted),
		T(test_empty_and_absent),
		T(test_reopen_continues_chain),
		T(test_edit_one_byte),
		T(test_edit_seq_field),
		T(test_insert_forged_line),
		T(test_append_forged_line),
		T(test_delete_middle_line),
		T(test_delete_last_line),
		T(test_delete_everything),
		T(test_swap_lines),
		T(test_truncated_last_line),
		T(test_missing_head),
		T(test_head_hash_mismatch),
		T(test_open_refuses_broken_log),
		T(test_open_refuses_torn_log),
		T(test_reserved_fields_refused),
		T(test_open_settles_torn_append),
		T(test_open_settles_head_behind),
		T(test_read_filter_and_limit),
		T(test_read_missing_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
