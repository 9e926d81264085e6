"""Nebula's queue layer: the Huey instance and the outbox relay.

Owns where the job queue lives (``huey``: ``SqliteHuey`` under the data directory, or
Redis), the relay that sends the catalog's pending outbox events through an *injected*
enqueue function (``relay``; so the s3proxy needs nothing of the transcoder) and the
queue-depth gauges (``metrics``). The tasks themselves are the transcoder's.

May import: ``nebulacore`` and ``catalog``.
"""
