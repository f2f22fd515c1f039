#!/bin/sh
# make demo: two throwaway clusters managed by one rotator, under a
# temporary state directory: "orders", PostgreSQL with one replica behind
# a read endpoint, and "sessions", Redis with one replica and a Sentinel
# look-alike.  A writer writes through each cluster's endpoint while both
# are rotated twice, node by node; then the status, the audit log and the
# writers' tallies are shown, and everything started here is stopped.
. "$(dirname "$0")/../tests/lib.sh"

REDISWRITER="$TOP/build/tests/rediswriter"
REDIS_BIN=${REDIS_BIN:-/usr/bin}

write_secrets
cat >"$T/rotator.json" <<JSON
{
  "state_dir": "$T/state",
  "api": { "listen": "127.0.0.1:17070", "token_file": "$T/token" },
  "clusters": [
    {
      "name": "orders",
      "engine": "postgres",
      "bootstrap": "initdb",
      "replicas": 1,
      "auth": { "user": "rotator", "password_file": "$T/password" },
      "endpoint": { "listen": "127.0.0.1:16432",
                    "read_listen": "127.0.0.1:16433" },
      "provisioner": { "kind": "local", "bin_dir": "$PG_BIN",
                       "ports": "15500-15599", "run_as": "$RUN_AS" },
      "snapshots": { "every": "1h", "keep": 24 }
    },
    {
      "name": "sessions",
      "engine": "redis",
      "bootstrap": "empty",
      "replicas": 1,
      "auth": { "user": "rotator", "password_file": "$T/password" },
      "endpoint": { "listen": "127.0.0.1:16434",
                    "sentinel_listen": "127.0.0.1:16435" },
      "provisioner": { "kind": "local", "bin_dir": "$REDIS_BIN",
                       "ports": "15600-15699", "run_as": "$RUN_AS" },
      "snapshots": { "every": "1h", "keep": 24 }
    }
  ]
}
JSON
API_PORT=17070

say() { printf '\n==> %s\n' "$*"; }

# replicas_ready NAME: the cluster has its replica.
replicas_ready() {
	rot status "$1" --json | grep -q '"role": "replica"'
}

# both_ready: our daemon runs and both clusters are ready with a replica.
both_ready() {
	kill -0 "$DAEMON_PID" 2>/dev/null &&
		rot status orders --json | grep -q '"status": "ready"' &&
		rot status sessions --json | grep -q '"status": "ready"' &&
		replicas_ready orders && replicas_ready sessions
}

say "state directory $T; config $T/rotator.json"
say "starting rotator serve (log in $T/serve.log)"
"$ROTATOR" -c "$T/rotator.json" serve >>"$T/serve.log" 2>&1 &
DAEMON_PID=$!
if ! wait_for 240 both_ready; then
	tail -n 30 "$T/serve.log"
	exit 1
fi
rot status

say "writers: PostgreSQL commits through 127.0.0.1:16432, Redis RPUSH and INCR through 127.0.0.1:16434"
"$PGWRITER" 127.0.0.1 16432 rotator "$T/password" 900 300 \
	>"$T/pgwriter.json" 2>"$T/pgwriter.err" &
PGW=$!
"$REDISWRITER" 127.0.0.1 16434 rotator "$T/password" 900 300 \
	>"$T/rediswriter.json" 2>"$T/rediswriter.err" &
RW=$!
sleep 3

failed=0
for i in 1 2; do
	for c in orders sessions; do
		say "rotation $i of 2 of $c (replica first, then the primary), while the writers write"
		timeout 300 "$ROTATOR" -c "$T/rotator.json" rotate "$c" \
			--reason "demo rotation $i" --wait || failed=1
		sleep 1
	done
done
kill -TERM "$PGW" "$RW"
wait "$PGW" || failed=1
wait "$RW" || failed=1

say "status"
rot status
say "audit log"
rot audit list
rot audit verify || failed=1
say "writers' tallies"
python3 - "$T/pgwriter.json" "$T/rediswriter.json" <<'PY' || failed=1
import json, sys
pg = json.load(open(sys.argv[1]))
rd = json.load(open(sys.argv[2]))
print("PostgreSQL (orders):")
print(f"  commits acknowledged:        {pg['acknowledged']}")
print(f"  acknowledged but missing:    {pg['missing']} (must be 0)")
print(f"  failed operations:           {pg['errors']}")
print(f"  longest write pause:         {pg['longest_pause_ms']} ms")
print("Redis (sessions):")
print(f"  RPUSHes acknowledged:        {rd['acknowledged']}")
print(f"  acknowledged but missing:    {rd['missing']} (must be 0)")
print(f"  counter / increments acked:  {rd['counter']} / {rd['increments']}")
print(f"  failed operations:           {rd['errors']}")
print(f"  longest write pause:         {rd['longest_pause_ms']} ms")
ok = pg['missing'] == 0 and rd['missing'] == 0 and \
    rd['counter'] == rd['increments']
sys.exit(0 if ok else 1)
PY
say "stopping everything the demo started"
stop_daemon
[ "$failed" -eq 0 ] && say "demo finished: no acknowledged write lost"
exit "$failed"
