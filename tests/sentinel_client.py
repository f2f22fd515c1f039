#!/usr/bin/python3
"""A Sentinel client writing through rotator, for tests/it_sentinel.sh.

It knows only a rotator sentinel address (endpoint.sentinel_listen). It
finds the primary with redis.sentinel.Sentinel (python3-redis, redis-py
4.3 on Debian 12), adds sequential ids to the set "rotator_sentinel"
through master_for(NAME), and when a write fails with ConnectionError,
TimeoutError or ReadOnlyError (the old primary fenced or demoted) it
retries the same id, reconnecting through the sentinel, for at most
--retry-seconds. It stops after --seconds or at SIGTERM, then reads the
set back from the primary it discovers and prints one JSON object:

  acknowledged  ids whose SADD was acknowledged
  errors        failed attempts (each retried)
  failed        ids given up after --retry-seconds
  missing       acknowledged ids absent from the final primary's set
  longest_pause_ms  longest time between two acknowledged writes
  primary       "HOST:PORT" from discover_master at the end
  replicas      ["HOST:PORT", ...] from discover_slaves at the end

Exit status 0 when nothing acknowledged is missing and the final read
succeeded, 1 otherwise.
"""
import argparse
import json
import signal
import sys
import time

from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError
from redis.sentinel import Sentinel

KEY = "rotator_sentinel"
stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentinel", required=True, help="HOST:PORT")
    p.add_argument("--name", required=True, help="the cluster's name")
    p.add_argument("--username", default=None)
    p.add_argument("--password-file", default=None)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rate", type=float, default=200.0,
                   help="writes a second at most")
    p.add_argument("--retry-seconds", type=float, default=15.0)
    return p.parse_args()


def read_password(path):
    if not path:
        return None
    with open(path) as f:
        return f.read().rstrip("\n")


def write_one(master, i, retry_seconds, tally):
    """SADD id I, retried until acknowledged or RETRY_SECONDS passed."""
    deadline = time.monotonic() + retry_seconds
    while True:
        try:
            master.sadd(KEY, i)
            return True
        except (ConnectionError, TimeoutError, ReadOnlyError):
            tally["errors"] += 1
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def final_read(sentinel, master, name, acked, retry_seconds):
    """Missing ids and the primary seen at the end, retried like writes."""
    deadline = time.monotonic() + retry_seconds
    while True:
        try:
            members = {int(m) for m in master.smembers(KEY)}
            host, port = sentinel.discover_master(name)
            replicas = ["%s:%d" % r for r in sentinel.discover_slaves(name)]
            missing = sum(1 for i in acked if i not in members)
            return missing, "%s:%d" % (host, port), replicas
        except Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, on_term)
    host, port = args.sentinel.rsplit(":", 1)
    sentinel = Sentinel([(host, int(port))], socket_timeout=1.0)
    master = sentinel.master_for(args.name, socket_timeout=1.0,
                                 username=args.username,
                                 password=read_password(args.password_file))
    tally = {"acknowledged": 0, "errors": 0, "failed": 0}
    acked = []
    longest = 0.0
    last_ack = time.monotonic()
    end = last_ack + args.seconds
    i = 0
    while not stopping and time.monotonic() < end:
        i += 1
        if write_one(master, i, args.retry_seconds, tally):
            now = time.monotonic()
            longest = max(longest, now - last_ack)
            last_ack = now
            acked.append(i)
            tally["acknowledged"] += 1
        else:
            tally["failed"] += 1
        time.sleep(1.0 / args.rate)
    status = 0
    try:
        missing, primary, replicas = final_read(sentinel, master, args.name,
                                                acked, args.retry_seconds)
    except Exception as e:
        missing, primary, replicas = len(acked), None, []
        tally["final_error"] = str(e)
        status = 1
    tally["missing"] = missing
    tally["longest_pause_ms"] = round(longest * 1000.0, 1)
    tally["primary"] = primary
    tally["replicas"] = replicas
    print(json.dumps(tally, sort_keys=True))
    return 1 if missing or status else 0


if __name__ == "__main__":
    sys.exit(main())
