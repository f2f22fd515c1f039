#!/bin/sh
# The daemon killed (SIGKILL) in the middle of a rotation: at the next
# start the journal shows the rotation in flight and it is rolled back,
# since it had not reached the commit point.
. "$(dirname "$0")/lib.sh"

write_secrets
# The canary sleeps, so that the rotation is surely in "verifying" when
# the daemon is killed.
write_config 17076 16446 15700-15719 ',
      "verify": { "canary": [ "SELECT pg_sleep(4)" ] }'
check "daemon starts" start_daemon
TOKEN=$(cat "$T/token")
old_port=$(primary_port)
check "a rotation starts" \
	[ "$(api POST /v1/clusters/orders/rotate '{"reason": "crash test"}' "$TOKEN")" = 202 ]
id=$(json_get id <"$T/body")
verifying() {
	api GET "/v1/rotations/$id" >/dev/null
	grep -q '"state": "verifying"' "$T/body"
}
check "it reaches verifying" wait_for 60 verifying
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=""
check "the fresh node was left behind by the crash" \
	[ "$(ls "$T/state/clusters/orders/nodes" | wc -l)" -eq 2 ]

# As if a crash came between the provisioner and the journal.
mkdir -m 0700 "$T/state/clusters/orders/nodes/99"
check "the daemon starts again" start_daemon
check "the rotation was rolled back: one member, the old primary" \
	[ "$(primary_port)" = "$old_port" ]
check "the fresh node's directory is gone" \
	[ "$(ls "$T/state/clusters/orders/nodes")" = 1 ]
check "a directory no member owns is removed" \
	[ ! -d "$T/state/clusters/orders/nodes/99" ]
check "only the old primary's postmaster runs" \
	[ "$(ps -eo args | grep -c "[p]ostgres -D $T")" -eq 1 ]
check "the audit log records the abort with the step it was in" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" audit list | grep rotation_aborted | grep -q 'stopped during verifying'"
check "the journal holds nothing in flight" \
	[ ! -s "$T/state/journal.log" ]
check "the endpoint serves the old primary" \
	[ "$(PGPASSWORD=$(cat "$T/password") "$PG_BIN/psql" -X -A -t -h 127.0.0.1 \
	-p "$EP_PORT" -U rotator -d postgres -c 'SELECT pg_is_in_recovery()')" = f ]
check "audit verify passes" rot audit verify

# Now past the commit point: the daemon is stopped (SIGSTOP, then KILL)
# as soon as the journal records the commit.  At the next start the
# rotation must roll forward: the fresh node confirmed as the primary, the
# old one destroyed.  The window is short, so up to three tries.
write_config 17076 16446 15700-15719
caught=""
for try in 1 2 3; do
	[ -n "$DAEMON_PID" ] || start_daemon
	: >"$T/journal.before"
	api POST /v1/clusters/orders/rotate '{"reason": "crash after commit"}' \
		"$TOKEN" >/dev/null
	id=$(json_get id <"$T/body")
	i=0
	while [ $i -lt 3000 ]; do
		if grep "\"$id\"" "$T/state/journal.log" 2>/dev/null |
			grep -q '"committed":true'; then
			kill -STOP "$DAEMON_PID"
			break
		fi
		i=$((i + 1))
		sleep 0.01
	done
	if grep "\"$id\"" "$T/state/journal.log" | tail -n 1 |
		grep -q '"committed":true' &&
		! grep "\"$id\"" "$T/state/journal.log" | grep -q '"state":"done"'; then
		caught=$id
	fi
	kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=""
	[ -n "$caught" ] && break
done
check "the daemon was killed after the commit point of $caught" [ -n "$caught" ]
check "the daemon starts again after that" start_daemon
check "the rotation was rolled forward" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" audit list | grep rotation_done | grep '\"$caught\"' | grep -q 'reason=\"\"'"
check "status shows it as the last rotation" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" status orders | grep -q 'last rotation: $caught done'"
new_port=$(primary_port)
check "one member remains, the new primary" \
	[ "$(rot status orders --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["members"]))')" -eq 1 ]
check "it is out of recovery" \
	[ "$(psql_at "$new_port" 'SELECT pg_is_in_recovery()')" = f ]
check "one node directory is left" \
	[ "$(ls "$T/state/clusters/orders/nodes" | wc -l)" -eq 1 ]
check "exactly one postmaster runs" \
	[ "$(ps -eo args | grep -c "[p]ostgres -D $T")" -eq 1 ]
check "audit verify passes after both crashes" rot audit verify
stop_daemon
check "the daemon starts once more" start_daemon
last_kept() {
	rot status orders | grep -q "last rotation: $caught done" &&
		[ "$(api GET "/v1/rotations/$caught")" = 200 ]
}
check "the last rotation outlives a restart in status and the API" last_kept

# A rotation requested while a snapshot holds the cluster, the daemon
# killed before (as a rule) its first leg begins: the next start ends it.
TOKEN=$(cat "$T/token")
api POST /v1/clusters/orders/snapshots '' "$TOKEN" >/dev/null
api POST /v1/clusters/orders/rotate '{"reason": "unbegun"}' "$TOKEN" >/dev/null
unbegun=$(json_get id <"$T/body")
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=""
check "the daemon starts after that" start_daemon
ended() {
	rot audit list | grep -E 'rotation_(done|aborted)' |
		grep -q "\"$unbegun\""
}
check "rotation $unbegun has an end in the audit log" ended
rot audit list | grep -E 'rotation_(done|aborted)' | grep "\"$unbegun\"" |
	sed 's/ nodes=.*//'
check "audit verify passes at the end" rot audit verify
finish
