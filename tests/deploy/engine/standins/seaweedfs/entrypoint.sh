#!/bin/bash
# `server DIR` as MinIO takes it: one S3 identity from MINIO_ROOT_USER/PASSWORD, data in DIR.
set -euo pipefail
[ "${1:-}" = server ] || exec "$@"
dir=${2:-/data}
mkdir -p "$dir"
config=/run/s3-identities.json
python3 - "$config" <<'PY'
import json, os, sys
identity = {
    "name": "root",
    "credentials": [
        {"accessKey": os.environ.get("MINIO_ROOT_USER", "minioadmin"),
         "secretKey": os.environ.get("MINIO_ROOT_PASSWORD", "minioadmin")}
    ],
    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
}
with open(sys.argv[1], "w") as out:
    json.dump({"identities": [identity]}, out)
PY
chmod 600 "$config"
exec weed mini -dir="$dir" -ip.bind=0.0.0.0 -s3.port=9000 -s3.config="$config" \
  -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false \
  -s3.autoCreateBucket=false -master.telemetry=false  # as MinIO: no bucket made by a write, no reports
