#!/usr/bin/env bash
# A private PostgreSQL server on loopback for tests, installed from Debian's packages when
# missing. It runs as the `postgres` system user from a throwaway data directory.
#
#   scripts/postgres.sh start   # server at 127.0.0.1:$PG_PORT, user openorder / openorder
#   scripts/postgres.sh stop    # stops it; its data stays, and `start` resumes with it
#   scripts/postgres.sh reset   # stops it and deletes its data
#
# fsync is off: this server is for tests, where speed matters and a power cut does not.
# PG_DURABLE=1 starts it as PostgreSQL ships (fsync, synchronous_commit and full_page_writes
# on), for benchmarks of the path people deploy; `openorder bench` prints which it ran on.
#
# TLS is on, with certificates from scripts/tls.sh in $PG_RUN_DIR/tls (clients verify with its
# ca.pem). The role openorder_tls (password openorder) may connect over TLS only.
#
# Environment: PG_PORT (25432), PG_RUN_DIR (/tmp/openorder-postgres-$PG_PORT).
set -euo pipefail

PG_PORT="${PG_PORT:-25432}"
PG_RUN_DIR="${PG_RUN_DIR:-/tmp/openorder-postgres-$PG_PORT}"

find_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; fi
}

install() {
  if [ -n "$(find_bin)" ]; then return; fi
  echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  install
  local bin
  bin="$(find_bin)"
  if [ -f "$PG_RUN_DIR/data/postmaster.pid" ] && as_postgres "$bin/pg_ctl" -D "$PG_RUN_DIR/data" status >/dev/null 2>&1; then
    echo "postgres.sh: already running on 127.0.0.1:$PG_PORT" >&2
    return
  fi
  if [ ! -f "$PG_RUN_DIR/data/PG_VERSION" ]; then
    rm -rf "$PG_RUN_DIR"
    mkdir -p "$PG_RUN_DIR"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_RUN_DIR"; fi
    as_postgres "$bin/initdb" -D "$PG_RUN_DIR/data" -U postgres --auth=trust -E UTF8 >"$PG_RUN_DIR/initdb.log" 2>&1
  fi
  local tls="$PG_RUN_DIR/tls"
  if [ ! -f "$tls/.complete" ]; then
    "$(dirname "$0")/tls.sh" "$tls"
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$tls"; fi
  fi
  local hba="$PG_RUN_DIR/data/pg_hba.conf"
  if ! as_postgres grep -q openorder_tls "$hba"; then
    as_postgres sh -c "{ printf '%s\n' 'hostssl all openorder_tls 127.0.0.1/32 scram-sha-256' 'host all openorder_tls 127.0.0.1/32 reject'; cat '$hba'; } > '$hba.new' && mv '$hba.new' '$hba'"
  fi
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  if [ "${PG_DURABLE:-0}" = 1 ]; then durability=""; fi
  as_postgres "$bin/pg_ctl" -D "$PG_RUN_DIR/data" -l "$PG_RUN_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_RUN_DIR -c max_connections=300 $durability -c ssl=on -c ssl_cert_file=$tls/server.pem -c ssl_key_file=$tls/server.key" start >/dev/null
  as_postgres "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -tA -c \
    "SELECT 1 FROM pg_roles WHERE rolname = 'openorder'" | grep -q 1 ||
    as_postgres "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -c \
      "CREATE ROLE openorder LOGIN SUPERUSER PASSWORD 'openorder'" >/dev/null
  as_postgres "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -tA -c \
    "SELECT 1 FROM pg_roles WHERE rolname = 'openorder_tls'" | grep -q 1 ||
    as_postgres "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -c \
      "CREATE ROLE openorder_tls LOGIN SUPERUSER PASSWORD 'openorder'" >/dev/null
  echo "postgres.sh: PostgreSQL ready on 127.0.0.1:$PG_PORT" >&2
}

stop() {
  local bin
  bin="$(find_bin)"
  if [ -n "$bin" ] && [ -d "$PG_RUN_DIR/data" ]; then
    as_postgres "$bin/pg_ctl" -D "$PG_RUN_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  reset) stop; rm -rf "$PG_RUN_DIR" ;;
  *) echo "usage: $0 start|stop|reset" >&2; exit 2 ;;
esac
