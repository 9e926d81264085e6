#!/usr/bin/env bash
# Wait until every container of the Compose project in the current directory is healthy:
# each service's Docker healthcheck is `python3 -m nebula.probe s3proxy|origin|worker|edge`
# (/healthz answered 200, the worker's heartbeat is fresh), or the store's own check.
# A one-shot container (migrate) counts once it has exited 0.
#   usage: wait-healthy.sh [TIMEOUT_SECONDS]     exit 0 healthy, 1 not within the timeout
#   NEBULA_DEPLOY_COMPOSE (default `docker compose`) and NEBULA_DEPLOY_DOCKER (default docker)
#   name the commands.
set -uo pipefail

docker=${NEBULA_DEPLOY_DOCKER:-docker}
compose=${NEBULA_DEPLOY_COMPOSE:-$docker compose}
timeout=${1:-300}
interval=${NEBULA_DEPLOY_HEALTH_INTERVAL:-5}
format='{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}}'

not_ready() {
  local ids
  ids=$($compose ps -a -q) || { echo "($compose ps failed)"; return; }
  [ -n "$ids" ] || { echo "(no containers)"; return; }
  # shellcheck disable=SC2086  # one argument per container id
  $docker inspect --format "$format" $ids | awk '
    $3 == "healthy" { next }
    $2 == "exited" && $3 == "none" && $4 == "0" { next }
    { sub("^/", "", $1); printf "%s(%s,%s) ", $1, $2, $3 }'
}

deadline=$((SECONDS + timeout))
last=""
while :; do
  pending=$(not_ready)
  if [ -z "$pending" ]; then
    echo "nebula: every service is healthy"
    exit 0
  fi
  if [ "$pending" != "$last" ]; then
    echo "nebula: waiting for $pending"
    last=$pending
  fi
  if ((SECONDS >= deadline)); then
    echo "nebula: not healthy after ${timeout}s: $pending"
    exit 1
  fi
  sleep "$interval"
done
