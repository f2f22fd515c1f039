#!/bin/sh
# A Redis restore point whose RDB does not verify never seeds a node: a
# flipped byte and a truncated tail are both refused as the RDB is laid
# down, before any server reads it; the restore point is set aside and
# the rotation goes on from the previous one.  Then a fresh node that
# never catches up (stopped as soon as its process exists): the rotation
# aborts within its catch-up deadline, the old primary stays the one
# master and takes writes.
. "$(dirname "$0")/lib.sh"

if [ ! -x "$REDIS_BIN/redis-server" ]; then
	echo "ok - skipped: redis-server is missing"
	echo "1 passed, 0 failed"
	exit 0
fi

LOW=15840
HIGH=15859
write_secrets
write_redis_config 17081 16451 "$LOW-$HIGH" ',
      "rotation": { "catch_up_timeout": "4s" }'
check "daemon starts" start_daemon
SNAPS=$T/state/clusters/orders/snapshots
check "a first restore point exists" \
	wait_for 60 test -f "$SNAPS/orders-000001/manifest.json"
redis_at "$EP_PORT" SET before corrupt >/dev/null
check "a second restore point is taken" rot snapshot take orders

# One byte in the middle of the RDB, the same size: only the hashes tell.
/usr/bin/python3 - "$SNAPS/orders-000002/dump.rdb" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x20
open(p, "wb").write(bytes(b))
PY
check "snapshot verify finds the flipped byte" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" snapshot verify orders-000002 2>&1 | grep -q 'does not match'"
check "the rotation completes" rotate_wait "$T/rotate1.out"
check "it tried the corrupt restore point first" \
	grep -q "provisioning .*orders-000002" "$T/rotate1.out"
check "then went on from the previous one" \
	grep -q "provisioning .*orders-000001" "$T/rotate1.out"
check "no node was started from the corrupt one" \
	sh -c "! grep -q 'provisioned .*from orders-000002' '$T/serve.log'"
check "the corrupt restore point is set aside" \
	test -d "$SNAPS/orders-000002.rejected" -a ! -d "$SNAPS/orders-000002"
check "the new primary was born from orders-000001" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" status orders | grep -q 'primary .*orders-000001'"
check "the data survived the rotation" \
	[ "$(redis_at "$EP_PORT" GET before)" = corrupt ]

# A truncated tail: the last bytes (part of the CRC-64) are gone.
check "a third restore point is taken" rot snapshot take orders
truncate -s -5 "$SNAPS/orders-000003/dump.rdb"
check "snapshot verify finds the truncated RDB" \
	sh -c "! \"$ROTATOR\" -c \"$T/rotator.json\" snapshot verify orders-000003 >/dev/null 2>&1"
check "the next rotation completes" rotate_wait "$T/rotate2.out"
check "it refused the truncated restore point" \
	grep -q "restore-point-rejected.*orders-000003" "$T/rotate2.out"
check "no node was started from the truncated one" \
	sh -c "! grep -q 'provisioned .*from orders-000003' '$T/serve.log'"
check "the truncated restore point is set aside" \
	[ -d "$SNAPS/orders-000003.rejected" ]
check "the audit log records both rejections" \
	[ "$(rot audit list --cluster orders | grep -c restore_point_rejected)" -eq 2 ]

# A fresh node that never catches up: stopped the moment its pidfile
# appears, before it has loaded anything or answered anyone.
old_port=$(primary_port)
gen=$(/usr/bin/python3 -c 'import json,sys
print(json.load(open(sys.argv[1]))["next_generation"])' \
	"$T/state/clusters/orders/state.json")
pidfile=$T/state/clusters/orders/nodes/$gen/redis.pid
start=$(date +%s)
timeout 300 "$ROTATOR" -c "$T/rotator.json" rotate orders --wait \
	>"$T/rotate3.out" 2>&1 &
ROT=$!
frozen=""
deadline=$(($(date +%s) + 60))
while [ -z "$frozen" ] && [ "$(date +%s)" -lt "$deadline" ]; do
	if [ -s "$pidfile" ]; then
		frozen=$(head -n 1 "$pidfile")
		kill -STOP "$frozen"
	fi
done
check "the fresh node (generation $gen) was stopped" [ -n "$frozen" ]
wait "$ROT"
took=$(($(date +%s) - start))
grep -E "provisioned|caught-up|aborted" "$T/rotate3.out"
check "the rotation aborted in catching_up" \
	grep -q "did not catch up within 4000 ms" "$T/rotate3.out"
check "within its deadline and the teardown ($took s)" [ "$took" -lt 20 ]
check "the old primary is the primary still" [ "$(primary_port)" = "$old_port" ]
check "it is a master" [ "$(redis_role "$old_port")" = master ]
check "it takes writes through the endpoint at once (not paused)" \
	[ "$(timeout 2 sh -c "REDISCLI_AUTH=\$(cat '$T/password') \
	'$REDIS_BIN/redis-cli' --no-auth-warning --user rotator -h 127.0.0.1 \
	-p $EP_PORT SET after abort")" = OK ]
masters=0
for p in $(seq "$LOW" "$HIGH"); do
	[ "$(redis_role "$p" 2>/dev/null)" = master ] && masters=$((masters + 1))
done
check "exactly one master runs ($masters)" [ "$masters" -eq 1 ]
check "the frozen node's process is gone" \
	sh -c "! kill -0 $frozen 2>/dev/null || grep -q '^State:.*Z' /proc/$frozen/status"
check "its directory is gone" \
	[ ! -d "$T/state/clusters/orders/nodes/$gen" ]
check "audit verify passes" rot audit verify
finish
