"""The catalog: what Nebula knows, and every change of its state.

Owns the SQLAlchemy models and sessions, Alembic migrations, and the queries and state
changes of assets, renditions, jobs (claiming, leases, progress, cancelling: ``jobs``),
workers, access keys, bucket owners (``buckets``), bucket CORS rules (``cors``) and the
outbox. A job or asset changes
state here and nowhere else.

May import: ``nebulacore`` only.
"""

from catalog.db import Catalog
from catalog.models import (
    AccessKey,
    Asset,
    AssetStatus,
    BucketOwner,
    CorsConfiguration,
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
    "BucketOwner",
    "Catalog",
    "CorsConfiguration",
    "Job",
    "JobKind",
    "JobStatus",
    "OutboxEvent",
    "Rendition",
    "Worker",
]
