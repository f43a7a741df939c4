#!/usr/bin/env bash
# Make sure Redis (and, with --postgres, PostgreSQL) answer on this machine.
# Starts them when installed but down; installs them with apt-get when missing (Debian/Ubuntu).
set -euo pipefail

# Redis: the one REDIS_URL names (environment, then .env, then the default); a local one is
# started (and installed) when it does not answer, a remote one is only checked.
want_pg=0
[ "${1:-}" = "--postgres" ] && want_pg=1
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
here=$(dirname "$0")

url=${REDIS_URL:-$( [ -f .env ] && grep -E '^REDIS_URL=' .env | tail -1 | cut -d= -f2- || true)}
url=${url:-redis://localhost:6379/0}
hostport=${url#*://}; hostport=${hostport##*@}; hostport=${hostport%%/*}
host=${hostport%:*}; port=${hostport##*:}
[ "$host" = "$hostport" ] && port=6379
[ -n "$host" ] || host=localhost
case "$host" in localhost|127.0.0.1|::1|"[::1]") local_redis=1 ;; *) local_redis=0 ;; esac

redis_up() { (exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; }

if ! redis_up; then
  [ "$local_redis" = 1 ] || { echo "Redis at $host:$port (REDIS_URL) does not answer" >&2; exit 1; }
  command -v redis-server >/dev/null || "$here/apt_install.sh" redis-server
  echo ">> starting redis-server on port $port (append-only, noeviction)"
  redis-server --daemonize yes --port "$port" --appendonly yes --maxmemory-policy noeviction --dir "${TMPDIR:-/tmp}" >/dev/null
  for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done
  redis_up || { echo "Redis does not answer on $host:$port" >&2; exit 1; }
fi
echo ">> redis answers on $host:$port"

if [ "$want_pg" = 1 ]; then
  pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
  if ! pg_up; then
    command -v pg_isready >/dev/null || "$here/apt_install.sh" postgresql
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
