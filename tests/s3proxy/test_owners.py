"""One owner per bucket through the proxy, on a SQLite and on a PostgreSQL catalog: keys
made with ``nebula keys create [--owner]``, driven by boto3 and the aws CLI."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from catalog.buckets import owner_id, recorded_owner
from catalog.keys import KeyPair
from nebulacore.s3 import backend_client
from tests.harness import nebula_argv
from tests.s3proxy.clients import Target, aws_env, run
from tests.s3proxy.signing import s3_client
from tests.services import create_pg_database, drop_pg_database
from tests.stacks import ProxyUnderTest, Seaweed, start_proxy


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def owned(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, seaweed: Seaweed
) -> Iterator[ProxyUnderTest]:
    url = create_pg_database() if request.param == "postgresql" else None
    extra = {"NEBULA_DATABASE_URL": url} if url else {}
    server = start_proxy(tmp_path_factory.mktemp(f"owners-{request.param}"), seaweed, extra)
    yield server
    server.stop()
    if url:
        drop_pg_database(url)


def keys_create(proxy: ProxyUnderTest, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nebula_argv("keys", "create", *args),
        env=proxy.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_key(proxy: ProxyUnderTest, name: str, *owner: str) -> KeyPair:
    """A key that may create any bucket, made by the CLI as a user would."""
    result = keys_create(proxy, "--name", name, "--bucket", "*:admin", *owner)
    assert result.returncode == 0, result.stderr
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines() if line[:1].isalpha())
    return KeyPair(fields["access key"].strip(), fields["secret key"].strip())


def code_of(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    answer = caught.value.response
    return answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]


def new_bucket() -> str:
    return f"own-{uuid.uuid4().hex[:12]}"


def owner_row(proxy: ProxyUnderTest, bucket: str) -> str | None:
    with proxy.catalog.session() as session:
        return recorded_owner(session, bucket)


def shows(owner: dict[str, str], name: str) -> bool:
    return (owner.get("DisplayName"), owner.get("ID")) == (name, owner_id(name))


def test_each_owner_has_its_buckets(owned: ProxyUnderTest) -> None:
    laptop = s3_client(owned.endpoint, cli_key(owned, "alice-laptop", "--owner", "alice"))
    phone = s3_client(owned.endpoint, cli_key(owned, "alice-phone", "--owner", "alice"))
    bob = s3_client(owned.endpoint, cli_key(owned, "bob"))  # his own owner: "bob"
    bucket = new_bucket()
    laptop.create_bucket(Bucket=bucket)
    assert owner_row(owned, bucket) == "alice"

    assert code_of(bob.create_bucket, Bucket=bucket) == ("BucketAlreadyExists", 409)
    assert code_of(phone.create_bucket, Bucket=bucket) == ("BucketAlreadyOwnedByYou", 409)
    assert owner_row(owned, bucket) == "alice"  # the refused requests changed nothing

    acl = bob.get_bucket_acl(Bucket=bucket)
    assert shows(acl["Owner"], "alice")
    assert [shows(g["Grantee"], "alice") for g in acl["Grants"]] == [True]
    # ListBuckets names the requester as its Owner, as S3 does.
    assert shows(laptop.list_buckets()["Owner"], "alice")
    assert shows(bob.list_buckets()["Owner"], "bob")
    assert bucket in [b["Name"] for b in bob.list_buckets()["Buckets"]]


def test_buckets_made_before_are_the_admins(owned: ProxyUnderTest) -> None:
    bucket = new_bucket()
    backend_client(owned.settings).create_bucket(Bucket=bucket)  # straight on the backend
    bob = s3_client(owned.endpoint, cli_key(owned, "bob-2", "--owner", "bob"))
    admin = s3_client(owned.endpoint, owned.admin)
    assert code_of(bob.create_bucket, Bucket=bucket) == ("BucketAlreadyExists", 409)
    assert code_of(admin.create_bucket, Bucket=bucket) == ("BucketAlreadyOwnedByYou", 409)
    assert owner_row(owned, bucket) is None
    assert shows(bob.get_bucket_acl(Bucket=bucket)["Owner"], "admin")
    assert shows(admin.list_buckets()["Owner"], "admin")


def test_deleting_a_bucket_frees_its_name(owned: ProxyUnderTest) -> None:
    alice = s3_client(owned.endpoint, cli_key(owned, "alice-3", "--owner", "alice"))
    bob = s3_client(owned.endpoint, cli_key(owned, "bob-3", "--owner", "bob"))
    bucket = new_bucket()
    alice.create_bucket(Bucket=bucket)
    alice.delete_bucket(Bucket=bucket)
    assert owner_row(owned, bucket) is None
    bob.create_bucket(Bucket=bucket)
    assert shows(alice.get_bucket_acl(Bucket=bucket)["Owner"], "bob")

    # Deleted on the backend behind the proxy's back: the name is free again too.
    backend_client(owned.settings).delete_bucket(Bucket=bucket)
    alice.create_bucket(Bucket=bucket)
    assert owner_row(owned, bucket) == "alice"


def test_aws_cli_sees_owners(owned: ProxyUnderTest, tmp_path: Path) -> None:
    target = Target("proxy", owned.endpoint, owned.admin, None)

    def aws(key: KeyPair, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = aws_env(target, key, tmp_path / key.access_key_id)
        return run(["aws", "--endpoint-url", owned.endpoint, *args], env, check)

    carol = cli_key(owned, "carol-cli", "--owner", "carol")
    dave = cli_key(owned, "dave-cli", "--owner", "dave")
    carol2 = cli_key(owned, "carol-cli-2", "--owner", "carol")
    bucket = new_bucket()
    aws(carol, "s3", "mb", f"s3://{bucket}")
    taken = aws(dave, "s3api", "create-bucket", "--bucket", bucket, check=False)
    assert taken.returncode != 0 and "(BucketAlreadyExists)" in taken.stderr
    mine = aws(carol2, "s3api", "create-bucket", "--bucket", bucket, check=False)
    assert mine.returncode != 0 and "(BucketAlreadyOwnedByYou)" in mine.stderr
    acl = json.loads(aws(dave, "s3api", "get-bucket-acl", "--bucket", bucket).stdout)
    assert acl["Owner"] == {"DisplayName": "carol", "ID": owner_id("carol")}
    listing = json.loads(aws(carol, "s3api", "list-buckets").stdout)
    assert listing["Owner"] == {"DisplayName": "carol", "ID": owner_id("carol")}


def test_keys_create_owner_option(owned: ProxyUnderTest) -> None:
    result = keys_create(owned, "--name", "erin-tablet", "--bucket", "media:r", "--owner", "erin")
    assert result.returncode == 0 and "owner:      erin" in result.stdout
    default = keys_create(owned, "--name", "frank", "--bucket", "media:r")
    assert "owner:      frank" in default.stdout
    admin = keys_create(owned, "--name", "ops", "--admin")
    assert "owner:      admin" in admin.stdout
    listing = subprocess.run(
        nebula_argv("keys", "list"), env=owned.env, capture_output=True, text=True, timeout=120
    )
    row = next(line for line in listing.stdout.splitlines() if "erin-tablet" in line)
    assert row.split()[2] == "erin"
    bad = keys_create(owned, "--name", "x", "--bucket", "media:r", "--owner", " padded")
    assert bad.returncode != 0 and "owner" in bad.stderr
    listing = subprocess.run(
        nebula_argv("keys", "list"), env=owned.env, capture_output=True, text=True, timeout=120
    )
    assert "padded" not in listing.stdout
