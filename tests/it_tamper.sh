#!/bin/sh
# A restore point that does not verify never seeds a node: a changed data
# file is found as it is laid down, a changed manifest before; either is
# set aside and the rotation goes on from the previous restore point.
. "$(dirname "$0")/lib.sh"

write_secrets
write_config 17079 16449 15750-15769
check "daemon starts" start_daemon
SNAPS=$T/state/clusters/orders/snapshots
check "a first restore point exists" \
	wait_for 60 test -f "$SNAPS/orders-000001/manifest.json"
check "a second restore point is taken" rot snapshot take orders

# One byte of one file, the same size: only the hash can tell.
printf '16\n' >"$SNAPS/orders-000002/data/PG_VERSION"
check "snapshot verify finds the changed file" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" snapshot verify orders-000002 2>&1 | grep -q 'PG_VERSION'"
check "snapshot verify exits 1 on it" \
	sh -c "! \"$ROTATOR\" -c \"$T/rotator.json\" snapshot verify orders-000002 >/dev/null 2>&1"
check "the rotation completes" rotate_wait "$T/rotate1.out"
check "it tried the changed restore point first" \
	grep -q "provisioning .*orders-000002" "$T/rotate1.out"
check "then went on from the previous one" \
	grep -q "provisioning .*orders-000001" "$T/rotate1.out"
check "the changed restore point is set aside" \
	test -d "$SNAPS/orders-000002.rejected" -a ! -d "$SNAPS/orders-000002"
check "the new primary was born from orders-000001" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" status orders | grep -q 'primary .*orders-000001'"

# A manifest that no longer matches its audit record.
check "a third restore point is taken" rot snapshot take orders
sed -i 's/"size": [0-9]*/"size": 1/' "$SNAPS/orders-000003/manifest.json"
check "snapshot verify finds the manifest changed" \
	sh -c "\"$ROTATOR\" -c \"$T/rotator.json\" snapshot verify orders-000003 2>&1 | grep -q 'audit record'"
check "the next rotation completes" rotate_wait "$T/rotate2.out"
check "it did not lay down the changed manifest's snapshot" \
	sh -c "! grep -q 'provisioning .*orders-000003' '$T/rotate2.out'"
check "that restore point is set aside too" \
	[ -d "$SNAPS/orders-000003.rejected" ]
check "the audit log records both rejections" \
	[ "$(rot audit list --cluster orders | grep -c restore_point_rejected)" -eq 2 ]
check "POST verify without the token is 401" \
	[ "$(api POST /v1/snapshots/orders-000001/verify)" = 401 ]
check "a check of an unknown cluster's snapshot is 404" \
	[ "$(api GET /v1/snapshots/nope-000001/verify)" = 404 ]
check "the daemon's three checks are in the audit log" \
	[ "$(rot audit list --cluster orders | grep -c restore_point_checked)" -eq 3 ]
check "audit verify passes" rot audit verify
finish
