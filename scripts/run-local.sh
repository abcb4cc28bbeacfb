#!/usr/bin/env bash
# A local Gauntlet stack on this machine: generated metrics for two HA replicas
# (48h, 30s scrape interval) written as Prometheus blocks by promtool, uploaded with
# external labels into a filesystem bucket under ./.gauntlet/bucket, verified, then served
# by a store gateway and a querier on 127.0.0.1 until Ctrl-C, with a compactor merging and
# downsampling the bucket every 5 minutes (HA replicas merged by penalty deduplication).
# Beside it a real Prometheus 2.42 (scraping itself and the Gauntlet components, 2h blocks)
# runs with a sidecar serving its recent data and shipping its blocks; WITH_PROMETHEUS=0
# leaves those two out.
# A ruler (scripts/rules.example.yml) evaluates through the querier, ships its blocks to the
# bucket and sends its alerts to an Alertmanager on 127.0.0.1:19093.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh run
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -q -p gauntlet -p testkit

work=.gauntlet
bin=target/release
rm -rf "$work"
mkdir -p "$work/bucket"
cat > "$work/objstore.yml" <<YAML
type: FILESYSTEM
config:
  directory: $PWD/$work/bucket
YAML

hours=${HOURS:-48}
for replica in a b; do
  echo "generating ${hours}h of metrics for replica $replica"
  "$bin/gen-openmetrics" "$hours" "$replica" > "$work/$replica.om"
  promtool tsdb create-blocks-from openmetrics "$work/$replica.om" "$work/blocks/$replica" > /dev/null
  "$bin/gauntlet" tools bucket upload-blocks --objstore.config-file="$work/objstore.yml" \
    --path="$work/blocks/$replica" --label="cluster=\"local\"" --label="replica=\"$replica\""
done

"$bin/gauntlet" tools bucket inspect --objstore.config-file="$work/objstore.yml"
"$bin/gauntlet" tools bucket verify --objstore.config-file="$work/objstore.yml"
echo
echo "bucket: $PWD/$work/bucket (objstore config: $work/objstore.yml)"

"$bin/gauntlet" store --objstore.config-file="$work/objstore.yml" --data-dir="$work/store" \
  --http-address=127.0.0.1:10912 --grpc-address=127.0.0.1:10911 &
store_pid=$!
pids="$store_pid"
"$bin/gauntlet" compact --objstore.config-file="$work/objstore.yml" --data-dir="$work/compact" \
  --http-address=127.0.0.1:10932 --wait --wait-interval=5m --consistency-delay=0s \
  --deduplication.replica-label=replica --deduplication.func=penalty > "$work/compact.log" 2>&1 &
pids="$pids $!"
trap 'kill $pids 2>/dev/null' EXIT
endpoints="--endpoint=127.0.0.1:10911"

if [ "${WITH_PROMETHEUS:-1}" = 1 ]; then
  mkdir -p "$work/prometheus"
  cat > "$work/prometheus.yml" <<YAML
global:
  scrape_interval: 15s
  external_labels:
    cluster: local
    replica: prom
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ['127.0.0.1:19090']}]
  - job_name: gauntlet
    static_configs: [{targets: ['127.0.0.1:10902', '127.0.0.1:10912', '127.0.0.1:10922']}]
YAML
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
    --web.listen-address=127.0.0.1:19090 --storage.tsdb.min-block-duration=2h \
    --storage.tsdb.max-block-duration=2h --storage.tsdb.retention.time=1d > "$work/prometheus.log" 2>&1 &
  pids="$pids $!"
  "$bin/gauntlet" sidecar --prometheus.url=http://127.0.0.1:19090 --tsdb.path="$work/prometheus" \
    --objstore.config-file="$work/objstore.yml" --http-address=127.0.0.1:10922 --grpc-address=127.0.0.1:10921 &
  pids="$pids $!"
  endpoints="$endpoints --endpoint=127.0.0.1:10921"
  echo "prometheus: http://127.0.0.1:19090, sidecar: http://127.0.0.1:10922/metrics"
fi
mkdir -p "$work/am"
printf 'route:\n  receiver: none\nreceivers:\n  - name: none\n' > "$work/am/am.yml"
prometheus-alertmanager --config.file="$work/am/am.yml" --storage.path="$work/am" \
  --web.listen-address=127.0.0.1:19093 --cluster.listen-address= > "$work/alertmanager.log" 2>&1 &
pids="$pids $!"
"$bin/gauntlet" rule --rule-file=scripts/rules.example.yml --query=127.0.0.1:10902 \
  --alertmanagers.url=http://127.0.0.1:19093 --label='replica="ruler"' --data-dir="$work/rule" \
  --objstore.config-file="$work/objstore.yml" --alert.query-url=http://127.0.0.1:10902 \
  --http-address=127.0.0.1:10942 --grpc-address=127.0.0.1:10941 > "$work/rule.log" 2>&1 &
pids="$pids $!"
endpoints="$endpoints --endpoint=127.0.0.1:10941"
echo "ruler: http://127.0.0.1:10942/api/v1/rules, alerts at /api/v1/alerts (log: $work/rule.log)"
echo "alertmanager: http://127.0.0.1:19093 (amtool alert query --alertmanager.url=http://127.0.0.1:19093)"
echo
echo "store gateway: http://127.0.0.1:10912 (loaded blocks), gRPC StoreAPI on 127.0.0.1:10911"
echo "compactor: http://127.0.0.1:10932 (block viewer; log: $work/compact.log)"
echo
echo "UI: open http://127.0.0.1:10902 (graph, stores, rules, alerts; API at /api/v1/...)"
echo
"$bin/gauntlet" query $endpoints --query.replica-label=replica \
  --http-address=127.0.0.1:10902 --grpc-address=127.0.0.1:10901
