#!/bin/sh
# Three rotations of a real PostgreSQL 15 primary under a writer that
# commits sequential ids through the endpoint: nothing acknowledged is
# lost, one node is out of recovery, nothing of an old generation is
# left, and the audit log verifies.
. "$(dirname "$0")/lib.sh"

write_secrets
write_config 17071 16441 15610-15639
check "daemon starts and bootstraps generation 1" start_daemon

"$PGWRITER" 127.0.0.1 "$EP_PORT" rotator "$T/password" 300 300 \
	>"$T/writer.json" 2>"$T/writer.err" &
WRITER=$!
sleep 2

for i in 1 2 3; do
	check "rotation $i completes" \
		rotate_wait "$T/rotate$i.out" --reason "test $i"
done
sleep 2
kill -TERM "$WRITER"
check "the writer finishes with nothing missing" wait "$WRITER"
cat "$T/writer.json"

acked=$(json_get acknowledged <"$T/writer.json")
missing=$(json_get missing <"$T/writer.json")
rate=$(json_get rate <"$T/writer.json")
check "writer had acknowledged commits ($acked)" [ "$acked" -gt 1000 ]
check "no acknowledged commit is missing ($missing)" [ "$missing" -eq 0 ]
check "writer kept at least 200 commits a second ($rate)" \
	[ "$(printf '%.0f' "$rate")" -ge 200 ]

port=$(primary_port)
check "the final primary is out of recovery" \
	[ "$(psql_at "$port" 'SELECT pg_is_in_recovery()')" = f ]
check "the final primary holds every acknowledged id" \
	[ "$(psql_at "$port" 'SELECT count(*) FROM rotator_writer')" -ge "$acked" ]
check "no replication slot is left" \
	[ "$(psql_at "$port" 'SELECT count(*) FROM pg_replication_slots')" -eq 0 ]

gen=$(rot status orders --json | json_get members.0.generation)
check "the cluster has one member, generation 4 ($gen)" [ "$gen" -eq 4 ]
check "one node directory is left (generation $gen)" \
	[ "$(ls "$T/state/clusters/orders/nodes")" = "$gen" ]
postmasters=$(ps -eo pid,args | grep "[p]ostgres -D $T" | wc -l)
check "exactly one postmaster of this cluster runs ($postmasters)" \
	[ "$postmasters" -eq 1 ]
for g in 1 2 3; do
	check "no process of generation $g is left" \
		sh -c "! ps -eo args | grep -q '[p]ostgres -D $T/state/clusters/orders/nodes/$g/'"
done
check "node data directories are mode 0700" \
	[ "$(stat -c %a "$T/state/clusters/orders/nodes/$gen/data")" = 700 ]
check "nodes run as $RUN_AS" \
	[ "$(stat -c %U "$T/state/clusters/orders/nodes/$gen/data")" = "$RUN_AS" ]
check "the endpoint reaches the final primary" \
	[ "$(PGPASSWORD=$(cat "$T/password") "$PG_BIN/psql" -X -A -t -h 127.0.0.1 \
	-p "$EP_PORT" -U rotator -d postgres -c 'SELECT pg_is_in_recovery()')" = f ]
check "status shows the restore point the primary was born from" \
	sh -c "rot() { \"$ROTATOR\" -c \"$T/rotator.json\" \"\$@\"; }; \
	rot status orders | grep -q 'primary .* orders-0000'"
check "audit verify passes" rot audit verify
check "the audit log records three completed rotations" \
	[ "$(rot audit list --cluster orders | grep -c rotation_done)" -eq 3 ]
check "the audit log records a restore point" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" audit list | grep -q restore_point"
pw=$(cat "$T/password")
check "no password in any process's argv" \
	sh -c "! ps -eo args | grep -F -- '$pw' | grep -v grep"
check "no password in the daemon's log" \
	sh -c "! grep -F -- '$pw' '$T/serve.log'"
check "no password in the audit log or journal" \
	sh -c "! grep -rF -- '$pw' '$T/state/audit.log' '$T/state/journal.log'"
snap=$(rot snapshot list orders --json | json_get 0.id)
check "snapshot verify passes on $snap" rot snapshot verify "$snap"

stop_daemon
check "SIGTERM stops the daemon with status 0 ($DAEMON_STATUS)" \
	[ "$DAEMON_STATUS" -eq 0 ]
check "the managed database keeps running after the daemon stops" \
	[ "$(psql_at "$port" 'SELECT 1')" = 1 ]
finish
