"""Nebula's core, the bottom layer: what every process needs and no rule of Nebula's own.

Owns the one typed configuration object (``config``), JSON logging (``logs``), the sync
S3 backend client and its botocore signer (``s3``), the one async backend client
(``backend``), the HLS ladder's layout, names and content types (``hls``), the client
allow-list (``netguard``), serving an aiohttp app on its configured address (``web``),
``/healthz`` and ``/metrics``
(``ops``, which is handed its checks and gauges and knows no catalog), the one way to
run blocking work off the event loop (``blocking``), Prometheus helpers (``prometheus``)
and private (0600/0700) files (``private``).

May import: no Nebula package (enforced by the import-linter contract in setup.cfg).
"""
