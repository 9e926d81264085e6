#!/usr/bin/env bash
# A private Docker engine for the Compose tests, from Debian's packages, and the images
# those tests need that no registry here serves. Used by .ci/run and tests/deploy/engine.py.
#
#   engine.sh start   install docker.io/debootstrap if missing, start dockerd unless it answers
#   engine.sh images  the debian:bookworm-slim base (debootstrap) and the stand-in images,
#                     then drops images earlier builds left untagged
#   engine.sh stop    stop the daemon this script started
#   engine.sh host    print the DOCKER_HOST value
#   engine.sh status  exit 0 when the daemon answers
#
# Everything lives outside the repository: the data root (images, layer cache, volumes)
# under $NEBULA_TEST_DOCKER_ROOT, the socket and pid under $NEBULA_TEST_DOCKER_RUN. A warm
# machine reuses both: the base image is made once, and `docker build`'s layer cache
# rebuilds a stand-in only when its Dockerfile or files change.
#
# The daemon runs with the overlay2 storage driver where the kernel mounts overlayfs on the
# data root (probed once: a layer, or a container made from an image, is then a directory
# of changes), else with vfs, which works on any filesystem but copies the whole image for
# every build step and every container; NEBULA_TEST_DOCKER_DRIVER forces one. It runs with
# --iptables=false and --bridge=none: nothing touches the host's firewall, so containers
# reach each other on user-defined networks and the host reaches published ports through
# docker-proxy on 127.0.0.1, but they cannot reach out. Builds that need the package
# mirrors therefore run with the host's network (`--network host`).
set -euo pipefail

root=${NEBULA_TEST_DOCKER_ROOT:-/var/lib/nebula-test-docker}
run=${NEBULA_TEST_DOCKER_RUN:-/run/nebula-test-docker}
sock=$run/docker.sock
here=$(cd "$(dirname "$0")" && pwd)
# Debian's client (the same version as the daemon), whatever else is on PATH.
docker() { DOCKER_HOST=unix://$sock /usr/bin/docker "$@"; }

say() { echo "engine: $*" >&2; }

answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

storage_driver() {
  # overlay2 when an overlay mount works under the data root (ext4 and xfs do; overlayfs
  # on overlayfs, as inside another container, does not), else vfs.
  if [ -n "${NEBULA_TEST_DOCKER_DRIVER:-}" ]; then
    echo "$NEBULA_TEST_DOCKER_DRIVER"
    return 0
  fi
  local probe driver=vfs
  probe=$(mktemp -d "$root/overlay-probe.XXXXXX")
  mkdir "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
  if mount -t overlay overlay \
    -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    driver=overlay2
  fi
  rm -rf "$probe"
  echo "$driver"
}

install_packages() {
  local missing=()
  [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

start() {
  install_packages
  if answers; then
    say "dockerd answers on $sock"
    return 0
  fi
  mkdir -p "$root" "$run"
  local driver
  driver=$(storage_driver)
  say "starting dockerd (data root $root, socket $sock, storage driver $driver)"
  # setsid: the daemon outlives the shell that started it; `engine.sh stop` ends it.
  setsid /usr/sbin/dockerd \
    --host "unix://$sock" --data-root "$root/data" --exec-root "$run/exec" \
    --pidfile "$run/dockerd.pid" --storage-driver "$driver" \
    --iptables=false --ip6tables=false --bridge=none \
    >>"$root/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 120); do
    answers && { say "dockerd is up"; return 0; }
    sleep 0.5
  done
  say "dockerd did not answer within 60s; its log:"
  tail -n 30 "$root/dockerd.log" >&2
  return 1
}

stop() {
  local pid
  pid=$(cat "$run/dockerd.pid" 2>/dev/null) || { say "no dockerd pid file"; return 0; }
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || { say "dockerd stopped"; return 0; }
    sleep 0.5
  done
  say "dockerd $pid still running after 30s"
  return 1
}

base_recipe() {
  # What the base image is made from: this recipe, the apt sources, the host's added CAs.
  { declare -f base_image; cat "$here/debian.sources" /usr/local/share/ca-certificates/*.crt 2>/dev/null; } |
    sha256sum | cut -c1-16
}

base_image() {
  # debian:bookworm-slim as the official image is made: debootstrap minbase, imported.
  # Made again only when its recipe changed (the label), else reused.
  local recipe made
  recipe=$(base_recipe)
  made=$(docker image inspect --format '{{index .Config.Labels "nebula.test.recipe"}}' \
    debian:bookworm-slim 2>/dev/null || true)
  [ "$made" = "$recipe" ] && return 0
  say "making debian:bookworm-slim with debootstrap (a few minutes, once per machine)"
  local dir
  dir=$(mktemp -d /var/tmp/nebula-bookworm.XXXXXX)
  debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >"$root/debootstrap.log" 2>&1 \
    || { tail -n 30 "$root/debootstrap.log" >&2; rm -rf "$dir"; return 1; }
  # The official image's apt sources (deb822, with updates and security) and its trims.
  rm -f "$dir/etc/apt/sources.list"
  install -m 0644 "$here/debian.sources" "$dir/etc/apt/sources.list.d/debian.sources"
  # The certificate authorities this machine added locally (its HTTPS to PyPI goes through
  # an inspecting proxy): any image that installs ca-certificates then trusts them too.
  install -d "$dir/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/" 2>/dev/null || true
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/usr/share/doc/* \
    "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
  chmod 0755 "$dir"  # mktemp's 0700 would become the image's / (no way in for non-root)
  tar -C "$dir" -c . | docker import \
    --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL nebula.test.recipe=$recipe" \
    - debian:bookworm-slim >/dev/null
  rm -rf "$dir"
}

standins() {
  # Stand-ins for postgres:15, redis:7 and MinIO (see standins/README): same tags as
  # docker-compose.override.yml names, rebuilt from the layer cache when unchanged.
  local name
  for name in postgres redis seaweedfs; do
    say "building nebula-test/$name"
    docker build --quiet --network host -t "nebula-test/$name" "$here/standins/$name" >/dev/null
  done
}

prune() {
  # Images an earlier build left untagged (vfs keeps a full copy per layer): what the
  # current tags are built from stays, and with it the layer cache.
  docker image prune -f >/dev/null
}

leftovers() {
  # Containers and networks of an interrupted earlier run (this engine is the tests' own):
  # a restarted daemon brings `restart: unless-stopped` containers back, and a network
  # left behind makes the next stack's "Pool overlaps with other one on this address space".
  local ids
  ids=$(docker ps -aq)
  [ -z "$ids" ] || { say "removing containers an earlier run left"; docker rm -f $ids >/dev/null; }
  docker network prune -f >/dev/null
}

case ${1:-} in
  start) start ;;
  base) start && base_image ;;
  images) start && leftovers && base_image && standins && prune ;;
  stop) stop ;;
  host) echo "unix://$sock" ;;
  status) answers ;;
  *) echo "usage: $0 start|base|images|stop|host|status" >&2; exit 2 ;;
esac
