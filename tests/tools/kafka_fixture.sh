#!/usr/bin/env bash
# The integration tests' broker (a CTest fixture): tests/tools/kafka_fixture.sh start|stop
#
# start: the broker scripts/kafka runs from var/kafka (one a developer keeps running), when
#        it is up, is used as it is; otherwise a test broker is started on an empty state
#        directory, var/kafka-test. Every run makes its topics under a fresh prefix (about
#        1,500 per run), so a state kept across runs would grow until the broker runs out of
#        file handles.
# stop:  stops the test broker (never the developer's).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
kafka=$here/scripts/kafka
test_dir=$here/var/kafka-test
case "${1:-}" in
  start)
    if "$kafka" status >/dev/null 2>&1; then
      echo "using the running broker at $("$kafka" bootstrap)"
      exit 0
    fi
    BUDSTIKKE_KAFKA_DIR=$test_dir "$kafka" reset
    BUDSTIKKE_KAFKA_DIR=$test_dir "$kafka" start
    ;;
  stop)
    BUDSTIKKE_KAFKA_DIR=$test_dir "$kafka" stop
    ;;
  *)
    echo "usage: tests/tools/kafka_fixture.sh start|stop" >&2
    exit 2
    ;;
esac
