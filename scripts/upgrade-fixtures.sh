#!/usr/bin/env bash
# Makes the upgrade fixture: the data directory of `openorder up` (its three SQLite
# databases, the embedded broker's log and the operator token) after a few orders, made by a
# released build, for `crates/openorder/tests/upgrade.rs` to start today's build on.
#
#   RELEASE="openorder 0.1.0 (abc1234)" scripts/upgrade-fixtures.sh DIR   # DIR: the release's openorder and openorder-broker
#
# It writes crates/openorder/tests/fixtures/upgrade/embedded/ (the data directory, minus
# logs) and expected.json there: what the test must find.
set -euo pipefail

bin=${1:?usage: scripts/upgrade-fixtures.sh DIR-WITH-RELEASE-BINARIES}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/crates/openorder/tests/fixtures/upgrade/embedded"
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
broker=$(port); order=$(port); inventory=$(port); notification=$(port)
"$bin/openorder" up --data-dir "$work/data" --broker-port "$broker" --order-port "$order" \
  --inventory-port "$inventory" --notification-port "$notification" >"$work/up.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$notification/health/ready" >/dev/null 2>&1 \
    && curl -fs "http://127.0.0.1:$order/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
token=$(cat "$work/data/operator-token")
o="http://127.0.0.1:$order"

post() { curl -fs -X POST "$o/api/orders" -H 'content-type: application/json' -d "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["orderId"])'; }
status() { curl -fs "$o/api/orders/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])'; }
settle() { # ORDER STATUS
  for _ in $(seq 1 600); do [ "$(status "$1")" = "$2" ] && return 0; sleep 0.1; done
  echo "order $1 never became $2" >&2; exit 1
}

curl -fs -X PUT "http://127.0.0.1:$inventory/api/inventory/FIXTURE-1" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"available": 77}' >/dev/null
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
  available=$(curl -fs "http://127.0.0.1:$inventory/api/inventory/FIXTURE-1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["available"])')
  notified=0
  for id in "$confirmed" "$rejected" "$cancelled"; do
    n=$(curl -fs "http://127.0.0.1:$notification/api/notifications?orderId=$id" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    [ "$n" -ge 1 ] && notified=$((notified + 1))
  done
  [ "$available" = 70 ] && [ "$notified" = 3 ] && break
  sleep 0.1
done
[ "$available" = 70 ] || { echo "FIXTURE-1 stock is $available, not 70" >&2; exit 1; }
sleep 2
kill -TERM "$pid"; wait "$pid" || true

rm -rf "$out"; mkdir -p "$out"
cp -a "$work/data/." "$out/"
find "$out" \( -name '*.log' -o -name '*.lock' \) -delete
release=${RELEASE:-$("$bin/openorder" --version)}
cat >"$out/expected.json" <<EOF
{
  "madeBy": "$release",
  "orders": {"$confirmed": "CONFIRMED", "$rejected": "REJECTED", "$cancelled": "CANCELLED"},
  "stock": {"FIXTURE-1": 70},
  "notifiedOrders": [$confirmed, $rejected, $cancelled],
  "orderCreatedRecords": 3
}
EOF
du -sh "$out"
