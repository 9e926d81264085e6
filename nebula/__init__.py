"""Nebula's shell, the top layer: the ``nebula`` command.

Owns the command line (``cli/``), the ``nebula up`` supervisor (``embedded``), the
embedded SeaweedFS launcher and its hardening (``storage``, ``storage_security``). It is
the composition root: it loads the settings once per process and wires the services
together (for example, it hands the s3proxy the transcoder's enqueue function).

May import: every package.
"""

__version__ = "0.1.0"
