"""One owner per bucket through the proxy, on a SQLite and on a PostgreSQL catalog: keys
made with ``nebula keys create [--owner]``, driven by boto3, the aws CLI and browser forms.
Every answer that names a person names the bucket's owner, never the backend's identity;
ACLs are the owner's alone (S3's "bucket owner enforced"), checked on SeaweedFS directly;
S3's bucket owner condition (``ExpectedBucketOwner``) is judged against the same owner."""

from __future__ import annotations

import json
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from catalog.buckets import owner_id, recorded_owner
from catalog.keys import KeyPair
from nebulacore.s3 import backend_client
from tests.harness import nebula_argv
from tests.s3proxy.clients import Target, aws_env, run
from tests.s3proxy.conftest import proxy_to_scripted_backend
from tests.s3proxy.signing import presign, s3_client, send, signed_headers
from tests.s3proxy.test_trust_signing import OK_EMPTY
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


# ----- Answers that name people: the bucket's owner, never the backend's identity -------


def backend_identity(proxy: ProxyUnderTest) -> list[bytes]:
    """What the backend calls its one identity (SeaweedFS: ID and display name "nebula",
    its delete markers' owner "anonymous"), and the backend's access key."""
    owner = backend_client(proxy.settings).list_buckets()["Owner"]
    access_key = proxy.settings.backend_access_key or ""
    assert access_key and owner["ID"]  # else the checks below would prove nothing
    return [owner["ID"].encode(), owner["DisplayName"].encode(), b"anonymous", access_key.encode()]


def raw_answers(client: Any) -> list[bytes]:
    """The bytes of every answer ``client`` receives from now on, as they came."""
    seen: list[bytes] = []

    def keep(http_response: Any, **_: Any) -> None:
        seen.append(http_response.content)

    client.meta.events.register("after-call.s3", keep)
    return seen


def assert_hidden(proxy: ProxyUnderTest, answers: list[bytes], owner: str) -> None:
    for body in answers:
        for secret in backend_identity(proxy):
            assert secret not in body, (secret, body[:2000])
    assert all(owner_id(owner).encode() in body for body in answers)


def scoped_key(proxy: ProxyUnderTest, name: str, bucket: str, scope: str, owner: str) -> KeyPair:
    result = keys_create(proxy, "--name", name, "--bucket", f"{bucket}:{scope}", "--owner", owner)
    assert result.returncode == 0, result.stderr
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines() if line[:1].isalpha())
    return KeyPair(fields["access key"].strip(), fields["secret key"].strip())


def a_bucket_with_history(proxy: ProxyUnderTest, owner: str) -> tuple[str, str]:
    """A bucket ``owner`` made with an object, a versioned object with a delete marker
    and an unfinished multipart upload with one part; returns it and the upload id."""
    maker = s3_client(
        proxy.endpoint, cli_key(proxy, f"{owner}-{uuid.uuid4().hex[:6]}", "--owner", owner)
    )
    bucket = new_bucket()
    maker.create_bucket(Bucket=bucket)
    maker.put_object(Bucket=bucket, Key="a.txt", Body=b"hello")
    maker.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    maker.put_object(Bucket=bucket, Key="v.txt", Body=b"1")
    maker.delete_object(Bucket=bucket, Key="v.txt")
    upload = maker.create_multipart_upload(Bucket=bucket, Key="big.bin")["UploadId"]
    maker.upload_part(Bucket=bucket, Key="big.bin", UploadId=upload, PartNumber=1, Body=b"x" * 100)
    return bucket, upload


def test_a_scoped_key_sees_the_owner_in_every_answer(owned: ProxyUnderTest) -> None:
    bucket, upload = a_bucket_with_history(owned, "alice")
    # A key that may only read this bucket, acting for someone else: it sees alice.
    reader = s3_client(owned.endpoint, scoped_key(owned, f"r-{bucket}", bucket, "r", "carol"))
    answers = raw_answers(reader)

    assert shows(reader.get_object_acl(Bucket=bucket, Key="a.txt")["Owner"], "alice")
    acl = reader.get_object_acl(Bucket=bucket, Key="a.txt")
    assert [shows(g["Grantee"], "alice") for g in acl["Grants"]] == [True]
    assert shows(reader.get_bucket_acl(Bucket=bucket)["Owner"], "alice")
    v1 = reader.list_objects(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in v1] == ["a.txt"]  # v.txt is deleted, big.bin unfinished
    assert all(shows(o["Owner"], "alice") for o in v1)
    v2 = reader.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"]
    assert all(shows(o["Owner"], "alice") for o in v2)
    versions = reader.list_object_versions(Bucket=bucket)
    assert len(versions["Versions"]) == 2 and len(versions["DeleteMarkers"]) == 1
    for entry in versions["Versions"] + versions["DeleteMarkers"]:
        assert shows(entry["Owner"], "alice")
    uploads = reader.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [upload]
    assert shows(uploads[0]["Initiator"], "alice") and shows(uploads[0]["Owner"], "alice")
    parts = reader.list_parts(Bucket=bucket, Key="big.bin", UploadId=upload)
    assert [p["PartNumber"] for p in parts["Parts"]] == [1]
    assert shows(parts["Initiator"], "alice") and shows(parts["Owner"], "alice")
    assert len(answers) == 8
    assert_hidden(owned, answers, "alice")

    # ListObjectsV2 without FetchOwner names nobody, as S3 documents.
    plain = raw_answers(reader)
    assert all("Owner" not in o for o in reader.list_objects_v2(Bucket=bucket)["Contents"])
    assert b"<Owner>" not in plain[0]


def test_a_long_listing_streams_with_the_owner(owned: ProxyUnderTest) -> None:
    """Over 64 KiB of listing: rewritten as it streams (chunked), every entry intact."""
    alice = s3_client(
        owned.endpoint, cli_key(owned, f"alice-{uuid.uuid4().hex[:6]}", "--owner", "alice")
    )
    bucket = new_bucket()
    alice.create_bucket(Bucket=bucket)
    backend = backend_client(owned.settings)
    names = [f"{'deep/' * 30}object-{i:04d}-\u00e9&<>.bin" for i in range(400)]
    for name in names:
        backend.put_object(Bucket=bucket, Key=name, Body=b"")
    answers = raw_answers(alice)
    listing = alice.list_objects(Bucket=bucket)
    assert len(answers[0]) > 64 << 10
    assert listing["ResponseMetadata"]["HTTPHeaders"].get("transfer-encoding") == "chunked"
    assert sorted(o["Key"] for o in listing["Contents"]) == sorted(names)
    assert all(shows(o["Owner"], "alice") for o in listing["Contents"])
    assert_hidden(owned, answers, "alice")


def alices_bucket(proxy: ProxyUnderTest, **config: Any) -> tuple[KeyPair, Any, str]:
    """A new key of alice's, a boto3 client with it and a bucket it made holding ``a.txt``."""
    key = cli_key(proxy, f"alice-{uuid.uuid4().hex[:6]}", "--owner", "alice")
    alice = s3_client(proxy.endpoint, key, **config)
    bucket = new_bucket()
    alice.create_bucket(Bucket=bucket)
    alice.put_object(Bucket=bucket, Key="a.txt", Body=b"hello")
    return key, alice, bucket


def test_acls_name_the_owner_alone(owned: ProxyUnderTest) -> None:
    """ACLs as on an S3 bucket whose Object Ownership is "bucket owner enforced"."""
    _, alice, bucket = alices_bucket(owned)
    backend = backend_client(owned.settings)
    # Made public on the backend directly (before this proxy refused it): a private ACL
    # through the proxy takes that back.
    backend.put_bucket_acl(Bucket=bucket, ACL="public-read")
    backend.put_object_acl(Bucket=bucket, Key="a.txt", ACL="public-read")
    answers = raw_answers(alice)

    alice.put_bucket_acl(Bucket=bucket, ACL="private")
    alice.put_object_acl(Bucket=bucket, Key="a.txt", ACL="bucket-owner-full-control")
    # What GetBucketAcl answers goes back unchanged (it names alice alone).
    policy = alice.get_bucket_acl(Bucket=bucket)
    alice.put_bucket_acl(
        Bucket=bucket, AccessControlPolicy={"Owner": policy["Owner"], "Grants": policy["Grants"]}
    )
    alice.put_object_acl(Bucket=bucket, Key="a.txt", GrantFullControl=f'id="{owner_id("alice")}"')
    assert_hidden(owned, [a for a in answers if a], "alice")
    for grants in (
        backend.get_bucket_acl(Bucket=bucket)["Grants"],
        backend.get_object_acl(Bucket=bucket, Key="a.txt")["Grants"],
    ):
        assert [g["Grantee"].get("URI") for g in grants] == [None]  # no AllUsers left

    refused = "AccessControlListNotSupported", 400
    bob = {"Type": "CanonicalUser", "ID": owner_id("bob")}
    assert code_of(alice.put_bucket_acl, Bucket=bucket, ACL="public-read") == refused
    assert code_of(alice.put_object_acl, Bucket=bucket, Key="a.txt", ACL="public-read") == refused
    grant_bob = {"Owner": policy["Owner"], "Grants": [{"Grantee": bob, "Permission": "READ"}]}
    assert code_of(alice.put_bucket_acl, Bucket=bucket, AccessControlPolicy=grant_bob) == refused
    everyone = {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}
    public = {"Owner": policy["Owner"], "Grants": [{"Grantee": everyone, "Permission": "READ"}]}
    assert (
        code_of(alice.put_object_acl, Bucket=bucket, Key="a.txt", AccessControlPolicy=public)
        == refused
    )
    assert (
        code_of(alice.put_object, Bucket=bucket, Key="b.txt", Body=b"x", ACL="public-read")
        == refused
    )
    assert (
        code_of(
            alice.put_object, Bucket=bucket, Key="b.txt", Body=b"x", GrantRead=f'id="{bob["ID"]}"'
        )
        == refused
    )
    assert code_of(alice.create_bucket, Bucket=new_bucket(), ACL="public-read") == (
        "InvalidBucketAclWithObjectOwnership",
        400,
    )
    assert "Contents" not in backend.list_objects_v2(Bucket=bucket, Prefix="b.txt")
    # The owner's own ACL on an upload is the default one: accepted.
    alice.put_object(Bucket=bucket, Key="c.txt", Body=b"x", ACL="bucket-owner-full-control")
    alice.put_object(
        Bucket=bucket, Key="d.txt", Body=b"x", GrantFullControl=f'id="{owner_id("alice")}"'
    )
    for key in ("a.txt", "c.txt", "d.txt"):
        grants = backend.get_object_acl(Bucket=bucket, Key=key)["Grants"]
        assert [g["Grantee"].get("URI") for g in grants] == [None]


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def owner_alone(name: str) -> list[dict[str, Any]]:
    """The grants S3 answers under "bucket owner enforced": the owner's FULL_CONTROL."""
    grantee = {"Type": "CanonicalUser", "ID": owner_id(name), "DisplayName": name}
    return [{"Grantee": grantee, "Permission": "FULL_CONTROL"}]


def test_acl_answers_show_the_owner_alone(owned: ProxyUnderTest, tmp_path: Path) -> None:
    """Grants made on the backend directly (public-read, AllUsers) give nobody anything
    through the proxy, the only way in: GetBucketAcl and GetObjectAcl say what the proxy
    enforces, the owner alone with FULL_CONTROL, as S3 does under "bucket owner enforced"."""
    _, alice, bucket = alices_bucket(owned)
    backend = backend_client(owned.settings)
    backend.put_bucket_acl(Bucket=bucket, ACL="public-read")
    backend_owner = backend.get_object_acl(Bucket=bucket, Key="a.txt")["Owner"]
    everyone = {"Type": "Group", "URI": ALL_USERS}
    policy: Any = {
        "Owner": backend_owner,
        "Grants": [
            {"Grantee": everyone, "Permission": "READ"},
            {"Grantee": everyone, "Permission": "READ_ACP"},
        ],
    }
    backend.put_object_acl(Bucket=bucket, Key="a.txt", AccessControlPolicy=policy)
    # The backend holds the public grants (else the checks below would prove nothing).
    for grants in (
        backend.get_bucket_acl(Bucket=bucket)["Grants"],
        backend.get_object_acl(Bucket=bucket, Key="a.txt")["Grants"],
    ):
        assert ALL_USERS in [g["Grantee"].get("URI") for g in grants]

    reader = s3_client(owned.endpoint, scoped_key(owned, f"r-{bucket}", bucket, "r", "carol"))
    for client in (alice, reader):
        answers = raw_answers(client)
        for acl in (
            client.get_bucket_acl(Bucket=bucket),
            client.get_object_acl(Bucket=bucket, Key="a.txt"),
        ):
            assert shows(acl["Owner"], "alice")
            assert acl["Grants"] == owner_alone("alice")
        assert len(answers) == 2
        assert_hidden(owned, answers, "alice")
        for body in answers:
            for group in (b"AllUsers", b"acs.amazonaws.com", b"Group", b"READ<"):
                assert group not in body, body

    # dave may read every bucket; he sees alice as this one's owner.
    dave = scoped_key(owned, f"dave-{uuid.uuid4().hex[:6]}", "*", "r", "dave")
    env = aws_env(Target("proxy", owned.endpoint, owned.admin, None), dave, tmp_path)
    for args in (["get-bucket-acl"], ["get-object-acl", "--key", "a.txt"]):
        out = run(
            ["aws", "--endpoint-url", owned.endpoint, "s3api", *args, "--bucket", bucket], env
        )
        acl = json.loads(out.stdout)
        assert acl["Owner"] == {"DisplayName": "alice", "ID": owner_id("alice")}
        assert acl["Grants"] == owner_alone("alice")
        for shown in ["AllUsers", *(s.decode() for s in backend_identity(owned))]:
            assert shown not in out.stdout

    # Errors stay the backend's (or the proxy's own): only a 2xx ACL is rewritten.
    assert code_of(alice.get_object_acl, Bucket=bucket, Key="none.txt") == ("NoSuchKey", 404)
    assert code_of(alice.get_bucket_acl, Bucket=new_bucket()) == ("NoSuchBucket", 404)
    other = new_bucket()
    alice.create_bucket(Bucket=other)
    assert code_of(reader.get_bucket_acl, Bucket=other) == ("AccessDenied", 403)
    # Answering is all it does: the backend's grants are as they were.
    still = backend.get_bucket_acl(Bucket=bucket)["Grants"]
    assert ALL_USERS in [g["Grantee"].get("URI") for g in still]


def test_aws_cli_sees_the_owner_of_objects(owned: ProxyUnderTest, tmp_path: Path) -> None:
    bucket, upload = a_bucket_with_history(owned, "dave")
    reader = scoped_key(owned, f"cli-{bucket}", bucket, "admin", "erin")
    env = aws_env(Target("proxy", owned.endpoint, owned.admin, None), reader, tmp_path)

    def aws(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["aws", "--endpoint-url", owned.endpoint, "s3api", *args], env, check)

    dave = {"DisplayName": "dave", "ID": owner_id("dave")}
    outputs = [
        aws("get-object-acl", "--bucket", bucket, "--key", "a.txt").stdout,
        aws("list-objects", "--bucket", bucket).stdout,
        aws("list-objects-v2", "--bucket", bucket, "--fetch-owner").stdout,
        aws("list-object-versions", "--bucket", bucket).stdout,
        aws("list-multipart-uploads", "--bucket", bucket).stdout,
        aws("list-parts", "--bucket", bucket, "--key", "big.bin", "--upload-id", upload).stdout,
    ]
    acl, v1, v2, versions, uploads, parts = (json.loads(o) for o in outputs)
    assert acl["Owner"] == dave
    assert {json.dumps(o["Owner"], sort_keys=True) for o in v1["Contents"] + v2["Contents"]} == {
        json.dumps(dave, sort_keys=True)
    }
    assert all(v["Owner"] == dave for v in versions["Versions"] + versions["DeleteMarkers"])
    assert uploads["Uploads"][0]["Initiator"] == dave == uploads["Uploads"][0]["Owner"]
    assert parts["Initiator"] == dave == parts["Owner"]
    for text in outputs:
        for secret in backend_identity(owned):
            assert secret.decode() not in text
    refused = aws("put-bucket-acl", "--bucket", bucket, "--acl", "public-read", check=False)
    assert refused.returncode != 0 and "(AccessControlListNotSupported)" in refused.stderr
    aws("put-bucket-acl", "--bucket", bucket, "--acl", "private")


def test_browser_forms_set_no_acl_but_the_owners(owned: ProxyUnderTest) -> None:
    key = cli_key(owned, f"alice-{uuid.uuid4().hex[:6]}", "--owner", "alice")
    alice = s3_client(owned.endpoint, key, signature_version="s3v4")
    bucket = new_bucket()
    alice.create_bucket(Bucket=bucket)

    def post(name: str, acl: str) -> requests.Response:
        form = alice.generate_presigned_post(
            Bucket=bucket, Key=name, Fields={"acl": acl}, Conditions=[{"acl": acl}]
        )
        return requests.post(
            form["url"], data=form["fields"], files={"file": ("f", b"data")}, timeout=60
        )

    refused = post("public.txt", "public-read")
    assert refused.status_code == 400
    assert ET.fromstring(refused.content).findtext("Code") == "AccessControlListNotSupported"
    backend = backend_client(owned.settings)
    assert "Contents" not in backend.list_objects_v2(Bucket=bucket)
    assert post("private.txt", "private").status_code == 204
    grants = backend.get_object_acl(Bucket=bucket, Key="private.txt")["Grants"]
    assert [g["Grantee"].get("URI") for g in grants] == [None]


# ----- Bucket owner condition: x-amz-(source-)expected-bucket-owner -----------------------


def refused(call: Any, **kwargs: Any) -> bool:
    return code_of(call, **kwargs) == ("AccessDenied", 403)


def strangers(proxy: ProxyUnderTest) -> list[str]:
    """IDs that are not alice's: another owner's, and the backend's own identity (SeaweedFS
    calls it ``nebula``), which the backend itself would have accepted."""
    backend_id = backend_client(proxy.settings).list_buckets()["Owner"]["ID"]
    assert backend_id and backend_id != owner_id("alice")
    return [owner_id("bob"), backend_id]


def exists_on_backend(proxy: ProxyUnderTest, bucket: str, key: str) -> bool:
    listing = backend_client(proxy.settings).list_objects_v2(Bucket=bucket, Prefix=key)
    return any(o["Key"] == key for o in listing.get("Contents", []))


def test_expected_bucket_owner_is_the_nebula_owner(owned: ProxyUnderTest) -> None:
    _, alice, bucket = alices_bucket(owned)
    mine = owner_id("alice")

    # The ID GetBucketAcl shows is the one the condition takes, upper-case too.
    assert alice.get_bucket_acl(Bucket=bucket)["Owner"]["ID"] == mine
    for right in (mine, mine.upper()):
        got = alice.get_object(Bucket=bucket, Key="a.txt", ExpectedBucketOwner=right)
        assert got["Body"].read() == b"hello"
    alice.put_object(Bucket=bucket, Key="b.txt", Body=b"b", ExpectedBucketOwner=mine)
    assert exists_on_backend(owned, bucket, "b.txt")
    listed = alice.list_objects_v2(Bucket=bucket, ExpectedBucketOwner=mine)
    assert [o["Key"] for o in listed["Contents"]] == ["a.txt", "b.txt"]
    alice.delete_object(Bucket=bucket, Key="b.txt", ExpectedBucketOwner=mine)
    assert not exists_on_backend(owned, bucket, "b.txt")

    for wrong in strangers(owned):
        assert refused(alice.get_object, Bucket=bucket, Key="a.txt", ExpectedBucketOwner=wrong)
        head = {"Bucket": bucket, "Key": "a.txt", "ExpectedBucketOwner": wrong}
        assert code_of(alice.head_object, **head) == ("403", 403)  # HEAD: no XML body
        assert refused(alice.list_objects_v2, Bucket=bucket, ExpectedBucketOwner=wrong)
        put = {"Bucket": bucket, "Key": "w.txt", "Body": b"w", "ExpectedBucketOwner": wrong}
        assert refused(alice.put_object, **put)
        assert not exists_on_backend(owned, bucket, "w.txt")  # nothing stored
        assert refused(alice.delete_object, Bucket=bucket, Key="a.txt", ExpectedBucketOwner=wrong)
        assert exists_on_backend(owned, bucket, "a.txt")  # nothing deleted


def test_expected_source_bucket_owner_on_copies(owned: ProxyUnderTest) -> None:
    alice = s3_client(
        owned.endpoint, cli_key(owned, f"alice-{uuid.uuid4().hex[:6]}", "--owner", "alice")
    )
    bob = s3_client(owned.endpoint, cli_key(owned, f"bob-{uuid.uuid4().hex[:6]}", "--owner", "bob"))
    source, target = new_bucket(), new_bucket()
    bob.create_bucket(Bucket=source)
    bob.put_object(Bucket=source, Key="s.txt", Body=b"source")
    alice.create_bucket(Bucket=target)
    copy = {"Bucket": target, "CopySource": {"Bucket": source, "Key": "s.txt"}}

    # Each condition is judged on its own bucket: bob's source, alice's destination.
    alice.copy_object(
        **copy,
        Key="ok.txt",
        ExpectedSourceBucketOwner=owner_id("bob"),
        ExpectedBucketOwner=owner_id("alice"),
    )
    got = backend_client(owned.settings).get_object(Bucket=target, Key="ok.txt")
    assert got["Body"].read() == b"source"
    backend_id = backend_client(owned.settings).list_buckets()["Owner"]["ID"]
    for wrong in (owner_id("alice"), backend_id):
        assert refused(alice.copy_object, **copy, Key="no.txt", ExpectedSourceBucketOwner=wrong)
    assert refused(alice.copy_object, **copy, Key="no.txt", ExpectedBucketOwner=owner_id("bob"))
    assert not exists_on_backend(owned, target, "no.txt")

    # UploadPartCopy takes the source condition too.
    upload = alice.create_multipart_upload(Bucket=target, Key="part.bin")["UploadId"]
    part = {**copy, "Key": "part.bin", "UploadId": upload, "PartNumber": 1}
    assert refused(alice.upload_part_copy, **part, ExpectedSourceBucketOwner=backend_id)
    alice.upload_part_copy(**part, ExpectedSourceBucketOwner=owner_id("bob"))


def no_such_bucket(call: Any, bucket: str, **kwargs: Any) -> bool:
    """Whether ``call`` is refused with S3's 404 NoSuchBucket naming ``bucket``."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    answer = caught.value.response
    code = answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]
    return code == ("NoSuchBucket", 404) and answer["Error"].get("BucketName") == bucket


def on_backend(proxy: ProxyUnderTest, bucket: str) -> bool:
    listing = backend_client(proxy.settings).list_buckets()["Buckets"]
    return bucket in [b["Name"] for b in listing]


def test_expected_owner_of_a_missing_bucket_is_no_such_bucket(owned: ProxyUnderTest) -> None:
    """S3 says whether a bucket exists before it judges its owner: a bucket with no owner
    row counts as the admin's, yet one the backend does not have is NoSuchBucket, not
    AccessDenied; one it has (made on the backend directly) is still AccessDenied."""
    _, alice, bucket = alices_bucket(owned)
    missing = new_bucket()
    wrong = owner_id("bob")
    answers = raw_answers(alice)

    assert no_such_bucket(
        alice.get_object, missing, Bucket=missing, Key="a.txt", ExpectedBucketOwner=wrong
    )
    head = {"Bucket": missing, "Key": "a.txt", "ExpectedBucketOwner": wrong}
    assert code_of(alice.head_object, **head) == ("404", 404)  # HEAD: no XML body
    put = {"Bucket": missing, "Key": "w.txt", "Body": b"w", "ExpectedBucketOwner": wrong}
    assert no_such_bucket(alice.put_object, missing, **put)
    # The copy's missing source bucket, judged by its own condition.
    copy = {"Bucket": bucket, "Key": "c.txt", "CopySource": {"Bucket": missing, "Key": "a.txt"}}
    assert no_such_bucket(alice.copy_object, missing, **copy, ExpectedSourceBucketOwner=wrong)
    assert not exists_on_backend(owned, bucket, "c.txt")
    # A missing destination, its source alice's and named right.
    into = {"Bucket": missing, "Key": "c.txt", "CopySource": {"Bucket": bucket, "Key": "a.txt"}}
    assert no_such_bucket(
        alice.copy_object,
        missing,
        **into,
        ExpectedSourceBucketOwner=owner_id("alice"),
        ExpectedBucketOwner=wrong,
    )
    assert b"<BucketName>" + missing.encode() + b"</BucketName>" in answers[0]
    assert not on_backend(owned, missing) and owner_row(owned, missing) is None

    # Made on the backend directly (no row, the admin's): a wrong owner is still refused.
    direct = new_bucket()
    backend_client(owned.settings).create_bucket(Bucket=direct)
    backend_client(owned.settings).put_object(Bucket=direct, Key="a.txt", Body=b"a")
    assert refused(alice.put_object, **{**put, "Bucket": direct})
    from_direct = {**copy, "CopySource": {"Bucket": direct, "Key": "a.txt"}}
    assert refused(alice.copy_object, **from_direct, ExpectedSourceBucketOwner=wrong)
    assert not exists_on_backend(owned, direct, "w.txt")
    assert not exists_on_backend(owned, bucket, "c.txt")
    alice.put_object(**{**put, "Bucket": direct, "ExpectedBucketOwner": owner_id("admin")})
    assert exists_on_backend(owned, direct, "w.txt")

    # A row that outlived its bucket (deleted on the backend directly): NoSuchBucket too.
    gone = new_bucket()
    alice.create_bucket(Bucket=gone)
    backend_client(owned.settings).delete_bucket(Bucket=gone)
    assert owner_row(owned, gone) == "alice"
    assert no_such_bucket(alice.put_object, gone, **{**put, "Bucket": gone})
    assert not on_backend(owned, gone)


def test_expected_bucket_owner_in_presigned_urls(owned: ProxyUnderTest) -> None:
    key, alice, bucket = alices_bucket(owned, signature_version="s3v4")
    backend_id = backend_client(owned.settings).list_buckets()["Owner"]["ID"]

    # boto3 signs the condition as a header the URL's user must send.
    for stated, status in ((owner_id("alice"), 200), (backend_id, 403)):
        url = alice.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "a.txt", "ExpectedBucketOwner": stated}
        )
        answer = send("GET", url, {"x-amz-expected-bucket-owner": stated})
        assert answer.status == status
    # boto3's SigV2 presigned URL copies it into the query, signed as the header to send.
    v2 = s3_client(owned.endpoint, key)
    for stated, status in ((owner_id("alice"), 200), (backend_id, 403)):
        url = v2.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "a.txt", "ExpectedBucketOwner": stated}
        )
        assert "AWSAccessKeyId=" in url and "x-amz-expected-bucket-owner=" in url
        assert send("GET", url, {"x-amz-expected-bucket-owner": stated}).status == status
    # The AWS SDK for JavaScript v3 hoists it into the signed query.
    for stated, status in ((owner_id("alice"), 200), (owner_id("bob"), 403)):
        url = f"{owned.endpoint}/{bucket}/a.txt?x-amz-expected-bucket-owner={stated}"
        answer = send("GET", presign("GET", url, key), {})
        assert answer.status == status
        assert answer.body == b"hello" if status == 200 else answer.code == "AccessDenied"
    # Taken out of the query, it leaves a bare bucket: a DeleteBucket, whose owner is freed.
    alice.delete_object(Bucket=bucket, Key="a.txt")
    for stated, status in ((owner_id("bob"), 403), (owner_id("alice"), 204)):
        url = f"{owned.endpoint}/{bucket}?x-amz-expected-bucket-owner={stated}"
        assert send("DELETE", presign("DELETE", url, key), {}).status == status
    assert owner_row(owned, bucket) is None


def test_aws_cli_expected_bucket_owner(owned: ProxyUnderTest, tmp_path: Path) -> None:
    key = cli_key(owned, f"alice-{uuid.uuid4().hex[:6]}", "--owner", "alice")
    env = aws_env(Target("proxy", owned.endpoint, owned.admin, None), key, tmp_path)
    bucket = new_bucket()

    def aws(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["aws", "--endpoint-url", owned.endpoint, "s3api", *args], env, check)

    aws("create-bucket", "--bucket", bucket)
    aws("put-object", "--bucket", bucket, "--key", "a.txt", "--body", str(Path(__file__)))
    get = ["get-object", "--bucket", bucket, "--key", "a.txt", "--expected-bucket-owner"]
    aws(*get, owner_id("alice"), str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == Path(__file__).read_bytes()
    no = aws(*get, owner_id("bob"), str(tmp_path / "no"), check=False)
    assert no.returncode != 0 and "(AccessDenied)" in no.stderr
    assert not (tmp_path / "no").exists()


def test_the_backend_never_sees_the_condition(tmp_path: Path, seaweed: Seaweed) -> None:
    """Met, the condition is taken out of the headers and the query before the request is
    signed again for the backend (a backend judging it would compare it with itself)."""
    with proxy_to_scripted_backend(tmp_path, seaweed, OK_EMPTY) as (server, heads):
        admins = owner_id("admin")  # "media" has no recorded owner: it is the admin's
        url = f"{server.endpoint}/media/cond/a.txt"
        stated = {"x-amz-expected-bucket-owner": admins}
        assert send("GET", url, signed_headers("GET", url, server.admin, stated)).status == 200
        copy = {**stated, "x-amz-copy-source": "/media/cond/b.txt"}
        copy["x-amz-source-expected-bucket-owner"] = admins
        assert send("PUT", url, signed_headers("PUT", url, server.admin, copy)).status == 200
        hoisted = presign("GET", f"{url}?x-amz-expected-bucket-owner={admins}", server.admin)
        assert send("GET", hoisted, {}).status == 200
        # And a refused one reaches nothing at all.
        wrong = {"x-amz-expected-bucket-owner": owner_id("bob")}
        assert send("GET", url, signed_headers("GET", url, server.admin, wrong)).status == 403
    forwarded = [head for head in heads if b" /media/" in head.split(b"\r\n", 1)[0]]
    assert len(forwarded) == 3  # the health pings aside
    for head in forwarded:
        assert b"expected-bucket-owner" not in head.lower(), head
    # Met, the condition cost no backend request; refused, one HEAD asked whether the
    # bucket exists (it did: 403, not NoSuchBucket).
    lines = [head.split(b"\r\n", 1)[0] for head in heads]
    assert [line for line in lines if line.startswith(b"HEAD /media ")] == [b"HEAD /media HTTP/1.1"]
