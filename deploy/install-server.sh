#!/usr/bin/env bash
# Set up push-to-deploy for the user who runs it, on the server:
#   ~/nebula.git     bare repository; its hooks/post-receive deploys pushes to main
#   ~/nebula-live    the live checkout Compose runs from (.env and data/ live here)
# and print the `git remote add` line for the laptop. Running it again updates the hooks.
#   usage: bash deploy/install-server.sh
#   NEBULA_DEPLOY_REPO / NEBULA_DEPLOY_LIVE_DIR override the two paths,
#   NEBULA_DEPLOY_SSH_HOST the host name printed in the remote line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=${NEBULA_DEPLOY_REPO:-$HOME/nebula.git}
live=${NEBULA_DEPLOY_LIVE_DIR:-$HOME/nebula-live}
host=${NEBULA_DEPLOY_SSH_HOST:-$(hostname -f 2>/dev/null || hostname)}

for tool in git flock; do
  command -v "$tool" >/dev/null || { echo "install-server: $tool is needed" >&2; exit 1; }
done
if ! ${NEBULA_DEPLOY_DOCKER:-docker} compose version >/dev/null 2>&1; then
  echo "install-server: warning: '${NEBULA_DEPLOY_DOCKER:-docker} compose' does not run;" \
    "install Docker Engine with the compose plugin before the first push" >&2
fi

if [ ! -d "$repo" ]; then
  git init --quiet --bare --initial-branch=main "$repo"
fi
install -m 0755 "$here/post-receive" "$repo/hooks/post-receive"
install -m 0755 "$here/wait-healthy.sh" "$repo/hooks/wait-healthy.sh"
# Defaults the hook reads; the environment of a push still wins.
cat >"$repo/hooks/deploy.env" <<CONF
# written by install-server.sh
: "\${NEBULA_DEPLOY_LIVE_DIR:=$live}"
CONF

mkdir -p "$live"/data/{minio_storage,postgres_data,redis_data,tailscale}

echo "Nebula deploy target ready:"
echo "  bare repo  $repo (hook: $repo/hooks/post-receive)"
echo "  live dir   $live (its .env is created on the first deploy; log: $live/deploy.log)"
echo
echo "On the laptop, in the nebula checkout:"
echo "  git remote add nebula ssh://${USER:-$(id -un)}@$host$repo"
echo "  git push nebula main"
