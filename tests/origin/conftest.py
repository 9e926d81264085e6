"""Fixtures for the origin: a ladder the real transcoder published on the session's
SeaweedFS, the catalog that knows it, and ``nebula origin`` as a subprocess on a free port."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from catalog import Catalog
from catalog.assets import record_upload
from nebulacore.config import Settings, load_settings
from nebulacore.hls import MASTER, MEDIA_PLAYLIST, VOD_PLAYLIST, content_type
from nebulacore.s3 import backend_client, ensure_buckets, list_keys
from tests.stacks import OriginUnderTest, Seaweed, start_origin
from transcoder.pipeline import transcode_asset
from transcoder.samples import make_source

MEDIA_BUCKET = "media"
SOURCE_KEY = "holiday/source.mp4"
VERSION = "v1"  # the transcoder's version prefix, fixed so tests can name files
SIGNING_KEY = "origin-test-signing-key-0123456789"


@dataclass
class Published:
    """One asset whose ladder sits in the HLS bucket, and the catalog that lists it."""

    asset_id: str
    catalog_url: str
    files: Path
    source: Path
    env: dict[str, str]
    variants: list[str] = field(default_factory=list)


def add_transcoding_asset(catalog_url: str, key: str, progress: float) -> str:
    """An asset still being transcoded (a running job at ``progress`` %); its id."""
    from catalog import Asset, AssetStatus, Catalog, Job, JobKind, JobStatus

    catalog = Catalog(catalog_url)
    try:
        with catalog.session() as session:
            asset = Asset(bucket="media", key=key, status=AssetStatus.PROCESSING)
            session.add(asset)
            session.flush()
            session.add(
                Job(
                    asset_id=asset.id,
                    kind=JobKind.TRANSCODE,
                    status=JobStatus.RUNNING,
                    progress=progress,
                )
            )
            return asset.id
    finally:
        catalog.dispose()


def event_playlist(vod: str, segments: int) -> str:
    """A rung's media playlist as it is while being transcoded: an EVENT playlist with its
    first ``segments`` segments and no #EXT-X-ENDLIST."""
    lines: list[str] = []
    for line in vod.splitlines():
        if line == "#EXT-X-PLAYLIST-TYPE:VOD":
            line = "#EXT-X-PLAYLIST-TYPE:EVENT"
        if line == "#EXT-X-ENDLIST" or segments == 0:
            break
        lines.append(line)
        if line and not line.startswith("#"):
            segments -= 1
    return "\n".join(lines) + "\n"


def ladder_names(published: Published) -> list[str]:
    """Every file of the published ladder, relative to the asset."""
    return sorted(
        str(path.relative_to(published.files))
        for path in published.files.rglob("*")
        if path.is_file()
    )


def put_ladder_files(
    published: Published, asset_id: str, files: Mapping[str, bytes | str] | list[str]
) -> None:
    """Put files into the HLS bucket under ``asset_id`` as the transcoder would: a list
    names files of the published ladder, a dict gives their content."""
    settings = load_settings(published.env)
    client = backend_client(settings)
    if isinstance(files, list):
        files = {name: (published.files / name).read_bytes() for name in files}
    for name, body in files.items():
        data = body.encode() if isinstance(body, str) else body
        client.put_object(
            Bucket=settings.hls_bucket,
            Key=f"{asset_id}/{name}",
            Body=data,
            ContentType=content_type(name),
        )


def publish_first_segments(published: Published, asset_id: str, segments: int) -> None:
    """What the transcoder publishes first: each rung's init segment and first
    ``segments`` segments, its EVENT playlist, then a (provisional) master."""
    playlists: dict[str, bytes | str] = {}
    for name in ladder_names(published):
        if not name.endswith("/" + MEDIA_PLAYLIST):
            continue
        folder = name.rsplit("/", 1)[0]
        text = event_playlist((published.files / name).read_text(), segments)
        uris = re.findall(r'URI="([^"]+)"', text)
        uris += [line for line in text.splitlines() if line and not line.startswith("#")]
        put_ladder_files(published, asset_id, [f"{folder}/{uri}" for uri in uris])
        playlists[name] = text
    put_ladder_files(published, asset_id, playlists)
    put_ladder_files(published, asset_id, {MASTER: provisional_master(published)})


def provisional_master(published: Published) -> str:
    """The finished master as it looks while transcoding: pointing at the EVENT playlists,
    without the VOD and I-frame playlists written at the end."""
    lines = (published.files / MASTER).read_text().splitlines()
    kept = [line for line in lines if not line.startswith("#EXT-X-I-FRAME-STREAM-INF")]
    return "\n".join(kept).replace(f"/{VOD_PLAYLIST}", f"/{MEDIA_PLAYLIST}") + "\n"


def publish_the_rest(published: Published, asset_id: str) -> None:
    """The finished ladder (VOD playlists, poster, thumbnails), the master last, and the
    catalog's asset ready with its job done."""
    from catalog import Catalog, Job, JobKind, JobStatus
    from catalog.assets import record_ready

    put_ladder_files(published, asset_id, [n for n in ladder_names(published) if n != MASTER])
    put_ladder_files(published, asset_id, [MASTER])
    catalog = Catalog(published.catalog_url)
    try:
        with catalog.session() as session:
            record_ready(session, asset_id, [], 8.0)
            mine = select(Job).where(Job.asset_id == asset_id, Job.kind == JobKind.TRANSCODE)
            for job in session.scalars(mine):
                job.status, job.progress = JobStatus.DONE, 100.0
    finally:
        catalog.dispose()


def download_tree(settings: Settings, bucket: str, prefix: str, folder: Path) -> Path:
    """The published ladder as files, to compare what the origin serves byte for byte."""
    client = backend_client(settings)
    for key in list_keys(client, bucket, prefix + "/"):
        target = folder / key[len(prefix) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))
    return folder


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory, seaweed: Seaweed) -> Published:
    """An 8 s 640x360 upload put through the real transcoder: 360p + 180p + audio, 2 s segments."""
    root = tmp_path_factory.mktemp("published")
    catalog_url = f"sqlite:///{root / 'catalog.db'}"
    env = {
        **seaweed.env,
        "NEBULA_DATA_DIR": str(root / "data"),
        "NEBULA_DATABASE_URL": catalog_url,
        "NEBULA_LADDER": "360:900,180:250",
        "NEBULA_HWACCEL": "none",
        "NEBULA_SEGMENT_SECONDS": "2",
    }
    settings = load_settings(env)
    ensure_buckets(backend_client(settings), [settings.hls_bucket, MEDIA_BUCKET])
    source = make_source(root / "source.mp4", seconds=8, size="640x360", rate=25)
    backend_client(settings).upload_file(str(source), MEDIA_BUCKET, SOURCE_KEY)
    catalog = Catalog(catalog_url)
    catalog.upgrade()
    with catalog.session() as session:
        asset, _job = record_upload(
            session, MEDIA_BUCKET, SOURCE_KEY, None, source.stat().st_size, "video/mp4"
        )
        asset_id = asset.id
    transcode_asset(settings, catalog, asset_id, version=VERSION)
    catalog.dispose()
    files = download_tree(settings, settings.hls_bucket, asset_id, root / "ladder")
    master = (files / "master.m3u8").read_text()
    return Published(
        asset_id=asset_id,
        catalog_url=catalog_url,
        files=files,
        source=source,
        env=env,
        variants=[line for line in master.splitlines() if line and not line.startswith("#")],
    )


@pytest.fixture(scope="session")
def launch(
    tmp_path_factory: pytest.TempPathFactory, published: Published
) -> Iterator[Callable[..., OriginUnderTest]]:
    """Start an origin over the published asset with extra NEBULA_* settings; stopped at the end."""
    started: list[OriginUnderTest] = []

    def make(**extra: str) -> OriginUnderTest:
        origin = start_origin(tmp_path_factory.mktemp("origin"), published.env, **extra)
        started.append(origin)
        return origin

    yield make
    for origin in started:
        origin.stop()


@pytest.fixture(scope="session")
def origin(launch: Callable[..., OriginUnderTest]) -> OriginUnderTest:
    return launch()


@pytest.fixture(scope="session")
def signed_origin(launch: Callable[..., OriginUnderTest]) -> OriginUnderTest:
    return launch(NEBULA_ORIGIN_SIGNING_KEY=SIGNING_KEY)
