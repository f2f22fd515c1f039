#!/bin/bash
# bench/run.sh: "make bench".  Measures what clients see during rotations
# and what a fresh node costs, beside baselines measured in the same run
# on the same machine, prints one table and writes the same figures to
# bench/results/DATE-TIME.json.  QUICK=1 runs a smaller version.
#
# Everything runs on 127.0.0.1 under a temporary directory: APIs on
# 17090-17094, endpoints on 16470-16472 and 16500-16519, node ranges in
# 16000-16299, the plain Redis baseline on 16530-16531.  Every process
# started here is stopped by its pid on exit, on failure and on Ctrl-C.
set -u

TOP=$(cd "$(dirname "$0")/.." && pwd)
ROTATOR="$TOP/bin/rotator"
PROBE="$TOP/build/bench/probe"
REPORT="$TOP/bench/report.py"
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
REDIS_BIN=${REDIS_BIN:-/usr/bin}
if [ "$(id -u)" -eq 0 ]; then
	RUN_AS=${RUN_AS:-rotatortest}
else
	RUN_AS=${RUN_AS:-$(id -un)}
fi

QUICK=${QUICK:-}
if [ -n "$QUICK" ] && [ "$QUICK" != 0 ]; then
	QUICK=1
	N_ROT=3          # rotations in scenarios 1 and 2
	BIG_MB=100       # restore point of scenarios 4 to 6
	N_BIG=1          # rotations of the big cluster
	N_VERIFY=1       # snapshot verifications
	PGBENCH_S=3      # seconds per pgbench run
	N_PGBENCH=1
	REDIS_N=20000    # requests per redis-benchmark run
	N_FOOT=20        # idle clusters in scenario 8 (redis)
	N_FOOT_PG=5      # idle clusters in scenario 8 (postgres)
else
	QUICK=0
	N_ROT=10
	BIG_MB=1024
	N_BIG=5
	N_VERIFY=5
	PGBENCH_S=10
	N_PGBENCH=5
	REDIS_N=100000
	N_FOOT=20
	N_FOOT_PG=20
fi

B=$(mktemp -d /tmp/rotator-bench.XXXXXX)
chmod 0711 "$B"
DAEMONS=""
OTHERS=""
STATES=""

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now_ms() { date +%s%3N; }
elapsed_s() { python3 -c "print(round(($2 - $1) / 1000.0, 3))"; }
sample() { echo "$1 $2" >>"$B/samples.txt"; }
not_run() { echo "$1 $2" >>"$B/notrun.txt"; log "scenario $1 not run: $2"; }

# ---- stopping what we started, by pid ----

# stop_pid PID [SIGNAL [TENTHS]]: SIGNAL (TERM), KILL after TENTHS (100).
stop_pid() {
	kill "-${2:-TERM}" "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt "${3:-100}" ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$1" 2>/dev/null || true
}

# The nodes a daemon leaves behind: postmasters by their postmaster.pid,
# and any other server whose working directory lies under DIR (redis
# nodes chdir into their node directory).
stop_nodes() {
	for f in $(find "$1" -name postmaster.pid 2>/dev/null); do
		stop_pid "$(head -n 1 "$f")" INT 100
	done
	for f in $(find "$1" -name redis.pid 2>/dev/null); do
		stop_pid "$(head -n 1 "$f")" TERM 50
	done
	for p in /proc/[0-9]*; do
		cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
		case $cwd in
		"$1"/*) stop_pid "${p#/proc/}" TERM 50 ;;
		esac
	done
}

cleanup() {
	trap - EXIT INT TERM
	for p in $OTHERS; do stop_pid "$p"; done
	for p in $DAEMONS; do stop_pid "$p" TERM 300; done
	stop_nodes "$B"
	if [ -n "${KEEP:-}" ]; then
		log "kept $B"
	else
		rm -rf "$B"
	fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

started() { OTHERS="$OTHERS $1"; }
forget() {
	OTHERS=$(echo " $OTHERS " | sed "s/ $1 / /")
}

# ---- rotator daemons ----

# write_secrets DIR: DIR/password and DIR/token, mode 0600.
write_secrets() {
	printf 'bench-%s' "$$" >"$1/password"
	printf 'token-%s\n' "$$" >"$1/token"
	chmod 0600 "$1/password" "$1/token"
}

# pg_cluster NAME ENDPOINT_PORT RANGE [EXTRA]: one cluster's JSON.
pg_cluster() {
	cat <<JSON
    { "name": "$1", "engine": "postgres", "bootstrap": "initdb",
      "auth": { "user": "rotator", "password_file": "$D/password" },
      "endpoint": { "listen": "127.0.0.1:$2" },
      "provisioner": { "kind": "local", "bin_dir": "$PG_BIN",
                       "ports": "$3", "run_as": "$RUN_AS" }${4:-} }
JSON
}

redis_cluster() {
	cat <<JSON
    { "name": "$1", "engine": "redis", "bootstrap": "empty",
      "auth": { "user": "rotator", "password_file": "$D/password" },
      "endpoint": { "listen": "127.0.0.1:$2" },
      "provisioner": { "kind": "local", "bin_dir": "$REDIS_BIN",
                       "ports": "$3", "run_as": "$RUN_AS" }${4:-} }
JSON
}

# new_daemon NAME API_PORT: D=$B/NAME with secrets; clusters follow on
# stdin as comma-separated JSON objects.
write_config() {
	cat >"$D/rotator.json" <<JSON
{
  "state_dir": "$D/state",
  "api": { "listen": "127.0.0.1:$1", "token_file": "$D/token" },
  "log_level": "info",
  "clusters": [
$(cat)
  ]
}
JSON
}

rot() { "$ROTATOR" -c "$D/rotator.json" "$@"; }

# all_ready PID N: the daemon runs and N clusters are ready.
all_ready() {
	kill -0 "$1" 2>/dev/null || return 2
	n=$(curl -s "http://127.0.0.1:$API/v1/clusters" | python3 -c '
import json, sys
print(sum(c["status"] == "ready" for c in json.load(sys.stdin)["clusters"]))
' 2>/dev/null) || return 1
	[ "$n" -ge "$2" ]
}

# start_daemon N TIMEOUT_S: serve in the background until N clusters are
# ready; DAEMON is its pid.
start_daemon() {
	"$ROTATOR" -c "$D/rotator.json" serve >>"$D/serve.log" 2>&1 &
	DAEMON=$!
	DAEMONS="$DAEMONS $DAEMON"
	deadline=$(($(date +%s) + $2))
	while [ "$(date +%s)" -lt $deadline ]; do
		all_ready "$DAEMON" "$1"
		case $? in
		0) return 0 ;;
		2) return 1 ;;
		esac
		sleep 0.2
	done
	return 1
}

stop_daemon() {
	stop_pid "$DAEMON" TERM 300
	DAEMONS=$(echo " $DAEMONS " | sed "s/ $DAEMON / /")
	stop_nodes "$D"
}

# primary_port CLUSTER
primary_port() {
	rot status "$1" --json | python3 -c 'import json, sys
c = json.load(sys.stdin)
print([m["port"] for m in c["members"] if m["role"] == "primary"][0])'
}

# rotate CLUSTER OUT: a rotation followed to its end; its API answer in
# OUT.  Prints the rotation id.
rotate() {
	timeout 900 "$ROTATOR" -c "$D/rotator.json" rotate "$1" --wait \
		--reason bench >"$2.out" 2>&1
	rc=$?
	id=$(sed -n 's/^rotation \([^ ]*\) started$/\1/p' "$2.out")
	[ -n "$id" ] && curl -s "http://127.0.0.1:$API/v1/rotations/$id" >"$2"
	cat "$2.out" >>"$D/rotations.log"
	return $rc
}

psql_at() {
	PGPASSWORD=$(cat "$D/password") "$PG_BIN/psql" -X -A -t -q \
		-h 127.0.0.1 -p "$1" -U rotator -d postgres -c "$2"
}

# ---- the probe ----

# probe_start DIR ENGINE HOST:PORT [ARGS]: PROBE_PID, writing DIR/probe.json.
probe_start() {
	dir=$1
	shift
	mkdir -p "$dir"
	: >"$dir/windows"
	"$PROBE" -r "$dir/ready" -w "$dir/windows" "$@" >"$dir/probe.json" \
		2>"$dir/probe.err" &
	PROBE_PID=$!
	started $PROBE_PID
	i=0
	while [ ! -e "$dir/ready" ] && [ $i -lt 300 ]; do
		kill -0 $PROBE_PID 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	[ -e "$dir/ready" ]
}

probe_stop() {
	kill -TERM "$PROBE_PID" 2>/dev/null
	wait "$PROBE_PID"
	rc=$?
	forget "$PROBE_PID"
	return $rc
}

# add_window DIR ROTATION.json: the rotation's [planned, finished] span.
add_window() {
	echo "$(basename "$2" .json) $(python3 "$REPORT" interval "$2")" \
		>>"$1/windows"
}

# ---- scenario 1: PostgreSQL primary rotations under the probe ----

# rotations CLUSTER DIR N: N rotations of CLUSTER, each API answer in
# DIR/rot-I.json and its span in DIR/windows.
rotations() {
	for i in $(seq "$3"); do
		log "rotation $i of $3 of \"$1\""
		rotate "$1" "$2/rot-$i.json" || log "rotation $i of \"$1\" failed"
		[ -s "$2/rot-$i.json" ] && add_window "$2" "$2/rot-$i.json"
		sleep 1
	done
}

scenario1() {
	if ! probe_start "$B/s1" postgres "127.0.0.1:$EP_SMALL" \
		-P "$D/password" -k bench_s1; then
		not_run 1 "the probe did not start: $(head -c 200 "$B/s1/probe.err")"
		return
	fi
	sleep 1
	rotations small "$B/s1" "$N_ROT"
	sleep 1
	probe_stop || log "scenario 1: the probe reports lost writes"
}

# ---- the big cluster: load, restore point ----

# Scale 1 of pgbench is about 16 MB of data files.
load_big() {
	scale=$((BIG_MB / 16))
	[ $scale -lt 1 ] && scale=1
	port=$(primary_port big)
	log "loading pgbench scale $scale into \"big\""
	PGPASSWORD=$(cat "$D/password") "$PG_BIN/pgbench" -i -q -s $scale \
		-h 127.0.0.1 -p "$port" -U rotator postgres \
		>"$B/pgbench-init.log" 2>&1 || return 1
	out=$(rot snapshot take big) || return 1
	SNAP=$(echo "$out" | sed -n 's/^restore point \(.*\) recorded$/\1/p')
	SDIR="$D/state/clusters/big/snapshots/$SNAP"
	[ -d "$SDIR" ] || return 1
	SNAP_BYTES=$(find "$SDIR" -type f -printf '%s\n' |
		awk '{ s += $1 } END { print s }')
	DATA_BYTES=$(find "$SDIR/data" -type f -printf '%s\n' |
		awk '{ s += $1 } END { print s }')
	log "restore point $SNAP: $SNAP_BYTES bytes"
}

# ---- scenario 5: snapshot verification against openssl ----

mbs() { python3 -c "print(round($1 / 1048576 / (($3 - $2) / 1000.0), 1))"; }

scenario5() {
	for i in $(seq "$N_VERIFY"); do
		t0=$(now_ms)
		rot snapshot verify "$SNAP" >>"$B/verify.log" 2>&1 ||
			log "snapshot verify $SNAP failed"
		t1=$(now_ms)
		sample s5.verify_mbs "$(mbs "$SNAP_BYTES" "$t0" "$t1")"
		t0=$(now_ms)
		find "$SDIR" -type f -print0 |
			xargs -0 openssl dgst -sha256 >/dev/null
		t1=$(now_ms)
		sample s5.openssl_mbs "$(mbs "$SNAP_BYTES" "$t0" "$t1")"
	done
}

# ---- scenarios 4 and 6: the big cluster rotated under the probe ----

basebackup_once() {
	port=$(primary_port big)
	rm -rf "$B/basebackup"
	t0=$(now_ms)
	PGPASSWORD=$(cat "$D/password") "$PG_BIN/pg_basebackup" \
		-h 127.0.0.1 -p "$port" -U rotator -D "$B/basebackup" \
		-Fp -X stream -c fast >>"$B/basebackup.log" 2>&1 || return 1
	t1=$(now_ms)
	sample s6.basebackup_s "$(elapsed_s "$t0" "$t1")"
	rm -rf "$B/basebackup"
}

# The same bytes as the restore point's data files, into one file on
# the same disk, flushed.  64 KiB blocks (what the pipe hands over): on
# the VM this was written on, dd with 1 or 4 MiB full blocks took two to
# three times as long, so the faster form is the baseline.
dd_once() {
	t0=$(now_ms)
	find "$SDIR/data" -type f -print0 | xargs -0 cat |
		dd of="$B/dd.img" bs=64K conv=fsync status=none
	t1=$(now_ms)
	sample s4.dd_s "$(elapsed_s "$t0" "$t1")"
	rm -f "$B/dd.img"
}

# Before each timed copy: no dirty pages or discards of the previous one
# left to slow it down.
settle() {
	sync
	sleep 2
}

# fresh_node_phases ROTATION.json: split its provisioning at the moment
# the fresh postmaster started (the first line of its log): copying,
# verifying and syncing the restore point, then starting the server.
fresh_node_phases() {
	gen=$(python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["new_generation"])' "$1") || return
	plog="$D/state/clusters/big/nodes/$gen/postgres.log"
	[ -f "$plog" ] || return
	python3 "$REPORT" pgstart "$1" "$plog" >"$B/phases" || return
	read -r copy start <"$B/phases"
	sample s4.copy_s "$copy"
	sample s4.start_s "$start"
}

scenario6() {
	if ! probe_start "$B/s6" postgres "127.0.0.1:$EP_BIG" \
		-P "$D/password" -k bench_s6; then
		not_run 6 "the probe did not start"
		return
	fi
	for i in $(seq "$N_BIG"); do
		log "big rotation $i of $N_BIG: baselines"
		settle
		basebackup_once || log "pg_basebackup failed"
		settle
		dd_once
		settle
		log "big rotation $i of $N_BIG"
		t0=$(now_ms)
		rotate big "$B/s6/rot-$i.json" || log "big rotation $i failed"
		t1=$(now_ms)
		[ -s "$B/s6/rot-$i.json" ] || continue
		sample s6.rotation_s "$(elapsed_s "$t0" "$t1")"
		add_window "$B/s6" "$B/s6/rot-$i.json"
		p=$(python3 "$REPORT" delta "$B/s6/rot-$i.json" provisioning \
			+provisioned) && sample s4.provision_s "$p"
		fresh_node_phases "$B/s6/rot-$i.json"
		sleep 1
	done
	probe_stop || log "scenario 6: the probe reports lost writes"
}

# ---- scenario 7: the endpoint's overhead for pgbench -S ----

pgbench_once() {
	PGPASSWORD=$(cat "$D/password") "$PG_BIN/pgbench" -n -S -c 4 -j 2 \
		-T "$PGBENCH_S" -h 127.0.0.1 -p "$1" -U rotator postgres \
		>"$B/pgbench.out" 2>&1 || return 1
	python3 "$REPORT" tps "$B/pgbench.out"
}

scenario7() {
	for i in $(seq "$N_PGBENCH"); do
		port=$(primary_port big)
		tps=$(pgbench_once "$port") && sample s7.pg_direct_tps "$tps"
		tps=$(pgbench_once "$EP_BIG") &&
			sample s7.pg_endpoint_tps "$tps"
	done
}

postgres_part() {
	D="$B/pg"
	mkdir -p "$D"
	write_secrets "$D"
	API=17090
	EP_SMALL=16470
	EP_BIG=16471
	{
		pg_cluster small $EP_SMALL 16000-16019
		echo ","
		pg_cluster big $EP_BIG 16020-16039
	} | write_config $API
	log "starting rotator serve with two postgres clusters"
	if ! start_daemon 2 300; then
		tail -n 20 "$D/serve.log" >&2
		for s in 1 4 5 6 7; do not_run $s "rotator serve did not start"; done
		return
	fi
	scenario1
	if load_big; then
		scenario5
		scenario6
		scenario7
	else
		for s in 4 5 6 7; do not_run $s "could not load the big cluster"; done
	fi
	stop_daemon
}

# ---- scenario 3: the Redis baseline, a plain primary and replica ----

# The settings rotator's adapter gives its nodes (Redis's default RDB
# persistence), without the ACL user.  As root the servers run as
# RUN_AS.  They daemonize; stop_nodes finds them by their pidfiles.
redis_plain() {
	dir="$B/redis-$1"
	mkdir -p "$dir"
	set -- "$REDIS_BIN/redis-server" --port "$1" --bind 127.0.0.1 \
		--dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" \
		--repl-diskless-sync-delay 0 --replica-serve-stale-data no \
		--replica-read-only yes --logfile "$dir/redis.log" \
		${2:+--replicaof 127.0.0.1 "$2"}
	if [ "$(id -u)" -eq 0 ]; then
		chown "$RUN_AS" "$dir"
		setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups "$@"
	else
		"$@"
	fi
}

rcli() { "$REDIS_BIN/redis-cli" -h 127.0.0.1 -p "$@"; }

role_is() { [ "$(rcli "$1" ROLE 2>/dev/null | head -n 1)" = "$2" ]; }

# synced PRIMARY REPLICA: the primary sees the replica online (FAILOVER
# itself waits for it to have every byte).
synced() {
	rcli "$1" INFO replication 2>/dev/null |
		grep -q "^slave0:ip=127.0.0.1,port=$2,state=online"
}

wait_until() {
	limit=$(($1 * 100))
	shift
	i=0
	while [ $i -lt $limit ]; do
		"$@" && return 0
		sleep 0.01
		i=$((i + 1))
	done
	return 1
}

# One FAILOVER from CUR to OTHER.  The span runs from just before the
# command to the moment both servers report their new roles (polled every
# 10 ms); the window inside it is what the probe saw.
failover_once() {
	wait_until 30 synced "$CUR" "$OTHER" || log "replica not in sync"
	sleep 0.5
	t0=$(now_ms)
	rcli "$CUR" FAILOVER TIMEOUT 5000 >/dev/null
	wait_until 30 role_is "$OTHER" master &&
		wait_until 30 role_is "$CUR" slave || log "failover $1 did not end"
	t1=$(now_ms)
	echo "failover-$1 $t0 $t1" >>"$B/s3/windows"
	sample s3.failovers 1
	tmp=$CUR
	CUR=$OTHER
	OTHER=$tmp
}

scenario3() {
	redis_plain 16530
	redis_plain 16531 16530
	CUR=16530
	OTHER=16531
	if ! wait_until 30 synced $CUR $OTHER; then
		not_run 3 "the plain replica did not sync"
		return
	fi
	if ! probe_start "$B/s3" redis "127.0.0.1:$CUR" -k bench_s3 \
		-f "127.0.0.1:16530,127.0.0.1:16531"; then
		not_run 3 "the probe did not start"
		return
	fi
	sleep 1
	for i in $(seq "$N_ROT"); do
		log "redis baseline FAILOVER $i of $N_ROT"
		failover_once "$i"
	done
	sleep 1
	probe_stop || log "scenario 3: the probe reports lost writes"
	stop_nodes "$B/redis-16530"
	stop_nodes "$B/redis-16531"
}

# ---- scenarios 2 and 7 (redis): Redis clusters under rotator ----

have_redis_adapter() {
	[ -f "$TOP/adapters/redis.c" ] &&
		git -C "$TOP" log --oneline -1 -- adapters/redis.c | grep -q .
}

# redis_bench_once PORT KIND: GET and SET ops/s as user rotator.
redis_bench_once() {
	"$REDIS_BIN/redis-benchmark" -h 127.0.0.1 -p "$1" -t get,set \
		-n "$REDIS_N" -c 20 -P 1 --csv --user rotator \
		-a "$(cat "$D/password")" >"$B/redis-benchmark.csv" 2>/dev/null ||
		return 1
	for op in GET SET; do
		v=$(python3 "$REPORT" rps "$B/redis-benchmark.csv" $op) &&
			sample "s7r.${op}_$2" "$v"
	done
}

scenario7r() {
	for i in $(seq "$N_PGBENCH"); do
		port=$(primary_port cache)
		redis_bench_once "$port" direct
		redis_bench_once "$EP_REDIS" endpoint
	done
}

redis_part() {
	if ! have_redis_adapter; then
		not_run 2 "no redis adapter"
		not_run 7r "no redis adapter"
		return
	fi
	D="$B/redis"
	mkdir -p "$D"
	write_secrets "$D"
	API=17092
	EP_REDIS=16472
	redis_cluster cache $EP_REDIS 16040-16059 | write_config $API
	log "starting rotator serve with a redis cluster"
	if ! start_daemon 1 120; then
		reason=$(grep -m 1 -o 'engine "redis".*' "$D/serve.log")
		not_run 2 "rotator serve did not start ${reason:-(see serve.log)}"
		not_run 7r "rotator serve did not start"
		tail -n 20 "$D/serve.log" >&2
		return
	fi
	if probe_start "$B/s2" redis "127.0.0.1:$EP_REDIS" -k bench_s2 \
		-U rotator -P "$D/password"; then
		sleep 1
		rotations cache "$B/s2" "$N_ROT"
		sleep 1
		probe_stop || log "scenario 2: the probe reports lost writes"
	else
		not_run 2 "the probe did not start: $(head -c 200 "$B/s2/probe.err")"
	fi
	scenario7r
	stop_daemon
}

# ---- scenario 8: the coordinator's footprint with idle clusters ----

# footprint ENGINE N SCENARIO API: VmHWM of serve with N idle clusters.
footprint() {
	D="$B/foot-$1"
	mkdir -p "$D"
	write_secrets "$D"
	API=$4
	for i in $(seq 0 $(($2 - 1))); do
		[ "$i" -gt 0 ] && echo ","
		lo=$((16100 + 10 * i))
		if [ "$1" = postgres ]; then
			pg_cluster "idle$i" $((16500 + i)) "$lo-$((lo + 9))" ',
      "server_settings": { "shared_buffers": "16MB",
                           "max_connections": 20 }'
		else
			redis_cluster "idle$i" $((16500 + i)) "$lo-$((lo + 9))"
		fi
	done | write_config "$API"
	log "starting rotator serve with $2 idle $1 clusters"
	if ! start_daemon "$2" 900; then
		not_run "$3" "not every cluster became ready"
		tail -n 20 "$D/serve.log" >&2
		stop_daemon
		return
	fi
	sleep 5
	curl -s "http://127.0.0.1:$API/v1/clusters" >/dev/null
	st="/proc/$DAEMON/status"
	kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "$st")
	sample "$3.vmhwm_mb" "$(python3 -c "print(round($kb / 1024, 1))")"
	sample "$3.threads" "$(sed -n 's/^Threads:[[:space:]]*//p' "$st")"
	for k in RssAnon RssFile; do
		kb=$(sed -n "s/^$k:[[:space:]]*\([0-9]*\) kB/\1/p" "$st")
		sample "$3.${k}_mb" "$(python3 -c "print(round($kb / 1024, 1))")"
	done
	stop_daemon
}

footprint_part() {
	if have_redis_adapter; then
		footprint redis 1 s8r1 17094
		footprint redis "$N_FOOT" s8r 17094
	else
		not_run 8r "no redis adapter"
	fi
	footprint postgres 1 s8p1 17093
	footprint postgres "$N_FOOT_PG" s8p 17093
}

# ---- the run ----

write_meta() {
	python3 - "$B/meta.json" <<PY
import json, sys
meta = {
    "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
    "cpus": $(nproc),
    "memory_mb": $(awk '/^MemTotal/ { print int($2 / 1024) }' /proc/meminfo),
    "postgres": "$("$PG_BIN/postgres" --version | awk '{ print $3 }')",
    "redis": "$("$REDIS_BIN/redis-server" --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')",
    "rotator": "$("$ROTATOR" -V | awk '{ print $2 }')",
    "commit": "$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null)",
    "quick": bool($QUICK),
    "rotations": $N_ROT,
    "big_rotations": $N_BIG,
    "restore_point_mb": round(${SNAP_BYTES:-0} / 1048576),
    "footprint_clusters": $N_FOOT,
    "footprint_postgres_clusters": $N_FOOT_PG,
    "seconds": $(($(date +%s) - START)),
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY
}

main() {
	START=$(date +%s)
	for f in "$ROTATOR" "$PROBE" "$PG_BIN/pgbench" "$REDIS_BIN/redis-server" \
		"$REDIS_BIN/redis-benchmark"; do
		[ -x "$f" ] || { log "missing $f (run make bench)"; exit 1; }
	done
	for f in openssl curl python3 setpriv; do
		command -v $f >/dev/null || { log "missing $f"; exit 1; }
	done
	log "work directory $B"
	postgres_part
	scenario3
	redis_part
	footprint_part
	write_meta
	mkdir -p "$TOP/bench/results"
	out="$TOP/bench/results/$(date -u +%Y%m%d-%H%M%S)"
	[ "$QUICK" = 1 ] && out="$out-quick"
	python3 "$REPORT" table "$B" "$out.json" || exit 1
	echo "figures: ${out#"$TOP"/}.json"
	log "done in $(($(date +%s) - START)) s"
}

main
