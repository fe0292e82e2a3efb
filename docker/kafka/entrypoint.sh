#!/bin/bash
# Formats the storage once, then runs the broker with the rendered command line.
# KAFKA_CFG_<KEY>=value sets server.properties' <key> (lower case, `_` for `.`), e.g.
# KAFKA_CFG_ADVERTISED_LISTENERS=PLAINTEXT://127.0.0.1:32768,CONTROLLER://127.0.0.1:9093
set -euo pipefail
home=/var/lib/clickstream/kafka
conf=$home/server.properties
for var in $(compgen -e | grep '^KAFKA_CFG_' || true); do
  key=$(tr 'A-Z_' 'a-z.' <<<"${var#KAFKA_CFG_}")
  sed -i "/^${key//./\\.}=/d" "$conf"
  printf '%s=%s\n' "$key" "${!var}" >>"$conf"
done
mkdir -p "$home/data" "$home/logs"
if [ ! -e "$home/data/meta.properties" ]; then
  cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
  mapfile -t format < /opt/clickstream/format.args
  "${format[@]//CLUSTER_ID/$cluster_id}" >/dev/null
fi
mapfile -t command < /opt/clickstream/command.args
exec "${command[@]}"
