"""The transcoder service: a Huey worker that turns uploaded videos into HLS ladders.

Owns the tasks (``tasks``, bound to the queue and settings at the entry point), the
worker loop and leases' heartbeat (``worker``, ``work``), ffprobe, the ladder choice,
building and running the one ffmpeg command (QSV or software), progress, publishing
HLS output (master playlist last) and the periodic reconcile against the bucket.

May import: ``nebulacore``, ``catalog``, ``nebulaqueue``; never ``s3proxy`` or ``origin``.
"""
