#!/bin/sh
# schedule.every rotates on its own and snapshots.every takes restore
# points, pruned past snapshots.keep; SIGHUP reloads the configuration.
. "$(dirname "$0")/lib.sh"

write_secrets
write_config 17075 16445 15680-15699 ',
      "schedule": { "every": "6s" },
      "snapshots": { "every": "2s", "keep": 2 }'
check "daemon starts" start_daemon

done_count() {
	rot audit list --cluster orders 2>/dev/null | grep -c rotation_done
}
two_rotations() { [ "$(done_count)" -ge 2 ]; }
check "the schedule rotates the cluster twice" wait_for 90 two_rotations
check "scheduled rotations name the schedule as their reason" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" audit list | grep rotation_requested | grep -q 'reason=\"schedule\"'"
three_snapshots() {
	[ "$(rot audit list --cluster orders | grep -c '"snapshot"\|snapshot=' )" -ge 3 ]
}
check "snapshots.every takes restore points" wait_for 60 three_snapshots
check "pruning keeps at most 2 restore points" \
	[ "$(ls "$T/state/clusters/orders/snapshots" | grep -vc partial)" -le 2 ]
check "pruning is recorded in the audit log" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" audit list | grep -q restore_point_pruned"

# Turn the schedule off and reload: no rotation starts after that.
write_config 17075 16445 15680-15699
kill -HUP "$DAEMON_PID"
sleep 1
quiet() {
	! rot status orders --json | grep -q '"running_rotation": "'
}
check "the reloaded daemon finishes what runs" wait_for 60 quiet
before=$(done_count)
sleep 8
check "after SIGHUP without a schedule no rotation starts" \
	[ "$(done_count)" -eq "$before" ]
check "status says no rotation is scheduled" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" status orders | grep -q 'next rotation: not scheduled'"
check "audit verify passes" rot audit verify
finish
