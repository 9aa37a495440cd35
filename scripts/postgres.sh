#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests and benchmarks: 127.0.0.1 only, password login.
#
#   eval "$(bash scripts/postgres.sh start)"   # install if missing, start; exports the URL
#   bash scripts/postgres.sh restart           # what the restart-mid-search test does
#   bash scripts/postgres.sh stop              # stop it and delete its data
#
# `start` prints `export ORCA_AUTOML_TEST_POSTGRES=postgresql+psycopg://orca:PASSWORD@...`: a
# superuser of this cluster alone (tests create and drop a database each), with a random
# password kept in the cluster's folder (mode 0600), never echoed to the terminal. The cluster
# lives in ORCA_PG_DIR (default /tmp/orca-postgres-PORT), on ORCA_PG_PORT (default 55432).
set -euo pipefail
PORT="${ORCA_PG_PORT:-55432}"
DIR="${ORCA_PG_DIR:-/tmp/orca-postgres-$PORT}"
DATA="$DIR/data"

bin_dir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

install_server() {
  if [ -n "$(bin_dir)" ]; then return; fi
  if [ "$(id -u)" != 0 ]; then
    echo "postgres.sh: PostgreSQL is not installed: run as root, or apt-get install postgresql" >&2
    exit 1
  fi
  echo "postgres.sh: installing PostgreSQL from the distribution's packages" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg() {
  as_owner "$(bin_dir)/$1" "${@:2}"
}

start() {
  install_server
  if [ ! -f "$DATA/PG_VERSION" ]; then
    rm -rf "$DIR"
    mkdir -p "$DIR"
    chmod 700 "$DIR"
    (umask 077; python3 -c "import secrets; print(secrets.token_urlsafe(18))" >"$DIR/password")
    [ "$(id -u)" = 0 ] && chown -R postgres: "$DIR"
    pg initdb -D "$DATA" -U orca --pwfile="$DIR/password" --auth-local=scram-sha-256 \
      --auth-host=scram-sha-256 -E UTF8 >"$DIR/initdb.log" 2>&1 \
      || { cat "$DIR/initdb.log" >&2; exit 1; }
  fi
  if ! pg pg_ctl -D "$DATA" status >/dev/null 2>&1; then
    pg pg_ctl -D "$DATA" -l "$DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DIR" \
      start >/dev/null || { tail -n 20 "$DIR/server.log" >&2; exit 1; }
  fi
  echo "export ORCA_AUTOML_TEST_POSTGRES=postgresql+psycopg://orca:$(cat "$DIR/password")@127.0.0.1:$PORT/postgres"
}

case "${1:-}" in
  start) start ;;
  restart) pg pg_ctl -D "$DATA" -w -t 60 -m fast restart >/dev/null ;;
  stop)
    if [ -f "$DATA/PG_VERSION" ]; then pg pg_ctl -D "$DATA" -w -m fast stop >/dev/null || true; fi
    rm -rf "$DIR"
    ;;
  *) echo "usage: bash scripts/postgres.sh start|restart|stop" >&2; exit 2 ;;
esac
