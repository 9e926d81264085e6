"""Debian's nginx as a zero-logic pass-through to the backend: the reference proxy.

The bench starts it with a generated config in a temp dir: one process
(``master_process off``, so its CPU time is one pid's), no logging, HTTP/1.1 keep-alive to
the backend, no buffering of bodies either way, ``Host`` passed through (the client's
SigV4 signature covers it, and the backend checks it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from nebula.storage import free_internal_port
from tests.harness import Spawned, spawn, stop, wait_listening

NGINX = "/usr/sbin/nginx"

CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream backend {{
        server {backend};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


@contextlib.contextmanager
def pass_through(root: Path, backend_url: str) -> Iterator[Spawned]:
    """nginx on a free port in front of ``backend_url``; its ``url`` is the endpoint."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_internal_port()
    config = root / "nginx.conf"
    config.write_text(CONFIG.format(root=root, backend=urlsplit(backend_url).netloc, port=port))
    spawned = spawn(
        "nginx", [NGINX, "-p", str(root), "-c", str(config)], None, root / "nginx.log", port=port
    )
    try:
        wait_listening(spawned, timeout=15)
        yield spawned
    finally:
        stop(spawned)
