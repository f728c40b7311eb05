#!/usr/bin/env bash
# The test command. On a machine with nothing but Rust, Java and Maven it:
#   0. checks that vendor/ is its crates' crates.io releases (cached in ~/.cache/openorder) plus vendor/patches,
#      and the house rules of the sources (scripts/house.py: file, function and crate sizes);
#   1. fetches Apache Kafka from Maven Central (cached in ~/.cache/openorder) and starts it (KRaft, loopback);
#   2. installs PostgreSQL (and Chromium, for pages, and Prometheus, for promtool) from Debian's
#      packages if missing and starts a private PostgreSQL server (loopback);
#   3. installs aiosmtpd from PyPI into a cached virtualenv (the SMTP server notification tests send to),
#      the AsyncAPI CLI from npm (cached), which validates docs/api/asyncapi.json, and Schemathesis
#      from PyPI (cached), which fuzzes each service's API from its OpenAPI document; and mdBook
#      with cargo (cached), which builds the book (docs/book);
#   4. builds the book and checks the links of its pages and of README.md (scripts/book.sh), and
#      checks the Prometheus rules (with their unit tests), scrape configuration and Grafana
#      dashboard under deploy/ (scripts/prometheus.sh check);
#   5. builds and runs every test of the workspace against the embedded Tansu broker, Apache Kafka,
#      SQLite and PostgreSQL; then stops what it started.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p order-service`). The end-to-end
# tests are one binary, `-p openorder --test e2e`, a module per area (`flow::`, `notifications::`, …).
set -euo pipefail
cd "$(dirname "$0")/.."

# vendor/ must be exactly pristine crates.io releases + vendor/patches (vendor/README.md).
scripts/vendor.sh check
# No source file over 450 lines, no function over 100, no crate over 4,000 lines of src.
scripts/house.py

# Fixed ports sit below Linux's ephemeral range (32768-60999), so no outgoing connection of
# the tests can hold one when a server (re)starts on it.
export KAFKA_PORT="${KAFKA_PORT:-29092}"
export PG_PORT="${PG_PORT:-25432}"

cleanup() {
  scripts/kafka.sh stop || true
  scripts/postgres.sh stop || true
}
trap cleanup EXIT

# Start the servers while the tests compile.
scripts/kafka.sh start &
kafka_job=$!
scripts/postgres.sh start &
postgres_job=$!
scripts/asyncapi.sh setup &
asyncapi_job=$!
scripts/book.sh setup >/dev/null &
book_job=$!
OPENORDER_TEST_SMTP_PYTHON="$(scripts/smtp.sh setup)"
export OPENORDER_TEST_SMTP_PYTHON
OPENORDER_TEST_SCHEMATHESIS="$(scripts/schemathesis.sh setup)"
export OPENORDER_TEST_SCHEMATHESIS
cargo build --workspace --all-targets --locked
wait "$kafka_job"
wait "$postgres_job"
# After postgres.sh: both may use apt-get, which takes one at a time.
OPENORDER_TEST_CHROMIUM="$(scripts/chromium.sh setup)"
export OPENORDER_TEST_CHROMIUM
# After chromium.sh, for the same reason (it installs promtool from Debian's packages if
# missing): the alert rules and their unit tests, the scrape configuration and the Grafana
# dashboard (deploy/prometheus, deploy/grafana).
scripts/prometheus.sh check
# promtool checks each running service's /metrics too (tests/e2e/metrics_exposition.rs).
OPENORDER_TEST_PROMTOOL="$(scripts/prometheus.sh setup)"
export OPENORDER_TEST_PROMTOOL
wait "$asyncapi_job"
# The committed AsyncAPI document is valid (a test keeps it equal to the generated one).
scripts/asyncapi.sh validate
wait "$book_job"
# The book builds, and every link of it and of README.md leads somewhere.
scripts/book.sh check

export OPENORDER_TEST_KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
export OPENORDER_TEST_POSTGRES_URL="postgres://openorder:openorder@127.0.0.1:$PG_PORT/postgres"
# PostgreSQL over TLS only, verified (see scripts/postgres.sh).
pg_tls="${PG_RUN_DIR:-/tmp/openorder-postgres-$PG_PORT}/tls"
export OPENORDER_TEST_POSTGRES_TLS_URL="postgres://openorder_tls:openorder@127.0.0.1:$PG_PORT/postgres?sslmode=verify-full&sslrootcert=$pg_tls/ca.pem"
export OPENORDER_TEST_POSTGRES_TLS_DIR="$pg_tls"
# Kafka's secured listeners and their certificates (see scripts/kafka.sh).
export OPENORDER_TEST_KAFKA_SASL_SSL_BOOTSTRAP="127.0.0.1:$((KAFKA_PORT + 2))"
export OPENORDER_TEST_KAFKA_MTLS_BOOTSTRAP="127.0.0.1:$((KAFKA_PORT + 3))"
export OPENORDER_TEST_KAFKA_TLS_DIR="${KAFKA_RUN_DIR:-/tmp/openorder-kafka-$KAFKA_PORT}/tls"
log="$(mktemp)"
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
# One closing line for the whole workspace (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
