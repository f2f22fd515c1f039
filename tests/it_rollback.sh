#!/bin/sh
# A switch that fails after the old primary was fenced: the old primary is
# started again, the held connections go back to it, the fresh node is
# destroyed, and no acknowledged write is lost.
. "$(dirname "$0")/lib.sh"

write_secrets
# A switch deadline of 1 ms: the fence cannot finish in time.
write_config 17078 16448 15730-15749 ',
      "rotation": { "switch_timeout": "1ms" }'
check "daemon starts" start_daemon
old_port=$(primary_port)

"$PGWRITER" 127.0.0.1 "$EP_PORT" rotator "$T/password" 300 250 \
	>"$T/writer.json" 2>"$T/writer.err" &
WRITER=$!
sleep 2
check "rotate --wait reports the abort" \
	sh -c "! timeout 300 \"$ROTATOR\" -c \"$T/rotator.json\" rotate orders --wait >'$T/rotate.out' 2>&1"
grep -E "held|fenced|aborted" "$T/rotate.out"
check "the old primary had been fenced" grep -q "+held" "$T/rotate.out"
check "the reason says the shutdown missed its deadline" \
	grep -q "did not shut down in time" "$T/rotate.out"
sleep 2
kill -TERM "$WRITER"
check "the writer lost nothing" wait "$WRITER"
cat "$T/writer.json"
check "the writer went on after the rollback" \
	[ "$(psql_at "$old_port" "SELECT count(*) FROM rotator_writer WHERE at > now() - interval '5 seconds'")" -gt 0 ]
check "the old primary serves again, out of recovery" \
	[ "$(psql_at "$old_port" 'SELECT pg_is_in_recovery()')" = f ]
check "it is still the one member" [ "$(primary_port)" = "$old_port" ]
check "the fresh node is gone" \
	[ "$(ls "$T/state/clusters/orders/nodes" | wc -l)" -eq 1 ]
check "exactly one postmaster of this cluster runs" \
	[ "$(ps -eo args | grep -c "[p]ostgres -D $T")" -eq 1 ]
check "audit verify passes" rot audit verify

# A fresh node whose WAL receiver stops once it has caught up: the old
# primary's fast shutdown then waits on its walsender for a flush that
# never comes, the switch misses its deadline, and the rollback must
# still bring the old primary back.  The receiver is stopped at
# +caught-up; a canary that sleeps 3 s keeps the switch from starting
# before the test has stopped it, however loaded the machine.
write_config 17078 16448 15730-15749 ',
      "rotation": { "switch_timeout": "2s" },
      "verify": { "canary": [ "SELECT pg_sleep(3)" ] }'
stop_daemon
check "the daemon starts with a 2 s switch deadline" start_daemon
timeout 300 "$ROTATOR" -c "$T/rotator.json" rotate orders --wait \
	>"$T/rotate2.out" 2>&1 &
ROT=$!
frozen=""
i=0
while [ $i -lt 1500 ] && [ -z "$frozen" ]; do
	if grep -q "+caught-up" "$T/rotate2.out" 2>/dev/null; then
		gen=$(sed -n 's/.*+provisioned *generation \([0-9]*\).*/\1/p' \
			"$T/rotate2.out")
		pm=$(head -n 1 "$T/state/clusters/orders/nodes/$gen/data/postmaster.pid")
		frozen=$(pgrep -P "$pm" -f "walreceiver")
		[ -n "$frozen" ] && kill -STOP $frozen
	fi
	i=$((i + 1))
	sleep 0.02
done
check "the fresh node's WAL receiver was stopped before the switch" \
	[ -n "$frozen" ]
wait "$ROT"
[ -n "$frozen" ] && kill -CONT $frozen 2>/dev/null
grep -E "held|fenced|released|aborted" "$T/rotate2.out"
check "the rotation aborted" grep -q "aborted" "$T/rotate2.out"
check "the old primary serves again" \
	[ "$(psql_at "$old_port" 'SELECT pg_is_in_recovery()')" = f ]
check "the frozen fresh node is gone" \
	[ "$(ls "$T/state/clusters/orders/nodes" | wc -l)" -eq 1 ]
check "audit verify passes after the second rollback" rot audit verify

# A fresh node that never catches up: with recovery_min_apply_delay it
# streams but does not replay the writer's commits, so its lag only
# grows, and the rotation aborts when catch_up_timeout runs out, before
# the endpoint is ever held.
write_config 17078 16448 15730-15749 ',
      "rotation": { "catch_up_timeout": "3s", "max_lag_bytes": 1000 },
      "server_settings": { "recovery_min_apply_delay": "1h" }'
stop_daemon
check "the daemon starts with a 3 s catch-up deadline" start_daemon
"$PGWRITER" 127.0.0.1 "$EP_PORT" rotator "$T/password" 300 250 \
	>"$T/writer3.json" 2>"$T/writer3.err" &
WRITER=$!
sleep 1
check "the rotation aborts" \
	sh -c "! timeout 300 '$ROTATOR' -c '$T/rotator.json' rotate orders --wait >'$T/rotate3.out' 2>&1"
grep -E "caught|held|aborted" "$T/rotate3.out"
check "for want of catching up" \
	grep -q "did not catch up within 3000 ms" "$T/rotate3.out"
id=$(sed -n 's/^rotation \([^ ]*\) started$/\1/p' "$T/rotate3.out")
api GET "/v1/rotations/$id" >/dev/null
took=$(python3 -c 'import json,sys,datetime
steps=json.load(open(sys.argv[1]))["steps"]
t=lambda n:[datetime.datetime.fromisoformat(s["time"].rstrip("Z")) for s in steps if s["step"]==n][0]
print(round((t("aborted")-t("catching_up")).total_seconds()*1000))' "$T/body")
# From catching_up to aborted: the 3 s deadline, a poll, and the
# rollback's fast shutdown of the fresh node.
in_bound() { [ "$took" -ge 3000 ] && [ "$took" -lt 8000 ]; }
check "it aborted $took ms after catching up began" in_bound
check "writes were never held" sh -c "! grep -q '+held' '$T/rotate3.out'"
kill -TERM "$WRITER"
check "the writer lost nothing" wait "$WRITER"
cat "$T/writer3.json"
check "the old primary still serves" \
	[ "$(psql_at "$old_port" 'SELECT pg_is_in_recovery()')" = f ]
check "the fresh node is gone" \
	[ "$(ls "$T/state/clusters/orders/nodes" | wc -l)" -eq 1 ]
finish
