"""Nebula's shell: the command line, the ``nebula up`` supervisor, the embedded storage launcher.

It sits on top of every other package and is the only place that imports the services
(``s3proxy``, ``transcoder``, ``origin``). The shared core lives in ``nebulacore``.
"""

__version__ = "0.1.0"
