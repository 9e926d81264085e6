"""s3cmd (SigV4, path-style) through the s3proxy: put/get/ls/del, multipart, ``get --continue``.

s3cmd's ``signurl`` can only make SigV2 query URLs, which the proxy accepts until they
expire (s3cmd in SigV2 mode: test_sigv2.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from catalog.keys import KeyPair
from tests.s3proxy.clients import (
    BUCKET,
    OTHER_BUCKET,
    BigFile,
    CliClient,
    Target,
    assert_not_stored,
    assert_presign_lifetime,
    assert_still_stored,
    big_file,
    boto_client,
    clean_env,
    many_key_names,
    many_keys,
    plant,
    ranged_source,
    run,
    s3cmd_config,
    sha256_of,
    small_payload,
    target,
    unique_key,
)

__all__ = ["big_file", "many_keys", "target"]  # fixtures used by name below


class S3cmd(CliClient):
    """Runs ``s3cmd`` with a per-test config file pointing at the target."""

    def __init__(self, target: Target, key: KeyPair, directory: Path) -> None:
        self.config = s3cmd_config(target, key, directory)
        self.env = clean_env(HOME=str(directory))

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["s3cmd", "-c", str(self.config), *args], self.env, check)


@pytest.fixture
def s3cmd(target: Target, tmp_path: Path) -> S3cmd:
    return S3cmd(target, target.key, tmp_path / "s3cmd")


def test_small_object_put_ls_get_del(s3cmd: S3cmd, tmp_path: Path) -> None:
    source = tmp_path / "small.txt"
    source.write_bytes(small_payload("s3cmd"))
    s3cmd("put", str(source), f"s3://{BUCKET}/s3cmd/small.txt")
    assert f"s3://{BUCKET}/s3cmd/small.txt" in s3cmd("ls", f"s3://{BUCKET}/s3cmd/").stdout
    back = tmp_path / "back.txt"
    s3cmd("get", f"s3://{BUCKET}/s3cmd/small.txt", str(back))
    assert back.read_bytes() == source.read_bytes()
    s3cmd("del", f"s3://{BUCKET}/s3cmd/small.txt")
    assert "small.txt" not in s3cmd("ls", f"s3://{BUCKET}/s3cmd/").stdout


def test_100mib_multipart_round_trip(
    s3cmd: S3cmd, target: Target, big_file: BigFile, tmp_path: Path
) -> None:
    s3cmd("put", str(big_file.path), f"s3://{BUCKET}/s3cmd/big.bin")
    etag = boto_client(target).head_object(Bucket=BUCKET, Key="s3cmd/big.bin")["ETag"]
    assert etag.strip('"').endswith("-7")  # 16 MiB parts (see s3cmd_config)
    out = tmp_path / "big.out"
    s3cmd("get", f"s3://{BUCKET}/s3cmd/big.bin", str(out))
    assert sha256_of(out) == big_file.sha256
    s3cmd("del", f"s3://{BUCKET}/s3cmd/big.bin")


def test_multipart_list_and_abort(s3cmd: S3cmd, target: Target) -> None:
    # An upload left open by another client, as s3cmd's multipart commands find it.
    s3 = boto_client(target)
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="s3cmd/open.bin")["UploadId"]
    s3.upload_part(
        Bucket=BUCKET, Key="s3cmd/open.bin", UploadId=upload_id, PartNumber=1, Body=b"x" * 1024
    )
    assert upload_id in s3cmd("multipart", f"s3://{BUCKET}").stdout
    parts = s3cmd("listmp", f"s3://{BUCKET}/s3cmd/open.bin", upload_id).stdout
    assert "1024" in parts
    s3cmd("abortmp", f"s3://{BUCKET}/s3cmd/open.bin", upload_id)
    assert upload_id not in s3cmd("multipart", f"s3://{BUCKET}").stdout


def test_lists_1500_keys(s3cmd: S3cmd, many_keys: str) -> None:
    lines = s3cmd("ls", f"s3://{BUCKET}/{many_keys}").stdout.splitlines()
    names = [line.split()[-1].removeprefix(f"s3://{BUCKET}/") for line in lines]
    assert names == many_key_names()


def test_get_continue_is_a_ranged_read(s3cmd: S3cmd, tmp_path: Path) -> None:
    source = tmp_path / "ranged.bin"
    source.write_bytes(ranged_source())
    s3cmd("put", str(source), f"s3://{BUCKET}/s3cmd/ranged.bin")
    partial = tmp_path / "partial.bin"
    partial.write_bytes(source.read_bytes()[:1000])
    # --continue asks for "Range: bytes=1000-" and appends the answer.
    s3cmd("get", "--continue", f"s3://{BUCKET}/s3cmd/ranged.bin", str(partial))
    assert partial.read_bytes() == source.read_bytes()


def test_wrong_secret_is_signature_does_not_match(target: Target, tmp_path: Path) -> None:
    wrong = S3cmd(target, target.wrong_secret(), tmp_path / "wrong")
    wrong.fails_with("SignatureDoesNotMatch", "ls", f"s3://{BUCKET}/")
    source = tmp_path / "never.txt"
    source.write_text("never stored\n")
    never = unique_key("s3cmd/never")
    wrong.fails_with("SignatureDoesNotMatch", "put", str(source), f"s3://{BUCKET}/{never}")
    assert_not_stored(target, BUCKET, never)


def test_unknown_key_is_invalid_access_key_id(target: Target, tmp_path: Path) -> None:
    stranger = S3cmd(target, target.unknown_key(), tmp_path / "stranger")
    stranger.fails_with("InvalidAccessKeyId", "ls", f"s3://{BUCKET}/")


def test_signurl_is_sigv2_and_works_until_it_expires(s3cmd: S3cmd, tmp_path: Path) -> None:
    source = tmp_path / "presigned.txt"
    source.write_text("presigned by s3cmd\n")
    s3cmd("put", str(source), f"s3://{BUCKET}/s3cmd/presigned.txt")
    fresh = s3cmd("signurl", f"s3://{BUCKET}/s3cmd/presigned.txt", "+3600").stdout.strip()
    brief = s3cmd("signurl", f"s3://{BUCKET}/s3cmd/presigned.txt", "+1").stdout.strip()
    assert "AWSAccessKeyId=" in fresh and "Signature=" in fresh
    assert_presign_lifetime(fresh, brief, source.read_bytes())


def test_scoped_key_refused_on_another_bucket(target: Target, tmp_path: Path) -> None:
    scoped = S3cmd(target, target.scoped_key({BUCKET: "rw"}), tmp_path / "scoped")
    source = tmp_path / "scoped.txt"
    source.write_text("scoped\n")
    scoped("put", str(source), f"s3://{BUCKET}/s3cmd/scoped.txt")
    theirs = unique_key("s3cmd/scoped")
    scoped.fails_with("AccessDenied", "put", str(source), f"s3://{OTHER_BUCKET}/{theirs}")
    assert_not_stored(target, OTHER_BUCKET, theirs)
    scoped.fails_with("AccessDenied", "ls", f"s3://{OTHER_BUCKET}/")
    kept = unique_key("s3cmd/kept")
    plant(target, OTHER_BUCKET, kept, b"theirs")
    scoped.fails_with("AccessDenied", "del", f"s3://{OTHER_BUCKET}/{kept}")
    assert_still_stored(target, OTHER_BUCKET, kept, b"theirs")
