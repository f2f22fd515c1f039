#!/bin/sh
# Three rotations of a real Redis 7 cluster (a primary and, unless
# REPLICAS says otherwise, one replica) under a writer that pushes
# sequence numbers and increments a counter through the endpoint at 600
# operations a second: nothing acknowledged is lost, the counter equals
# the acknowledged increments, a sampler that asks every node for its
# role every 100 ms never sees two masters, nothing of an old generation
# is left, no password leaks, and the audit log verifies.
. "$(dirname "$0")/lib.sh"

if [ ! -x "$REDIS_BIN/redis-server" ] ||
	! /usr/bin/python3 -c "import redis" 2>/dev/null; then
	echo "ok - skipped: redis-server or python3-redis is missing"
	echo "1 passed, 0 failed"
	exit 0
fi

REPLICAS=${REPLICAS:-1}
LOW=15800
HIGH=15819
write_secrets
write_redis_config 17080 16450 "$LOW-$HIGH" ",
      \"replicas\": $REPLICAS,
      \"verify\": { \"canary\": [\"PING\", \"DBSIZE\"] },
      \"server_settings\": { \"maxmemory-policy\": \"noeviction\" }"
check "daemon starts and bootstraps an empty generation 1" start_daemon

# The sampler: every 100 ms, the role of every node in the port range.
cat >"$T/sampler.py" <<'PY'
import json, signal, sys, time
import redis
low, high, pwfile, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
pw = open(pwfile).read().rstrip("\n")
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
samples = worst = 0
bad = []
while not stop:
    masters = []
    for port in range(low, high + 1):
        try:
            r = redis.Redis(host="127.0.0.1", port=port, username="rotator",
                            password=pw, socket_timeout=0.5,
                            socket_connect_timeout=0.2)
            if r.info("replication")["role"] == "master":
                masters.append(port)
            r.close()
        except Exception:
            pass
    samples += 1
    worst = max(worst, len(masters))
    if len(masters) > 1:
        bad.append(masters)
    time.sleep(0.1)
json.dump({"samples": samples, "most_masters": worst, "bad": bad[:10]},
          open(out, "w"))
PY
/usr/bin/python3 "$T/sampler.py" "$LOW" "$HIGH" "$T/password" "$T/sampler.json" &
SAMPLER=$!

"$REDISWRITER" 127.0.0.1 "$EP_PORT" rotator "$T/password" 300 300 \
	>"$T/writer.json" 2>"$T/writer.err" &
WRITER=$!
sleep 2

for i in 1 2 3; do
	check "rotation $i completes" \
		rotate_wait "$T/rotate$i.out" --reason "test $i"
	grep -E "caught-up|released|aborted" "$T/rotate$i.out"
	sleep 3
done
sleep 2
kill -TERM "$WRITER"
check "the writer finishes with nothing missing" wait "$WRITER"
cat "$T/writer.json"
kill -TERM "$SAMPLER"
wait "$SAMPLER"
cat "$T/sampler.json"

acked=$(json_get acknowledged <"$T/writer.json")
missing=$(json_get missing <"$T/writer.json")
incr=$(json_get increments <"$T/writer.json")
counter=$(json_get counter <"$T/writer.json")
rate=$(json_get rate <"$T/writer.json")
check "writer had acknowledged writes ($acked)" [ "$acked" -gt 1000 ]
check "no acknowledged number is missing ($missing)" [ "$missing" -eq 0 ]
check "the counter equals the acknowledged increments ($counter, $incr)" \
	[ "$counter" -eq "$incr" ]
check "writer kept at least 500 operations a second ($rate)" \
	[ "$(printf '%.0f' "$rate")" -ge 500 ]
check "the sampler ran ($(json_get samples <"$T/sampler.json") samples)" \
	[ "$(json_get samples <"$T/sampler.json")" -gt 50 ]
check "the sampler never saw two masters" \
	[ "$(json_get most_masters <"$T/sampler.json")" -eq 1 ]
for i in 1 2 3; do
	sed -n 's/.*connections held for \([0-9]*\) ms.*/\1/p' \
		"$T/rotate$i.out" | tail -n 1
done >"$T/pauses"
echo "write pauses (ms): $(tr '\n' ' ' <"$T/pauses")"
check "every write pause is under 150 ms" \
	sh -c "[ \$(sort -n '$T/pauses' | tail -n 1) -lt 150 ]"

port=$(primary_port)
check "the final primary is a master" [ "$(redis_role "$port")" = master ]
check "the endpoint reaches the final primary" \
	[ "$(redis_at "$EP_PORT" INFO replication | tr -d '\r' |
		sed -n 's/^role://p')" = master ]
members=$(rot status orders --json | python3 -c 'import json,sys
print(len(json.load(sys.stdin)["members"]))')
check "the cluster has $((REPLICAS + 1)) members ($members)" \
	[ "$members" -eq $((REPLICAS + 1)) ]
dirs=$(ls "$T/state/clusters/orders/nodes" | wc -l)
check "one node directory per member is left ($dirs)" \
	[ "$dirs" -eq $((REPLICAS + 1)) ]
servers=$(ps -eo args | grep -c "^$REDIS_BIN/redis-server 127.0.0.1:158[01]")
check "one redis-server per member runs ($servers)" \
	[ "$servers" -eq $((REPLICAS + 1)) ]
gen=$(rot status orders --json | python3 -c 'import json,sys
c=json.load(sys.stdin)
print([m["generation"] for m in c["members"] if m["role"]=="primary"][0])')
nd=$T/state/clusters/orders/nodes/$gen
check "the primary is a later generation ($gen)" [ "$gen" -gt 3 ]
check "node directories are mode 0700" [ "$(stat -c %a "$nd")" = 700 ]
check "redis.conf is mode 0600, owned by $RUN_AS" \
	[ "$(stat -c '%a %U' "$nd/redis.conf")" = "600 $RUN_AS" ]
check "nodes run as $RUN_AS" \
	[ "$(ps -o user= -p "$(cat "$nd/redis.pid")")" = "$RUN_AS" ]
check "the default user is off" \
	sh -c "! '$REDIS_BIN/redis-cli' -h 127.0.0.1 -p $port PING 2>&1 | grep -q PONG"
check "audit verify passes" rot audit verify
# With replicas, the daemon's own rotation that adds them is done too.
check "the audit log records the three completed rotations" \
	[ "$(rot audit list --cluster orders | grep -c rotation_done)" -ge 3 ]
if [ "$REPLICAS" -gt 0 ]; then
	rport=$(rot status orders --json | python3 -c 'import json,sys
c=json.load(sys.stdin)
print([m["port"] for m in c["members"] if m["role"]=="replica"][0])')
	check "the replica follows the final primary, link up" \
		sh -c "redis_at() { REDISCLI_AUTH=\$(cat '$T/password') \
		'$REDIS_BIN/redis-cli' --no-auth-warning --user rotator \
		-h 127.0.0.1 -p \$1 INFO replication | tr -d '\\r'; }; \
		redis_at $rport | grep -q '^master_port:$port\$' && \
		redis_at $rport | grep -q '^master_link_status:up'"
	check "every rotation replaced the replica and the primary" \
		[ "$(grep -c '+caught-up' "$T/rotate3.out")" -eq 2 ]
fi
check "the audit log records a restore point with a replication id" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" audit list --json 2>/dev/null | grep -q replication_id || \"$ROTATOR\" -c \"$T/rotator.json\" audit list | grep -q replication_id"
snap=$(rot snapshot list orders --json | json_get 0.id)
m=$T/state/clusters/orders/snapshots/$snap/manifest.json
check "the manifest records key counts, CRC-64 and server version" \
	sh -c "grep -q '\"databases\"' '$m' && grep -q '\"crc64\"' '$m' && grep -q '\"server_version\": \"7' '$m'"
check "snapshot verify passes on $snap" rot snapshot verify "$snap"
pw=$(cat "$T/password")
check "no password in any process's argv" \
	sh -c "! ps -eo args | grep -F -- '$pw' | grep -v grep"
check "no password in the daemon's log" \
	sh -c "! grep -F -- '$pw' '$T/serve.log'"
check "no password in the audit log or journal" \
	sh -c "! grep -rF -- '$pw' '$T/state/audit.log' '$T/state/journal.log'"
check "no password in the node logs" \
	sh -c "! grep -F -- '$pw' $T/state/clusters/orders/nodes/*/redis.log"

stop_daemon
check "SIGTERM stops the daemon with status 0 ($DAEMON_STATUS)" \
	[ "$DAEMON_STATUS" -eq 0 ]
check "the primary keeps running after the daemon stops" \
	[ "$(redis_at "$port" PING)" = PONG ]

# A Redis primary killed outside a rotation is not started again by the
# daemon (it would come back with its last save only): it says so, once.
check "the daemon starts again" start_daemon
gen=$(rot status orders --json | python3 -c 'import json,sys
print([m["generation"] for m in json.load(sys.stdin)["members"]
       if m["role"] == "primary"][0])')
kill -KILL "$(head -n 1 "$T/state/clusters/orders/nodes/$gen/redis.pid")"
down() {
	rot status orders --json | grep -q '"status": "primary_down"' &&
		[ "$(rot audit list | grep -c primary_down)" -eq 1 ]
}
check "a killed Redis primary is recorded down" wait_for 40 down
still_down() {
	[ "$(rot audit list | grep -c primary_down)" -eq 1 ] &&
		! redis_at "$port" PING >/dev/null 2>&1
}
sleep 11
check "once, and it is not started again" still_down
check "its replica is not blamed for it" \
	sh -c "! '$ROTATOR' -c '$T/rotator.json' audit list | grep -q replica_lost"
check "a rotation is refused while it is down" \
	[ "$(api POST /v1/clusters/orders/rotate '' "$(cat "$T/token")")" = 409 ]

# Nor does serve start it at its next start while its replica runs.
stop_daemon
"$ROTATOR" -c "$T/rotator.json" serve >>"$T/serve.log" 2>&1 &
DAEMON_PID=$!
down_again() {
	rot status orders --json 2>/dev/null |
		grep -q '"status": "primary_down"'
}
check "serve leaves it down while its replica runs" wait_for 60 down_again
check "it is still not running" sh -c "! kill -0 \$(head -n 1 '$T/state/clusters/orders/nodes/$gen/redis.pid') 2>/dev/null"
check "audit verify passes at the end" rot audit verify
finish
