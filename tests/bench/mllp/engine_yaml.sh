# Sourced by the MLLP bench scripts: writes the engine's configuration for the benchmark.
# usage: engine_yaml FILE PORT TOPIC_PREFIX
# Environment: LINGER_MS (kafka.linger_ms), PARTITIONS (kafka.partitions), COMPRESSION
# (kafka.compression), THREADS (the
# MLLP source's I/O threads, default 2), KAFKA_PROPERTIES (kafka.properties as the inside of
# a YAML flow map, e.g. 'socket.nagle.disable: "true"'), STATS_MS
# (kafka.statistics_interval_ms, default 5000 here); unset ones take the engine's defaults.
# The admin API listens on PORT+1 with the token "bench" (for the budstikke_kafka_* metrics).
engine_yaml() {
  cat > "$1" <<YAML
kafka:
  bootstrap_servers: $(scripts/kafka bootstrap)
  topic_prefix: "$3"
${LINGER_MS:+  linger_ms: $LINGER_MS}
${PARTITIONS:+  partitions: $PARTITIONS}
${COMPRESSION:+  compression: $COMPRESSION}
${KAFKA_PROPERTIES:+  properties: {$KAFKA_PROPERTIES\}}
  statistics_interval_ms: ${STATS_MS:-5000}
admin:
  port: $(($2 + 1))
  token: bench
privacy:
  key_secret: benchmark-secret-0123456789
log:
  level: warn
sources:
  - name: mllp
    type: mllp
    port: $2
    threads: ${THREADS:-2}
YAML
}
