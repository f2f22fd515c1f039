/*
 * test_manifest.c: snapshot manifests, and their check against the audit
 * log's restore point records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rotator/audit.h"
#include "snapshots/manifest.h"

struct fixture {
	char dir[64];
	char *audit_path;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/rotator-manifest-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->audit_path = xasprintf("%s/audit.log", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (remove_tree(f->dir) == -1)
		return -1;
	free(f->audit_path);
	free(f);
	return 0;
}

static json_t *sample(const char *id)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:{s:i, s:s, s:s}}", "id",
			 id, "cluster", "orders", "engine", "postgres",
			 "created", "2026-12-03T14:00:00.000Z", "size",
			 (json_int_t)123456, "position", "timeline", 1,
			 "start_lsn", "0/2000028", "end_lsn", "0/2000100");
}

static void record(struct fixture *f, const char *id, const char *sha)
{
	char err[512];
	struct audit *a = audit_open(f->audit_path, err, sizeof(err));
	json_t *fields =
		json_pack("{s:s, s:s}", "snapshot", id, "manifest_sha256", sha);

	assert_non_null(a);
	assert_int_equal(audit_append(a, "restore_point", "orders", fields), 0);
	json_decref(fields);
	audit_close(a);
}

static void write_then_read_gives_same_hash(void **state)
{
	struct fixture *f = *state;
	char sha_w[SHA256_HEX_LEN + 1], sha_r[SHA256_HEX_LEN + 1], err[512];
	json_t *m = sample("orders-000001"), *back;

	assert_int_equal(manifest_write(f->dir, m, sha_w, err, sizeof(err)), 0);
	back = manifest_read(f->dir, sha_r, err, sizeof(err));
	assert_non_null(back);
	assert_string_equal(sha_w, sha_r);
	assert_true(json_equal(m, back));
	json_decref(back);
	json_decref(m);
}

static void missing_member_is_refused(void **state)
{
	struct fixture *f = *state;
	char sha[SHA256_HEX_LEN + 1], err[512];
	json_t *m = sample("orders-000001");

	json_object_del(m, "engine");
	assert_int_equal(manifest_write(f->dir, m, sha, err, sizeof(err)), 0);
	assert_null(manifest_read(f->dir, sha, err, sizeof(err)));
	assert_non_null(strstr(err, "lacks \"engine\""));
	json_decref(m);
}

static void unparsable_manifest_is_refused(void **state)
{
	struct fixture *f = *state;
	char *path = xasprintf("%s/%s", f->dir, MANIFEST_FILE);
	char sha[SHA256_HEX_LEN + 1], err[512];
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs("{\"id\": ", fp);
	fclose(fp);
	assert_null(manifest_read(f->dir, sha, err, sizeof(err)));
	assert_non_null(strstr(err, "could not parse"));
	free(path);
}

static void recorded_hash_matches(void **state)
{
	struct fixture *f = *state;
	char sha[SHA256_HEX_LEN + 1], err[512];
	json_t *m = sample("orders-000002");

	assert_int_equal(manifest_write(f->dir, m, sha, err, sizeof(err)), 0);
	record(f, "orders-000001", "00");
	record(f, "orders-000002", sha);
	assert_int_equal(manifest_check_record(f->audit_path, "orders-000002",
					       sha, err, sizeof(err)),
			 0);
	json_decref(m);
}

/* One changed byte in the manifest: its hash no longer fits its record. */
static void edited_manifest_does_not_match(void **state)
{
	struct fixture *f = *state;
	char *path = xasprintf("%s/%s", f->dir, MANIFEST_FILE);
	char sha[SHA256_HEX_LEN + 1], err[512];
	json_t *m = sample("orders-000003"), *back;
	size_t len;
	char *text, *p;
	FILE *fp;

	assert_int_equal(manifest_write(f->dir, m, sha, err, sizeof(err)), 0);
	record(f, "orders-000003", sha);
	text = read_file(path, &len);
	p = strstr(text, "123456");
	assert_non_null(p);
	p[0] = '9';
	fp = fopen(path, "w");
	fwrite(text, 1, len, fp);
	fclose(fp);

	back = manifest_read(f->dir, sha, err, sizeof(err));
	assert_non_null(back);
	assert_int_equal(manifest_check_record(f->audit_path, "orders-000003",
					       sha, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "but its audit record says"));
	json_decref(back);
	json_decref(m);
	free(text);
	free(path);
}

static void unrecorded_snapshot_is_refused(void **state)
{
	struct fixture *f = *state;
	char err[512];

	record(f, "orders-000001", "ab");
	assert_int_equal(manifest_check_record(f->audit_path, "orders-000009",
					       "ab", err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "no restore point record"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(write_then_read_gives_same_hash,
						setup, teardown),
		cmocka_unit_test_setup_teardown(missing_member_is_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(unparsable_manifest_is_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(recorded_hash_matches, setup,
						teardown),
		cmocka_unit_test_setup_teardown(edited_manifest_does_not_match,
						setup, teardown),
		cmocka_unit_test_setup_teardown(unrecorded_snapshot_is_refused,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
