"""The Docker engine the Compose tests run on (started here when it is not running)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.docker_engine import engine_host, engine_stop, engine_up


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[str]:
    """DOCKER_HOST of a running engine with the stand-in images built; a daemon this
    fixture started is stopped again at the end of the session."""
    started = engine_up()
    try:
        yield engine_host()
    finally:
        if started:
            engine_stop()
