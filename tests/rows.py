"""Catalog rows a test expects to be there.

``existing(session, Job, job_id)`` is ``session.get`` that fails the test when the row is
missing, so the result is a ``Job``, not ``Job | None``, at every use.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.orm import Session

Model = TypeVar("Model")


def existing(session: Session, model: type[Model], key: Any) -> Model:
    found = session.get(model, key)
    assert found is not None, f"no {model.__name__} {key!r} in the catalog"
    return found
