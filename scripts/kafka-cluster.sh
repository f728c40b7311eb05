#!/usr/bin/env bash
# A three-node Apache Kafka cluster (KRaft, each node broker + controller) on loopback, for
# the broker-loss chaos scenario: replication factor 3, min.insync.replicas 2.
#
#   scripts/kafka-cluster.sh start            # nodes 1-3 at 127.0.0.1:29292, :29294, :29296
#   scripts/kafka-cluster.sh stop-node N      # SIGKILL one node (its data stays)
#   scripts/kafka-cluster.sh start-node N     # start it again
#   scripts/kafka-cluster.sh stop | reset     # stop all | stop all and delete their data
#
# Jars are shared with scripts/kafka.sh (fetched from Maven Central once).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_PORT="${KAFKA_CLUSTER_BASE_PORT:-29292}"
RUN_DIR="${KAFKA_CLUSTER_RUN_DIR:-/tmp/openorder-kafka-cluster-$BASE_PORT}"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
LIB="${OPENORDER_CACHE:-$HOME/.cache/openorder}/kafka-$KAFKA_VERSION/lib"

port() { echo $((BASE_PORT + 2 * ($1 - 1))); }
controller_port() { echo $(($(port "$1") + 1)); }
voters() { echo "1@127.0.0.1:$(controller_port 1),2@127.0.0.1:$(controller_port 2),3@127.0.0.1:$(controller_port 3)"; }
bootstrap() { echo "127.0.0.1:$(port 1),127.0.0.1:$(port 2),127.0.0.1:$(port 3)"; }

format_node() {
  local n=$1 dir="$RUN_DIR/node$1" cluster_id=$2
  mkdir -p "$dir/data"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
listeners=PLAINTEXT://127.0.0.1:$(port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port "$n")
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.voters=$(voters)
log.dirs=$dir/data
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
unclean.leader.election.enable=false
PROPS
  java -cp "$LIB/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >"$dir/format.log" 2>&1
}

start_node() {
  local n=$1 dir="$RUN_DIR/node$1"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then return; fi
  nohup java -Xms128m -Xmx384m -XX:+UseSerialGC -cp "$LIB/*" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
  echo $! >"$dir/pid"
}

wait_node() {
  local dir="$RUN_DIR/node$1"
  for _ in $(seq 1 240); do
    if grep -q "Kafka Server started" "$dir/kafka.log" 2>/dev/null; then return; fi
    sleep 0.5
  done
  tail -20 "$dir/kafka.log" >&2
  echo "kafka-cluster.sh: node $1 not ready" >&2
  exit 1
}

stop_node() {
  local dir="$RUN_DIR/node$1"
  if [ -f "$dir/pid" ]; then kill -9 "$(cat "$dir/pid")" 2>/dev/null || true; rm -f "$dir/pid"; fi
}

case "${1:-}" in
  start)
    scripts/kafka.sh fetch
    if [ ! -f "$RUN_DIR/node1/data/meta.properties" ]; then
      rm -rf "$RUN_DIR"
      id="$(java -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null)"
      for n in 1 2 3; do format_node "$n" "$id"; done
    fi
    for n in 1 2 3; do start_node "$n"; done
    for n in 1 2 3; do wait_node "$n"; done
    echo "kafka-cluster.sh: three nodes ready at $(bootstrap)" >&2
    ;;
  stop-node) stop_node "$2" ;;
  start-node) start_node "$2"; wait_node "$2" ;;
  stop) for n in 1 2 3; do stop_node "$n"; done ;;
  reset) for n in 1 2 3; do stop_node "$n"; done; rm -rf "$RUN_DIR" ;;
  bootstrap) bootstrap ;;
  *) echo "usage: $0 start|stop-node N|start-node N|stop|reset|bootstrap" >&2; exit 2 ;;
esac
