"""Nebula's shared core: configuration, logging, the S3 client helper, network guard.

Every package may import these modules; they import none of the service packages.
The command line (``nebula.cli``) and the embedded supervisor (``nebula.embedded``)
sit on top and are the only places that import the services.
"""

__version__ = "0.1.0"
