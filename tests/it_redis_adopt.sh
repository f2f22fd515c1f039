#!/bin/sh
# Adopt a running Redis 7 master (started here as $RUN_AS, with the ACL
# user rotator) and rotate it away: its data carries over, the adopted
# server is shut down, and a second rotation works from rotator's own
# restore point.
. "$(dirname "$0")/lib.sh"

if [ ! -x "$REDIS_BIN/redis-server" ] || [ "$(id -u)" -ne 0 ]; then
	echo "ok - skipped: needs root and redis-server"
	echo "1 passed, 0 failed"
	exit 0
fi

write_secrets
EXT=$T/ext
mkdir -p "$EXT" && chown "$RUN_AS" "$EXT" && chmod 0700 "$EXT"
pw=$(sed 's/\\/\\\\/g; s/"/\\"/g' "$T/password")
cat >"$EXT/redis.conf" <<CONF
port 15890
bind 127.0.0.1
daemonize yes
pidfile $EXT/redis-adopted.pid
logfile $EXT/redis.log
dir $EXT
save ""
user default off
user rotator on ">$pw" ~* &* +@all
CONF
chown "$RUN_AS" "$EXT/redis.conf"
chmod 0600 "$EXT/redis.conf"
su -s /bin/sh "$RUN_AS" -c "$REDIS_BIN/redis-server $EXT/redis.conf"
check "the external server answers" wait_for 10 redis_at 15890 PING
redis_at 15890 SET adopted yes >/dev/null

write_redis_config 17082 16452 15860-15879
sed -i 's/"bootstrap": "empty"/"bootstrap": "adopt", "connection": { "host": "127.0.0.1", "port": 15890 }/' \
	"$T/rotator.json"
check "the daemon adopts it" start_daemon
check "status shows it adopted" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" status orders | grep -q '15890 .*adopt'"
adopted_pid=$(cat "$EXT/redis-adopted.pid")
check "the first rotation completes" rotate_wait "$T/rotate1.out"
check "it took a restore point of the adopted primary" \
	grep -q "+snapshot-start" "$T/rotate1.out"
check "the data carried over" [ "$(redis_at "$EP_PORT" GET adopted)" = yes ]
check "the adopted server is shut down" \
	wait_for 10 sh -c "! kill -0 $adopted_pid 2>/dev/null"
check "its files are left alone" [ -f "$EXT/redis.conf" ]
check "a second rotation completes" rotate_wait "$T/rotate2.out"
check "the data is still there" [ "$(redis_at "$EP_PORT" GET adopted)" = yes ]
check "audit verify passes" rot audit verify
finish
