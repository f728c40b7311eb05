#!/usr/bin/env bash
# A private PostgreSQL server on loopback for tests, installed from Debian's packages when
# missing. It runs as the `postgres` system user from a throwaway data directory.
#
#   scripts/postgres.sh start   # server at 127.0.0.1:$PG_PORT, user openorder / openorder
#   scripts/postgres.sh stop    # stops it; its data stays, and `start` resumes with it
#   scripts/postgres.sh reset   # stops it and deletes its data
#   scripts/postgres.sh statements reset|show [DB]   # pg_stat_statements (PG_STATEMENTS=1 at start):
#                               # forget the counts, or print what ran since, per order of DB's
#                               # `orders` table (database DB, default postgres)
#
# fsync is off: this server is for tests, where speed matters and a power cut does not.
# PG_DURABLE=1 starts it as PostgreSQL ships (fsync, synchronous_commit and full_page_writes
# on), for benchmarks of the path people deploy; `openorder bench` prints which it ran on.
#
# TLS is on, with certificates from scripts/tls.sh in $PG_RUN_DIR/tls (clients verify with its
# ca.pem). The role openorder_tls (password openorder) may connect over TLS only.
#
# PG_STATEMENTS=1 loads pg_stat_statements, to count statements, round trips and commits per
# order (`statements show` after a bench run).
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
  if [ "${PG_STATEMENTS:-0}" = 1 ]; then
    durability="$durability -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
  fi
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

# CPU seconds the server has used (its processes, and those that ended: the postmaster
# reaps every backend, so their time is in its cutime/cstime), in clock ticks.
server_cpu_ticks() {
  local pm total=0 pid
  pm="$(head -1 "$PG_RUN_DIR/data/postmaster.pid")"
  total=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
  for pid in $(pgrep -P "$pm"); do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# What ran since `statements reset`, per order: statements (calls) and commits by database,
# then the statements that ran most, each with its calls per order and time.
statements() {
  local bin db="${3:-postgres}"
  bin="$(find_bin)"
  local psql=(as_postgres "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$db" -q)
  "${psql[@]}" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  case "${2:-}" in
    reset)
      "${psql[@]}" -tA -c "SELECT pg_stat_statements_reset(); SELECT pg_stat_reset()" >/dev/null
      server_cpu_ticks >"$PG_RUN_DIR/cpu.mark" ;;
    show)
      "${psql[@]}" -c "
        WITH o AS (SELECT greatest(count(*), 1)::numeric AS n FROM orders)
        SELECT d.datname, round(sum(s.calls) / o.n, 2) AS statements_per_order,
               round(max(x.xact_commit) / o.n, 2) AS commits_per_order,
               round(sum(s.total_exec_time)::numeric / o.n, 3) AS exec_ms_per_order, o.n AS orders
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        JOIN pg_stat_database x ON x.datid = s.dbid, o
        GROUP BY d.datname, o.n ORDER BY 2 DESC;"
      "${psql[@]}" -c "
        WITH o AS (SELECT greatest(count(*), 1)::numeric AS n FROM orders)
        SELECT d.datname AS db, round(s.calls / o.n, 3) AS per_order,
               round((s.total_exec_time / greatest(s.calls, 1))::numeric, 3) AS ms_each,
               left(regexp_replace(s.query, '\s+', ' ', 'g'), 110) AS query
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid, o
        ORDER BY s.calls DESC LIMIT 40;"
      local orders ticks hz
      orders="$("${psql[@]}" -tA -c "SELECT count(*) FROM orders")"
      ticks=$(( $(server_cpu_ticks) - $(cat "$PG_RUN_DIR/cpu.mark" 2>/dev/null || echo 0) ))
      hz="$(getconf CLK_TCK)"
      awk -v t="$ticks" -v hz="$hz" -v n="$orders" 'BEGIN { printf "server CPU since reset: %.2f s, %.3f s per 1,000 orders (%d orders)\n", t / hz, n ? t / hz / n * 1000 : 0, n }' ;;
    *) echo "usage: $0 statements reset|show [DB]" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  start) start ;;
  statements) statements "$@" ;;
  stop) stop ;;
  reset) stop; rm -rf "$PG_RUN_DIR" ;;
  *) echo "usage: $0 start|stop|reset|statements" >&2; exit 2 ;;
esac
