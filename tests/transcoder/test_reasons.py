"""Failure reasons in plain words: the real tools' messages on real bad files, turned into
sentences with no storage address, URL, memory address or signature in them."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from transcoder.errors import MediaError, transient_reason
from transcoder.probe import run_ffprobe
from transcoder.reasons import FALLBACK, plain_words
from transcoder.runner import NoGuard, run_ffmpeg

LEAKS = ("http", "127.0.0.1", "0x", "X-Amz", "Signature", "@")


def assert_plain(reason: str) -> None:
    assert not [leak for leak in LEAKS if leak in reason], reason
    assert "\n" not in reason and reason[0].islower()


def served(path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``path`` over real HTTP with a presigned-looking query, as the worker reads sources."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        ["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=path.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/{path.name}?X-Amz-Credential=AK&X-Amz-Signature=abc"
    return server, url


def wait_http(url: str) -> None:
    import time
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"this is a shopping list, not a video\n" * 10, "not a video or audio file"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64, "moov atom"),
    ],
)
def test_ffprobe_failures_read_plainly(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "upload.mp4"
    path.write_bytes(content)
    server, url = served(path)
    try:
        wait_http(url)
        with pytest.raises(MediaError) as failure:
            run_ffprobe(url)
    finally:
        server.kill()
        server.wait()
    reason, detail = str(failure.value), failure.value.detail
    assert expected in reason
    assert_plain(reason)
    # The log keeps the tool's own line (the context and the path), minus the signature.
    assert detail.startswith("ffprobe: ") and "X-Amz-Signature" not in detail


def test_ffmpeg_failure_with_context_address_reads_plainly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 4096)
    argv = ["ffmpeg", "-v", "error", "-progress", "pipe:1", "-i", str(bad), "-f", "null", "-"]
    with pytest.raises(MediaError) as failure:
        run_ffmpeg(argv, 1.0, NoGuard())
    assert_plain(str(failure.value))
    assert "ffmpeg: " in failure.value.detail


def test_unknown_tool_message_falls_back_to_a_sentence() -> None:
    assert plain_words("ffmpeg: [hevc @ 0x559b2c1d] something new went wrong") == FALLBACK
    assert plain_words("the source s3://media/a b.mp4 does not exist") == (
        "the source s3://media/a b.mp4 does not exist"
    )


def test_transient_reason_hides_the_storage_address() -> None:
    """A retried job's reason: a real botocore error from an unreachable storage."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(Exception) as failure:
        client.head_object(Bucket="media", Key="a.mp4")
    assert str(port) in str(failure.value)  # botocore names the address...
    reason = transient_reason(failure.value)
    assert str(port) not in reason and "127.0.0.1" not in reason  # ...the user does not see it
    assert reason.startswith("EndpointConnectionError")
