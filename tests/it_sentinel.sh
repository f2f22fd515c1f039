#!/bin/sh
# Three rotations of a Redis cluster (a primary and one replica) while a
# redis-py Sentinel client, which knows only rotator's sentinel address,
# keeps writing: nothing acknowledged is lost, the client ends on the
# primary that `rotator status` shows, and a subscriber sees one
# +switch-master per rotation, naming the old and the new primary.
# Ports: API 17085, endpoint 16460, sentinel 26386, nodes 15900-15949.
. "$(dirname "$0")/lib.sh"

REDIS_BIN=${REDIS_BIN:-/usr/bin}
SENTINEL_PORT=26386
if [ ! -x "$REDIS_BIN/redis-server" ] ||
	! /usr/bin/python3 -c 'import redis' 2>/dev/null; then
	not_ok "redis-server and python3-redis are installed (tests/deps.sh)"
	finish
	exit 1
fi

write_secrets
cat >"$T/rotator.json" <<JSON
{
  "state_dir": "$T/state",
  "api": { "listen": "127.0.0.1:17085", "token_file": "$T/token" },
  "clusters": [
    {
      "name": "orders",
      "engine": "redis",
      "bootstrap": "empty",
      "replicas": 1,
      "auth": { "user": "rotator", "password_file": "$T/password" },
      "endpoint": { "listen": "127.0.0.1:16460",
                    "sentinel_listen": "127.0.0.1:$SENTINEL_PORT" },
      "provisioner": { "kind": "local", "bin_dir": "$REDIS_BIN",
                       "ports": "15900-15949", "run_as": "$RUN_AS" }
    }
  ]
}
JSON
API_PORT=17085
CLIENT=""
SUBSCRIBER=""

# Redis nodes are not postmasters: stop them (and our clients) by pid too.
sentinel_cleanup() {
	for p in $CLIENT $SUBSCRIBER; do
		kill -TERM "$p" 2>/dev/null
	done
	[ -n "$DAEMON_PID" ] && stop_pid "$DAEMON_PID"
	DAEMON_PID=""
	for f in $(find "$T" -name '*.pid' 2>/dev/null); do
		pid=$(head -n 1 "$f" 2>/dev/null)
		[ -n "$pid" ] && stop_pid "$pid" TERM 100
	done
	cleanup
}
trap sentinel_cleanup EXIT

if ! start_daemon; then
	not_ok "daemon starts and bootstraps the cluster"
	tail -n 30 "$T/serve.log"
	finish
	exit 1
fi
ok "daemon starts and bootstraps the cluster"

sentinel_cli() {
	redis-cli -h 127.0.0.1 -p "$SENTINEL_PORT" "$@"
}

check "the sentinel answers PING" [ "$(sentinel_cli PING)" = PONG ]
redis-cli -h 127.0.0.1 -p "$SENTINEL_PORT" SUBSCRIBE +switch-master \
	>"$T/switches.out" 2>&1 &
SUBSCRIBER=$!

/usr/bin/python3 "$TOP/tests/sentinel_client.py" \
	--sentinel "127.0.0.1:$SENTINEL_PORT" --name orders \
	--username rotator --password-file "$T/password" \
	--seconds 600 --rate 200 >"$T/client.json" 2>"$T/client.err" &
CLIENT=$!
sleep 2

for i in 1 2 3; do
	check "rotation $i completes" \
		rotate_wait "$T/rotate$i.out" --reason "sentinel test $i"
done
sleep 2
kill -TERM "$CLIENT"
check "the client finishes with nothing missing" wait "$CLIENT"
kill -TERM "$SUBSCRIBER" 2>/dev/null
wait "$SUBSCRIBER" 2>/dev/null
cat "$T/client.json" "$T/client.err"

acked=$(json_get acknowledged <"$T/client.json")
missing=$(json_get missing <"$T/client.json")
seen=$(json_get primary <"$T/client.json")
port=$(primary_port)
check "the client had acknowledged writes ($acked)" [ "$acked" -gt 500 ]
check "no acknowledged write is missing ($missing)" [ "$missing" -eq 0 ]
check "the client ends on the primary of rotator status ($seen)" \
	[ "$seen" = "127.0.0.1:$port" ]
check "get-master-addr-by-name names the same primary" \
	[ "$(sentinel_cli SENTINEL get-master-addr-by-name orders |
		tr '\n' ' ')" = "127.0.0.1 $port " ]
n=$(grep -c '^orders ' "$T/switches.out")
check "the subscriber saw three +switch-master messages ($n)" [ "$n" -eq 3 ]
check "the last +switch-master names the final primary" \
	sh -c "grep '^orders ' '$T/switches.out' | tail -n 1 |
		grep -q ' 127.0.0.1 $port\$'"

stop_daemon
check "SIGTERM stops the daemon with status 0 ($DAEMON_STATUS)" \
	[ "$DAEMON_STATUS" -eq 0 ]
finish
