"""rclone through the s3proxy: ``copy``, ``sync``, ``check``, ``cat --offset --count``, ``link``."""

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
    clean_env,
    many_key_names,
    many_keys,
    plant,
    ranged_source,
    rclone_config,
    run,
    run_for_bytes,
    sha256_of,
    small_payload,
    target,
    unique_key,
)

__all__ = ["big_file", "many_keys", "target"]  # fixtures used by name below


class Rclone(CliClient):
    """Runs ``rclone`` with a per-test config whose remote ``t:`` is the target."""

    error_format = "{code}"  # rclone prints the bare code

    def __init__(self, target: Target, key: KeyPair, directory: Path) -> None:
        self.config = rclone_config(target, key, directory)
        self.env = clean_env(HOME=str(directory))

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # One try each: a refused request must fail now, not after rclone's retries.
        argv = ["rclone", "--config", str(self.config), "--retries", "1"]
        return run([*argv, "--low-level-retries", "1", *args], self.env, check)

    def cat(self, *args: str) -> bytes:
        return run_for_bytes(["rclone", "--config", str(self.config), "cat", *args], self.env)


@pytest.fixture
def rclone(target: Target, tmp_path: Path) -> Rclone:
    return Rclone(target, target.key, tmp_path / "rclone")


def test_small_object_copy_cat_delete(rclone: Rclone, tmp_path: Path) -> None:
    source = tmp_path / "small.txt"
    source.write_bytes(small_payload("rclone"))
    rclone("copyto", str(source), f"t:{BUCKET}/rclone/small.txt")
    assert "small.txt" in rclone("lsf", f"t:{BUCKET}/rclone/").stdout.split()
    assert rclone.cat(f"t:{BUCKET}/rclone/small.txt") == source.read_bytes()
    rclone("deletefile", f"t:{BUCKET}/rclone/small.txt")
    assert "small.txt" not in rclone("lsf", f"t:{BUCKET}/rclone/").stdout.split()


def test_copy_sync_and_check(rclone: Rclone, tmp_path: Path) -> None:
    local = tmp_path / "tree"
    (local / "sub").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        (local / name).write_text(f"content of {name}\n")
    remote = f"t:{BUCKET}/rclone-tree"
    rclone("copy", str(local), remote)
    rclone("check", str(local), remote)
    (local / "b.txt").unlink()
    (local / "a.txt").write_text("changed\n")
    rclone("sync", str(local), remote)
    assert sorted(rclone("lsf", "-R", "--files-only", remote).stdout.split()) == [
        "a.txt",
        "sub/c.txt",
    ]
    rclone("check", str(local), remote)
    (local / "a.txt").write_text("changed again\n")
    differs = rclone("check", str(local), remote, check=False)
    assert differs.returncode != 0 and "1 differences found" in differs.stderr
    rclone("purge", remote)


def test_100mib_multipart_round_trip(rclone: Rclone, big_file: BigFile, tmp_path: Path) -> None:
    rclone("copyto", str(big_file.path), f"t:{BUCKET}/rclone/big.bin")
    assert rclone("size", "--json", f"t:{BUCKET}/rclone/big.bin").stdout.count(
        f'"bytes":{big_file.size}'
    )
    out = tmp_path / "big.out"
    rclone("copyto", f"t:{BUCKET}/rclone/big.bin", str(out))
    assert sha256_of(out) == big_file.sha256
    rclone("deletefile", f"t:{BUCKET}/rclone/big.bin")


def test_lists_1500_keys(rclone: Rclone, many_keys: str) -> None:
    names = rclone("lsf", f"t:{BUCKET}/{many_keys}").stdout.split()
    assert [many_keys + name for name in names] == many_key_names()


def test_cat_with_offset_and_count(rclone: Rclone, tmp_path: Path) -> None:
    source = tmp_path / "ranged.bin"
    source.write_bytes(ranged_source())
    rclone("copyto", str(source), f"t:{BUCKET}/rclone/ranged.bin")
    part = rclone.cat("--offset", "1000", "--count", "1000", f"t:{BUCKET}/rclone/ranged.bin")
    assert part == source.read_bytes()[1000:2000]


def test_wrong_secret_is_signature_does_not_match(target: Target, tmp_path: Path) -> None:
    wrong = Rclone(target, target.wrong_secret(), tmp_path / "wrong")
    wrong.fails_with("SignatureDoesNotMatch", "lsf", f"t:{BUCKET}/")
    source = tmp_path / "never.txt"
    source.write_text("never stored\n")
    # --no-check-dest: straight to the PUT (a HEAD's 403 carries no error code to read).
    never = unique_key("rclone/never")
    remote = f"t:{BUCKET}/{never}"
    wrong.fails_with("SignatureDoesNotMatch", "copyto", "--no-check-dest", str(source), remote)
    assert_not_stored(target, BUCKET, never)


def test_unknown_key_is_invalid_access_key_id(target: Target, tmp_path: Path) -> None:
    stranger = Rclone(target, target.unknown_key(), tmp_path / "stranger")
    stranger.fails_with("InvalidAccessKeyId", "lsf", f"t:{BUCKET}/")


def test_link_works_then_expires(rclone: Rclone, tmp_path: Path) -> None:
    source = tmp_path / "presigned.txt"
    source.write_bytes(b"presigned by rclone link")
    rclone("copyto", str(source), f"t:{BUCKET}/rclone/presigned.txt")
    lasting = rclone("link", "--expire", "1h", f"t:{BUCKET}/rclone/presigned.txt").stdout.strip()
    brief = rclone("link", "--expire", "1s", f"t:{BUCKET}/rclone/presigned.txt").stdout.strip()
    assert_presign_lifetime(lasting, brief, b"presigned by rclone link")


def test_scoped_key_refused_on_another_bucket(target: Target, tmp_path: Path) -> None:
    scoped = Rclone(target, target.scoped_key({BUCKET: "rw"}), tmp_path / "scoped")
    source = tmp_path / "scoped.txt"
    source.write_text("scoped\n")
    scoped("copyto", str(source), f"t:{BUCKET}/rclone/scoped.txt")
    theirs = unique_key("rclone/scoped")
    elsewhere = f"t:{OTHER_BUCKET}/{theirs}"
    scoped.fails_with("AccessDenied", "copyto", "--no-check-dest", str(source), elsewhere)
    assert_not_stored(target, OTHER_BUCKET, theirs)
    scoped.fails_with("AccessDenied", "lsf", f"t:{OTHER_BUCKET}/")
    kept = unique_key("rclone/kept")
    plant(target, OTHER_BUCKET, kept, b"theirs")
    # rclone HEADs the object first; that 403 carries no code, so only the exit status shows.
    assert scoped("deletefile", f"t:{OTHER_BUCKET}/{kept}", check=False).returncode != 0
    assert_still_stored(target, OTHER_BUCKET, kept, b"theirs")
