/*
 * cli.c: status, rotate, snapshot and audit.  They talk to the daemon
 * over its API, except "audit verify", which reads the log itself so
 * that the chain can be checked with the daemon down.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rotator/audit.h"
#include "rotator/cli.h"
#include "rotator/config.h"
#include "rotator/httpc.h"
#include "rotator/util.h"

#define POLL_MS 100
#define API_TIMEOUT_S 10
#define UNREACHABLE_MS 30000

struct cli {
	struct config *cfg;
	char *token;
};

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "rotator: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\ntry \"rotator --help\"\n");
	return 2;
}

static int cli_open(struct cli *cli, const char *path, bool need_token)
{
	char err[CONFIG_ERR_LEN];

	cli->token = NULL;
	cli->cfg = config_load(path, err, sizeof(err));
	if (!cli->cfg) {
		fprintf(stderr, "rotator: %s\n", err);
		return -1;
	}
	if (need_token) {
		cli->token = read_secret_file(cli->cfg->api_token_file, err,
					      sizeof(err));
		if (!cli->token) {
			fprintf(stderr, "rotator: %s: api.token_file: %s\n",
				path, err);
			config_free(cli->cfg);
			return -1;
		}
	}
	return 0;
}

static void cli_close(struct cli *cli)
{
	config_free(cli->cfg);
	free(cli->token);
}

/*
 * One API call.  Returns the HTTP status (printing the API's error for
 * anything but 2xx), or -1 after printing why no answer came.
 */
static int call(struct cli *cli, const char *method, const char *path,
		json_t *body, json_t **reply)
{
	char err[512];
	json_t *r = NULL;
	int status;

	status = httpc_request(cli->cfg->api_host, cli->cfg->api_port, method,
			       path, body, cli->token, API_TIMEOUT_S, &r, err,
			       sizeof(err));
	if (status == -1) {
		fprintf(stderr, "rotator: %s\n", err);
		return -1;
	}
	if (status < 200 || status > 299) {
		const char *msg =
			json_string_value(json_object_get(r, "error"));

		fprintf(stderr, "rotator: the daemon answered %d: %s\n", status,
			msg ? msg : "no reason given");
	}
	if (reply)
		*reply = r;
	else
		json_decref(r);
	return status;
}

static void print_json(json_t *j)
{
	char *text = json_dumps(j, JSON_INDENT(2));

	printf("%s\n", text ? text : "null");
	free(text);
}

static void format_age(json_int_t s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "-");
	else if (s < 120)
		snprintf(buf, len, "%llds", (long long)s);
	else if (s < 7200)
		snprintf(buf, len, "%lldm%02llds", (long long)s / 60,
			 (long long)s % 60);
	else
		snprintf(buf, len, "%lldh%02lldm", (long long)s / 3600,
			 (long long)s / 60 % 60);
}

static const char *jstr(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "-";
}

static const char *pause_text(json_t *rotation)
{
	static char buf[32];
	json_t *ms = json_object_get(rotation, "write_pause_ms");

	if (!ms)
		return "none";
	snprintf(buf, sizeof(buf), "%lld ms",
		 (long long)json_integer_value(ms));
	return buf;
}

static void print_cluster(json_t *c)
{
	json_t *members = json_object_get(c, "members"), *m;
	json_t *last = json_object_get(c, "last_rotation");
	json_t *ep = json_object_get(c, "endpoint");
	char age[32], next_rot[32], next_snap[32];
	size_t i;

	printf("cluster %s (%s): %s\n", jstr(c, "name"), jstr(c, "engine"),
	       jstr(c, "status"));
	printf("  endpoint %s, %lld sessions%s\n", jstr(ep, "listen"),
	       (long long)json_integer_value(json_object_get(ep, "active")),
	       json_is_true(json_object_get(ep, "holding")) ? ", holding" : "");
	ep = json_object_get(c, "read_endpoint");
	if (ep)
		printf("  read endpoint %s, %lld sessions\n",
		       jstr(ep, "listen"),
		       (long long)json_integer_value(
			       json_object_get(ep, "active")));
	if (json_object_get(c, "sentinel"))
		printf("  sentinel %s\n", jstr(c, "sentinel"));
	printf("  %-4s %-8s %-22s %-8s %s\n", "GEN", "ROLE", "ADDRESS", "AGE",
	       "BORN FROM");
	json_array_foreach (members, i, m) {
		format_age(json_integer_value(json_object_get(m, "age_s")), age,
			   sizeof(age));
		printf("  %-4lld %-8s %-22s %-8s %s\n",
		       (long long)json_integer_value(
			       json_object_get(m, "generation")),
		       jstr(m, "role"), jstr(m, "address"), age,
		       jstr(m, "born_from"));
	}
	if (json_is_object(last))
		printf("  last rotation: %s %s at %s (write pause %s)%s%s\n",
		       jstr(last, "id"), jstr(last, "state"),
		       jstr(last, "finished_at"), pause_text(last),
		       json_object_get(last, "abort_reason") ? ": " : "",
		       json_object_get(last, "abort_reason")
			       ? jstr(last, "abort_reason")
			       : "");
	else
		printf("  last rotation: none\n");
	if (json_object_get(last, "warning"))
		printf("  warning: %s\n", jstr(last, "warning"));
	if (json_is_string(json_object_get(c, "running_rotation")))
		printf("  running rotation: %s\n", jstr(c, "running_rotation"));
	format_age(json_integer_value(json_object_get(c, "next_rotation_in_s")),
		   next_rot, sizeof(next_rot));
	format_age(json_integer_value(json_object_get(c, "next_snapshot_in_s")),
		   next_snap, sizeof(next_snap));
	printf("  next rotation: %s; next snapshot: %s\n",
	       strcmp(next_rot, "-") ? next_rot : "not scheduled",
	       strcmp(next_snap, "-") ? next_snap : "not scheduled");
}

static bool has_flag(int argc, char **argv, const char *flag)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], flag) == 0)
			return true;
	return false;
}

int cli_status(const char *config, int argc, char **argv)
{
	bool as_json = has_flag(argc, argv, "--json");
	const char *name = NULL;
	json_t *reply = NULL, *c;
	struct cli cli;
	char path[256];
	size_t i;
	int status;

	for (int k = 1; k < argc; k++) {
		if (argv[k][0] == '-' && strcmp(argv[k], "--json") != 0)
			return usage_error("unknown option \"%s\"", argv[k]);
		if (argv[k][0] != '-' && name)
			return usage_error("unexpected argument \"%s\"",
					   argv[k]);
		if (argv[k][0] != '-')
			name = argv[k];
	}
	if (cli_open(&cli, config, false) == -1)
		return 2;
	if (name)
		snprintf(path, sizeof(path), "/v1/clusters/%s", name);
	else
		snprintf(path, sizeof(path), "/v1/clusters");
	status = call(&cli, "GET", path, NULL, &reply);
	cli_close(&cli);
	if (status != 200) {
		json_decref(reply);
		return 1;
	}
	if (as_json)
		print_json(reply);
	else if (name)
		print_cluster(reply);
	else
		json_array_foreach (json_object_get(reply, "clusters"), i, c)
			print_cluster(c);
	json_decref(reply);
	return 0;
}

/* Print the steps of ROTATION from index *SEEN on. */
static void print_steps(json_t *rotation, size_t *seen)
{
	json_t *steps = json_object_get(rotation, "steps");

	for (; *seen < json_array_size(steps); (*seen)++) {
		json_t *s = json_array_get(steps, *seen);
		const char *detail = jstr(s, "detail");

		printf("%s %-14s %s\n", jstr(s, "time"), jstr(s, "step"),
		       strcmp(detail, "-") ? detail : "");
	}
	fflush(stdout);
}

/*
 * Follow rotation ID until it ends.  Returns 0 when it is done, 1 when
 * it was aborted or the daemon stopped answering.
 */
static int wait_rotation(struct cli *cli, const char *id)
{
	char path[256];
	int64_t last_answer = now_ms();
	size_t seen = 0;

	snprintf(path, sizeof(path), "/v1/rotations/%s", id);
	for (;;) {
		json_t *rot = NULL;
		char err[512];
		const char *state;
		int status;

		status = httpc_request(cli->cfg->api_host, cli->cfg->api_port,
				       "GET", path, NULL, NULL, API_TIMEOUT_S,
				       &rot, err, sizeof(err));
		if (status == 200) {
			last_answer = now_ms();
			print_steps(rot, &seen);
			state = jstr(rot, "state");
			/*
			 * The state turns done or aborted as its journal
			 * record is written; the rotation has ended once
			 * finished_at is there, its last step listed.
			 */
			if ((strcmp(state, "done") == 0 ||
			     strcmp(state, "aborted") == 0) &&
			    json_object_get(rot, "finished_at")) {
				int rc = strcmp(state, "done") == 0 ? 0 : 1;

				if (rc)
					printf("rotation %s aborted: %s\n", id,
					       jstr(rot, "abort_reason"));
				else if (json_object_get(rot, "warning"))
					printf("rotation %s done with a warning: %s\n",
					       id, jstr(rot, "warning"));
				else
					printf("rotation %s done\n", id);
				if (json_object_get(rot, "warning"))
					rc = 1;
				json_decref(rot);
				return rc;
			}
		} else if (now_ms() - last_answer > UNREACHABLE_MS) {
			fprintf(stderr, "rotator: lost the daemon: %s\n",
				status == -1 ? err : "unexpected answer");
			json_decref(rot);
			return 1;
		}
		json_decref(rot);
		sleep_ms(POLL_MS);
	}
}

int cli_rotate(const char *config, int argc, char **argv)
{
	static const struct option opts[] = {
		{"reason", required_argument, NULL, 'r'},
		{"wait", no_argument, NULL, 'w'},
		{"node", required_argument, NULL, 'n'},
		{NULL, 0, NULL, 0},
	};
	static const char usage[] =
		"usage: rotate CLUSTER [--node ID] [--reason TEXT] [--wait]";
	const char *reason = "forced by operator";
	json_t *body, *reply = NULL;
	bool wait = false;
	struct cli cli;
	char path[256], id[64], *end;
	long node = 0;
	int c, status, rc;

	optind = 0; /* glibc: start over, permuting from argv[1] */
	while ((c = getopt_long(argc, argv, "r:wn:", opts, NULL)) != -1) {
		if (c == 'r') {
			reason = optarg;
		} else if (c == 'w') {
			wait = true;
		} else if (c == 'n') {
			errno = 0;
			node = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || node < 1 ||
			    node > INT32_MAX)
				return usage_error(
					"--node: \"%s\" is not a generation "
					"(see \"status\")",
					optarg);
		} else {
			return usage_error("bad option for \"%s\"", "rotate");
		}
	}
	if (optind != argc - 1)
		return usage_error("%s", usage);
	if (cli_open(&cli, config, true) == -1)
		return 2;
	snprintf(path, sizeof(path), "/v1/clusters/%s/rotate", argv[optind]);
	body = json_pack("{s:s, s:s}", "reason", reason, "requester", "cli");
	if (node > 0)
		json_object_set_new(body, "node", json_integer(node));
	status = call(&cli, "POST", path, body, &reply);
	json_decref(body);
	if (status != 202) {
		json_decref(reply);
		cli_close(&cli);
		return 1;
	}
	snprintf(id, sizeof(id), "%s", jstr(reply, "id"));
	json_decref(reply);
	printf("rotation %s started\n", id);
	fflush(stdout);
	rc = wait ? wait_rotation(&cli, id) : 0;
	cli_close(&cli);
	return rc;
}

static void print_snapshots(json_t *list)
{
	json_t *s;
	size_t i;

	printf("%-20s %-25s %12s %4s %-12s %s\n", "ID", "CREATED", "SIZE",
	       "TLI", "START LSN", "MANIFEST SHA-256");
	json_array_foreach (list, i, s) {
		json_t *pos = json_object_get(s, "position");

		printf("%-20s %-25s %12lld %4lld %-12s %.16s\n", jstr(s, "id"),
		       jstr(s, "created"),
		       (long long)json_integer_value(
			       json_object_get(s, "size")),
		       (long long)json_integer_value(
			       json_object_get(pos, "timeline")),
		       jstr(pos, "start_lsn"), jstr(s, "manifest_sha256"));
	}
}

static const char *newest_id(json_t *reply, char *buf, size_t len)
{
	json_t *list = json_object_get(reply, "snapshots");
	json_t *last = json_array_get(list, json_array_size(list) - 1);

	snprintf(buf, len, "%s", last ? jstr(last, "id") : "");
	return buf;
}

/* POST a snapshot job, then follow it until it ends. */
static int snapshot_take(struct cli *cli, const char *name)
{
	char path[256], before[64], after[64];
	json_t *reply = NULL;
	int64_t deadline = now_ms() + 60 * 60 * 1000;

	snprintf(path, sizeof(path), "/v1/clusters/%s/snapshots", name);
	if (call(cli, "GET", path, NULL, &reply) != 200)
		goto fail;
	newest_id(reply, before, sizeof(before));
	json_decref(reply);
	reply = NULL;
	if (call(cli, "POST", path, NULL, NULL) != 202)
		return 1;
	while (now_ms() < deadline) {
		sleep_ms(POLL_MS * 5);
		if (call(cli, "GET", path, NULL, &reply) != 200)
			goto fail;
		if (!json_is_true(json_object_get(reply, "taking")))
			break;
		json_decref(reply);
		reply = NULL;
	}
	newest_id(reply, after, sizeof(after));
	if (strcmp(before, after) == 0) {
		fprintf(stderr, "rotator: snapshot failed: %s\n",
			jstr(reply, "last_error"));
		goto fail;
	}
	printf("restore point %s recorded\n", after);
	json_decref(reply);
	return 0;
fail:
	json_decref(reply);
	return 1;
}

/*
 * "snapshot verify ID": the daemon checks restore point ID from scratch
 * (every file against both manifests, the manifest against the audit
 * log, pg_verifybackup); this follows the check to its end.
 */
static int snapshot_verify(struct cli *cli, const char *id)
{
	int64_t deadline = now_ms() + 6 * 60 * 60 * 1000;
	char path[256];
	json_t *reply = NULL;
	const char *state;
	int rc = 1;

	snprintf(path, sizeof(path), "/v1/snapshots/%s/verify", id);
	if (call(cli, "POST", path, NULL, NULL) != 202)
		return 1;
	while (now_ms() < deadline) {
		sleep_ms(POLL_MS * 2);
		json_decref(reply);
		reply = NULL;
		if (call(cli, "GET", path, NULL, &reply) != 200)
			break;
		state = jstr(reply, "state");
		if (strcmp(state, "running") == 0)
			continue;
		if (strcmp(state, "verified") == 0) {
			printf("snapshot %s verifies: manifest matches its audit record, every file matches\n",
			       id);
			rc = 0;
		} else {
			fprintf(stderr,
				"rotator: snapshot %s does not verify: %s\n",
				id, jstr(reply, "reason"));
		}
		break;
	}
	json_decref(reply);
	return rc;
}

int cli_snapshot(const char *config, int argc, char **argv)
{
	bool as_json = has_flag(argc, argv, "--json");
	const char *words[2] = {"", NULL}, *verb, *arg;
	json_t *reply = NULL;
	struct cli cli;
	char path[256];
	int n = 0, rc = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			continue;
		if (argv[i][0] == '-' || n == 2)
			return usage_error("unexpected argument \"%s\"",
					   argv[i]);
		words[n++] = argv[i];
	}
	verb = words[0];
	arg = words[1];
	if (!arg || (strcmp(verb, "take") && strcmp(verb, "list") &&
		     strcmp(verb, "verify")))
		return usage_error(
			"%s",
			"usage: snapshot take CLUSTER | list CLUSTER [--json] | verify ID");
	if (cli_open(&cli, config, strcmp(verb, "list") != 0) == -1)
		return 2;
	if (strcmp(verb, "take") == 0) {
		rc = snapshot_take(&cli, arg);
	} else if (strcmp(verb, "verify") == 0) {
		rc = snapshot_verify(&cli, arg);
	} else {
		snprintf(path, sizeof(path), "/v1/clusters/%s/snapshots", arg);
		if (call(&cli, "GET", path, NULL, &reply) == 200) {
			if (as_json)
				print_json(json_object_get(reply, "snapshots"));
			else
				print_snapshots(
					json_object_get(reply, "snapshots"));
			rc = 0;
		}
		json_decref(reply);
	}
	cli_close(&cli);
	return rc;
}

/* One audit entry as a line: seq, time, event, cluster, the rest. */
static void print_entry(json_t *e)
{
	static const char *const shown[] = {"seq", "time", "prev", "event",
					    "cluster"};
	const char *key;
	json_t *v;

	printf("%6lld %s %-20s %-10s",
	       (long long)json_integer_value(json_object_get(e, "seq")),
	       jstr(e, "time"), jstr(e, "event"), jstr(e, "cluster"));
	json_object_foreach (e, key, v) {
		bool skip = false;
		char *text;

		for (size_t i = 0; i < sizeof(shown) / sizeof(*shown); i++)
			skip |= strcmp(key, shown[i]) == 0;
		if (skip)
			continue;
		text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		printf(" %s=%s", key, text ? text : "?");
		free(text);
	}
	printf("\n");
}

static int audit_list(struct cli *cli, const char *cluster, bool as_json)
{
	json_t *reply = NULL, *e;
	char path[256];
	size_t i;

	if (cluster &&
	    (strlen(cluster) > 64 ||
	     strspn(cluster, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			     "abcdefghijklmnopqrstuvwxyz0123456789_") !=
		     strlen(cluster))) {
		fprintf(stderr, "rotator: invalid cluster name \"%.64s\"\n",
			cluster);
		return 2;
	}
	if (cluster)
		snprintf(path, sizeof(path), "/v1/audit?cluster=%s", cluster);
	else
		snprintf(path, sizeof(path), "/v1/audit");
	if (call(cli, "GET", path, NULL, &reply) != 200) {
		json_decref(reply);
		return 1;
	}

	/*
	 * The log keeps the entries of clusters since removed from the
	 * configuration; a name that is in neither is most likely a typo.
	 */
	if (cluster && !config_cluster(cli->cfg, cluster) &&
	    json_array_size(json_object_get(reply, "entries")) == 0) {
		fprintf(stderr,
			"rotator: no cluster \"%s\" in %s and no audit entry "
			"of one\n",
			cluster, cli->cfg->path);
		json_decref(reply);
		return 1;
	}
	if (as_json)
		print_json(json_object_get(reply, "entries"));
	else
		json_array_foreach (json_object_get(reply, "entries"), i, e)
			print_entry(e);
	json_decref(reply);
	return 0;
}

static int audit_check(struct cli *cli)
{
	char *path = xasprintf("%s/audit.log", cli->cfg->state_dir);
	char err[512];
	uint64_t lines = 0;
	int rc;

	/*
	 * A log this user may not read says nothing about the chain: that is
	 * a usage problem (2), not a failed check (1).
	 */
	if (access(path, R_OK) == -1 && errno == EACCES) {
		fprintf(stderr, "rotator: could not read \"%s\": %s\n", path,
			strerror(errno));
		free(path);
		return 2;
	}
	rc = audit_verify(path, &lines, err, sizeof(err));
	if (rc == 0)
		printf("audit log \"%s\" is intact: %" PRIu64 " entries\n",
		       path, lines);
	else
		fprintf(stderr,
			"rotator: audit log \"%s\" does not verify: %s\n", path,
			err);
	free(path);
	return rc == 0 ? 0 : 1;
}

int cli_audit(const char *config, int argc, char **argv)
{
	static const struct option opts[] = {
		{"cluster", required_argument, NULL, 'C'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	const char *cluster = NULL;
	bool as_json = false;
	struct cli cli;
	int c, rc;

	optind = 0; /* glibc: start over, permuting from argv[1] */
	while ((c = getopt_long(argc, argv, "C:j", opts, NULL)) != -1) {
		if (c == 'C')
			cluster = optarg;
		else if (c == 'j')
			as_json = true;
		else
			return usage_error("bad option for \"%s\"", "audit");
	}
	if (optind != argc - 1 ||
	    (strcmp(argv[optind], "list") && strcmp(argv[optind], "verify")))
		return usage_error(
			"%s",
			"usage: audit list [--cluster C] [--json] | audit verify");
	if (cli_open(&cli, config, false) == -1)
		return 2;
	rc = strcmp(argv[optind], "list") == 0
		     ? audit_list(&cli, cluster, as_json)
		     : audit_check(&cli);
	cli_close(&cli);
	return rc;
}
