#!/bin/sh
# Run every test: the cmocka unit tests, then (unless "unit" is given) the
# tests against real PostgreSQL servers.  Prints one closing line,
# "N passed, N failed", and exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.." || exit 1
mode=${1:-all}
passed=0
failed=0
failed_names=""

count() {	# count NAME OUTPUT_FILE STATUS
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$2" | tail -n 1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$2" | tail -n 1)
	if [ -z "$p$f" ]; then
		p=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$2" | tail -n 1)
		f=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$2" | tail -n 1)
	fi
	p=${p:-0}
	f=${f:-0}
	if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1	# crashed or timed out before it could count
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$f" -gt 0 ] && failed_names="$failed_names $1"
	echo "== $1: $p passed, $f failed"
}

for t in build/tests/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	timeout 300 "$t" >"/tmp/rotator-$name.out" 2>&1
	status=$?
	[ "$status" -ne 0 ] && cat "/tmp/rotator-$name.out"
	count "$name" "/tmp/rotator-$name.out" "$status"
	rm -f "/tmp/rotator-$name.out"
done

if [ "$mode" != unit ]; then
	for t in tests/it_*.sh; do
		name=$(basename "$t" .sh)
		echo "== $name"
		timeout 900 sh "$t" >"/tmp/rotator-$name.out" 2>&1
		status=$?
		grep -E '^(ok|not ok) - ' "/tmp/rotator-$name.out"
		[ "$status" -ne 0 ] && tail -n 60 "/tmp/rotator-$name.out"
		count "$name" "/tmp/rotator-$name.out" "$status"
		rm -f "/tmp/rotator-$name.out"
	done
fi

[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
