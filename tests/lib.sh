# lib.sh: shared by the tests against real servers.  Sourced, not run.
#
# Each test gets a temporary directory (mode 0711 so that the nodes' user
# can reach its state directory), starts "rotator serve" there, and on
# exit stops by pid everything it started: the daemon, then every
# postmaster under its directory.

set -u

TOP=$(cd "$(dirname "$0")/.." && pwd)
ROTATOR="$TOP/bin/rotator"
PGWRITER="$TOP/build/tests/pgwriter"
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
# PostgreSQL refuses root: as root the nodes run as the user that
# tests/deps.sh creates, otherwise as the user running the tests.
if [ "$(id -u)" -eq 0 ]; then
	RUN_AS=${RUN_AS:-rotatortest}
else
	RUN_AS=${RUN_AS:-$(id -un)}
fi
PASS=0
FAIL=0
DAEMON_PID=""
T=$(mktemp -d /tmp/rotator-test.XXXXXX)
chmod 0711 "$T"

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }

# check DESCRIPTION COMMAND...: passes when COMMAND exits 0.
check() {
	desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# wait_for SECONDS COMMAND...: poll COMMAND every 0.2 s until it succeeds.
wait_for() {
	limit=$(($1 * 5))
	shift
	i=0
	while [ $i -lt "$limit" ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		i=$((i + 1))
	done
	return 1
}

# stop_pid PID [SIGNAL [TENTHS]]: SIGNAL (TERM), then KILL after TENTHS
# tenths of a second (200) if PID is still there.
stop_pid() {
	pid=$1
	kill "-${2:-TERM}" "$pid" 2>/dev/null || return 0
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt "${3:-200}" ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$pid" 2>/dev/null || true
}

stop_postmasters() {
	find "$T" -name postmaster.pid 2>/dev/null | while IFS= read -r f; do
		stop_pid "$(head -n 1 "$f")" INT 100
	done
}

cleanup() {
	[ -n "$DAEMON_PID" ] && stop_pid "$DAEMON_PID"
	stop_postmasters
	stop_redis_servers
	if [ "$FAIL" -gt 0 ] && [ -f "$T/serve.log" ]; then
		echo "--- last lines of serve.log"
		tail -n 40 "$T/serve.log"
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# write_secrets: $T/password and $T/token, mode 0600.
write_secrets() {
	printf 'pw-%s:with\\colon' "$$" >"$T/password"
	printf 'token-%s\n' "$$" >"$T/token"
	chmod 0600 "$T/password" "$T/token"
}

# cluster_config ENGINE BOOTSTRAP BIN_DIR API_PORT ENDPOINT_PORT PORT_RANGE
# [EXTRA_CLUSTER_JSON]: $T/rotator.json with one cluster "orders", its
# state in $STATE_DIR (default $T/state).
cluster_config() {
	extra=${7:-}
	cat >"$T/rotator.json" <<JSON
{
  "state_dir": "${STATE_DIR:-$T/state}",
  "api": { "listen": "127.0.0.1:$4", "token_file": "$T/token" },
  "clusters": [
    {
      "name": "orders",
      "engine": "$1",
      "bootstrap": "$2",
      "auth": { "user": "rotator", "password_file": "$T/password" },
      "endpoint": { "listen": "127.0.0.1:$5" },
      "provisioner": { "kind": "local", "bin_dir": "$3",
                       "ports": "$6", "run_as": "$RUN_AS" }$extra
    }
  ]
}
JSON
	API_PORT=$4
	EP_PORT=$5
}

# write_config API_PORT ENDPOINT_PORT PORT_RANGE [EXTRA_CLUSTER_JSON]: a
# PostgreSQL cluster "orders" made with initdb.
write_config() {
	cluster_config postgres initdb "$PG_BIN" "$1" "$2" "$3" "${4:-}"
}

rot() { "$ROTATOR" -c "$T/rotator.json" "$@"; }

# rotate_wait OUT [ARGS]: a forced rotation of "orders", followed to its
# end (at most 300 s), its steps in OUT.
rotate_wait() {
	out=$1
	shift
	timeout 300 "$ROTATOR" -c "$T/rotator.json" rotate orders --wait \
		"$@" >"$out" 2>&1
}

# timeline_at PORT: the timeline the node on PORT writes on now.
timeline_at() {
	psql_at "$1" "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
}

# cluster_ready: our daemon runs and reports the cluster ready (the pid
# check keeps a stray daemon on the same port from answering for it).
cluster_ready() {
	kill -0 "$DAEMON_PID" 2>/dev/null &&
		rot status orders --json 2>/dev/null | grep -q '"status": "ready"'
}

# start_daemon: serve in the background, wait until the cluster is ready.
start_daemon() {
	"$ROTATOR" -c "$T/rotator.json" serve >>"$T/serve.log" 2>&1 &
	DAEMON_PID=$!
	i=0
	while [ $i -lt 600 ]; do
		kill -0 "$DAEMON_PID" 2>/dev/null || return 1
		cluster_ready && return 0
		sleep 0.2
		i=$((i + 1))
	done
	return 1
}

stop_daemon() {
	stop_pid "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_STATUS=$?
	DAEMON_PID=""
}

# postmaster_of PORT: the pid of this test's postmaster on PORT.
postmaster_of() {
	find "$T" -name postmaster.pid 2>/dev/null | while IFS= read -r f; do
		[ "$(sed -n 4p "$f")" = "$1" ] && head -n 1 "$f"
	done
}

# psql_at PORT SQL: one value from the node on PORT.
psql_at() {
	PGPASSWORD=$(cat "$T/password") "$PG_BIN/psql" -X -A -t -q \
		-h 127.0.0.1 -p "$1" -U rotator -d postgres -c "$2"
}

# api METHOD PATH [BODY] [TOKEN]: prints the status code, body in $T/body.
api() {
	set -- "$1" "$2" "${3:-}" "${4:-}"
	auth=""
	[ -n "$4" ] && auth="Authorization: Bearer $4"
	curl -s -o "$T/body" -w '%{http_code}' -X "$1" \
		${auth:+-H "$auth"} -H 'Content-Type: application/json' \
		${3:+--data "$3"} "http://127.0.0.1:$API_PORT$2"
}

json_get() {
	python3 -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v if not isinstance(v, bool) else str(v).lower())' "$1"
}

primary_port() {
	rot status orders --json | python3 -c 'import json,sys
c=json.load(sys.stdin)
print([m["port"] for m in c["members"] if m["role"]=="primary"][0])'
}

finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

# Redis: the programs, the writer, and every server under $T by pid.
REDIS_BIN=${REDIS_BIN:-/usr/bin}
REDISWRITER="$TOP/build/tests/rediswriter"

# stop_redis_servers: SIGTERM (with SIGCONT, for a stopped one), then
# SIGKILL, to every redis-server whose pidfile lies under $T.
stop_redis_servers() {
	find "$T" -name 'redis*.pid' 2>/dev/null | while IFS= read -r f; do
		pid=$(head -n 1 "$f")
		[ -n "$pid" ] || continue
		kill -CONT "$pid" 2>/dev/null
		stop_pid "$pid" TERM 100
	done
}

# write_redis_config API_PORT ENDPOINT_PORT PORT_RANGE [EXTRA_CLUSTER_JSON]:
# like write_config, for a Redis cluster "orders" that starts empty.
write_redis_config() {
	cluster_config redis empty "$REDIS_BIN" "$1" "$2" "$3" "${4:-}"
}

# redis_at PORT COMMAND...: run COMMAND on the node on PORT as rotator;
# the password goes through the environment, not argv.
redis_at() {
	port=$1
	shift
	REDISCLI_AUTH=$(cat "$T/password") "$REDIS_BIN/redis-cli" \
		--no-auth-warning --user rotator -h 127.0.0.1 -p "$port" "$@"
}

# redis_role PORT: "master" or "slave".
redis_role() {
	redis_at "$1" INFO replication | tr -d '\r' | sed -n 's/^role://p'
}
