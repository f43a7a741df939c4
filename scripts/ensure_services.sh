#!/usr/bin/env bash
# Make sure Redis (and, with --postgres, PostgreSQL) answer on this machine.
# Starts them when installed but down; installs them with apt-get when missing (Debian/Ubuntu).
set -euo pipefail

want_pg=0
[ "${1:-}" = "--postgres" ] && want_pg=1
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"

apt_install() {
  echo ">> installing $* with apt-get"
  $SUDO apt-get update -qq && $SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; }

if ! redis_up; then
  command -v redis-server >/dev/null || apt_install redis-server
  echo ">> starting redis-server (append-only, noeviction)"
  redis-server --daemonize yes --appendonly yes --maxmemory-policy noeviction --dir "${TMPDIR:-/tmp}" >/dev/null
  for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done
  redis_up || { echo "Redis does not answer on 127.0.0.1:6379" >&2; exit 1; }
fi
echo ">> redis answers on 127.0.0.1:6379"

if [ "$want_pg" = 1 ]; then
  pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
  if ! pg_up; then
    command -v pg_isready >/dev/null || apt_install postgresql
    echo ">> starting PostgreSQL"
    $SUDO service postgresql start >/dev/null 2>&1 || $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    for _ in $(seq 1 100); do pg_up && break; sleep 0.2; done
    pg_up || { echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
  fi
  if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
    echo ">> creating database 'test' (needs local trust auth for user postgres)"
    $SUDO -u postgres createdb test 2>/dev/null || su postgres -c "createdb test" || true
  fi
  psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null || {
    echo "cannot connect to postgresql://postgres@127.0.0.1:5432/test (trust auth expected)" >&2; exit 1; }
  echo ">> postgresql answers on 127.0.0.1:5432 (database test)"
fi
