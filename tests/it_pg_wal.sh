#!/bin/sh
# A rotation from a restore point taken before 200 MB of WAL were written,
# on a primary that keeps no WAL for standbys (wal_keep_size = 0): the
# fresh node must find that WAL in the archive, not on the primary.
. "$(dirname "$0")/lib.sh"

write_secrets
write_config 17072 16442 15640-15649 ',
      "server_settings": { "wal_keep_size": 0, "max_wal_size": "64MB",
                           "min_wal_size": "32MB" }'
check "daemon starts" start_daemon
check "a first restore point exists" \
	wait_for 60 sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" snapshot list orders | grep -q orders-000001"

port=$(primary_port)
start=$(rot snapshot list orders --json | json_get 0.position.start_lsn)
tli=$(rot snapshot list orders --json | json_get 0.position.timeline)
seg=$(psql_at "$port" "SELECT pg_walfile_name('$start')")
check "wal_keep_size is 0 on the primary" \
	[ "$(psql_at "$port" 'SHOW wal_keep_size')" = 0 ]

psql_at "$port" "CREATE TABLE big AS SELECT g, repeat(md5(g::text), 30) AS pad
	FROM generate_series(1, 220000) g" >/dev/null
written=$(psql_at "$port" "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$start')::bigint")
check "at least 200 MB of WAL written since the snapshot ($written)" \
	[ "$written" -ge 209715200 ]
psql_at "$port" "SELECT pg_switch_wal()" >/dev/null
for i in 1 2 3; do
	psql_at "$port" "CHECKPOINT" >/dev/null
	sleep 1
done
check "the primary no longer has the snapshot's first segment $seg" \
	[ "$(psql_at "$port" "SELECT count(*) FROM pg_ls_waldir() WHERE name = '$seg'")" -eq 0 ]
check "the archive has it" [ -f "$T/state/clusters/orders/wal/$seg" ]

check "the rotation from the old restore point succeeds" \
	rotate_wait "$T/rotate.out"
cat "$T/rotate.out" | grep -E "provisioning|caught|done|abort"
check "the rotation was seeded from orders-000001" \
	grep -q "provisioning .*orders-000001" "$T/rotate.out"
port=$(primary_port)
check "the new primary has every row" \
	[ "$(psql_at "$port" 'SELECT count(*) FROM big')" -eq 220000 ]
check "the new primary is on timeline $((tli + 1))" \
	[ "$(timeline_at "$port")" -eq "$((tli + 1))" ]
check "audit verify passes" rot audit verify
finish
