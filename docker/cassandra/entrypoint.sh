#!/bin/bash
# Runs the node with the rendered command line. CQL binds 0.0.0.0; the address the node
# announces to clients is CASSANDRA_BROADCAST_RPC_ADDRESS, by default this container's own.
set -euo pipefail
home=/var/lib/clickstream/cassandra
address=${CASSANDRA_BROADCAST_RPC_ADDRESS:-$(hostname -i | cut -d' ' -f1)}
sed -i "s/^broadcast_rpc_address: .*/broadcast_rpc_address: $address/" "$home/conf/cassandra.yaml"
mkdir -p "$home"/{data,commitlog,saved_caches,hints,cdc_raw,logs}
mapfile -t command < /opt/clickstream/command.args
exec "${command[@]}"
