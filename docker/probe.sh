#!/bin/bash
# Healthcheck by protocol, with nothing but bash and coreutils in the image:
#   probe.sh kafka PORT         an ApiVersions request answered with error code 0
#                               (the broker processes requests only once it has started)
#   probe.sh cql PORT           a CQL OPTIONS request answered with SUPPORTED
#   probe.sh spark-master PORT  the master's /json/ says ALIVE
#   probe.sh spark-worker PORT  the worker's /json/ names its master
set -euo pipefail
kind=$1 port=$2
exec 3<>"/dev/tcp/127.0.0.1/$port"
case $kind in
  kafka)
    # size 10 | api_key 18 (ApiVersions) v0 | correlation id 1 | client id null
    printf '\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff' >&3
    reply=$(timeout 5 head -c 10 <&3 | od -An -tx1 | tr -d ' \n')
    [ "${reply:8:12}" = 000000010000 ] ;;
  cql)
    # protocol v4 request, stream 0, opcode OPTIONS (5), empty body
    printf '\x04\x00\x00\x00\x05\x00\x00\x00\x00' >&3
    reply=$(timeout 5 head -c 5 <&3 | od -An -tx1 | tr -d ' \n')
    [ "$reply" = 8400000006 ] ;;  # a v4 response, opcode SUPPORTED (6)
  spark-master|spark-worker)
    printf 'GET /json/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    body=$(timeout 5 cat <&3)
    if [ "$kind" = spark-master ]; then grep -q '"status" : "ALIVE"' <<<"$body"
    else grep -q '"masterwebuiurl"' <<<"$body"; fi ;;
  *) echo "probe.sh: unknown kind $kind" >&2; exit 2 ;;
esac
