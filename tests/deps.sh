#!/bin/sh
# Install what rotator builds and tests with, if it is missing (Debian 12),
# and the unprivileged user that test and demo servers run as.
set -eu

pkgs="build-essential pkg-config libpq-dev libevent-dev
libjansson-dev libssl-dev libcmocka-dev postgresql-15 postgresql-client-15
curl procps clang-format python3
libhiredis-dev python3-redis redis-server redis-tools"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing packages:$missing (run as root to install)" >&2
		exit 1
	fi
	echo "deps: installing$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# PostgreSQL refuses to run as root: test and demo nodes run as this user.
if [ "$(id -u)" -eq 0 ] && ! id rotatortest >/dev/null 2>&1; then
	useradd --system --no-create-home --shell /usr/sbin/nologin rotatortest
fi
exit 0
