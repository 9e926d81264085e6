"""The catalog: what Nebula knows about assets, renditions, jobs, keys and pending events.

It imports no other Nebula service; s3proxy, transcoder and origin import it.
"""

from catalog.db import Catalog
from catalog.models import (
    AccessKey,
    Asset,
    AssetStatus,
    Job,
    JobKind,
    JobStatus,
    OutboxEvent,
    Rendition,
    Worker,
)

__all__ = [
    "AccessKey",
    "Asset",
    "AssetStatus",
    "Catalog",
    "Job",
    "JobKind",
    "JobStatus",
    "OutboxEvent",
    "Rendition",
    "Worker",
]
