#!/usr/bin/env bash
# Starts (and stops) on 127.0.0.1 the real services the ignored tests need,
# installing them first when missing. Used by scripts/test.sh.
#
#   scripts/services.sh start   # install if needed, start, wait until ready
#   scripts/services.sh stop    # stop what `start` started (by PID)
#
# Alertmanager: 127.0.0.1:9093, routing every alert to a webhook receiver that
# the tests run on 127.0.0.1:19095 (group_wait 1s, see ../shared/SERVICES.md).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=.services
mkdir -p "$STATE"

start_alertmanager() {
  if ! command -v prometheus-alertmanager >/dev/null; then
    echo "installing prometheus-alertmanager (apt)" >&2
    apt-get update -qq >/dev/null 2>&1 || echo "apt-get update failed; installing from the lists already on the machine" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager >/dev/null
  fi
  local dir="$STATE/alertmanager"
  rm -rf "$dir" && mkdir -p "$dir/data"
  cat > "$dir/alertmanager.yml" <<'YAML'
route:
  receiver: vane-test
  group_by: [alertname, app]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: vane-test
    webhook_configs:
      - url: http://127.0.0.1:19095/alerts
        send_resolved: true
YAML
  prometheus-alertmanager --config.file="$dir/alertmanager.yml" --storage.path="$dir/data" \
    --web.listen-address=127.0.0.1:9093 --cluster.listen-address= \
    --web.external-url=http://127.0.0.1:9093 >"$dir/log" 2>&1 &
  echo $! > "$STATE/alertmanager.pid"
  for _ in $(seq 1 100); do
    if curl -sf http://127.0.0.1:9093/-/ready >/dev/null; then
      echo "alertmanager ready on 127.0.0.1:9093" >&2
      return 0
    fi
    sleep 0.2
  done
  echo "alertmanager did not become ready; its log:" >&2
  cat "$dir/log" >&2
  return 1
}

stop_all() {
  for pidfile in "$STATE"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  start) stop_all; start_alertmanager ;;
  stop) stop_all ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
