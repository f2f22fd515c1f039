#!/bin/sh
# The API's statuses, a rotation that aborts and rolls back, and the
# daemon serving on after each.
. "$(dirname "$0")/lib.sh"

write_secrets
write_config 17073 16443 15650-15669 ',
      "verify": { "canary": [ "SELECT count(*) FROM canary_table" ] }'
TOKEN=$(cat "$T/token")
check "daemon starts" start_daemon

check "a second daemon on the same state_dir is refused" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" serve 2>&1 | grep -q 'another rotator serve uses state_dir'"
check "POST without a token is 401" \
	[ "$(api POST /v1/clusters/orders/rotate '{}')" = 401 ]
check "the 401 body is a JSON error" json_get error <"$T/body"
check "POST with a wrong token is 401" \
	[ "$(api POST /v1/clusters/orders/rotate '{}' wrong)" = 401 ]
check "malformed JSON is 400" \
	[ "$(api POST /v1/clusters/orders/rotate '{"reason": ' "$TOKEN")" = 400 ]
check "the 400 body names the problem" \
	sh -c "json_get() { python3 -c 'import json,sys; print(json.load(sys.stdin)[\"error\"])'; }; json_get <'$T/body' | grep -q 'malformed JSON'"
check "a reason that is not a string is 400" \
	[ "$(api POST /v1/clusters/orders/rotate '{"reason": 5}' "$TOKEN")" = 400 ]
check "an unknown cluster is 404" [ "$(api GET /v1/clusters/nope)" = 404 ]
check "rotating an unknown cluster is 404" \
	[ "$(api POST /v1/clusters/nope/rotate '{}' "$TOKEN")" = 404 ]
check "an unknown rotation is 404" [ "$(api GET /v1/rotations/orders-r99)" = 404 ]
check "an unknown path is 404" [ "$(api GET /v2/whatever)" = 404 ]
check "a requester that is not a string is 400" \
	[ "$(api POST /v1/clusters/orders/rotate '{"requester": 5}' "$TOKEN")" = 400 ]
check "an empty reason is 400" \
	[ "$(api POST /v1/clusters/orders/rotate '{"reason": " "}' "$TOKEN")" = 400 ]
check "a reason longer than 512 bytes is 400" \
	[ "$(api POST /v1/clusters/orders/rotate "{\"reason\": \"$(printf '%0600d' 0)\"}" "$TOKEN")" = 400 ]
check "a limit that is not a number is 400" \
	[ "$(api GET '/v1/audit?limit=abc')" = 400 ]
check "POST on a read-only path is 405" [ "$(api POST /v1/audit '' "$TOKEN")" = 405 ]
check "a wrong method is 405" [ "$(api DELETE /v1/clusters/orders)" = 405 ]

# The canary table does not exist yet: this rotation must abort in
# verifying and roll back.
check "a rotation is accepted with 202" \
	[ "$(api POST /v1/clusters/orders/rotate '{"reason": "api test"}' "$TOKEN")" = 202 ]
id=$(json_get id <"$T/body")
check "a second rotation while one runs is 409" \
	[ "$(api POST /v1/clusters/orders/rotate '{}' "$TOKEN")" = 409 ]
check "the endpoint forwards while the rotation runs" \
	[ "$(PGPASSWORD=$(cat "$T/password") "$PG_BIN/psql" -X -A -t -h 127.0.0.1 \
	-p "$EP_PORT" -U rotator -d postgres -c 'SELECT 42')" = 42 ]
rotation_ended() {
	api GET "/v1/rotations/$id" >/dev/null
	grep -Eq '"state": "(done|aborted)"' "$T/body"
}
check "rotation $id ends" wait_for 120 rotation_ended
check "it aborted" grep -q '"state": "aborted"' "$T/body"
check "its reason names the canary" grep -q 'canary query 1 failed' "$T/body"
check "the old primary is still the one member" \
	[ "$(rot status orders --json | json_get members.0.generation)" = 1 ]
check "the fresh node's directory is gone" \
	[ "$(ls "$T/state/clusters/orders/nodes")" = 1 ]
check "the audit log records the abort with its reason" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" audit list | grep rotation_aborted | grep -q canary"
check "rotate --wait exits 1 on an abort" \
	sh -c "! timeout 120 \"$ROTATOR\" -c \"$T/rotator.json\" rotate orders --wait >/dev/null 2>&1"

port=$(primary_port)
psql_at "$port" "CREATE TABLE canary_table (x int)" >/dev/null
check "with the canary table in place the rotation succeeds" \
	rotate_wait "$T/rotate.out"
check "the daemon still answers GET /v1/clusters" \
	[ "$(api GET /v1/clusters)" = 200 ]
check "GET /v1/audit answers" [ "$(api GET '/v1/audit?cluster=orders')" = 200 ]
check "audit list of a cluster that is nowhere exits 1" \
	sh -c "'$ROTATOR' -c '$T/rotator.json' audit list --cluster nope 2>&1; [ \$? -eq 1 ]" >/dev/null
check "POST snapshots is accepted" \
	[ "$(api POST /v1/clusters/orders/snapshots '' "$TOKEN")" = 202 ]
check "GET snapshots answers" [ "$(api GET /v1/clusters/orders/snapshots)" = 200 ]
checked() { rot audit list | grep -c restore_point_checked; }
entries=$(checked)
check "verifying a restore point that does not exist is 404" \
	[ "$(api POST /v1/snapshots/orders-999999/verify '' "$TOKEN")" = 404 ]
check "and one that is not a restore point's id" \
	[ "$(api POST /v1/snapshots/orders-..%2F1/verify '' "$TOKEN")" = 404 ]
check "neither is recorded in the audit log" \
	[ "$(checked)" -eq "$entries" ]
check "the Bearer scheme is case-insensitive (past the 401 to the 400)" \
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST \
		-H "Authorization: bearer $TOKEN" --data '{"reason": 5}' \
		"http://127.0.0.1:$API_PORT/v1/clusters/orders/rotate")" = 400 ]
check "a reason with a control character is 400" \
	[ "$(api POST /v1/clusters/orders/rotate '{"reason": "a\u001b[2Jb"}' "$TOKEN")" = 400 ]
unicode_refused() {
	[ "$(api POST /v1/clusters/orders/rotate '{"reason": "a\u009b31m"}' "$TOKEN")" = 400 ] &&
		[ "$(api POST /v1/clusters/orders/rotate '{"reason": "a\u202eb"}' "$TOKEN")" = 400 ] &&
		[ "$(api POST /v1/clusters/orders/rotate '{"reason": "a\u200fb"}' "$TOKEN")" = 400 ] &&
		[ "$(api POST /v1/clusters/orders/rotate '{"reason": "\u3000\u00a0"}' "$TOKEN")" = 400 ]
}
check "and with a C1 control, a bidi mark, or Unicode spaces only" \
	unicode_refused

# A primary killed outside a rotation while another process holds its
# port: the health check (every 10 s) records it down, and starts it
# again once the port is free.
port=$(primary_port)
kill -KILL "$(postmaster_of "$port")"
sleep 0.5
/usr/bin/python3 -c 'import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
s.settimeout(1)
end = time.time() + 40
while time.time() < end:
    try:
        s.accept()
        open(sys.argv[2], "w").close()
    except socket.timeout:
        pass' "$port" "$T/squatter-reached" &
HOLDER=$!
down() { rot audit list | grep -q primary_down; }
check "a primary that cannot start is recorded down within 60 s" \
	wait_for 60 down
check "status says primary_down" \
	sh -c "'$ROTATOR' -c '$T/rotator.json' status orders --json | grep -q '\"status\": \"primary_down\"'"
PGCONNECT_TIMEOUT=5 psql_at "$EP_PORT" 'SELECT 1' >/dev/null 2>&1
sleep 1.5
check "the endpoint sends no client to whoever holds the port" \
	[ ! -e "$T/squatter-reached" ]
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null
restarted() {
	rot audit list | grep -q primary_restarted &&
		[ "$(psql_at "$port" 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]
}
check "a killed primary is started again and recorded" wait_for 60 restarted
check "the cluster is ready again" cluster_ready

# A postmaster.pid that names a live process that is not the postmaster
# (its pid taken by another since): the primary is still found down.
pidfile=$(find "$T" -name postmaster.pid | while IFS= read -r f; do
	[ "$(sed -n 4p "$f")" = "$port" ] && echo "$f"; done)
kill -KILL "$(head -n 1 "$pidfile")"
sleep 60 &
IMPOSTOR=$!
sleep 0.5
sed -i "1s/.*/$IMPOSTOR/" "$pidfile"
twice() {
	[ "$(rot audit list | grep -c primary_restarted)" -ge 2 ] &&
		[ "$(psql_at "$port" 'SELECT 1' 2>/dev/null)" = 1 ]
}
check "a pid taken by another process does not hide a dead primary" \
	wait_for 60 twice
check "and that process was left alone" kill -0 "$IMPOSTOR"
kill "$IMPOSTOR"
check "audit verify passes" rot audit verify
finish
