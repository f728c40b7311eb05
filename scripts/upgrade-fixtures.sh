#!/usr/bin/env bash
# Makes the upgrade fixtures from a released build, for `crates/openorder/tests/e2e/upgrade.rs`
# to start today's build on:
#   embedded/  the data directory of `openorder up` (its three SQLite databases, the embedded
#              broker's log and the operator token) after a few orders, minus logs;
#   postgres/  the three services run alone on PostgreSQL, after the same orders: each
#              service's database as `pg_dump --inserts` wrote it ({order,inventory,notification}.sql).
# Each has expected.json: what the test must find.
#
#   RELEASE="openorder 0.1.0 (abc1234)" scripts/upgrade-fixtures.sh DIR   # DIR: the release's openorder and openorder-broker
#
# The PostgreSQL fixture needs a server: scripts/postgres.sh start (PG_PORT, 25432 by default).
set -euo pipefail

bin=${1:?usage: scripts/upgrade-fixtures.sh DIR-WITH-RELEASE-BINARIES}
root=$(cd "$(dirname "$0")/.." && pwd)
fixtures="$root/crates/openorder/tests/fixtures/upgrade"
release=${RELEASE:-$("$bin/openorder" --version)}
work=$(mktemp -d)
pids=()
stop_all() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; pids=(); }
trap 'stop_all; rm -rf "$work"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # URL...
  for url in "$@"; do
    for _ in $(seq 1 600); do curl -fs "$url/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fs "$url/health/ready" >/dev/null || { echo "$url never became ready" >&2; exit 1; }
  done
}

# The same orders on either set-up: one confirmed (taking stock of a SKU set by an operator),
# one rejected, one confirmed then cancelled (its stock released); every one notified.
scenario() { # ORDER_URL INVENTORY_URL NOTIFICATION_URL TOKEN OUT_DIR
  local o=$1 i=$2 n=$3 token=$4 out=$5
  post() { curl -fs -X POST "$o/api/orders" -H 'content-type: application/json' -d "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["orderId"])'; }
  status() { curl -fs "$o/api/orders/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])'; }
  settle() { # ORDER STATUS
    for _ in $(seq 1 600); do [ "$(status "$1")" = "$2" ] && return 0; sleep 0.1; done
    echo "order $1 never became $2" >&2; exit 1
  }
  curl -fs -X PUT "$i/api/inventory/FIXTURE-1" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"available": 77}' >/dev/null
  local confirmed rejected cancelled available notified id count
  confirmed=$(post '{"userId": 42, "items": [{"sku": "ABC-001", "qty": 2}, {"sku": "FIXTURE-1", "qty": 7}]}')
  settle "$confirmed" CONFIRMED
  rejected=$(post '{"userId": 43, "items": [{"sku": "ABC-001", "qty": 10000}]}')
  settle "$rejected" REJECTED
  cancelled=$(post '{"userId": 42, "items": [{"sku": "FIXTURE-1", "qty": 5}]}')
  settle "$cancelled" CONFIRMED
  curl -fs -X POST "$o/api/orders/$cancelled/cancel" >/dev/null
  settle "$cancelled" CANCELLED
  # The release of the cancelled order's stock, and every notification, before the stop.
  for _ in $(seq 1 600); do
    available=$(curl -fs "$i/api/inventory/FIXTURE-1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["available"])')
    notified=0
    for id in "$confirmed" "$rejected" "$cancelled"; do
      count=$(curl -fs "$n/api/notifications?orderId=$id" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
      [ "$count" -ge 1 ] && notified=$((notified + 1))
    done
    [ "$available" = 70 ] && [ "$notified" = 3 ] && break
    sleep 0.1
  done
  [ "$available" = 70 ] || { echo "FIXTURE-1 stock is $available, not 70" >&2; exit 1; }
  sleep 2
  mkdir -p "$out"
  cat >"$out/expected.json" <<JSON
{
  "madeBy": "$release",
  "orders": {"$confirmed": "CONFIRMED", "$rejected": "REJECTED", "$cancelled": "CANCELLED"},
  "stock": {"FIXTURE-1": 70},
  "notifiedOrders": [$confirmed, $rejected, $cancelled],
  "orderCreatedRecords": 3
}
JSON
}

embedded() {
  local out="$fixtures/embedded" broker order inventory notification
  broker=$(port); order=$(port); inventory=$(port); notification=$(port)
  "$bin/openorder" up --data-dir "$work/data" --broker-port "$broker" --order-port "$order" \
    --inventory-port "$inventory" --notification-port "$notification" >"$work/up.log" 2>&1 &
  pids+=($!)
  wait_ready "http://127.0.0.1:$notification" "http://127.0.0.1:$order"
  rm -rf "$out"
  scenario "http://127.0.0.1:$order" "http://127.0.0.1:$inventory" "http://127.0.0.1:$notification" \
    "$(cat "$work/data/operator-token")" "$work/embedded-expected"
  stop_all
  mkdir -p "$out"
  cp -a "$work/data/." "$out/"
  find "$out" \( -name '*.log' -o -name '*.lock' \) -delete
  mv "$work/embedded-expected/expected.json" "$out/"
  du -sh "$out"
}

postgres() {
  local out="$fixtures/postgres" pg="postgres://openorder:openorder@127.0.0.1:${PG_PORT:-25432}"
  local suffix broker token s
  suffix=$(date +%s)
  for s in order inventory notification; do
    psql -q "$pg/postgres" -c "CREATE DATABASE fixture_${s}_$suffix" >/dev/null
  done
  broker=$(port)
  mkdir -p "$work/broker"
  "$bin/openorder-broker" --data-dir "$work/broker" --listen "127.0.0.1:$broker" >"$work/broker.log" 2>&1 &
  pids+=($!)
  sleep 2
  # An operator token for the inventory's admin route, and the entry the services accept it by.
  local made entry
  made=$("$bin/openorder" token new)
  token=$(sed -n 1p <<<"$made"); entry=$(sed -n 2p <<<"$made")
  local -A url
  for s in order inventory notification; do
    local p; p=$(port); url[$s]="http://127.0.0.1:$p"
    OPENORDER_OPERATOR_TOKEN_HASHES="$entry" "$bin/openorder" "$s-service" --listen "127.0.0.1:$p" \
      --bootstrap-servers "127.0.0.1:$broker" --partition-assignment all \
      --database-url "$pg/fixture_${s}_$suffix" >"$work/$s.log" 2>&1 &
    pids+=($!)
  done
  wait_ready "${url[order]}" "${url[inventory]}" "${url[notification]}"
  rm -rf "$out"
  scenario "${url[order]}" "${url[inventory]}" "${url[notification]}" "$token" "$out"
  stop_all
  for s in order inventory notification; do
    # Plain SQL a client can run statement by statement (no COPY), without owners or grants,
    # and without psql's meta-commands.
    pg_dump --inserts --no-owner --no-privileges "$pg/fixture_${s}_$suffix" | grep -v '^\\' >"$out/$s.sql"
    psql -q "$pg/postgres" -c "DROP DATABASE fixture_${s}_$suffix" >/dev/null
  done
  du -sh "$out"
}

case "${FIXTURES:-embedded postgres}" in
  *embedded*postgres*) embedded; postgres ;;
  *postgres*) postgres ;;
  *) embedded ;;
esac
