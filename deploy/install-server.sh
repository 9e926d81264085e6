#!/usr/bin/env bash
# Set up push-to-deploy for the user who runs it, on the server:
#   ~/nebula.git     bare repository; its hooks/proc-receive deploys pushes to main and
#                    moves main only when the new stack is healthy
#   ~/nebula-live    the live checkout Compose runs from (.env and data/ live here)
# and print the `git remote add` line for the laptop. Running it again updates the hooks.
#   usage: bash deploy/install-server.sh
#   NEBULA_DEPLOY_REPO / NEBULA_DEPLOY_LIVE_DIR override the two paths,
#   NEBULA_DEPLOY_SSH_HOST the host name printed in the remote line,
#   NEBULA_DEPLOY_BRANCH the branch that deploys (default main).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=${NEBULA_DEPLOY_REPO:-$HOME/nebula.git}
live=${NEBULA_DEPLOY_LIVE_DIR:-$HOME/nebula-live}
host=${NEBULA_DEPLOY_SSH_HOST:-$(hostname -f 2>/dev/null || hostname)}
branch=${NEBULA_DEPLOY_BRANCH:-main}
docker=${NEBULA_DEPLOY_DOCKER:-docker}

for tool in git flock; do
  command -v "$tool" >/dev/null || { echo "install-server: $tool is needed" >&2; exit 1; }
done
# proc-receive (the hook that may reject a push with a reason) is git 2.29 or newer.
git_version=$(git version | awk '{print $3}')
if ! printf '2.29\n%s\n' "$git_version" | sort -V -C; then
  echo "install-server: git $git_version is too old: 2.29 or newer is needed" >&2
  exit 1
fi
if ! $docker compose version >/dev/null 2>&1 && ! docker-compose version >/dev/null 2>&1; then
  echo "install-server: warning: neither '$docker compose' nor docker-compose runs;" \
    "install Docker (with the compose plugin, or Debian's docker.io and docker-compose)" \
    "before the first push" >&2
fi

if [ ! -d "$repo" ]; then
  git init --quiet --bare --initial-branch=main "$repo"
fi
install -m 0755 "$here/proc-receive" "$repo/hooks/proc-receive"
install -m 0755 "$here/wait-healthy.sh" "$repo/hooks/wait-healthy.sh"
rm -f "$repo/hooks/post-receive"  # the deploy hook of earlier versions
# Pushes to branches go through hooks/proc-receive, which moves them itself: the deploy
# branch only once its commit runs healthy, the others at once.
git --git-dir="$repo" config receive.procReceiveRefs refs/heads
# Defaults the hook reads; the environment of a push still wins.
cat >"$repo/hooks/deploy.env" <<CONF
# written by install-server.sh
: "\${NEBULA_DEPLOY_LIVE_DIR:=$live}"
: "\${NEBULA_DEPLOY_BRANCH:=$branch}"
CONF

mkdir -p "$live"/data/{minio_storage,postgres_data,redis_data,tailscale}

echo "Nebula deploy target ready:"
echo "  bare repo  $repo (hook: $repo/hooks/proc-receive, deploys $branch)"
echo "  live dir   $live (its .env is created on the first deploy; log: $live/deploy.log)"
echo
echo "On the laptop, in the nebula checkout:"
echo "  git remote add nebula ssh://${USER:-$(id -un)}@$host$repo"
echo "  git push nebula main"
