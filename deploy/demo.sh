#!/bin/sh
# make demo: a throwaway PostgreSQL cluster managed by rotator, under a
# temporary state directory.  A writer commits through rotator's endpoint
# while two rotations run; then the cluster's status, the audit log and
# the writer's tally are shown, and everything started here is stopped.
. "$(dirname "$0")/../tests/lib.sh"

write_secrets
write_config 17070 16432 15500-15599 ',
      "snapshots": { "every": "1h", "keep": 24 }'

say() { printf '\n==> %s\n' "$*"; }

say "state directory $T; config $T/rotator.json"
say "starting rotator serve (log in $T/serve.log)"
if ! start_daemon; then
	tail -n 30 "$T/serve.log"
	exit 1
fi
rot status orders

say "writer: committing sequential ids through the endpoint 127.0.0.1:$EP_PORT"
"$PGWRITER" 127.0.0.1 "$EP_PORT" rotator "$T/password" 600 300 \
	>"$T/writer.json" 2>"$T/writer.err" &
WRITER=$!
sleep 3

failed=0
for i in 1 2; do
	say "rotation $i of 2, forced while the writer writes"
	timeout 300 "$ROTATOR" -c "$T/rotator.json" rotate orders \
		--reason "demo rotation $i" --wait || failed=1
	sleep 2
done
kill -TERM "$WRITER"
wait "$WRITER" || failed=1

say "status"
rot status orders
say "audit log"
rot audit list --cluster orders
rot audit verify || failed=1
say "writer's tally"
python3 - "$T/writer.json" <<'PY' || failed=1
import json, sys
t = json.load(open(sys.argv[1]))
print(f"commits acknowledged:          {t['acknowledged']}")
print(f"acknowledged but missing:      {t['missing']} (must be 0)")
print(f"failed operations:             {t['errors']}")
print(f"longest write pause:           {t['longest_pause_ms']} ms")
print(f"commit rate:                   {t['rate']:.0f}/s")
sys.exit(0 if t['missing'] == 0 else 1)
PY
say "stopping everything the demo started"
stop_daemon
[ "$failed" -eq 0 ] && say "demo finished: no acknowledged write lost"
exit "$failed"
