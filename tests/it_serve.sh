#!/bin/sh
# Start-up errors: each stops "serve" with status 2 and one message that
# names the file and the line and column or the key.
. "$(dirname "$0")/lib.sh"

write_secrets
serve_fails() {	# serve_fails PATTERN: exit status 2, PATTERN on stderr
	"$ROTATOR" -c "$T/rotator.json" serve >"$T/out" 2>&1
	status=$?
	[ "$status" -eq 2 ] && grep -q -- "$1" "$T/out"
}

printf '{\n  "state_dir": "/tmp",\n  "api": {\n}}}\n' >"$T/rotator.json"
check "invalid JSON: status 2 with file, line and column" \
	serve_fails "$T/rotator.json:4:"

write_config 17074 16444 15670-15679 ',
      "schedule": { "every": "6x" }'
check "a bad duration names clusters[0].schedule.every" \
	serve_fails "$T/rotator.json: clusters\[0\].schedule.every"

write_config 17074 16444 15670-15679 ',
      "colour": "blue"'
check "an unknown key names its path" \
	serve_fails "clusters\[0\].colour: unknown key"

write_config 17074 16444 15670-15679
chmod 0644 "$T/password"
check "a password file readable by others is refused" \
	serve_fails "clusters\[0\].auth.password_file: .* must be 0600"
check "a refused configuration leaves no state_dir behind" \
	test ! -e "$T/state"
chmod 0600 "$T/password"
/usr/bin/python3 -c 'import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 17074))
s.listen()
time.sleep(30)' &
HOLDER=$!
sleep 0.5
check "an API address in use: status 2 naming api.listen" \
	serve_fails "$T/rotator.json: api.listen: could not listen on 127.0.0.1:17074"
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null
rm "$T/token"
check "a missing token file is refused" serve_fails "api.token_file"

check "--help exits 0" sh -c "\"$ROTATOR\" --help >/dev/null"
check "--version prints the version" \
	sh -c "\"$ROTATOR\" --version | grep -q '^rotator [0-9]'"
check "a bad option exits 2 and says try --help" \
	sh -c "\"$ROTATOR\" --bogus 2>&1 | grep -q 'try' && ! \"$ROTATOR\" --bogus 2>/dev/null"
check "a bad command exits 2" \
	sh -c "\"$ROTATOR\" -c '$T/rotator.json' frobnicate 2>/dev/null; [ \$? -eq 2 ]"
finish
