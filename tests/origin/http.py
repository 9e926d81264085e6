"""A tiny HTTP client for the tests: raw paths go out exactly as written (no normalising)."""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        """The header, or None: for asserting that it is absent."""
        return self.headers.get(name)

    def need(self, name: str) -> str:
        """A header the reply must carry; its absence fails the test."""
        value = self.headers.get(name)
        assert value is not None, f"no {name} header in {self.status} reply: {dict(self.headers)}"
        return value


def request(
    base_url: str, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> Reply:
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        own_host = any(name.lower() == "host" for name in headers or {})  # as given
        conn.putrequest(method, path, skip_host=own_host, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def gauge(base_url: str, name: str) -> float:
    """One sample of the service's /metrics; it must be there."""
    metrics = request(base_url, "/metrics").body.decode()
    match = re.search(rf"^{name} (\S+)$", metrics, re.M)
    assert match, metrics
    return float(match.group(1))
