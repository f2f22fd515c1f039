/*
 * test_config.c: config_load() on valid files, with their defaults, and on
 * every kind of mistake, each of which must come back as one message that
 * names the file and the key path (or the line and column).
 *
 * Most bad files are the valid file of the project's issue with one to
 * three edits applied, so that each row of the table below says only what
 * is wrong and what config_load() must answer.  Every row runs as its own
 * test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "rotator/config.h"
#include "rotator/util.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof(*(a)))
#define STR(s) "\"" s "\""

/* 64 bytes, one more than a PostgreSQL name holds. */
#define LONG_USER                                                              \
	"u234567890123456789012345678901234567890123456789012345678901234"

#define USER_HINT                                                              \
	": use 1 to 63 letters, digits, '_', '.' or '-', starting with a "     \
	"letter or '_' and not with \"pg_\""
/* The configuration from the project's issue. */
static const char issue_json[] =
	"{\"state_dir\": \"/var/lib/rotator\", \"api\": { \"listen\": "
	"\"127.0.0.1:7070\", \"token_file\": \"/etc/rotator/token\" }, "
	"\"clusters\": [ { \"name\": \"orders\", \"engine\": \"postgres\", "
	"\"bootstrap\": \"initdb\", \"auth\": { \"user\": \"rotator\", "
	"\"password_file\": \"/etc/rotator/orders.password\" }, "
	"\"endpoint\": { \"listen\": \"127.0.0.1:6432\" }, \"provisioner\": "
	"{ \"kind\": \"local\", \"bin_dir\": \"/usr/lib/postgresql/15/bin\", "
	"\"ports\": \"15500-15599\", \"run_as\": \"postgres\" }, "
	"\"schedule\": { \"every\": \"6h\" }, \"snapshots\": { \"every\": "
	"\"1h\", \"keep\": 24 } } ] }";

/* A second cluster that clashes with nothing in issue_json. */
#define CACHE_CLUSTER                                                          \
	"{\"name\": \"cache\", \"engine\": \"redis\", \"bootstrap\": "         \
	"\"empty\", \"auth\": {\"user\": \"default\", \"password_file\": "     \
	"\"/etc/rotator/cache.password\"}, \"endpoint\": {\"listen\": "        \
	"\"127.0.0.1:6380\"}, \"provisioner\": {\"bin_dir\": "                 \
	"\"/usr/bin\", \"ports\": \"16000-16099\"}}"

#define CONNECTION "{\"host\": \"db1\", \"port\": 5432}"

/* Set the member at PATH to the JSON text VALUE, or remove it if NULL. */
struct edit {
	const char *path;
	const char *value;
};

struct bad_case {
	const char *what;
	struct edit edits[3];
	const char *expect; /* the whole message after the file name */
};

static const struct bad_case bad_cases[] = {
	/* Unknown keys, at every level. */
	{"unknown key at top level", {{"bogus", "1"}}, ": bogus: unknown key"},
	{"unknown key in api", {{"api.tls", "true"}}, ": api.tls: unknown key"},
	{"unknown key in cluster",
	 {{"clusters[0].shards", "2"}},
	 ": clusters[0].shards: unknown key"},
	{"replicas out of range",
	 {{"clusters[0].replicas", "9"}},
	 ": clusters[0].replicas: 9 is out of range: expected 0 to 8"},
	{"replicas not a number",
	 {{"clusters[0].replicas", STR("two")}},
	 ": clusters[0].replicas: expected an integer"},
	{"sentinel_listen on postgres",
	 {{"clusters[0].endpoint.sentinel_listen", STR("127.0.0.1:26379")}},
	 ": clusters[0].endpoint.sentinel_listen: only allowed with engine "
	 "\"redis\""},
	{"read_listen on the endpoint's address",
	 {{"clusters[0].endpoint.read_listen", STR("127.0.0.1:6432")}},
	 ": clusters[0].endpoint.read_listen: address \"127.0.0.1:6432\" is "
	 "already used by clusters[0].endpoint.listen"},
	{"read_listen on the api's address",
	 {{"clusters[0].endpoint.read_listen", STR("127.0.0.1:7070")}},
	 ": clusters[0].endpoint.read_listen: address \"127.0.0.1:7070\" is "
	 "already used by api.listen"},
	{"read_listen bad address",
	 {{"clusters[0].endpoint.read_listen", STR("nowhere")}},
	 ": clusters[0].endpoint.read_listen: invalid address \"nowhere\": "
	 "expected \"HOST:PORT\""},
	{"unknown key in auth",
	 {{"clusters[0].auth.password", STR("x")}},
	 ": clusters[0].auth.password: unknown key"},
	{"unknown key in endpoint",
	 {{"clusters[0].endpoint.hold", "1"}},
	 ": clusters[0].endpoint.hold: unknown key"},
	{"unknown key in provisioner",
	 {{"clusters[0].provisioner.image", STR("pg")}},
	 ": clusters[0].provisioner.image: unknown key"},
	{"unknown key in schedule",
	 {{"clusters[0].schedule.at", "1"}},
	 ": clusters[0].schedule.at: unknown key"},
	{"unknown key in snapshots",
	 {{"clusters[0].snapshots.kept", "3"}},
	 ": clusters[0].snapshots.kept: unknown key"},
	{"unknown key in rotation",
	 {{"clusters[0].rotation", "{\"max_lag\": 1}"}},
	 ": clusters[0].rotation.max_lag: unknown key"},
	{"unknown key in verify",
	 {{"clusters[0].verify", "{\"queries\": []}"}},
	 ": clusters[0].verify.queries: unknown key"},
	{"unknown key in connection",
	 {{"clusters[0].bootstrap", STR("adopt")},
	  {"clusters[0].connection",
	   "{\"host\": \"db1\", \"port\": 5432, \"db\": \"x\"}"}},
	 ": clusters[0].connection.db: unknown key"},
	{"unknown key in second cluster",
	 {{"clusters[1]", CACHE_CLUSTER},
	  {"clusters[1].snapshots", "{\"every\": \"1h\", \"x\": 1}"}},
	 ": clusters[1].snapshots.x: unknown key"},

	/* Wrong types. */
	{"state_dir not a string",
	 {{"state_dir", "5"}},
	 ": state_dir: expected a string"},
	{"user with a space",
	 {{"clusters[0].auth.user", STR("Ro Tator")}},
	 ": clusters[0].auth.user: invalid user \"Ro Tator\"" USER_HINT},
	{"user with a quote",
	 {{"clusters[0].auth.user", STR("o'brien")}},
	 ": clusters[0].auth.user: invalid user \"o'brien\"" USER_HINT},
	{"user in PostgreSQL's namespace",
	 {{"clusters[0].auth.user", STR("pg_monitor")}},
	 ": clusters[0].auth.user: invalid user \"pg_monitor\"" USER_HINT},
	{"user starting with a digit",
	 {{"clusters[0].auth.user", STR("1st")}},
	 ": clusters[0].auth.user: invalid user \"1st\"" USER_HINT},
	{"user longer than 63 bytes",
	 {{"clusters[0].auth.user", STR(LONG_USER)}},
	 ": clusters[0].auth.user: invalid user \"" LONG_USER "\"" USER_HINT},
	{"state_dir empty",
	 {{"state_dir", STR("")}},
	 ": state_dir: must not be empty"},
	{"state_dir with a quote",
	 {{"state_dir", STR("/var/lib/it's")}},
	 ": state_dir: \"/var/lib/it's\" must be an absolute path "
	 "without quotes, backslashes, '$', '`' or '%'"},
	{"state_dir with a dollar",
	 {{"state_dir", STR("/var/$HOME")}},
	 ": state_dir: \"/var/$HOME\" must be an absolute path "
	 "without quotes, backslashes, '$', '`' or '%'"},
	{"state_dir with a percent sign",
	 {{"state_dir", STR("/tmp/a%fb")}},
	 ": state_dir: \"/tmp/a%fb\" must be an absolute path "
	 "without quotes, backslashes, '$', '`' or '%'"},
	{"state_dir relative",
	 {{"state_dir", STR("var/lib")}},
	 ": state_dir: \"var/lib\" must be an absolute path "
	 "without quotes, backslashes, '$', '`' or '%'"},
	{"api not an object",
	 {{"api", STR("127.0.0.1:7070")}},
	 ": api: expected an object"},
	{"token_file not a string",
	 {{"api.token_file", "[]"}},
	 ": api.token_file: expected a string"},
	{"clusters not an array",
	 {{"clusters", "{}"}},
	 ": clusters: expected an array"},
	{"clusters empty",
	 {{"clusters", "[]"}},
	 ": clusters: expected at least one cluster"},
	{"cluster not an object",
	 {{"clusters[0]", "5"}},
	 ": clusters[0]: expected an object"},
	{"name not a string",
	 {{"clusters[0].name", "7"}},
	 ": clusters[0].name: expected a string"},
	{"auth not an object",
	 {{"clusters[0].auth", "[]"}},
	 ": clusters[0].auth: expected an object"},
	{"auth.user not a string",
	 {{"clusters[0].auth.user", "1"}},
	 ": clusters[0].auth.user: expected a string"},
	{"run_as null",
	 {{"clusters[0].provisioner.run_as", "null"}},
	 ": clusters[0].provisioner.run_as: expected a string"},
	{"ports an integer",
	 {{"clusters[0].provisioner.ports", "15500"}},
	 ": clusters[0].provisioner.ports: expected a string"},
	{"listen an integer",
	 {{"clusters[0].endpoint.listen", "6432"}},
	 ": clusters[0].endpoint.listen: expected a string"},
	{"hold_ms a string",
	 {{"clusters[0].endpoint.hold_ms", STR("5s")}},
	 ": clusters[0].endpoint.hold_ms: expected an integer"},
	{"hold_ms a real",
	 {{"clusters[0].endpoint.hold_ms", "1.5"}},
	 ": clusters[0].endpoint.hold_ms: expected an integer"},
	{"hold_ms zero",
	 {{"clusters[0].endpoint.hold_ms", "0"}},
	 ": clusters[0].endpoint.hold_ms: 0 is out of range: "
	 "expected 1 to 600000"},
	{"hold_ms too large",
	 {{"clusters[0].endpoint.hold_ms", "600001"}},
	 ": clusters[0].endpoint.hold_ms: 600001 is out of range: "
	 "expected 1 to 600000"},
	{"keep a boolean",
	 {{"clusters[0].snapshots.keep", "true"}},
	 ": clusters[0].snapshots.keep: expected an integer"},
	{"keep zero",
	 {{"clusters[0].snapshots.keep", "0"}},
	 ": clusters[0].snapshots.keep: 0 is out of range: "
	 "expected at least 1"},
	{"max_lag_bytes negative",
	 {{"clusters[0].rotation", "{\"max_lag_bytes\": -1}"}},
	 ": clusters[0].rotation.max_lag_bytes: -1 is out of range: "
	 "expected at least 0"},
	{"schedule not an object",
	 {{"clusters[0].schedule", STR("6h")}},
	 ": clusters[0].schedule: expected an object"},
	{"schedule.every an integer",
	 {{"clusters[0].schedule.every", "6"}},
	 ": clusters[0].schedule.every: expected a string"},
	{"canary not an array",
	 {{"clusters[0].verify", "{\"canary\": \"select 1\"}"}},
	 ": clusters[0].verify.canary: expected an array"},
	{"canary with an empty query",
	 {{"clusters[0].verify", "{\"canary\": [\"select 1\", \"\"]}"}},
	 ": clusters[0].verify.canary[1]: expected a non-empty string"},
	{"canary with a number",
	 {{"clusters[0].verify", "{\"canary\": [1]}"}},
	 ": clusters[0].verify.canary[0]: expected a non-empty string"},
	{"log_level not a string",
	 {{"log_level", "3"}},
	 ": log_level: expected a string"},

	/* Durations. */
	{"duration with a bad unit",
	 {{"clusters[0].schedule.every", STR("6x")}},
	 ": clusters[0].schedule.every: invalid duration \"6x\": "
	 "use a number followed by ms, s, m, h or d"},
	{"duration of zero",
	 {{"clusters[0].snapshots.every", STR("0s")}},
	 ": clusters[0].snapshots.every: invalid duration \"0s\": "
	 "use a number followed by ms, s, m, h or d"},
	{"duration without a number",
	 {{"clusters[0].rotation", "{\"catch_up_timeout\": \"h\"}"}},
	 ": clusters[0].rotation.catch_up_timeout: invalid duration \"h\": "
	 "use a number followed by ms, s, m, h or d"},
	{"duration with a space",
	 {{"clusters[0].rotation", "{\"switch_timeout\": \"10 s\"}"}},
	 ": clusters[0].rotation.switch_timeout: invalid duration \"10 s\": "
	 "use a number followed by ms, s, m, h or d"},

	/* Port ranges. */
	{"port range reversed",
	 {{"clusters[0].provisioner.ports", STR("9-3")}},
	 ": clusters[0].provisioner.ports: invalid port range \"9-3\": "
	 "expected \"LOW-HIGH\" with 1 <= LOW <= HIGH <= 65535"},
	{"port range of one port",
	 {{"clusters[0].provisioner.ports", STR("15500")}},
	 ": clusters[0].provisioner.ports: invalid port range \"15500\": "
	 "expected \"LOW-HIGH\" with 1 <= LOW <= HIGH <= 65535"},
	{"port range from zero",
	 {{"clusters[0].provisioner.ports", STR("0-10")}},
	 ": clusters[0].provisioner.ports: invalid port range \"0-10\": "
	 "expected \"LOW-HIGH\" with 1 <= LOW <= HIGH <= 65535"},
	{"port range past 65535",
	 {{"clusters[0].provisioner.ports", STR("10-65536")}},
	 ": clusters[0].provisioner.ports: invalid port range \"10-65536\": "
	 "expected \"LOW-HIGH\" with 1 <= LOW <= HIGH <= 65535"},
	{"port range negative",
	 {{"clusters[0].provisioner.ports", STR("-5-10")}},
	 ": clusters[0].provisioner.ports: invalid port range \"-5-10\": "
	 "expected \"LOW-HIGH\" with 1 <= LOW <= HIGH <= 65535"},
	{"port range of three parts",
	 {{"clusters[0].provisioner.ports", STR("1-2-3")}},
	 ": clusters[0].provisioner.ports: invalid port range \"1-2-3\": "
	 "expected \"LOW-HIGH\" with 1 <= LOW <= HIGH <= 65535"},
	{"port range open",
	 {{"clusters[0].provisioner.ports", STR("10-")}},
	 ": clusters[0].provisioner.ports: invalid port range \"10-\": "
	 "expected \"LOW-HIGH\" with 1 <= LOW <= HIGH <= 65535"},
	{"port range with signs",
	 {{"clusters[0].provisioner.ports", STR("+1-+2")}},
	 ": clusters[0].provisioner.ports: invalid port range \"+1-+2\": "
	 "expected \"LOW-HIGH\" with 1 <= LOW <= HIGH <= 65535"},
	{"port range of words",
	 {{"clusters[0].provisioner.ports", STR("low-high")}},
	 ": clusters[0].provisioner.ports: invalid port range "
	 "\"low-high\": "
	 "expected \"LOW-HIGH\" with 1 <= LOW <= HIGH <= 65535"},

	/* Addresses. */
	{"address with a signed port",
	 {{"clusters[0].endpoint.listen", STR("127.0.0.1:+80")}},
	 ": clusters[0].endpoint.listen: invalid address \"127.0.0.1:+80\": "
	 "expected \"HOST:PORT\""},
	{"address with a padded port",
	 {{"clusters[0].endpoint.listen", STR("127.0.0.1:080")}},
	 ": clusters[0].endpoint.listen: invalid address \"127.0.0.1:080\": "
	 "expected \"HOST:PORT\""},
	{"address without a port",
	 {{"clusters[0].endpoint.listen", STR("x")}},
	 ": clusters[0].endpoint.listen: invalid address \"x\": "
	 "expected \"HOST:PORT\""},
	{"address with port zero",
	 {{"clusters[0].endpoint.listen", STR("127.0.0.1:0")}},
	 ": clusters[0].endpoint.listen: invalid address \"127.0.0.1:0\": "
	 "expected \"HOST:PORT\""},
	{"address without a host",
	 {{"clusters[0].endpoint.listen", STR(":6432")}},
	 ": clusters[0].endpoint.listen: invalid address \":6432\": "
	 "expected \"HOST:PORT\""},
	{"address with a bad port",
	 {{"clusters[0].endpoint.listen", STR("localhost:64x")}},
	 ": clusters[0].endpoint.listen: invalid address \"localhost:64x\": "
	 "expected \"HOST:PORT\""},
	{"api address bad",
	 {{"api.listen", STR("localhost")}},
	 ": api.listen: invalid address \"localhost\": "
	 "expected \"HOST:PORT\""},

	/* Missing required keys, at every level. */
	{"missing state_dir",
	 {{"state_dir", NULL}},
	 ": state_dir: missing required key"},
	{"missing api", {{"api", NULL}}, ": api: missing required key"},
	{"missing api.token_file",
	 {{"api.token_file", NULL}},
	 ": api.token_file: missing required key"},
	{"missing clusters",
	 {{"clusters", NULL}},
	 ": clusters: missing required key"},
	{"missing name",
	 {{"clusters[0].name", NULL}},
	 ": clusters[0].name: missing required key"},
	{"missing engine",
	 {{"clusters[0].engine", NULL}},
	 ": clusters[0].engine: missing required key"},
	{"missing bootstrap",
	 {{"clusters[0].bootstrap", NULL}},
	 ": clusters[0].bootstrap: missing required key"},
	{"missing auth",
	 {{"clusters[0].auth", NULL}},
	 ": clusters[0].auth: missing required key"},
	{"missing auth.user",
	 {{"clusters[0].auth.user", NULL}},
	 ": clusters[0].auth.user: missing required key"},
	{"missing auth.password_file",
	 {{"clusters[0].auth.password_file", NULL}},
	 ": clusters[0].auth.password_file: missing required key"},
	{"missing endpoint",
	 {{"clusters[0].endpoint", NULL}},
	 ": clusters[0].endpoint: missing required key"},
	{"missing endpoint.listen",
	 {{"clusters[0].endpoint.listen", NULL}},
	 ": clusters[0].endpoint.listen: missing required key"},
	{"missing provisioner",
	 {{"clusters[0].provisioner", NULL}},
	 ": clusters[0].provisioner: missing required key"},
	{"missing provisioner.bin_dir",
	 {{"clusters[0].provisioner.bin_dir", NULL}},
	 ": clusters[0].provisioner.bin_dir: missing required key"},
	{"missing provisioner.ports",
	 {{"clusters[0].provisioner.ports", NULL}},
	 ": clusters[0].provisioner.ports: missing required key"},
	{"missing connection.host",
	 {{"clusters[0].bootstrap", STR("adopt")},
	  {"clusters[0].connection", "{\"port\": 5432}"}},
	 ": clusters[0].connection.host: missing required key"},
	{"missing connection.port",
	 {{"clusters[0].bootstrap", STR("adopt")},
	  {"clusters[0].connection", "{\"host\": \"db1\"}"}},
	 ": clusters[0].connection.port: missing required key"},
	{"missing key in second cluster",
	 {{"clusters[1]", CACHE_CLUSTER}, {"clusters[1].auth.user", NULL}},
	 ": clusters[1].auth.user: missing required key"},

	/* Names, engines, bootstraps, kinds, levels. */
	{"name with a dash",
	 {{"clusters[0].name", STR("order-db")}},
	 ": clusters[0].name: invalid cluster name \"order-db\": "
	 "use 1 to 32 letters, digits or underscores"},
	{"name too long",
	 {{"clusters[0].name", STR("abcdefghijklmnopqrstuvwxyz0123456")}},
	 ": clusters[0].name: invalid cluster name "
	 "\"abcdefghijklmnopqrstuvwxyz0123456\": "
	 "use 1 to 32 letters, digits or underscores"},
	{"name empty",
	 {{"clusters[0].name", STR("")}},
	 ": clusters[0].name: must not be empty"},
	{"unknown engine",
	 {{"clusters[0].engine", STR("mysql")}},
	 ": clusters[0].engine: unknown engine \"mysql\": "
	 "expected \"postgres\" or \"redis\""},
	{"unknown bootstrap",
	 {{"clusters[0].bootstrap", STR("clone")}},
	 ": clusters[0].bootstrap: unknown bootstrap \"clone\": "
	 "expected \"initdb\", \"empty\" or \"adopt\""},
	{"bootstrap empty for postgres",
	 {{"clusters[0].bootstrap", STR("empty")}},
	 ": clusters[0].bootstrap: bootstrap \"empty\" requires engine "
	 "\"redis\""},
	{"bootstrap initdb for redis",
	 {{"clusters[0].engine", STR("redis")}},
	 ": clusters[0].bootstrap: bootstrap \"initdb\" requires engine "
	 "\"postgres\""},
	{"adopt without connection",
	 {{"clusters[0].bootstrap", STR("adopt")}},
	 ": clusters[0].connection: missing required key for bootstrap "
	 "\"adopt\""},
	{"connection without adopt",
	 {{"clusters[0].connection", CONNECTION}},
	 ": clusters[0].connection: only allowed with bootstrap \"adopt\""},
	{"connection not an object",
	 {{"clusters[0].bootstrap", STR("adopt")},
	  {"clusters[0].connection", STR("db1:5432")}},
	 ": clusters[0].connection: expected an object"},
	{"connection port out of range",
	 {{"clusters[0].bootstrap", STR("adopt")},
	  {"clusters[0].connection", "{\"host\": \"db1\", \"port\": 70000}"}},
	 ": clusters[0].connection.port: 70000 is out of range: "
	 "expected 1 to 65535"},
	{"unknown provisioner kind",
	 {{"clusters[0].provisioner.kind", STR("docker")}},
	 ": clusters[0].provisioner.kind: unknown provisioner kind "
	 "\"docker\": only \"local\" is supported"},
	{"unknown log level",
	 {{"log_level", STR("trace")}},
	 ": log_level: unknown log level \"trace\": "
	 "expected error, warning, info or debug"},

	/* server_settings. */
	{"server_settings not an object",
	 {{"clusters[0].server_settings", "[]"}},
	 ": clusters[0].server_settings: expected an object"},
	{"setting name in capitals",
	 {{"clusters[0].server_settings", "{\"Work_Mem\": \"4MB\"}"}},
	 ": clusters[0].server_settings.Work_Mem: invalid setting name "
	 "\"Work_Mem\": use lowercase letters, digits, underscores, dots and "
	 "dashes, not a dash first"},
	{"setting name with a dash first",
	 {{"clusters[0].server_settings",
	   "{\"work_mem\": \"4MB\", \"-max\": 1}"}},
	 ": clusters[0].server_settings.-max: invalid setting name "
	 "\"-max\": use lowercase letters, digits, underscores, dots and "
	 "dashes, not a dash first"},
	{"setting name empty",
	 {{"clusters[0].server_settings", "{\"\": 1}"}},
	 ": clusters[0].server_settings: invalid setting name \"\": "
	 "use lowercase letters, digits, underscores, dots and dashes, not a "
	 "dash first"},
	{"setting value null",
	 {{"clusters[0].server_settings", "{\"work_mem\": null}"}},
	 ": clusters[0].server_settings.work_mem: "
	 "expected a string, number or boolean"},
	{"setting value an array",
	 {{"clusters[0].server_settings", "{\"search_path\": [\"a\"]}"}},
	 ": clusters[0].server_settings.search_path: "
	 "expected a string, number or boolean"},
	{"setting value an object",
	 {{"clusters[0].server_settings", "{\"jit\": {}}"}},
	 ": clusters[0].server_settings.jit: "
	 "expected a string, number or boolean"},

	/* Checks between clusters. */
	{"duplicate cluster name",
	 {{"clusters[1]", CACHE_CLUSTER}, {"clusters[1].name", STR("orders")}},
	 ": clusters[1].name: duplicate cluster name \"orders\" "
	 "(first at clusters[0].name)"},
	{"duplicate name in third cluster",
	 {{"clusters[1]", CACHE_CLUSTER}, {"clusters[2]", CACHE_CLUSTER}},
	 ": clusters[2].name: duplicate cluster name \"cache\" "
	 "(first at clusters[1].name)"},
	{"endpoints on the same address",
	 {{"clusters[1]", CACHE_CLUSTER},
	  {"clusters[1].endpoint.listen", STR("127.0.0.1:6432")}},
	 ": clusters[1].endpoint.listen: address \"127.0.0.1:6432\" "
	 "is already used by clusters[0].endpoint.listen"},
	{"endpoint on every interface, same port",
	 {{"clusters[1]", CACHE_CLUSTER},
	  {"clusters[1].endpoint.listen", STR("0.0.0.0:6432")}},
	 ": clusters[1].endpoint.listen: address \"0.0.0.0:6432\" "
	 "is already used by clusters[0].endpoint.listen"},
	{"endpoints on localhost and 127.0.0.1",
	 {{"clusters[1]", CACHE_CLUSTER},
	  {"clusters[1].endpoint.listen", STR("localhost:6432")}},
	 ": clusters[1].endpoint.listen: address \"localhost:6432\" "
	 "is already used by clusters[0].endpoint.listen"},
	{"endpoint on api.listen",
	 {{"clusters[0].endpoint.listen", STR("127.0.0.1:7070")}},
	 ": clusters[0].endpoint.listen: address \"127.0.0.1:7070\" "
	 "is already used by api.listen"},
	{"endpoint on default api.listen",
	 {{"api.listen", NULL},
	  {"clusters[0].endpoint.listen", STR("127.0.0.1:7070")}},
	 ": clusters[0].endpoint.listen: address \"127.0.0.1:7070\" "
	 "is already used by api.listen"},
	{"port ranges overlap at one end",
	 {{"clusters[1]", CACHE_CLUSTER},
	  {"clusters[1].provisioner.ports", STR("15599-15700")}},
	 ": clusters[1].provisioner.ports: port range 15599-15700 overlaps "
	 "clusters[0].provisioner.ports (15500-15599)"},
	{"port range inside another",
	 {{"clusters[1]", CACHE_CLUSTER},
	  {"clusters[1].provisioner.ports", STR("15510-15520")}},
	 ": clusters[1].provisioner.ports: port range 15510-15520 overlaps "
	 "clusters[0].provisioner.ports (15500-15599)"},
	{"port range around another",
	 {{"clusters[1]", CACHE_CLUSTER},
	  {"clusters[1].provisioner.ports", STR("15000-15999")}},
	 ": clusters[1].provisioner.ports: port range 15000-15999 overlaps "
	 "clusters[0].provisioner.ports (15500-15599)"},
	{"endpoint inside its own port range",
	 {{"clusters[0].endpoint.listen", STR("127.0.0.1:15550")}},
	 ": clusters[0].endpoint.listen: port 15550 lies inside "
	 "clusters[0].provisioner.ports (15500-15599)"},
	{"endpoint inside an earlier cluster's range",
	 {{"clusters[1]", CACHE_CLUSTER},
	  {"clusters[1].endpoint.listen", STR("127.0.0.1:15500")}},
	 ": clusters[1].endpoint.listen: port 15500 lies inside "
	 "clusters[0].provisioner.ports (15500-15599)"},
	{"endpoint inside a later cluster's range",
	 {{"clusters[1]", CACHE_CLUSTER},
	  {"clusters[0].endpoint.listen", STR("127.0.0.1:16099")}},
	 ": clusters[0].endpoint.listen: port 16099 lies inside "
	 "clusters[1].provisioner.ports (16000-16099)"},
	{"api inside a port range",
	 {{"api.listen", STR("[::1]:15599")}},
	 ": api.listen: port 15599 lies inside "
	 "clusters[0].provisioner.ports (15500-15599)"},
};

/* A file that is not valid JSON, or not a JSON object. */
struct raw_case {
	const char *what;
	const char *text;
	const char *expect; /* what the message after the file starts with */
};

static const struct raw_case raw_cases[] = {
	{"invalid JSON: missing value",
	 "{\n  \"state_dir\": \"/x\",\n  \"api\": }\n",
	 ":3:10: invalid JSON: unexpected token near '}'"},
	{"invalid JSON: trailing comma", "{\n\t\"state_dir\": \"/x\",\n}",
	 ":3:1: invalid JSON: "},
	{"invalid JSON: duplicate key",
	 "{\"state_dir\": \"/a\",\n \"state_dir\": \"/b\"}",
	 ":2:12: invalid JSON: duplicate object key"},
	{"invalid JSON: unterminated string", "{\"state_dir\": \"/x",
	 ":1:17: invalid JSON: "},
	{"invalid JSON: empty file", "", ":1:1: invalid JSON: "},
	{"invalid JSON: scalar at top level", "42", ":1:2: invalid JSON: "},
	{"invalid JSON: NUL in a string", "{\"state_dir\": \"/x\\u0000\"}",
	 ":1:24: invalid JSON: \\u0000 is not allowed"},
	{"top level an array", "[]", ": expected an object at the top level"},
	{"empty key at top level", "{\"\": 1}", ": unknown key \"\""},
	{"empty key in api", "{\"state_dir\": \"/x\", \"api\": {\"\": 1}}",
	 ": api: unknown key \"\""},
};

/* Write TEXT to a new file under /tmp and put its name into PATH. */
static void write_temp(const char *text, char *path, size_t len)
{
	size_t n = strlen(text);
	int fd;

	snprintf(path, len, "/tmp/test_config.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

/*
 * Load TEXT through a temporary file, removed again before returning.
 * The file's name goes into PATH and any message into ERR.
 */
static struct config *load_text(const char *text, char *path, char *err)
{
	struct config *cfg;

	write_temp(text, path, 64);
	err[0] = '\0';
	cfg = config_load(path, err, CONFIG_ERR_LEN);
	assert_int_equal(unlink(path), 0);
	return cfg;
}

/* Split "clusters[0]" off the front of *S into KEY or INDEX. */
static bool next_step(const char **s, char *key, size_t *index)
{
	size_t len;

	if (**s == '[') {
		*index = strtoul(*s + 1, (char **)s, 10);
		assert_int_equal(**s, ']');
		(*s)++;
		key[0] = '\0';
	} else {
		len = strcspn(*s, ".[");
		assert_true(len > 0 && len < 64);
		memcpy(key, *s, len);
		key[len] = '\0';
		*s += len;
	}
	if (**s == '.')
		(*s)++;
	return **s != '\0';
}

/*
 * Apply E to ROOT: set the member at E->path ("clusters[0].auth.user") to
 * the JSON text E->value, or remove it when that is NULL.  An index one
 * past the end of an array appends.  Every step but the last must exist.
 */
static void apply_edit(json_t *root, const struct edit *e)
{
	const char *s = e->path;
	json_t *cur = root, *val = NULL;
	char key[64];
	size_t index = 0;

	while (next_step(&s, key, &index)) {
		cur = key[0] ? json_object_get(cur, key)
			     : json_array_get(cur, index);
		assert_non_null(cur);
	}
	if (e->value) {
		val = json_loads(e->value, JSON_DECODE_ANY, NULL);
		assert_non_null(val);
	}
	if (key[0] && val)
		assert_int_equal(json_object_set_new(cur, key, val), 0);
	else if (key[0])
		assert_int_equal(json_object_del(cur, key), 0);
	else if (val && index == json_array_size(cur))
		assert_int_equal(json_array_append_new(cur, val), 0);
	else if (val)
		assert_int_equal(json_array_set_new(cur, index, val), 0);
	else
		assert_int_equal(json_array_remove(cur, index), 0);
}

/* issue_json with EDITS applied, as new text (caller frees). */
static char *edited_json(const struct edit *edits, size_t n)
{
	json_t *root = json_loads(issue_json, 0, NULL);
	char *text;

	assert_non_null(root);
	for (size_t i = 0; i < n && edits[i].path; i++)
		apply_edit(root, &edits[i]);
	text = json_dumps(root, JSON_INDENT(2));
	assert_non_null(text);
	json_decref(root);
	return text;
}

static void assert_message(const char *err, const char *path,
			   const char *expect, bool whole)
{
	size_t len = strlen(path);

	if (strncmp(err, path, len) != 0 ||
	    strncmp(err + len, expect, strlen(expect)) != 0 ||
	    (whole && strcmp(err + len, expect) != 0))
		fail_msg("got \"%s\"\nwant \"%s%s\"%s", err, path, expect,
			 whole ? "" : "...");
	assert_null(strchr(err, '\n'));
}

static void test_bad_case(void **state)
{
	const struct bad_case *bc = *state;
	char path[64], err[CONFIG_ERR_LEN];
	char *text = edited_json(bc->edits, ARRAY_LEN(bc->edits));
	struct config *cfg = load_text(text, path, err);

	free(text);
	assert_null(cfg);
	assert_message(err, path, bc->expect, true);
}

static void test_raw_case(void **state)
{
	const struct raw_case *rc = *state;
	char path[64], err[CONFIG_ERR_LEN];
	struct config *cfg = load_text(rc->text, path, err);

	assert_null(cfg);
	assert_message(err, path, rc->expect, false);
}

static void test_issue_config(void **state)
{
	char path[64], err[CONFIG_ERR_LEN];
	struct config *cfg = load_text(issue_json, path, err);
	struct config_cluster *c;

	if (!cfg)
		fail_msg("%s", err);
	assert_string_equal(cfg->path, path);
	assert_string_equal(cfg->state_dir, "/var/lib/rotator");
	assert_string_equal(cfg->api_host, "127.0.0.1");
	assert_int_equal(cfg->api_port, 7070);
	assert_string_equal(cfg->api_token_file, "/etc/rotator/token");
	assert_string_equal(cfg->log_level, "info");
	assert_int_equal(cfg->n_clusters, 1);

	c = &cfg->clusters[0];
	assert_string_equal(c->name, "orders");
	assert_string_equal(c->engine, "postgres");
	assert_int_equal(c->bootstrap, BOOTSTRAP_INITDB);
	assert_null(c->adopt_host);
	assert_int_equal(c->adopt_port, 0);
	assert_string_equal(c->auth_user, "rotator");
	assert_string_equal(c->auth_password_file,
			    "/etc/rotator/orders.password");
	assert_string_equal(c->endpoint_host, "127.0.0.1");
	assert_int_equal(c->endpoint_port, 6432);
	assert_int_equal(c->hold_ms, 5000);
	assert_string_equal(c->prov_kind, "local");
	assert_string_equal(c->bin_dir, "/usr/lib/postgresql/15/bin");
	assert_int_equal(c->port_min, 15500);
	assert_int_equal(c->port_max, 15599);
	assert_string_equal(c->run_as, "postgres");
	assert_int_equal(c->schedule_every_ms, 6 * 3600 * 1000);
	assert_int_equal(c->snapshot_every_ms, 3600 * 1000);
	assert_int_equal(c->snapshot_keep, 24);
	assert_int_equal(c->max_lag_bytes, 16777216);
	assert_int_equal(c->catch_up_timeout_ms, 30 * 60 * 1000);
	assert_int_equal(c->switch_timeout_ms, 10 * 1000);
	assert_int_equal(c->n_canary, 0);
	assert_non_null(c->canary);
	assert_null(c->canary[0]);
	assert_int_equal(c->n_settings, 0);

	assert_ptr_equal(config_cluster(cfg, "orders"), c);
	assert_null(config_cluster(cfg, "order"));
	assert_null(config_cluster(cfg, "ORDERS"));
	config_free(cfg);
}

/* Every optional member given, and the defaults of a second cluster. */
static const char full_json[] =
	"{\"state_dir\": \"/srv/rotator\", \"log_level\": \"debug\",\n"
	" \"api\": {\"token_file\": \"/etc/rotator/token\"},\n"
	" \"clusters\": [\n"
	"  {\"name\": \"Billing_2\", \"engine\": \"postgres\",\n"
	"   \"bootstrap\": \"adopt\",\n"
	"   \"connection\": {\"host\": \"db1.internal\", \"port\": 5433},\n"
	"   \"auth\": {\"user\": \"rot\", \"password_file\": \"/etc/pw\"},\n"
	"   \"endpoint\": {\"listen\": \"0.0.0.0:6432\",\n"
	"                \"hold_ms\": 600000},\n"
	"   \"provisioner\": {\"bin_dir\": \"/opt/pg/bin\",\n"
	"                   \"ports\": \"15500-15599\"},\n"
	"   \"schedule\": {},\n"
	"   \"snapshots\": {\"keep\": 1},\n"
	"   \"rotation\": {\"max_lag_bytes\": 0,\n"
	"                \"catch_up_timeout\": \"2d\",\n"
	"                \"switch_timeout\": \"250ms\"},\n"
	"   \"verify\": {\"canary\": [\"select 1\",\n"
	"                          \"select count(*) from t\"]},\n"
	"   \"server_settings\": {\"shared_buffers\": \"256MB\",\n"
	"     \"max_connections\": 200, \"random_page_cost\": 1.1,\n"
	"     \"jit\": false, \"hot_standby\": true,\n"
	"     \"pg_stat_statements.max\": -1, \"search_path\": \"\"}},\n"
	"  {\"name\": \"cache\", \"engine\": \"redis\",\n"
	"   \"bootstrap\": \"empty\",\n"
	"   \"auth\": {\"user\": \"default\", \"password_file\": \"/etc/c\"},\n"
	"   \"endpoint\": {\"listen\": \"127.0.0.1:6380\"},\n"
	"   \"provisioner\": {\"kind\": \"local\", \"bin_dir\": \"/usr/bin\",\n"
	"                   \"ports\": \"15600-15699\"},\n"
	"   \"verify\": {\"canary\": []}},\n"
	"  {\"name\": \"inventory\", \"engine\": \"redis\",\n"
	"   \"bootstrap\": \"adopt\",\n"
	"   \"connection\": {\"host\": \"cache1\", \"port\": 6379},\n"
	"   \"auth\": {\"user\": \"default\", \"password_file\": \"/etc/i\"},\n"
	"   \"endpoint\": {\"listen\": \"127.0.0.2:6380\"},\n"
	"   \"provisioner\": {\"bin_dir\": \"/usr/bin\", \"ports\": \"1-1\"}}\n"
	" ]}\n";

static void test_full_config(void **state)
{
	static const char *const settings[][2] = {
		{"shared_buffers", "256MB"}, {"max_connections", "200"},
		{"random_page_cost", "1.1"}, {"jit", "off"},
		{"hot_standby", "on"},	     {"pg_stat_statements.max", "-1"},
		{"search_path", ""},
	};
	char path[64], err[CONFIG_ERR_LEN];
	struct config *cfg = load_text(full_json, path, err);
	struct config_cluster *c;

	if (!cfg)
		fail_msg("%s", err);
	assert_string_equal(cfg->state_dir, "/srv/rotator");
	assert_string_equal(cfg->log_level, "debug");
	assert_string_equal(cfg->api_host, "127.0.0.1");
	assert_int_equal(cfg->api_port, 7070);
	assert_int_equal(cfg->n_clusters, 3);

	c = config_cluster(cfg, "Billing_2");
	assert_ptr_equal(c, &cfg->clusters[0]);
	assert_int_equal(c->bootstrap, BOOTSTRAP_ADOPT);
	assert_string_equal(c->adopt_host, "db1.internal");
	assert_int_equal(c->adopt_port, 5433);
	assert_string_equal(c->endpoint_host, "0.0.0.0");
	assert_int_equal(c->hold_ms, 600000);
	assert_string_equal(c->prov_kind, "local");
	assert_null(c->run_as);
	assert_int_equal(c->schedule_every_ms, 0);
	assert_int_equal(c->snapshot_every_ms, 0);
	assert_int_equal(c->snapshot_keep, 1);
	assert_int_equal(c->max_lag_bytes, 0);
	assert_int_equal(c->catch_up_timeout_ms, 2 * 86400 * 1000);
	assert_int_equal(c->switch_timeout_ms, 250);
	assert_int_equal(c->n_canary, 2);
	assert_string_equal(c->canary[0], "select 1");
	assert_string_equal(c->canary[1], "select count(*) from t");
	assert_null(c->canary[2]);
	assert_int_equal(c->n_settings, ARRAY_LEN(settings));
	for (size_t i = 0; i < ARRAY_LEN(settings); i++) {
		assert_string_equal(c->settings[i].name, settings[i][0]);
		assert_string_equal(c->settings[i].value, settings[i][1]);
	}

	c = config_cluster(cfg, "cache");
	assert_ptr_equal(c, &cfg->clusters[1]);
	assert_string_equal(c->engine, "redis");
	assert_int_equal(c->bootstrap, BOOTSTRAP_EMPTY);
	assert_null(c->adopt_host);
	assert_int_equal(c->port_min, 15600);
	assert_int_equal(c->port_max, 15699);
	assert_int_equal(c->snapshot_keep, 3);
	assert_int_equal(c->n_canary, 0);
	assert_null(c->canary[0]);
	assert_int_equal(c->n_settings, 0);

	c = config_cluster(cfg, "inventory");
	assert_ptr_equal(c, &cfg->clusters[2]);
	assert_int_equal(c->bootstrap, BOOTSTRAP_ADOPT);
	assert_string_equal(c->adopt_host, "cache1");
	assert_int_equal(c->port_min, 1);
	assert_int_equal(c->port_max, 1);
	assert_null(config_cluster(cfg, "billing_2"));
	config_free(cfg);
}

static void test_missing_file(void **state)
{
	const char *path = "/tmp/test_config.does-not-exist/rotator.json";
	char err[CONFIG_ERR_LEN] = "";
	char want[CONFIG_ERR_LEN];

	assert_null(config_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: could not open: %s", path,
		 strerror(ENOENT));
	assert_string_equal(err, want);
}

static void test_directory(void **state)
{
	char err[CONFIG_ERR_LEN] = "";
	char want[CONFIG_ERR_LEN];

	assert_null(config_load("/tmp", err, sizeof(err)));
	snprintf(want, sizeof(want), "/tmp: could not open: %s",
		 strerror(EISDIR));
	assert_string_equal(err, want);
}

/* A short buffer gets a cut message, never an overrun (ASan watches). */
static void test_short_buffer(void **state)
{
	char path[64], err[16];
	char *text = edited_json((struct edit[]){{"state_dir", NULL}}, 1);

	write_temp(text, path, sizeof(path));
	free(text);
	assert_null(config_load(path, err, sizeof(err)));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_memory_equal(err, path, sizeof(err) - 1);
}

static void test_free_null(void **state)
{
	config_free(NULL);
	assert_null(config_cluster(NULL, "orders"));
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_issue_config),
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_directory),
		cmocka_unit_test(test_short_buffer),
		cmocka_unit_test(test_free_null),
	};
	static struct CMUnitTest tests[ARRAY_LEN(fixed) + ARRAY_LEN(bad_cases) +
				       ARRAY_LEN(raw_cases)];
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_LEN(fixed); i++)
		tests[n++] = fixed[i];
	for (size_t i = 0; i < ARRAY_LEN(raw_cases); i++)
		tests[n++] = (struct CMUnitTest){
			.name = raw_cases[i].what,
			.test_func = test_raw_case,
			.initial_state = (void *)&raw_cases[i],
		};
	for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++)
		tests[n++] = (struct CMUnitTest){
			.name = bad_cases[i].what,
			.test_func = test_bad_case,
			.initial_state = (void *)&bad_cases[i],
		};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
