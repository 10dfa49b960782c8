#!/usr/bin/env bash
# Chaos run: server + worker over PostgreSQL, a Redis of its own and the test SMTP server
# (.ci/smtp_server.py); registers N addresses at a steady rate while SIGKILLing the worker every
# few seconds (restarting it at once) and restarting Redis once, waits for the system to settle,
# and reports registered, delivered, lost, duplicates and the delivery delay. Exits non-zero if
# anything registered was lost (or a registration was refused). See RELIABILITY.md.
#
# Usage: scripts/chaos.sh [-n N] [--rate R] [--kill-every S] [--slow-fraction F]
#                         [--settle-timeout S] [--no-redis-restart] [--keep] [--bin-dir DIR]
#   -n, --count N       addresses to register (default 1000; env CHAOS_COUNT)
#   --rate R            registrations per second (default 50; env CHAOS_RATE)
#   --kill-every S      seconds between worker SIGKILLs (default 3; env CHAOS_KILL_EVERY)
#   --slow-fraction F   share of recipients whose send takes 250 ms (default 0.2)
#   --settle-timeout S  longest wait for delivery after the registrations (default 300)
#   --no-redis-restart  skip the Redis restart;  --keep  keep the logs of a passing run
#   --bin-dir DIR       use the server and worker binaries in DIR (env BIN_DIR); without it,
#                       `cargo build --release --bin server --bin worker` and target/release
#
# Needs: PostgreSQL at CHAOS_DATABASE_URL or TEST_DATABASE_URL (an admin URL; default
# postgres://postgres@127.0.0.1:5432/postgres; a database is created and dropped), the
# redis-server binary, psql, Python 3 with aiosmtpd. Every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR=${BIN_DIR:-}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --bin-dir=*) BIN_DIR=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done

if [ -z "$BIN_DIR" ]; then
  echo "[chaos] cargo build --release --bin server --bin worker" >&2
  cargo build --release --bin server --bin worker
  BIN_DIR=target/release
fi

exec "${PYTHON:-python3}" scripts/chaos.py --bin-dir "$BIN_DIR" ${args[@]+"${args[@]}"}
