#!/bin/bash
# The official image's start-up: `redis-server ARGS` as the redis user in /data, with
# protected mode off (the official build's default) so other containers may connect.
set -euo pipefail
if [ "${1:-}" = redis-server ]; then
  shift
  chown -R redis:redis /data
  exec setpriv --reuid=redis --regid=redis --init-groups redis-server --protected-mode no "$@"
fi
exec "$@"
