"""The one configuration object, read from ``NEBULA_*`` environment variables.

Every service builds its ``Settings`` through :func:`load_settings`; a wrong value fails at
start with :class:`ConfigError`, whose message names the variable. An optional file of
``NEBULA_X=value`` lines (``NEBULA_CONFIG_FILE``) supplies defaults; the environment wins.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_ALLOW_CIDRS = "127.0.0.0/8,::1/128,100.64.0.0/10,fd7a:115c:a1e0::/48"
DEFAULT_LADDER = "2160:16000,1440:10000,1080:6000,720:3000,480:1400,360:800"
VIDEO_EXTENSIONS = (
    ".mp4,.m4v,.mov,.mkv,.webm,.avi,.mpg,.mpeg,.ts,.m2ts,.mts,.wmv,.flv,.3gp,.ogv,"
    ".m4a,.mp3,.aac,.wav,.flac,.ogg,.opus"
)


MAX_DEFAULT_WORKERS = 4
# cgroup v2's CPU quota of this process's group: "<quota> <period>" or "max <period>".
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """Cores this process may run on: its CPU affinity, less a cgroup CPU quota
    (a container's ``cpus:``), which affinity does not show."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            cores = min(cores or 1, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota
    return cores or 1


def default_workers(cores: int | None = None) -> int:
    """Worker processes of a web service: one per usable core (``cores``: this
    process's), at most 4."""
    return min(MAX_DEFAULT_WORKERS, usable_cores() if cores is None else cores)


class ConfigError(Exception):
    """A configuration value is missing or wrong; the message names the variable."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseModel):
    """Nebula's configuration. Field ``foo_bar`` is read from ``NEBULA_FOO_BAR``."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)

    # Where the embedded stack keeps everything.
    data_dir: Path = Path("./data")

    # Network: every listener binds to ``bind``; clients must come from ``allow_cidrs``.
    bind: str = "127.0.0.1"
    allow_cidrs: list[IPNetwork] = Field(
        default_factory=lambda: _split_csv(DEFAULT_ALLOW_CIDRS)  # type: ignore[arg-type]
    )
    trusted_proxies: list[IPNetwork] = Field(default_factory=list)
    s3proxy_port: int = Field(9000, ge=1, le=65535)
    origin_port: int = Field(8080, ge=1, le=65535)
    # Public URLs printed and used in links; derived from bind/port when unset.
    s3proxy_public_url: str | None = None
    origin_public_url: str | None = None
    # Host names each listener answers to besides its public URL's, its bind address,
    # localhost and IP addresses (any other is refused: DNS rebinding); "*": any.
    s3proxy_hosts: list[str] = Field(default_factory=list)
    origin_hosts: list[str] = Field(default_factory=list)

    # Storage backend. Unset ``backend_url`` means: run the embedded SeaweedFS.
    backend_url: str | None = None
    backend_access_key: str | None = None
    backend_secret_key: SecretStr | None = None
    backend_region: str = "us-east-1"
    storage_port: int = Field(8333, ge=1, le=65535)
    # The embedded SeaweedFS's Go memory limit (GOMEMLIMIT); its upload buffers are sized
    # from it too (see nebula.storage.memory_args). Its RSS stays below this plus ~100 MB.
    storage_memory_limit_mb: int = Field(768, ge=256)

    # Catalog and queue. Unset means SQLite files under ``data_dir``.
    database_url: str | None = None
    queue_url: str | None = None
    secret_key: SecretStr | None = None

    # S3 front door.
    region: str = "us-east-1"
    s3_domain: str | None = None
    # Accept AWS Signature Version 2 (header and query), as S3 and MinIO do: aws CLI v1,
    # boto3 and s3cmd presign with it by default. Off: only SigV4 is accepted.
    allow_sigv2: bool = True
    ingest_buckets: list[str] = Field(default_factory=lambda: ["media"])
    video_extensions: list[str] = Field(
        default_factory=lambda: _split_csv(VIDEO_EXTENSIONS)  # type: ignore[arg-type]
    )
    reconcile_seconds: int = Field(60, ge=5)
    # One client cannot starve the others (docs/security.md).
    # A request's head must arrive within this long of the connection opening (or of the
    # previous answer on a kept-alive connection); idle connections close after it too.
    header_timeout_seconds: float = Field(60.0, gt=0)
    # An upload whose client sends no byte for this long is cut (idle time, not a total:
    # a slow phone that keeps sending is never cut).
    body_timeout_seconds: float = Field(60.0, gt=0)
    # A streamed answer whose client reads none of it for this long is cut (idle time, not
    # a total: a slow reader that keeps reading is never cut).
    answer_timeout_seconds: float = Field(60.0, gt=0)
    # Concurrent uploads (requests with a body) one access key may have; more get SlowDown.
    uploads_per_key: int = Field(32, ge=1)
    # Concurrent other requests (downloads, listings, HEADs) one access key may have.
    downloads_per_key: int = Field(64, ge=1)
    # Processes serving the S3 port (SO_REUSEPORT); "auto": one per core, at most 4.
    s3proxy_workers: int = Field(default_factory=default_workers, ge=1, le=64)
    # Connections to the storage backend, and how long a request waits for a free one
    # before it is answered 503 SlowDown.
    backend_connections: int = Field(512, ge=1)
    backend_wait_seconds: float = Field(5.0, gt=0)
    # How long an upload waits for the catalog to record its event; after that the upload
    # is answered and the reconcile records it.
    catalog_write_wait_seconds: float = Field(5.0, gt=0)

    # Transcoder.
    hls_bucket: str = "hls"
    hwaccel: Literal["auto", "qsv", "vaapi", "none"] = "auto"
    hw_device: str = "/dev/dri/renderD128"
    ladder: str = DEFAULT_LADDER
    segment_seconds: int = Field(4, ge=1, le=20)
    hls_segment_type: Literal["fmp4", "ts"] = "fmp4"
    job_max_attempts: int = Field(3, ge=1)
    job_lease_seconds: int = Field(60, ge=10)
    # A ladder replaced by a newer upload's stays this long after the switch (players that
    # loaded the old master finish it); the reconcile's sweep then deletes it.
    hls_retain_seconds: int = Field(3600, ge=0)
    work_dir: Path | None = None

    # Origin.
    origin_signing_key: SecretStr | None = None
    origin_cache_dir: Path | None = None
    origin_cache_max_mb: int = Field(1024, ge=0)
    origin_memory_cache_mb: int = Field(64, ge=0)
    # Processes serving the origin port (SO_REUSEPORT); "auto": one per core, at most 4.
    origin_workers: int = Field(default_factory=default_workers, ge=1, le=64)
    # Connections each origin worker keeps to the storage backend (segments and originals
    # relayed at once); a viewer waits backend_wait_seconds for one before a 503.
    origin_backend_connections: int = Field(256, ge=1)
    cors_allow_origin: str = "*"

    # Logging.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "auto": text for a person when the stream is a terminal, JSON lines otherwise.
    log_format: Literal["auto", "json", "text"] = "auto"

    @field_validator("allow_cidrs", "trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator(
        "ingest_buckets", "video_extensions", "s3proxy_hosts", "origin_hosts", mode="before"
    )
    @classmethod
    def _parse_list(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("s3proxy_workers", "origin_workers", mode="before")
    @classmethod
    def _auto_workers(cls, value: object) -> object:
        return default_workers() if value in ("auto", "", 0, "0") else value

    @field_validator("ladder")
    @classmethod
    def _check_ladder(cls, value: str) -> str:
        parse_ladder(value)
        return value

    @field_validator("backend_url", "database_url", "queue_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("queue_url")
    @classmethod
    def _check_queue_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://", "sqlite://")):
            raise ValueError("must be redis://host:port/db or sqlite:///path")
        return value

    # ----- derived values -------------------------------------------------------------

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def embedded_storage(self) -> bool:
        return self.backend_url is None

    @property
    def backend_endpoint(self) -> str:
        return self.backend_url or f"http://127.0.0.1:{self.storage_port}"

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'catalog.db'}"

    @property
    def queue_path(self) -> Path:
        return self.data_path / "queue.db"

    @property
    def s3proxy_url(self) -> str:
        return self.s3proxy_public_url or f"http://{host_for_url(self.bind)}:{self.s3proxy_port}"

    @property
    def origin_url(self) -> str:
        return self.origin_public_url or f"http://{host_for_url(self.bind)}:{self.origin_port}"

    @property
    def ladder_rungs(self) -> list[tuple[int, int]]:
        return parse_ladder(self.ladder)

    @property
    def transcode_dir(self) -> Path:
        return (self.work_dir or self.data_path / "work").expanduser().resolve()

    @property
    def cache_dir(self) -> Path:
        return (self.origin_cache_dir or self.data_path / "cache").expanduser().resolve()

    def is_video(self, key: str, content_type: str | None = None) -> bool:
        """An object a transcode would take: by its type, else by its extension."""
        if content_type and content_type.split(";")[0].strip().startswith(("video/", "audio/")):
            return True
        return key.lower().endswith(tuple(e.lower() for e in self.video_extensions))


def host_for_url(bind: str) -> str:
    """The host part of a URL that reaches a listener bound to ``bind`` from this machine."""
    if bind in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{bind}]" if ":" in bind else bind


def parse_ladder(value: str) -> list[tuple[int, int]]:
    """``"1080:6000,720:3000"`` -> ``[(1080, 6000), (720, 3000)]``: (height, kbit/s), tallest first."""
    rungs: list[tuple[int, int]] = []
    for part in value.split(","):
        try:
            height, kbps = (int(x) for x in part.strip().split(":"))
        except ValueError:
            raise ValueError(f"rung {part.strip()!r} is not HEIGHT:KBPS") from None
        if height < 2 or kbps < 1:
            raise ValueError(f"rung {part.strip()!r} must be positive")
        rungs.append((height, kbps))
    if not rungs:
        raise ValueError("needs at least one HEIGHT:KBPS rung")
    return sorted(rungs, reverse=True)


def _read_config_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ConfigError(f"NEBULA_CONFIG_FILE: {path} does not exist")
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip().startswith("NEBULA_"):
            raise ConfigError(f"{path}:{number}: expected NEBULA_NAME=value")
        values[name.strip()] = value.strip().strip("'\"")
    return values


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from ``environ`` (default ``os.environ``), a config file, and overrides."""
    env = dict(os.environ if environ is None else environ)
    file_name = env.get("NEBULA_CONFIG_FILE")
    merged = {**(_read_config_file(Path(file_name)) if file_name else {}), **env}
    values: dict[str, object] = {
        name[len("NEBULA_") :].lower(): value
        for name, value in merged.items()
        if name.startswith("NEBULA_") and name != "NEBULA_CONFIG_FILE"
    }
    values.update(overrides)
    for name in sorted(k for k in values if k not in Settings.model_fields):
        if f"NEBULA_{name.upper()}" in merged and not belongs_to_other_tools(name):
            log.warning("%s", unknown_variable(name))
        del values[name]
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


# Variables of the deploy hook, the tests and the Compose file share the prefix.
OTHER_TOOLS_PREFIXES = ("deploy_", "test_")
OTHER_TOOLS_NAMES = frozenset({"config_file", "services", "uid"})


def belongs_to_other_tools(name: str) -> bool:
    return name in OTHER_TOOLS_NAMES or name.startswith(OTHER_TOOLS_PREFIXES)


def unknown_variable(name: str) -> str:
    """The warning for ``NEBULA_<NAME>``, naming the closest known variable."""
    variable = f"NEBULA_{name.upper()}"
    close = difflib.get_close_matches(name, list(Settings.model_fields), n=1, cutoff=0.6)
    hint = f"did you mean NEBULA_{close[0].upper()}?" if close else "see docs/configuration.md"
    return f"unknown setting {variable} is ignored; {hint}"


def is_unknown_variable(variable: str) -> bool:
    """``variable`` has the prefix but names no setting nor another tool's variable."""
    name = variable.removeprefix("NEBULA_").lower()
    return (
        variable.startswith("NEBULA_")
        and name not in Settings.model_fields
        and not belongs_to_other_tools(name)
    )


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        lines.append(f"NEBULA_{field.upper()}: {error['msg']} (got {error.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)
