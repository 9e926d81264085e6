"""The operator's day on the command line, run as a user runs it: ``python -m nebula`` in
another process, from another working directory, on a data directory given by --data-dir."""

from __future__ import annotations

import argparse
import json
import os
import pty
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from catalog import Catalog, Job, JobStatus, jobs
from catalog.assets import record_upload
from catalog.buckets import TranscodedBuckets, set_transcode, transcode_settings
from catalog.keys import SecretBox, active_key, ensure_admin_key
from catalog.models import Asset, AssetStatus, utcnow
from nebula.cli import COMMAND_MODULES, build_parser
from nebula.cli.jobs import clock, eta_seconds
from nebulacore.config import load_settings
from tests.services import environ_without
from tests.stacks import Seaweed

Nebula = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "home" / "nebula-data"


@pytest.fixture
def nebula(catalog: Catalog, tmp_path: Path, data_dir: Path) -> Nebula:
    """``nebula ARGS --data-dir DATA`` in a shell of its own: no NEBULA_* but the catalog's
    URL (the test's engine), another working directory, an 80-column terminal."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environment = {
            **environ_without(),
            "NEBULA_DATABASE_URL": catalog.url,
            "COLUMNS": "80",
            **(env or {}),
        }
        return subprocess.run(
            [sys.executable, "-m", "nebula", *args, "--data-dir", str(data_dir)],
            env=environment,
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def unused_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def record_stack(data_dir: Path, **stack: object) -> Path:
    """What a running ``nebula up`` leaves in the data directory."""
    record = data_dir / "run" / "up.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"processes": [], "stack": stack}))
    return record


# ----- finding the stack ---------------------------------------------------------------


def test_commands_find_the_stack_in_the_data_directory(
    nebula: Nebula, data_dir: Path, catalog: Catalog
) -> None:
    s3proxy, origin, storage = unused_port(), unused_port(), unused_port()
    record_stack(data_dir, s3proxy_port=s3proxy, origin_port=origin, storage_port=storage)

    created = nebula("keys", "create", "--name", "phone", "--bucket", "media:rw")
    assert created.returncode == 0, created.stderr
    assert f"--endpoint-url http://127.0.0.1:{s3proxy} " in created.stdout

    with catalog.session() as session:
        asset, _ = record_upload(session, "media", "a.mp4", '"e"', 1, "video/mp4")
    url = nebula("assets", "url", asset.id, "--watch")
    assert url.stdout.startswith(f"http://127.0.0.1:{origin}/watch/"), url.stdout

    with catalog.session() as session:
        ensure_admin_key(session, SecretBox.from_settings(load_settings({}, data_dir=data_dir)))
    form = nebula("upload-form", "--bucket", "media")
    assert form.stdout.startswith(f"url: http://127.0.0.1:{s3proxy}/media"), form.stderr

    status = nebula("status")
    assert status.returncode == 1
    where = f"(from {data_dir / 'run' / 'up.json'}); is `nebula up` running?"
    assert f"nothing answers on 127.0.0.1:{s3proxy} {where}" in status.stdout.replace("\n", " ")
    assert f"127.0.0.1:{storage} " in status.stdout


def test_the_record_beats_the_environment_and_the_environment_the_defaults(
    nebula: Nebula, data_dir: Path
) -> None:
    port = unused_port()
    status = nebula("status", "--json", env={"NEBULA_ORIGIN_PORT": str(port)})
    report = json.loads(status.stdout)
    assert report["origin"]["detail"] == (
        f"nothing answers on 127.0.0.1:{port} (from NEBULA_ORIGIN_PORT); is `nebula up` running?"
    )
    assert "(from the default; set NEBULA_S3PROXY_PORT)" in report["s3proxy"]["detail"]

    recorded = unused_port()
    record_stack(data_dir, origin_port=recorded)
    status = nebula("status", "--json", env={"NEBULA_ORIGIN_PORT": str(port)})
    assert f"127.0.0.1:{recorded} (from " in json.loads(status.stdout)["origin"]["detail"]


def test_up_help_lists_ports_and_variables(nebula: Nebula) -> None:
    text = nebula("up", "--help").stdout
    for variable in ("NEBULA_S3PROXY_PORT", "NEBULA_ORIGIN_PORT", "NEBULA_STORAGE_PORT"):
        assert variable in text
    assert "run/up.json" in text and "(default 9000)" in text


# ----- keys ----------------------------------------------------------------------------


def test_keys_are_revoked_by_name_and_a_second_revoke_says_already(
    nebula: Nebula, catalog: Catalog
) -> None:
    created = nebula("keys", "create", "--name", "viewer", "--bucket", "hls:r")
    key_id = created.stdout.split("access key: ")[1].split()[0]

    revoked = nebula("keys", "revoke", "viewer")
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(f"revoked {key_id} (viewer)")
    with catalog.session() as session:
        assert active_key(session, key_id) is None

    again = nebula("keys", "revoke", key_id)
    assert again.returncode == 0
    assert "already revoked" in again.stdout and not again.stdout.startswith("revoked")

    unknown = nebula("keys", "revoke", "nobody")
    assert unknown.returncode == 2 and "'nobody'" in unknown.stderr


# ----- jobs and assets -----------------------------------------------------------------


def test_several_jobs_are_cancelled_at_once(nebula: Nebula, catalog: Catalog) -> None:
    with catalog.session() as session:
        job_ids = [
            record_upload(session, "media", f"{n}.mp4", '"e"', 1, "video/mp4")[1].id
            for n in range(3)
        ]
    done = nebula("jobs", "cancel", str(job_ids[0]), str(job_ids[1]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"job {job_ids[0]} cancelled",
        f"job {job_ids[1]} cancelled",
    ]
    with catalog.session() as session:
        states = {j.id: j.status for j in session.scalars(select(Job))}
    assert states == {
        job_ids[0]: JobStatus.CANCELLED,
        job_ids[1]: JobStatus.CANCELLED,
        job_ids[2]: JobStatus.QUEUED,
    }
    # One refused id does not stop the others; the exit status says some were refused.
    mixed = nebula("jobs", "cancel", str(job_ids[0]), str(job_ids[2]))
    assert mixed.returncode == 2 and f"job {job_ids[2]} cancelled" in mixed.stdout
    assert f"job {job_ids[0]} is not queued or running" in mixed.stderr


def test_sizes_are_human_and_rows_fit_the_terminal(nebula: Nebula, catalog: Catalog) -> None:
    long_key = "holiday/" + "very-long-name-" * 60 + ".mp4"
    with catalog.session() as session:
        record_upload(session, "media", long_key, '"e"', 117_200_000, "video/mp4")
        record_upload(session, "media", "short.mp4", '"e"', 2_048, "video/mp4")
    listing = nebula("assets", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert "117.2 MB" in listing.stdout and "2.0 kB" in listing.stdout
    assert "117200000" not in listing.stdout
    assert any(line.endswith("…") or "… " in line for line in lines)


def test_queue_and_jobs_count_the_same_jobs(nebula: Nebula, catalog: Catalog) -> None:
    with catalog.session() as session:
        job_ids = [
            record_upload(session, "media", f"{n}.mp4", '"e"', 1, "video/mp4")[1].id
            for n in range(3)
        ]
    assert jobs.claim(catalog, job_ids[0], "w1", 60, 3) is not None
    listing = nebula("jobs").stdout.splitlines()[-1]
    queue = nebula("queue").stdout.splitlines()[0]
    assert "queued 2  running 1" in listing
    assert listing.split("jobs", 1)[1].strip() == queue.split("jobs", 1)[1].strip()


def test_retranscode_queues_a_finished_video_again(nebula: Nebula, catalog: Catalog) -> None:
    with catalog.session() as session:
        asset, job = record_upload(session, "media", "done.mp4", '"e"', 1, "video/mp4")
    claim = jobs.claim(catalog, job.id, "w1", 60, 3)
    assert claim is not None
    assert jobs.fail(catalog, claim, "bad")
    again = nebula("assets", "retranscode", asset.id)
    assert again.returncode == 0, again.stderr
    with catalog.session() as session:
        row = session.get(Asset, asset.id)
        assert row is not None and row.status == AssetStatus.QUEUED
        assert [j.status for j in row.jobs] == [JobStatus.FAILED, JobStatus.QUEUED]
    # One already in work is refused, by name.
    busy = nebula("assets", "retranscode", asset.id)
    assert busy.returncode == 2 and "in work" in busy.stderr


def test_delete_removes_the_source_and_queues_its_ladder_removal(
    nebula: Nebula, catalog: Catalog, seaweed: Seaweed
) -> None:
    from nebulacore.s3 import backend_client, ensure_buckets

    storage = backend_client(seaweed.settings)
    ensure_buckets(storage, ["media"])
    storage.put_object(Bucket="media", Key="gone.mp4", Body=b"source bytes")
    with catalog.session() as session:
        asset, _ = record_upload(session, "media", "gone.mp4", '"e"', 12, "video/mp4")

    deleted = nebula("assets", "delete", asset.id, env=seaweed.env)
    assert deleted.returncode == 0, deleted.stderr
    listed = storage.list_objects_v2(Bucket="media", Prefix="gone.mp4")
    assert listed.get("KeyCount") == 0
    with catalog.session() as session:
        row = session.get(Asset, asset.id)
        assert row is not None and row.status == AssetStatus.DELETED
        assert row.jobs[-1].kind.value == "remove" and row.jobs[-1].status == JobStatus.QUEUED
    again = nebula("assets", "delete", asset.id, env=seaweed.env)
    assert again.returncode == 0 and "already deleted" in again.stdout


def test_jobs_watch_shows_an_eta(nebula: Nebula, catalog: Catalog) -> None:
    with catalog.session() as session:
        asset, job = record_upload(session, "media", "long.mp4", '"e"', 1, "video/mp4")
        session.get(Asset, asset.id).duration = 600.0  # type: ignore[union-attr]
    assert jobs.claim(catalog, job.id, "w1", 60, 3) is not None
    with catalog.session() as session:
        row = session.get(Job, job.id)
        assert row is not None
        row.progress, row.speed = 25.0, 2.0  # 450 s of media left at 2x: 3:45
    watched = nebula("jobs", "watch", "--once")
    assert "ETA 3:45" in watched.stdout, watched.stdout


def test_eta_without_a_speed_scales_the_time_spent() -> None:
    started = utcnow() - timedelta(seconds=60)
    job = Job(progress=20.0, started_at=started)
    job.asset = Asset(bucket="b", key="k")
    eta = eta_seconds(job, now=started + timedelta(seconds=60))
    assert eta == pytest.approx(240.0) and clock(240) == "4:00" and clock(3725) == "1:02:05"


# ----- what it says: logs and settings -------------------------------------------------

LOG_ONE_LINE = (
    "from nebulacore.config import load_settings; from nebulacore.logs import setup_logging;"
    "import logging; setup_logging(load_settings(), 'probe');"
    "logging.getLogger('alembic.runtime.migration').info('Context impl SQLiteImpl.');"
    "logging.getLogger('nebula.probe').info('hello')"
)


def log_on(stderr_is_a_terminal: bool, env: dict[str, str]) -> str:
    """What a process logs on a terminal (a pseudo-terminal) or on a pipe."""
    if not stderr_is_a_terminal:
        done = subprocess.run(
            [sys.executable, "-c", LOG_ONE_LINE], env=env, capture_output=True, text=True
        )
        return done.stderr
    leader, follower = pty.openpty()
    try:
        child = subprocess.Popen([sys.executable, "-c", LOG_ONE_LINE], env=env, stderr=follower)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        child.wait(timeout=60)
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_one_log_format_per_stream_and_no_library_chatter(terminal: bool) -> None:
    env = environ_without()
    lines = log_on(terminal, env).strip().splitlines()
    assert len(lines) == 1, lines  # alembic's INFO is not there
    if terminal:
        assert lines[0].rstrip().endswith("INFO nebula.probe: hello service=probe")
    else:
        assert json.loads(lines[0])["msg"] == "hello"
    chosen = log_on(terminal, {**env, "NEBULA_LOG_FORMAT": "json"}).strip()
    assert json.loads(chosen)["msg"] == "hello"


def test_a_misspelled_variable_is_a_warning_naming_the_right_one(nebula: Nebula) -> None:
    listed = nebula("keys", "list", env={"NEBULA_S3PROXY_PROT": "43000"})
    assert listed.returncode == 0
    assert (
        "unknown setting NEBULA_S3PROXY_PROT is ignored; did you mean NEBULA_S3PROXY_PORT?"
        in listed.stderr
    )
    # Variables of the deploy hook and the tests share the prefix: not a word about them.
    quiet = nebula("keys", "list", env={"NEBULA_DEPLOY_BRANCH": "main"})
    assert "unknown" not in quiet.stderr


# ----- which buckets are transcoded ----------------------------------------------------


def transcoded_table(listing: str) -> dict[str, list[str]]:
    """``nebula buckets``' rows: bucket -> [transcoded, why]."""
    return {line.split()[0]: line.split(None, 2)[1:] for line in listing.splitlines()[1:]}


def test_buckets_says_which_are_transcoded_and_changes_it(
    nebula: Nebula, catalog: Catalog, seaweed: Seaweed
) -> None:
    from nebulacore.s3 import backend_client, ensure_buckets

    ensure_buckets(backend_client(seaweed.settings), ["media", "movies", "hls"])
    rows = nebula("buckets", env=seaweed.env)
    assert rows.returncode == 0, rows.stderr
    table = transcoded_table(rows.stdout)
    assert table["media"] == ["yes", "default: in NEBULA_INGEST_BUCKETS"]
    assert table["movies"] == ["no", "default: not in NEBULA_INGEST_BUCKETS"]
    assert table["hls"][0] == "no" and "HLS output" in table["hls"][1]

    changed = nebula("buckets", "transcode", "movies", env=seaweed.env)
    assert changed.returncode == 0, changed.stderr
    off = nebula("buckets", "transcode", "media", "--off", env=seaweed.env)
    assert off.returncode == 0, off.stderr
    with catalog.session() as session:
        assert transcode_settings(session) == {"movies": True, "media": False}
    # Other tests' buckets share the storage: the columns are as wide as their names.
    listed = transcoded_table(nebula("buckets", "list", env=seaweed.env).stdout)
    assert listed["movies"][0] == "yes" and listed["media"][0] == "no"
    refused = nebula("buckets", "transcode", "hls", env=seaweed.env)
    assert refused.returncode == 2 and "HLS output" in refused.stderr


def test_the_proxy_transcodes_the_buckets_the_catalog_names(
    tmp_path: Path, seaweed: Seaweed
) -> None:
    from nebulacore.config import load_settings
    from nebulacore.s3 import backend_client, ensure_buckets
    from tests.stacks import start_proxy

    env = {**seaweed.env, "NEBULA_DATA_DIR": str(tmp_path / "data")}
    settings = load_settings(env)
    ensure_buckets(backend_client(settings), ["movies", "photos"])
    setup = Catalog.from_settings(settings)
    setup.upgrade()
    with setup.session() as session:
        set_transcode(session, "movies", True)
        set_transcode(session, "media", False)
    proxy = start_proxy(tmp_path, seaweed)
    try:
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=proxy.endpoint,
            aws_access_key_id=proxy.admin.access_key_id,
            aws_secret_access_key=proxy.admin.secret,
            region_name="us-east-1",
        )
        for bucket in ("movies", "media", "photos"):
            answer = s3.put_object(Bucket=bucket, Key="clip.m4a", Body=b"not really audio")
            # The S3 answer says nothing of transcoding either way.
            assert not [h for h in answer["ResponseMetadata"]["HTTPHeaders"] if "nebula" in h]
        with setup.session() as session:
            recorded = {a.bucket for a in session.scalars(select(Asset))}
        assert recorded == {"movies"}
    finally:
        proxy.stop()
        setup.dispose()


def test_bucket_settings_are_read_again_after_their_ttl() -> None:
    now = [0.0]
    reads: list[dict[str, bool]] = [{"movies": True}]
    buckets = TranscodedBuckets(lambda: reads[-1], ["media"], ttl=5.0, clock=lambda: now[0])
    assert buckets.stale()
    buckets.refresh()
    assert buckets("movies") and buckets("media") and not buckets("photos")
    reads.append({"movies": False, "media": False})
    now[0] = 4.9
    assert not buckets.stale() and buckets("movies")  # the snapshot holds within the TTL
    now[0] = 5.0
    assert buckets.stale()
    buckets.refresh()
    assert not buckets("movies") and not buckets("media")

    def down() -> dict[str, bool]:
        raise ConnectionError("catalog down")

    stuck = TranscodedBuckets(down, ["media"])
    stuck.refresh()  # a catalog that does not answer leaves the defaults
    assert stuck("media") and not stuck.stale()


# ----- a service alone -----------------------------------------------------------------


def test_the_origin_alone_keeps_its_cache_private(tmp_path: Path, seaweed: Seaweed) -> None:
    from tests.harness import nebula_argv, spawn, stop, wait_listening
    from tests.services import assert_nothing_for_others

    data = tmp_path / "data"
    port = unused_port()
    env = {**environ_without(), **seaweed.env, "NEBULA_ORIGIN_PORT": str(port)}
    env["NEBULA_ORIGIN_WORKERS"] = "1"
    argv = nebula_argv("origin", "--data-dir", str(data))
    origin = wait_listening(spawn("origin", argv, env, tmp_path / "origin.log", port=port))
    try:
        for folder in ("cache", "cache/objects", "cache/tmp"):
            assert stat.S_IMODE((data / folder).stat().st_mode) == 0o700, folder
        assert_nothing_for_others(data)
    finally:
        stop(origin)


# ----- cheap health --------------------------------------------------------------------


def test_the_compose_probe_imports_no_library_and_agrees_with_the_settings(
    tmp_path: Path,
) -> None:
    from nebula import probe
    from nebulacore.config import Settings, host_for_url

    for name, default in probe.DEFAULTS.items():
        assert str(Settings.model_fields[name].default) == default, name
    for bind in ("0.0.0.0", "::", "", "10.1.2.3", "fd7a::1"):
        assert probe.host_for(bind) == host_for_url(bind)

    port = unused_port()
    env = {**environ_without(), "NEBULA_ORIGIN_PORT": str(port)}
    code = (
        "import sys, runpy; sys.argv = ['probe', 'origin'];"
        'exec(\'try:\\n runpy.run_module("nebula.probe", run_name="__main__")\\n'
        "except SystemExit as e: code = e.code');"
        "heavy = {'pydantic', 'sqlalchemy', 'botocore', 'aiohttp', 'catalog', 'nebulacore'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}), code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert f"origin unhealthy: http://127.0.0.1:{port}/healthz" in done.stdout, done.stderr
    assert done.stdout.splitlines()[-1] == "[] 1"


def commands_of(parser: argparse.ArgumentParser) -> set[str]:
    """The sub-commands ``parser`` knows (argparse keeps them in a private action type)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def test_each_command_loads_its_own_module_and_every_command_is_listed() -> None:
    """`nebula X` imports only X's module; the table naming them must stay whole."""
    listed = [name for names in COMMAND_MODULES.values() for name in names]
    assert sorted(commands_of(build_parser([]))) == sorted(listed)
    for names in COMMAND_MODULES.values():
        assert commands_of(build_parser([names[0]])) == set(names)
