"""Whether a port can be bound, without the web stack (``nebula up`` checks its ports
before it starts anything, and must not import aiohttp to do so)."""

from __future__ import annotations

import socket


def bind_refusal(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be bound now (a plain bind, no ``SO_REUSEPORT``: it fails
    against any listener, ours included), or None when it is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None
