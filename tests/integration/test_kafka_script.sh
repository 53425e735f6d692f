#!/usr/bin/env bash
# scripts/kafka: start returns only when the broker accepts connections and prints its
# address; starting twice is harmless; stop leaves no process; start/stop/start works.
set -u
script=$1
export BUDSTIKKE_KAFKA_DIR=$2
export BUDSTIKKE_KAFKA_PORT=19192
marker="-Dbudstikke.kafka.dir=$BUDSTIKKE_KAFKA_DIR"
failures=0
check() { # description, command...
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}
no_process() { ! pgrep -f -- "$marker" >/dev/null; }
one_process() { [ "$(pgrep -f -- "$marker" | wc -l)" -eq 1 ]; }
accepts() { kcat -b 127.0.0.1:$BUDSTIKKE_KAFKA_PORT -L -m 5 2>/dev/null | grep -q "broker 1 at"; }

rm -rf "$BUDSTIKKE_KAFKA_DIR"
trap '"$script" stop >/dev/null 2>&1; rm -rf "$BUDSTIKKE_KAFKA_DIR"' EXIT

out=$("$script" start) ; rc=$?
check "first start exits 0" [ $rc -eq 0 ]
check "start prints the bootstrap address" [ "$out" = "127.0.0.1:$BUDSTIKKE_KAFKA_PORT" ]
check "broker accepts connections after start" accepts
out=$("$script" start) ; rc=$?
check "second start is harmless" [ $rc -eq 0 ]
check "second start prints the address" [ "$out" = "127.0.0.1:$BUDSTIKKE_KAFKA_PORT" ]
check "still exactly one broker process" one_process
check "status says running" bash -c "'$script' status | grep -q '^running'"
seq 1 10 | kcat -b 127.0.0.1:$BUDSTIKKE_KAFKA_PORT -P -t keep 2>/dev/null || true
"$script" stop ; rc=$?
check "stop exits 0" [ $rc -eq 0 ]
check "stop leaves no broker process" no_process
check "status says stopped" bash -c "'$script' status | grep -q '^stopped'"
"$script" stop ; rc=$?
check "stop when stopped is harmless" [ $rc -eq 0 ]
out=$("$script" start) ; rc=$?
check "start after stop exits 0" [ $rc -eq 0 ]
check "broker accepts connections after restart" accepts
"$script" stop
check "final stop leaves no broker process" no_process
echo "kafka script: $failures failure(s)"
[ $failures -eq 0 ]
