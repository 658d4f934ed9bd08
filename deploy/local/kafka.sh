# Apache Kafka 4, KRaft mode, one node (broker and controller in one JVM) on 127.0.0.1:9092,
# controller on 9093: the official jars from Maven Central (kafka/pom.xml) on Java 17.
# Data in var/kafka, log in var/log/kafka.log.

KAFKA_MAIN=kafka.Kafka
KAFKA_DIR=$VAR/kafka
KAFKA_JVM=(-Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
  -Djava.awt.headless=true -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties"
  -cp "$JARS/kafka/*")

kafka_install() { fetch_jars kafka; }

kafka_start() {
  if pid_of kafka "$KAFKA_MAIN" >/dev/null; then
    say "kafka is already running"
    return 0
  fi
  claim_port kafka 9092
  claim_port kafka 9093
  local java
  java=$(java_bin)
  mkdir -p "$KAFKA_DIR" "$LOGS"
  { cat "$HERE/kafka/server.properties"; say "log.dirs=$KAFKA_DIR/data"; } >"$KAFKA_DIR/server.properties"
  # The cluster id is drawn once (the tool logs to the same output: keep the id's line only);
  # the storage is formatted once with it.
  if [[ ! -s $KAFKA_DIR/cluster.id ]]; then
    "$java" "${KAFKA_JVM[@]}" kafka.tools.StorageTool random-uuid 2>>"$LOGS/kafka.log" |
      grep -E '^[A-Za-z0-9_-]{22}$' >"$KAFKA_DIR/cluster.id" ||
      start_failed kafka "could not draw a cluster id"
  fi
  if [[ ! -f $KAFKA_DIR/data/meta.properties ]]; then
    "$java" "${KAFKA_JVM[@]}" kafka.tools.StorageTool format --ignore-formatted \
      --cluster-id "$(<"$KAFKA_DIR/cluster.id")" --config "$KAFKA_DIR/server.properties" \
      >>"$LOGS/kafka.log" 2>&1 || start_failed kafka "could not format its storage"
  fi
  say "starting kafka on 127.0.0.1:9092"
  spawn kafka "$java" "${KAFKA_JVM[@]}" "$KAFKA_MAIN" "$KAFKA_DIR/server.properties"
  wait_for kafka "$KAFKA_MAIN" 120 kafka_answers
}

# kafka_answers: the broker serves a metadata request (an open port alone is not enough).
kafka_answers() {
  port_open 9092 && timeout 20 "${UV_RUN[@]}" python -c '
import asyncio
from aiokafka.admin import AIOKafkaAdminClient

async def main() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9092", request_timeout_ms=5000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()

asyncio.run(main())
' >/dev/null 2>&1
}

# kafka_topics: the project's topics, with partition counts from its settings.
kafka_topics() {
  say "creating topics (python -m darkroom.common.topics)"
  "${UV_RUN[@]}" python -m darkroom.common.topics || die "creating the topics failed"
}

kafka_stop() { terminate kafka "$KAFKA_MAIN" 60; }
kafka_status() { report kafka "$KAFKA_MAIN" 9092; }
