#!/usr/bin/env bash
# Apache Kafka (KRaft, single node, broker+controller) on loopback, for tests and local use.
# Jars come from Maven Central once and are cached in ~/.cache/openorder (outside the checkout).
#
#   scripts/kafka.sh start    # prints nothing but progress; the broker is at 127.0.0.1:$KAFKA_PORT
#   scripts/kafka.sh stop     # stops it; its data stays, and `start` resumes with it
#   scripts/kafka.sh reset    # stops it and deletes its data
#
# Besides PLAINTEXT on KAFKA_PORT it listens with SASL_SSL (SCRAM-SHA-512, user `openorder`,
# password `openorder-scram-secret`) on KAFKA_PORT+2 and with SSL requiring a client
# certificate (mTLS) on KAFKA_PORT+3, with certificates from scripts/tls.sh in
# $KAFKA_RUN_DIR/tls (its ca.pem is the CA clients must trust).
#
# Environment: KAFKA_VERSION (4.1.1), KAFKA_PORT (29092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1),
# KAFKA_RUN_DIR (/tmp/openorder-kafka-$KAFKA_PORT), KAFKA_NODE_ID (1), KAFKA_JVM (the JVM's
# heap and collector: as `kafka-server-start.sh` ships them, 1 GiB and G1 with 20 ms pauses; a
# smaller heap filled up once a few thousand test partitions existed, and its full collections,
# ~0.6 s each every few seconds, were the slowest hop of every bench on this broker).
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_PORT="${KAFKA_PORT:-29092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_RUN_DIR="${KAFKA_RUN_DIR:-/tmp/openorder-kafka-$KAFKA_PORT}"
KAFKA_NODE_ID="${KAFKA_NODE_ID:-1}"
KAFKA_JVM="${KAFKA_JVM:--Xms1g -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent}"
KAFKA_SASL_SSL_PORT=$((KAFKA_PORT + 2))
KAFKA_MTLS_PORT=$((KAFKA_PORT + 3))
TLS="$KAFKA_RUN_DIR/tls"
CACHE="${OPENORDER_CACHE:-$HOME/.cache/openorder}"
LIB="$CACHE/kafka-$KAFKA_VERSION/lib"

fetch() {
  if [ -f "$LIB/.complete" ]; then return; fi
  echo "kafka.sh: fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central" >&2
  local pom_dir
  pom_dir="$(mktemp -d)"
  cat > "$pom_dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>openorder</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
POM
  mkdir -p "$LIB"
  mvn -q -B -f "$pom_dir/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB"
  rm -rf "$pom_dir"
  touch "$LIB/.complete"
}

ready() {
  # The server logs this once the broker is unfenced and its listeners accept requests;
  # clients still check Metadata themselves before relying on it.
  grep -q "Kafka Server started" "$KAFKA_RUN_DIR/kafka.log" 2>/dev/null &&
    (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null
}

start() {
  fetch
  if [ -f "$KAFKA_RUN_DIR/pid" ] && kill -0 "$(cat "$KAFKA_RUN_DIR/pid")" 2>/dev/null; then
    echo "kafka.sh: already running on 127.0.0.1:$KAFKA_PORT" >&2
    return
  fi
  # A run directory from before the secured listeners is made again.
  if ! grep -q SASL_SSL "$KAFKA_RUN_DIR/server.properties" 2>/dev/null; then
    rm -f "$KAFKA_RUN_DIR/data/meta.properties"
  fi
  if [ ! -f "$KAFKA_RUN_DIR/data/meta.properties" ]; then
    rm -rf "$KAFKA_RUN_DIR"
    mkdir -p "$KAFKA_RUN_DIR/data"
    "$(dirname "$0")/tls.sh" "$TLS"
    cat > "$KAFKA_RUN_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT,SSL://127.0.0.1:$KAFKA_MTLS_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT,SSL://127.0.0.1:$KAFKA_MTLS_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS/server.p12
ssl.keystore.password=openorder
ssl.key.password=openorder
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
listener.name.ssl.ssl.client.auth=required
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
log.dirs=$KAFKA_RUN_DIR/data
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
    local cluster_id
    cluster_id="$(java -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null)"
    java -cp "$LIB/*" kafka.tools.StorageTool format --standalone -t "$cluster_id" \
      --add-scram 'SCRAM-SHA-512=[name=openorder,password=openorder-scram-secret]' \
      -c "$KAFKA_RUN_DIR/server.properties" >"$KAFKA_RUN_DIR/format.log" 2>&1
  fi
  # shellcheck disable=SC2086 # KAFKA_JVM is a list of options
  nohup java $KAFKA_JVM -cp "$LIB/*" kafka.Kafka "$KAFKA_RUN_DIR/server.properties" \
    >"$KAFKA_RUN_DIR/kafka.log" 2>&1 &
  echo $! >"$KAFKA_RUN_DIR/pid"
  for _ in $(seq 1 240); do
    if ready; then
      echo "kafka.sh: Apache Kafka $KAFKA_VERSION ready on 127.0.0.1:$KAFKA_PORT" >&2
      return
    fi
    if ! kill -0 "$(cat "$KAFKA_RUN_DIR/pid")" 2>/dev/null; then
      tail -30 "$KAFKA_RUN_DIR/kafka.log" >&2
      echo "kafka.sh: Kafka exited during start-up" >&2
      exit 1
    fi
    sleep 0.5
  done
  tail -30 "$KAFKA_RUN_DIR/kafka.log" >&2
  echo "kafka.sh: Kafka not ready after 120 s" >&2
  exit 1
}

stop() {
  if [ -f "$KAFKA_RUN_DIR/pid" ]; then
    local pid
    pid="$(cat "$KAFKA_RUN_DIR/pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$KAFKA_RUN_DIR/pid"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  reset) stop; rm -rf "$KAFKA_RUN_DIR" ;;
  fetch) fetch ;;
  *) echo "usage: $0 start|stop|reset|fetch" >&2; exit 2 ;;
esac
