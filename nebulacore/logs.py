"""Logging: one format per stream (text for a person at a terminal, JSON lines for a
collector; ``NEBULA_LOG_FORMAT`` decides), secrets never included, and other libraries'
INFO chatter (alembic's migration steps, Huey's consumer banner) kept out unless asked
for with ``NEBULA_LOG_LEVEL=DEBUG``."""

from __future__ import annotations

import json
import logging
import sys
import time
from functools import lru_cache
from typing import Any, TextIO

from nebulacore.config import Settings

# Attributes every LogRecord has; anything else passed via ``extra=`` is a field of ours.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_SECRET_WORDS = ("secret", "password", "signature", "authorization", "token", "credential")


@lru_cache(maxsize=512)
def _is_secret(name: str) -> bool:
    """Decided once per field name: the access log writes the same dozen on every request."""
    return any(word in name.lower() for word in _SECRET_WORDS)


def _redact(name: str, value: Any) -> Any:
    return "[redacted]" if _is_secret(name) else value


@lru_cache(maxsize=4)
def _second(epoch: int) -> str:
    """The timestamp up to the second, formatted once per second (the access log writes
    a record per request)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": f"{_second(int(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = _redact(name, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={_redact(k, v)}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        )
        line = super().format(record)
        return f"{line} {extras}" if extras else line


class _ServiceTag(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True


# Libraries whose INFO lines say nothing to an operator; their warnings still show.
CHATTY = ("alembic", "huey", "sqlalchemy", "asyncio")
# Libraries that log request bodies or credentials at DEBUG stay quiet at every level.
NOISY = ("botocore", "boto3", "urllib3", "s3transfer", "aiohttp.access")


def wants_json(log_format: str, stream: TextIO) -> bool:
    """``auto``: JSON unless ``stream`` is a terminal (a person reads it)."""
    if log_format == "auto":
        return not stream.isatty()
    return log_format == "json"


def setup_logging(settings: Settings, service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    json_lines = wants_json(settings.log_format, sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(_ServiceTag(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Neither formatter prints thread or process names: not collecting them saves every
    # record (one per request in the access log) a few lookups.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    chatty_level = logging.DEBUG if settings.log_level == "DEBUG" else logging.WARNING
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(chatty_level)
