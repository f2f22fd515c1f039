#!/bin/sh
# A PostgreSQL cluster with two replicas behind endpoint.read_listen,
# rotated whole, then node by node, under a writer and a reader: no
# acknowledged commit lost, every node replaced, replicas following the
# new primary, reads answered throughout.
. "$(dirname "$0")/lib.sh"

READ_PORT=16491
# A space in the state directory's path: it is in every node's passfile
# path, so primary_conninfo must quote it.
STATE_DIR="$T/state dir"
write_secrets
write_config 17100 16490 15950-15999 ',
      "replicas": 2'
sed -i "s|\"listen\": \"127.0.0.1:16490\" }|\"listen\": \"127.0.0.1:16490\", \"read_listen\": \"127.0.0.1:$READ_PORT\" }|" \
	"$T/rotator.json"

# members ROLE: the generations of the members with ROLE, one line each.
members() {
	rot status orders --json | python3 -c 'import json,sys
c=json.load(sys.stdin)
for m in c["members"]:
    if m["role"]==sys.argv[1]: print(m["generation"])' "$1"
}

# ports ROLE: the ports of the members with ROLE.
ports() {
	rot status orders --json | python3 -c 'import json,sys
c=json.load(sys.stdin)
for m in c["members"]:
    if m["role"]==sys.argv[1]: print(m["port"])' "$1"
}

two_replicas() { [ "$(members replica | wc -l)" -eq 2 ]; }

# streaming_replicas: how many replicas stream from the primary.
streaming_replicas() {
	psql_at "$(primary_port)" \
		"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
}

replicas_follow() { [ "$(streaming_replicas)" -eq 2 ]; }

# The reader: a fresh connection through read_listen every 100 ms, each
# asking whether it landed on a replica; one line per answer or error.
reader() {
	i=0
	while [ $i -lt 3000 ] && [ ! -f "$T/stop-reader" ]; do
		if v=$(PGPASSWORD=$(cat "$T/password") PGCONNECT_TIMEOUT=5 \
			"$PG_BIN/psql" -X -A -t -q -h 127.0.0.1 -p $READ_PORT \
			-U rotator -d postgres -c 'SELECT pg_is_in_recovery()' \
			2>>"$T/reader.err"); then
			echo "$v" >>"$T/reads"
		else
			echo error >>"$T/reads"
		fi
		sleep 0.1
		i=$((i + 1))
	done
}

check "daemon starts" start_daemon
check "the daemon adds two replicas" wait_for 180 two_replicas
check "both replicas stream from the primary" wait_for 30 replicas_follow
check "reads through read_listen reach a replica" \
	[ "$(PGPASSWORD=$(cat "$T/password") "$PG_BIN/psql" -X -A -t -q \
		-h 127.0.0.1 -p $READ_PORT -U rotator -d postgres \
		-c 'SELECT pg_is_in_recovery()')" = t ]
before=$(rot status orders --json | python3 -c 'import json,sys
print(" ".join(str(m["generation"]) for m in json.load(sys.stdin)["members"]))')

"$PGWRITER" 127.0.0.1 "$EP_PORT" rotator "$T/password" 600 200 \
	>"$T/writer.json" 2>"$T/writer.err" &
WRITER=$!
reader &
READER=$!
sleep 2

check "the whole cluster rotates" rotate_wait "$T/whole.out"
grep -F -e +node -e +joined -e +drained -e +followed -e -replica \
	-e done -e aborted "$T/whole.out"
three_legs() {
	[ "$(grep -c '+node' "$T/whole.out")" -eq 3 ] &&
		grep '+node' "$T/whole.out" | tail -n 1 | grep -q "the primary"
}
check "it replaced three nodes, the primary last" three_legs
after=$(rot status orders --json | python3 -c 'import json,sys
print(" ".join(str(m["generation"]) for m in json.load(sys.stdin)["members"]))')
echo "members before: $before; after: $after"
kept=0
for g in $before; do
	for h in $after; do [ "$g" = "$h" ] && kept=$((kept + 1)); done
done
check "no member is left from before" [ "$kept" -eq 0 ]
one_and_two() { [ "$(members primary | wc -l)" -eq 1 ] && two_replicas; }
check "one primary and two replicas" one_and_two
check "both replicas stream from the new primary" wait_for 30 replicas_follow

replica=$(members replica | head -n 1)
other=$(members replica | tail -n 1)
primary=$(members primary)
check "rotate --node replaces one replica" \
	rotate_wait "$T/one.out" --node "$replica"
replica_gone() { ! members replica | grep -qx "$replica"; }
check "that replica is gone" replica_gone
others_stay() {
	[ "$(members primary)" = "$primary" ] &&
		members replica | grep -qx "$other"
}
check "the other members stay" others_stay
check "a replica's rotation holds no writes" \
	sh -c "! grep -q '+held' '$T/one.out'"

check "rotate --node replaces the primary" \
	rotate_wait "$T/primary.out" --node "$primary"
check "the replicas follow the new primary" \
	grep -q "+followed" "$T/primary.out"
check "both stream from it" wait_for 30 replicas_follow
new_tli=$(timeline_at "$(primary_port)")
for p in $(ports replica); do
	check "replica on port $p replays the new timeline" \
		wait_for 30 sh -c "[ \"\$(PGPASSWORD=\$(cat '$T/password') '$PG_BIN/psql' -X -A -t -q -h 127.0.0.1 -p $p -U rotator -d postgres -c 'SELECT received_tli FROM pg_stat_wal_receiver')\" = '$new_tli' ]"
done

check "an unknown generation is refused" \
	sh -c "! '$ROTATOR' -c '$T/rotator.json' rotate orders --node 999 >'$T/unknown.err' 2>&1"
check "the refusal names the generation" grep -q "generation 999" "$T/unknown.err"
check "a bad --node is a usage error" \
	sh -c "'$ROTATOR' -c '$T/rotator.json' rotate orders --node x >/dev/null 2>&1; [ \$? -eq 2 ]"

touch "$T/stop-reader"
wait "$READER"
kill -TERM "$WRITER"
check "the writer lost nothing" wait "$WRITER"
cat "$T/writer.json"
reads=$(grep -c . "$T/reads")
errors=$(grep -c error "$T/reads")
primaries=$(grep -c '^f$' "$T/reads")
echo "reads: $reads, errors: $errors, answered by the primary: $primaries"
answered() { [ "$reads" -gt 50 ] && [ "$errors" -eq 0 ]; }
check "reads were answered throughout" answered
check "reads went to replicas only" [ "$primaries" -eq 0 ]
[ "$errors" -gt 0 ] && tail -n 5 "$T/reader.err"
check "audit verify passes" rot audit verify

# The daemon killed during a replica's leg (in verifying, held there by
# a slow canary): at the next start the leg is rolled back, the old
# replica stays, the fresh node is gone.
sed -i 's|"replicas": 2|"replicas": 2,\n      "verify": { "canary": [ "SELECT pg_sleep(4)" ] }|' \
	"$T/rotator.json"
stop_daemon
check "the daemon starts with a slow canary" start_daemon
members_before=$(members replica | sort | tr '\n' ' ')
replica=$(members replica | head -n 1)
TOKEN=$(cat "$T/token")
api POST /v1/clusters/orders/rotate "{\"node\": $replica}" "$TOKEN" >/dev/null
id=$(json_get id <"$T/body")
verifying() {
	api GET "/v1/rotations/$id" >/dev/null
	grep -q '"state": "verifying"' "$T/body"
}
check "the replica's leg reaches verifying" wait_for 120 verifying
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=""
check "the daemon starts again" start_daemon
check "the replicas are the ones from before" \
	[ "$(members replica | sort | tr '\n' ' ')" = "$members_before" ]
check "no node directory is left over" \
	[ "$(ls "$STATE_DIR/clusters/orders/nodes" | wc -l)" -eq 3 ]
check "the abort is recorded" \
	sh -c "'$ROTATOR' -c '$T/rotator.json' audit list | grep rotation_aborted | grep -q 'stopped during verifying'"
check "both replicas stream" wait_for 30 replicas_follow
check "audit verify passes after the crash" rot audit verify

# A replica that hangs (its processes stopped) must not hold the fence of
# a primary's rotation: the old primary's WAL senders to replicas other
# than the fresh node are ended before the switch.
frozen_port=$(ports replica | head -n 1)
frozen_pm=""
for f in "$STATE_DIR"/clusters/orders/nodes/*/data/postmaster.pid; do
	[ "$(sed -n 4p "$f")" = "$frozen_port" ] && frozen_pm=$(head -n 1 "$f")
done
frozen="$frozen_pm $(pgrep -P "$frozen_pm" | tr '\n' ' ')"
kill -STOP $frozen
"$PGWRITER" 127.0.0.1 "$EP_PORT" rotator "$T/password" 300 200 \
	>"$T/writer2.json" 2>"$T/writer2.err" &
WRITER=$!
sleep 1
check "with a hung replica, the primary still rotates" \
	rotate_wait "$T/hung.out" --node "$(members primary)"
grep -F -e +released -e -replica-lost -e aborted "$T/hung.out"
held=$(sed -n 's/.*connections held for \([0-9]*\) ms.*/\1/p' "$T/hung.out")
check "and writes were held ${held:-?} ms, within hold_ms" \
	[ "${held:-99999}" -lt 5000 ]
kill -CONT $frozen 2>/dev/null # destroyed by now, as a rule
kill -TERM "$WRITER"
check "the writer lost nothing with a hung replica" wait "$WRITER"
cat "$T/writer2.json"
check "two replicas stream from the new primary again" \
	wait_for 120 replicas_follow

# A replica that hangs while no rotation runs: the health check takes it
# out of the read set and replaces it.
hung_port=$(ports replica | head -n 1)
for f in "$STATE_DIR"/clusters/orders/nodes/*/data/postmaster.pid; do
	[ "$(sed -n 4p "$f")" = "$hung_port" ] && hung_pm=$(head -n 1 "$f")
done
hung="$hung_pm $(pgrep -P "$hung_pm" | tr '\n' ' ')"
kill -STOP $hung
lost() { rot audit list | grep replica_lost | grep -q "not\|could"; }
check "the health check records the hung replica as lost" wait_for 90 lost
kill -CONT $hung
not_hung() { ! ports replica | grep -qx "$hung_port"; }
check "it is no longer a replica" not_hung
check "a fresh replica takes its place" wait_for 120 replicas_follow
check "reads through read_listen are answered" \
	[ "$(PGPASSWORD=$(cat "$T/password") PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" \
		-X -A -t -q -h 127.0.0.1 -p $READ_PORT -U rotator -d postgres \
		-c 'SELECT pg_is_in_recovery()')" = t ]
check "audit verify passes at the end" rot audit verify
finish
