#!/bin/sh
# bootstrap "adopt": rotator takes over a PostgreSQL 15 primary that it
# did not create, and its first rotation replaces it under a writer.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "it_adopt needs root to prepare a server as $RUN_AS; skipped"
	finish
	exit
fi
write_secrets
EXT=$T/external
EXT_PORT=15729
mkdir -m 0700 "$EXT"
cp "$T/password" "$T/external.pw"
chown "$RUN_AS" "$EXT" "$T/external.pw"
as_user() { runuser -u "$RUN_AS" -- "$@"; }
as_user "$PG_BIN/initdb" -D "$EXT/data" -U rotator --pwfile="$T/external.pw" \
	-A scram-sha-256 --locale=C >"$T/initdb.log" 2>&1
rm -f "$T/external.pw"
cat >>"$EXT/data/postgresql.conf" <<CONF
port = $EXT_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
CONF
check "an external primary starts" \
	as_user "$PG_BIN/pg_ctl" -D "$EXT/data" -l "$EXT/log" -w start
psql_at "$EXT_PORT" "CREATE TABLE precious AS SELECT g FROM generate_series(1, 5000) g" >/dev/null

write_config 17077 16447 15720-15728
python3 - "$T/rotator.json" "$EXT_PORT" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["clusters"][0]["bootstrap"] = "adopt"
c["clusters"][0]["connection"] = {"host": "127.0.0.1", "port": int(sys.argv[2])}
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
check "the daemon adopts it" start_daemon
check "status shows generation 1 born from adopt" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" status orders | grep -q '127.0.0.1:$EXT_PORT .*adopt'"
check "the endpoint forwards to the adopted primary" \
	[ "$(PGPASSWORD=$(cat "$T/password") "$PG_BIN/psql" -X -A -t -h 127.0.0.1 \
	-p "$EP_PORT" -U rotator -d postgres -c 'SELECT count(*) FROM precious')" = 5000 ]

"$PGWRITER" 127.0.0.1 "$EP_PORT" rotator "$T/password" 300 250 \
	>"$T/writer.json" 2>"$T/writer.err" &
WRITER=$!
sleep 2
check "the first rotation replaces the adopted primary" \
	rotate_wait "$T/rotate1.out" --reason "adopt test"
check "it took a restore point of the adopted primary first" \
	grep -q "+snapshot-start .*adopted" "$T/rotate1.out"
check "a second rotation, from rotator's own node, completes" \
	rotate_wait "$T/rotate2.out"
sleep 1
kill -TERM "$WRITER"
check "the writer lost nothing" wait "$WRITER"
cat "$T/writer.json"
check "no acknowledged commit is missing" \
	[ "$(json_get missing <"$T/writer.json")" -eq 0 ]

port=$(primary_port)
check "the data of the adopted primary is on the new one" \
	[ "$(psql_at "$port" 'SELECT count(*) FROM precious')" -eq 5000 ]
check "the adopted server is stopped" \
	sh -c "! ps -eo args | grep -q '[p]ostgres -D $EXT/data'"
check "its data directory is removed" [ ! -d "$EXT/data" ]
check "no replication slot is left" \
	[ "$(psql_at "$port" 'SELECT count(*) FROM pg_replication_slots')" -eq 0 ]
check "audit verify passes" rot audit verify
finish
