"""The aws CLI (v1) through the s3proxy: ``s3 cp/ls/sync/mv/rm/presign`` and ``s3api`` multipart.

Current aws CLI releases send aws-chunked bodies with a CRC32 trailer by default, so
every upload here also exercises the proxy's streaming-trailer verification.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    aws_env,
    big_file,
    many_key_names,
    many_keys,
    plant,
    ranged_source,
    run,
    sha256_of,
    small_payload,
    target,
    unique_key,
)

__all__ = ["big_file", "many_keys", "target"]  # fixtures used by name below


class Aws(CliClient):
    """Runs ``aws`` against the target with its config in a per-test directory."""

    def __init__(self, target: Target, key: KeyPair, directory: Path) -> None:
        self.endpoint = target.endpoint
        self.env = aws_env(target, key, directory)

    def __call__(self, *args: str, check: bool = True) -> Any:
        return run(["aws", "--endpoint-url", self.endpoint, *args], self.env, check)

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--output", "json").stdout or "null")


@pytest.fixture
def aws(target: Target, tmp_path: Path) -> Aws:
    return Aws(target, target.key, tmp_path / "aws")


def test_small_object_cp_ls_mv_rm(aws: Aws, tmp_path: Path) -> None:
    source = tmp_path / "small.txt"
    source.write_bytes(small_payload("aws cli"))
    aws("s3", "cp", str(source), f"s3://{BUCKET}/awscli/small.txt")
    assert "small.txt" in aws("s3", "ls", f"s3://{BUCKET}/awscli/").stdout
    aws("s3", "mv", f"s3://{BUCKET}/awscli/small.txt", f"s3://{BUCKET}/awscli/moved.txt")
    back = tmp_path / "back.txt"
    aws("s3", "cp", f"s3://{BUCKET}/awscli/moved.txt", str(back))
    assert back.read_bytes() == source.read_bytes()
    listing = aws("s3", "ls", f"s3://{BUCKET}/awscli/").stdout
    assert "moved.txt" in listing and "small.txt" not in listing
    aws("s3", "rm", f"s3://{BUCKET}/awscli/moved.txt")
    assert "moved.txt" not in aws("s3", "ls", f"s3://{BUCKET}/awscli/", check=False).stdout


def test_sync_up_and_down(aws: Aws, tmp_path: Path) -> None:
    up = tmp_path / "up"
    (up / "sub").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        (up / name).write_text(f"content of {name}\n")
    remote = f"s3://{BUCKET}/awscli-sync/"
    aws("s3", "sync", str(up), remote)
    (up / "b.txt").unlink()
    (up / "a.txt").write_text("changed\n")
    aws("s3", "sync", "--delete", str(up), remote)
    listed = aws("s3", "ls", "--recursive", remote).stdout
    assert "awscli-sync/a.txt" in listed and "awscli-sync/sub/c.txt" in listed
    assert "b.txt" not in listed
    down = tmp_path / "down"
    aws("s3", "sync", remote, str(down))
    assert (down / "a.txt").read_text() == "changed\n"
    assert (down / "sub" / "c.txt").read_text() == "content of sub/c.txt\n"
    assert not (down / "b.txt").exists()
    aws("s3", "rm", "--recursive", remote)


def test_100mib_multipart_round_trip(aws: Aws, big_file: BigFile, tmp_path: Path) -> None:
    aws("s3", "cp", str(big_file.path), f"s3://{BUCKET}/awscli/big.bin")
    head = aws.json("s3api", "head-object", "--bucket", BUCKET, "--key", "awscli/big.bin")
    assert head["ContentLength"] == big_file.size
    assert head["ETag"].strip('"').endswith("-7")  # 16 MiB parts (see aws_env)
    out = tmp_path / "big.out"
    aws("s3", "cp", f"s3://{BUCKET}/awscli/big.bin", str(out))
    assert sha256_of(out) == big_file.sha256
    aws("s3", "rm", f"s3://{BUCKET}/awscli/big.bin")


def test_s3api_multipart_calls(aws: Aws, tmp_path: Path) -> None:
    key = "awscli/parts.bin"
    first, second = tmp_path / "p1", tmp_path / "p2"
    first.write_bytes(b"1" * (5 * 1024 * 1024))  # every part but the last is >= 5 MiB
    second.write_bytes(b"2" * 1000)
    upload = aws.json("s3api", "create-multipart-upload", "--bucket", BUCKET, "--key", key)
    upload_id = upload["UploadId"]
    etags = []
    for number, body in ((1, first), (2, second)):
        part = aws.json(
            "s3api", "upload-part", "--bucket", BUCKET, "--key", key, "--upload-id", upload_id,
            "--part-number", str(number), "--body", str(body),
        )  # fmt: skip
        etags.append(part["ETag"])
    parts = aws.json(
        "s3api", "list-parts", "--bucket", BUCKET, "--key", key, "--upload-id", upload_id
    )
    assert [(p["PartNumber"], p["ETag"]) for p in parts["Parts"]] == [(1, etags[0]), (2, etags[1])]
    uploads = aws.json("s3api", "list-multipart-uploads", "--bucket", BUCKET)
    assert upload_id in [u["UploadId"] for u in uploads.get("Uploads", [])]
    manifest = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]}
    aws(
        "s3api", "complete-multipart-upload", "--bucket", BUCKET, "--key", key,
        "--upload-id", upload_id, "--multipart-upload", json.dumps(manifest),
    )  # fmt: skip
    out = tmp_path / "parts.out"
    aws("s3api", "get-object", "--bucket", BUCKET, "--key", key, str(out))
    assert out.read_bytes() == first.read_bytes() + second.read_bytes()

    abandoned = aws.json("s3api", "create-multipart-upload", "--bucket", BUCKET, "--key", key)
    aws(
        "s3api", "abort-multipart-upload", "--bucket", BUCKET, "--key", key,
        "--upload-id", abandoned["UploadId"],
    )  # fmt: skip
    uploads = aws.json("s3api", "list-multipart-uploads", "--bucket", BUCKET) or {}
    assert abandoned["UploadId"] not in [u["UploadId"] for u in uploads.get("Uploads", [])]
    aws("s3", "rm", f"s3://{BUCKET}/{key}")


def test_lists_1500_keys(aws: Aws, many_keys: str) -> None:
    listing = aws("s3", "ls", f"s3://{BUCKET}/{many_keys}").stdout.splitlines()
    names = [many_keys + line.split()[-1] for line in listing]
    assert names == many_key_names()


def test_ranged_read(aws: Aws, tmp_path: Path) -> None:
    source = tmp_path / "ranged.bin"
    source.write_bytes(ranged_source())
    aws("s3", "cp", str(source), f"s3://{BUCKET}/awscli/ranged.bin")
    out = tmp_path / "range.out"
    meta = aws.json(
        "s3api", "get-object", "--bucket", BUCKET, "--key", "awscli/ranged.bin",
        "--range", "bytes=1000-1999", str(out),
    )  # fmt: skip
    assert meta["ContentRange"] == f"bytes 1000-1999/{source.stat().st_size}"
    assert out.read_bytes() == source.read_bytes()[1000:2000]


def test_wrong_secret_is_signature_does_not_match(target: Target, tmp_path: Path) -> None:
    wrong = Aws(target, target.wrong_secret(), tmp_path / "wrong")
    wrong.fails_with("SignatureDoesNotMatch", "s3", "ls", f"s3://{BUCKET}/")
    source = tmp_path / "never.txt"
    source.write_text("never stored\n")
    never = unique_key("awscli/never")
    wrong.fails_with("SignatureDoesNotMatch", "s3", "cp", str(source), f"s3://{BUCKET}/{never}")
    assert_not_stored(target, BUCKET, never)


def test_unknown_key_is_invalid_access_key_id(target: Target, tmp_path: Path) -> None:
    stranger = Aws(target, target.unknown_key(), tmp_path / "stranger")
    stranger.fails_with("InvalidAccessKeyId", "s3", "ls", f"s3://{BUCKET}/")


def test_presign_works_then_expires(aws: Aws, tmp_path: Path) -> None:
    source = tmp_path / "presigned.txt"
    source.write_bytes(b"presigned by the aws cli")
    uri = f"s3://{BUCKET}/awscli/presigned.txt"
    aws("s3", "cp", str(source), uri)
    lasting = aws("s3", "presign", uri, "--expires-in", "3600").stdout.strip()
    brief = aws("s3", "presign", uri, "--expires-in", "1").stdout.strip()
    assert_presign_lifetime(lasting, brief, b"presigned by the aws cli")


def test_scoped_key_refused_on_another_bucket(target: Target, tmp_path: Path) -> None:
    scoped = Aws(target, target.scoped_key({BUCKET: "rw"}), tmp_path / "scoped")
    source = tmp_path / "scoped.txt"
    source.write_text("scoped\n")
    scoped("s3", "cp", str(source), f"s3://{BUCKET}/awscli/scoped.txt")
    theirs = unique_key("awscli/scoped")
    scoped.fails_with("AccessDenied", "s3", "cp", str(source), f"s3://{OTHER_BUCKET}/{theirs}")
    assert_not_stored(target, OTHER_BUCKET, theirs)
    scoped.fails_with("AccessDenied", "s3", "ls", f"s3://{OTHER_BUCKET}/")
    kept = unique_key("awscli/kept")
    plant(target, OTHER_BUCKET, kept, b"theirs")
    scoped.fails_with("AccessDenied", "s3", "rm", f"s3://{OTHER_BUCKET}/{kept}")
    assert_still_stored(target, OTHER_BUCKET, kept, b"theirs")
