"""The embedded SeaweedFS is private: its internal ports want a key, its files are 0600.

Every attack here is one any local user could make against 127.0.0.1 with SeaweedFS's
defaults; each is shown refused with nothing read, nothing written, nothing overwritten
(checked on the backend directly), next to the same request made with the key working.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
import tomllib
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypedDict, cast

import jwt
import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from nebula import storage
from nebulacore.config import ConfigError, load_settings
from nebulacore.s3 import backend_client
from tests.services import assert_nothing_for_others, environ_without
from tests.stacks import Seaweed, start_seaweed

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
GRPC_PORTS = (
    "master.port.grpc",
    "volume.port.grpc",
    "filer.port.grpc",
    "s3.port.grpc",
    "admin.port.grpc",
)
OTHER_USER = "nobody"
# Debian's interpreter: the one running the tests may live where that user cannot go.
OTHER_USER_PYTHON = "/usr/bin/python3"


def weed_flags(seaweed: Seaweed) -> dict[str, str]:
    """The flags the running ``weed`` process really has (from /proc, not from our code)."""
    argv = Path(f"/proc/{seaweed.process.pid}/cmdline").read_bytes().split(b"\0")
    flags = {}
    for arg in argv[2:]:
        name, _, value = arg.decode().lstrip("-").partition("=")
        if name:
            flags[name] = value or "true"
    return flags


def port(seaweed: Seaweed, name: str) -> int:
    return int(weed_flags(seaweed)[name])


def security(seaweed: Seaweed) -> dict[str, Any]:
    return tomllib.loads((seaweed.root / "storage" / "security.toml").read_text())


def weed_shell(seaweed: Seaweed, command: str, cwd: Path, timeout: float) -> str:
    """SeaweedFS's own gRPC client; it reads ./security.toml from ``cwd`` like the server."""
    flags = weed_flags(seaweed)
    master = f"127.0.0.1:{flags['master.port']}.{flags['master.port.grpc']}"
    filer = f"127.0.0.1:{flags['filer.port']}.{flags['filer.port.grpc']}"
    env = environ_without()
    env["HOME"] = str(cwd)  # no ~/.seaweedfs/security.toml either
    try:
        done = subprocess.run(
            [storage.weed_binary(), "shell", f"-master={master}", f"-filer={filer}"],
            input=command + "\n",
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=env,
        )
    except subprocess.TimeoutExpired as stuck:
        out = stuck.stdout or b""
        return out.decode() if isinstance(out, bytes) else out
    return done.stdout + done.stderr


def stored_object(seaweed: Seaweed) -> tuple[str, str, bytes, str]:
    """Upload an object through S3; return bucket, key, body and its volume file id."""
    bucket, key = "media", f"private/{uuid.uuid4().hex}.bin"
    body = os.urandom(64 * 1024)  # random: stored as is, not compressed
    s3 = backend_client(seaweed.settings)
    if bucket not in _buckets(s3):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    meta = weed_shell(seaweed, f"fs.meta.cat /buckets/{bucket}/{key}", seaweed.root / "storage", 60)
    found = re.search(r'"fileId":\s*"([^"]+)"', meta)
    assert found, f"weed shell with the key could not read the metadata:\n{meta}"
    return bucket, key, body, found.group(1)


def _buckets(s3: Any) -> list[str]:
    return [b["Name"] for b in s3.list_buckets()["Buckets"]]


def volume_jwt(key: str, fid: str) -> str:
    return jwt.encode({"fid": fid, "exp": int(time.time()) + 60}, key, algorithm="HS256")


def assert_unchanged(seaweed: Seaweed, bucket: str, key: str, body: bytes) -> None:
    s3 = backend_client(seaweed.settings)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def internal_url(seaweed: Seaweed, name: str, path: str, scheme: str = "https") -> str:
    return f"{scheme}://127.0.0.1:{port(seaweed, name)}{path}"


def tls_files(seaweed: Seaweed) -> tuple[str, tuple[str, str]]:
    """The CA to trust and the client certificate only the storage's own files hold."""
    tls = seaweed.root / "storage" / "tls"
    return str(tls / "ca.crt"), (str(tls / "storage.crt"), str(tls / "storage.key"))


class MemberTLS(TypedDict):
    """requests arguments of a client that trusts the storage's CA and holds its client
    certificate (per call: REQUESTS_CA_BUNDLE would override a Session's ``verify``)."""

    verify: str
    cert: tuple[str, str]
    timeout: float


def member_tls(seaweed: Seaweed) -> MemberTLS:
    ca, cert = tls_files(seaweed)
    return {"verify": ca, "cert": cert, "timeout": 10}


def assert_refused_without_the_certificate(
    seaweed: Seaweed, method: str, name: str, path: str, secret: bytes = b"", **kwargs: Any
) -> None:
    """A local user without the client certificate, over plain HTTP and over HTTPS."""
    try:
        plain = requests.request(
            method, internal_url(seaweed, name, path, "http"), timeout=10, **kwargs
        )
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
        # Go's TLS server hangs up on a plain request, unread body and all: refused.
        pass
    else:
        # Or it answers the one thing it says to plain HTTP, and nothing else.
        answer = (method, name, path, plain.status_code, plain.text[:200])
        assert plain.status_code == 400 and b"HTTPS server" in plain.content, answer
        assert not secret or secret not in plain.content
    ca, cert = tls_files(seaweed)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.request(method, internal_url(seaweed, name, path), verify=ca, timeout=10, **kwargs)
    # The port is live and speaks HTTPS to a holder of the certificate, so the refusals
    # above were the certificate's doing, not a closed port's.
    live = requests.request(
        "HEAD", internal_url(seaweed, name, "/"), verify=ca, cert=cert, timeout=10
    )
    assert 200 <= live.status_code < 600, (name, live.status_code)


def test_volume_port_refuses_reads_and_writes_without_the_key(seaweed: Seaweed) -> None:
    bucket, key, body, fid = stored_object(seaweed)
    # Plain HTTP (the volume port carries the bulk data without TLS): the JWT is the lock.
    url = internal_url(seaweed, "volume.port", f"/{fid}", "http")
    assert_https_off(seaweed, "volume.port")
    stolen = requests.get(url, timeout=10)
    assert stolen.status_code == 401 and body not in stolen.content
    peeked = requests.head(url, timeout=10)
    assert peeked.status_code == 401
    wrong_key = volume_jwt("not-the-key-" * 4, fid)
    forged = requests.get(url, headers={"Authorization": f"Bearer {wrong_key}"}, timeout=10)
    assert forged.status_code == 401 and body not in forged.content
    evil_files = {"file": ("evil", b"overwritten")}
    assert requests.post(url, files=evil_files, timeout=10).status_code == 401
    assert requests.put(url, data=b"overwritten", timeout=10).status_code == 401
    assert requests.delete(url, timeout=10).status_code == 401
    # A read token does not open writes, nor a token for another file this one.
    read_key = security(seaweed)["jwt"]["signing"]["read"]["key"]
    as_reader = {"Authorization": f"Bearer {volume_jwt(read_key, fid)}"}
    assert requests.post(url, files=evil_files, headers=as_reader, timeout=10).status_code == 401
    assert requests.delete(url, headers=as_reader, timeout=10).status_code == 401
    other_fid = fid[:-1] + ("1" if fid[-1] != "1" else "2")
    other = {"Authorization": f"Bearer {volume_jwt(read_key, other_fid)}"}
    assert requests.get(url, headers=other, timeout=10).status_code == 401
    assert_unchanged(seaweed, bucket, key, body)

    # The read key itself: the read works, so the refusals above were the keys' doing.
    allowed = requests.get(url, headers=as_reader, timeout=10)
    assert allowed.status_code == 200 and allowed.content == body


def test_volume_status_page_shows_no_object_bytes(seaweed: Seaweed) -> None:
    """The one page the volume port serves without a JWT: volume counts and sizes only."""
    _bucket, _key, body, fid = stored_object(seaweed)
    status = requests.get(internal_url(seaweed, "volume.port", "/status", "http"), timeout=10)
    assert status.status_code == 200
    assert set(status.json()) == {"Version", "DiskStatuses", "Volumes"}
    assert body not in status.content and fid not in status.text


def assert_https_off(seaweed: Seaweed, name: str) -> None:
    """The port answers plain HTTP, not Go's "HTTPS server" refusal: TLS is really off."""
    answer = requests.get(internal_url(seaweed, name, "/healthz", "http"), timeout=10)
    assert answer.status_code == 200, (name, answer.status_code, answer.text[:200])


def listening_ports(pid: int) -> set[int]:
    """Every TCP port the process listens on, read from the kernel, not from its flags."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed since the listing
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == TCP_LISTEN and inode in inodes:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


TCP_LISTEN = "0A"


def anonymous_attempts(port_number: int, fid: str) -> list[tuple[str, str, int | None, bytes]]:
    """A keyless read, write and delete of the file id, over plain HTTP and over HTTPS
    (trusting no CA, presenting no certificate); returns (method, scheme, status, body)."""
    tried: list[tuple[str, str, int | None, bytes]] = []
    evil = {"file": ("evil", b"overwritten")}
    for scheme in ("http", "https"):
        url = f"{scheme}://127.0.0.1:{port_number}/{fid}"
        for method, extra in (("GET", {}), ("POST", {"files": evil}), ("PUT", {"data": b"x"})):
            try:
                answer = requests.request(method, url, verify=False, timeout=10, **extra)
            except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
                tried.append((method, scheme, None, b""))
            else:
                tried.append((method, scheme, answer.status_code, answer.content))
    return tried


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_every_listening_port_refuses_a_keyless_read_and_write(seaweed: Seaweed) -> None:
    bucket, key, body, fid = stored_object(seaweed)
    ports = listening_ports(seaweed.process.pid)
    flags = weed_flags(seaweed)
    # The scan sees the ports weed was told to open, so it cannot pass by seeing none.
    for name in ("volume.port", "master.port", "filer.port", "s3.port", *GRPC_PORTS):
        assert int(flags[name]) in ports, (name, sorted(ports))
    for port_number in sorted(ports):
        for method, scheme, status, content in anonymous_attempts(port_number, fid):
            attempt = (port_number, method, scheme, status)
            assert status is None or status >= 400, attempt
            assert body not in content, attempt
    assert_unchanged(seaweed, bucket, key, body)


def test_master_filer_and_admin_http_hand_out_neither_tokens_nor_files(seaweed: Seaweed) -> None:
    bucket, key, body, fid = stored_object(seaweed)
    # SeaweedFS's master signs a volume write token for whoever asks for one.
    for path in ("/dir/assign", f"/dir/lookup?fileId={fid}", "/", "/cluster/status"):
        assert_refused_without_the_certificate(seaweed, "GET", "master.port", path)
    # The filer serves and stores any path, bucket contents included.
    planted = f"private/planted-{uuid.uuid4().hex}"
    for method, path in (
        ("GET", f"/buckets/{bucket}/{key}"),
        ("GET", f"/buckets/{bucket}/private/"),
        ("PUT", f"/buckets/{bucket}/{planted}"),
        ("POST", f"/buckets/{bucket}/{planted}"),
        ("PUT", f"/buckets/{bucket}/{key}"),
        ("DELETE", f"/buckets/{bucket}/{key}"),
    ):
        assert_refused_without_the_certificate(
            seaweed, method, "filer.port", path, body, data=b"evil"
        )
    assert_refused_without_the_certificate(seaweed, "GET", "admin.port", "/")

    # Even with the certificate, no HTTP API hands out a volume token or a file.
    member = member_tls(seaweed)
    assert requests.get(internal_url(seaweed, "master.port", "/"), **member).status_code == 200
    for name, path in (
        ("master.port", "/dir/assign"),
        ("master.port", f"/dir/lookup?fileId={fid}"),
        ("filer.port", f"/buckets/{bucket}/{key}"),
    ):
        answer = requests.get(internal_url(seaweed, name, path), **member)
        assert answer.status_code == 404 and "authorization" not in answer.headers, (name, path)
        assert body not in answer.content

    s3 = backend_client(seaweed.settings)
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key=planted)
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert_unchanged(seaweed, bucket, key, body)


def test_s3_port_wants_a_signature(seaweed: Seaweed) -> None:
    bucket, key, body, _fid = stored_object(seaweed)
    url = f"{seaweed.endpoint}/{bucket}/{key}"
    stolen = requests.get(url, timeout=10)
    assert stolen.status_code == 403 and body not in stolen.content
    planted = requests.put(f"{seaweed.endpoint}/{bucket}/planted.bin", data=b"evil", timeout=10)
    assert planted.status_code == 403
    with pytest.raises(ClientError):
        backend_client(seaweed.settings).head_object(Bucket=bucket, Key="planted.bin")
    assert_unchanged(seaweed, bucket, key, body)


def _h2_reply(port: int, context: ssl.SSLContext | None) -> bytes:
    """Send the HTTP/2 preface (what a gRPC client starts with); return what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        conn: socket.socket = raw
        try:
            if context is not None:
                conn = context.wrap_socket(raw, server_hostname="localhost")
            conn.sendall(H2_PREFACE)
            return conn.recv(9)
        except (ssl.SSLError, ConnectionError):
            return b""


def _is_h2_settings(reply: bytes) -> bool:
    return len(reply) == 9 and reply[3] == 0x4


def test_grpc_ports_want_a_client_certificate(seaweed: Seaweed) -> None:
    ports = {name: port(seaweed, name) for name in GRPC_PORTS}
    for name, grpc_port in ports.items():
        assert not _is_h2_settings(_h2_reply(grpc_port, None)), f"{name}: plaintext gRPC"
    tls = seaweed.root / "storage" / "tls"
    anonymous = _h2_context(tls / "ca.crt")
    member = _h2_context(tls / "ca.crt")
    member.load_cert_chain(tls / "storage.crt", tls / "storage.key")
    for name, grpc_port in ports.items():
        assert not _is_h2_settings(_h2_reply(grpc_port, anonymous)), f"{name}: no client cert"
        assert _is_h2_settings(_h2_reply(grpc_port, member)), f"{name}: refuses its own cert"


def _h2_context(ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)
    context.check_hostname = False  # SeaweedFS's certificates name no host
    context.set_alpn_protocols(["h2"])
    return context


def test_seaweed_shell_without_the_key_reaches_nothing(seaweed: Seaweed, tmp_path: Path) -> None:
    bucket, key, _body, _fid = stored_object(seaweed)
    name = key.split("/")[1]
    command = f"fs.ls /buckets/{bucket}/private"
    outsider = weed_shell(seaweed, command, tmp_path, timeout=10)
    assert name not in outsider
    insider = weed_shell(seaweed, command, seaweed.root / "storage", timeout=60)
    assert name in insider


def _run_as_other_user(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", OTHER_USER, "--", OTHER_USER_PYTHON, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )


def test_stored_files_are_private(seaweed: Seaweed) -> None:
    bucket, key, body, _fid = stored_object(seaweed)
    root = seaweed.root / "storage"
    volumes = [p for p in (root / "data").iterdir() if p.suffix in (".dat", ".idx")]
    assert volumes, "no volume files: the object is not on disk?"
    assert_nothing_for_others(root)
    for name in ("credentials.json", "s3-identities.json", "security.toml", "weed.log"):
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o600, name

    if os.geteuid() == 0:
        # The attack itself: another local account tries to read a volume and the socket.
        files = [str(p) for p in volumes] + [str(root / "security.toml")]
        probe = (
            "import socket, sys\n"
            f"for path in {files!r}:\n"
            "    try:\n"
            "        open(path, 'rb').read(); print('READ', path)\n"
            "    except PermissionError:\n"
            "        pass\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            f"    s.connect({str(root / 'filer.sock')!r}); print('CONNECTED')\n"
            "except PermissionError:\n"
            "    pass\n"
            "print('done')\n"
        )
        done = _run_as_other_user(probe)
        assert done.stdout.strip() == "done", done.stdout + done.stderr
    assert_unchanged(seaweed, bucket, key, body)


def test_weed_runs_without_telemetry_and_keeps_non_empty_buckets(seaweed: Seaweed) -> None:
    flags = weed_flags(seaweed)
    assert flags["master.telemetry"] == "false"
    assert flags["s3.allowDeleteBucketNotEmpty"] == "false"
    assert flags["disableHttp"] == "true"
    # No socket in /tmp where any user could reach it.
    assert Path(flags["filer.localSocket"]).parent == seaweed.root / "storage"
    assert Path(flags["s3.localSocket"]).parent == seaweed.root / "storage"


def test_more_buckets_than_free_gibibytes_each_store_an_object(tmp_path: Path) -> None:
    """Each bucket is a collection with volumes of its own; SeaweedFS's automatic volume
    cap (free disk / 1 GiB at start) refused writes to the bucket past it with
    InternalError ("no free volumes left"), however little was stored."""
    free_gib = shutil.disk_usage(tmp_path).free // (1 << 30)
    count = free_gib + 8
    weed = start_seaweed(tmp_path)
    try:
        client = backend_client(weed.settings)
        names = [f"many-{i}-{uuid.uuid4().hex[:8]}" for i in range(count)]

        def fill(name: str) -> None:
            client.create_bucket(Bucket=name)
            client.put_object(Bucket=name, Key="k", Body=b"x")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(fill, names))
        stored = [client.get_object(Bucket=n, Key="k")["Body"].read() for n in names]
        assert stored == [b"x"] * count
        assert weed_flags(weed)["volume.max"] == str(storage.VOLUME_COUNT_LIMIT)
    finally:
        weed.stop()


def test_a_data_dir_too_deep_for_the_local_socket_is_refused_clearly(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    settings = load_settings({}, data_dir=str(deep), storage_port=storage.free_internal_port())
    with pytest.raises(ConfigError, match=r"NEBULA_DATA_DIR.*too long"):
        storage.prepare(settings)
    assert not deep.exists()  # refused before writing anything


# ----- memory (issue 14) -------------------------------------------------------------

MIB = 1 << 20
# What `nebula up` promises for the storage process (docs/benchmarks.md#storage-memory).
STORAGE_RSS_BOUND_MB = 1000


def weed_environ(seaweed: Seaweed) -> dict[str, str]:
    """The environment the running ``weed`` process really has (from /proc)."""
    raw = Path(f"/proc/{seaweed.process.pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_weed_runs_with_its_memory_bounds(seaweed: Seaweed) -> None:
    limit = seaweed.settings.storage_memory_limit_mb
    assert weed_environ(seaweed)["GOMEMLIMIT"] == f"{limit}MiB"
    assert weed_flags(seaweed)["s3.concurrentUploadLimitMB"] == str(limit // 12)


def test_the_storage_memory_limit_is_configurable(tmp_path: Path) -> None:
    settings = load_settings(
        {"NEBULA_STORAGE_MEMORY_LIMIT_MB": "1536"},
        data_dir=str(tmp_path),
        storage_port=storage.free_internal_port(),
    )
    launch = storage.prepare(settings)
    assert launch.env["GOMEMLIMIT"] == "1536MiB"
    assert "-s3.concurrentUploadLimitMB=128" in launch.argv
    with pytest.raises(ConfigError, match="NEBULA_STORAGE_MEMORY_LIMIT_MB"):
        load_settings({"NEBULA_STORAGE_MEMORY_LIMIT_MB": "64"}, data_dir=str(tmp_path))


class GeneratedBody:
    """``size`` bytes made as they are read (a 1 GiB upload without 1 GiB in memory)."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.piece = os.urandom(MIB)

    def read(self, size: int = -1) -> bytes:
        size = self.remaining if size < 0 else min(size, self.remaining)
        self.remaining -= size
        whole, rest = divmod(size, MIB)
        return self.piece * whole + self.piece[:rest]


def vm_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"{field} missing from /proc/{pid}/status")


@pytest.mark.slow
def test_storage_stays_under_its_memory_bound_through_1_gib_and_1000_objects(
    tmp_path: Path,
) -> None:
    """The real start path, ~1,000 small objects and a 1 GiB multipart upload; the kernel's
    own peak (VmHWM, which no sampling gap can miss) stays under the bound."""
    server = start_seaweed(tmp_path / "seaweed")
    try:
        pid = server.process.pid
        s3 = backend_client(server.settings)
        s3.create_bucket(Bucket="memory")
        body = os.urandom(4096)
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda i: s3.put_object(Bucket="memory", Key=f"small/{i:04d}", Body=body),
                    range(1000),
                )
            )
        transfer = TransferConfig(
            multipart_threshold=16 * MIB, multipart_chunksize=16 * MIB, max_concurrency=8
        )
        # boto3 only calls read(): a generated body is a file to it in all but name.
        large = cast("IO[bytes]", GeneratedBody(1024 * MIB))
        s3.upload_fileobj(large, "memory", "large", Config=transfer)
        assert s3.head_object(Bucket="memory", Key="large")["ContentLength"] == 1024 * MIB
        assert s3.list_objects_v2(Bucket="memory", Prefix="small/")["KeyCount"] == 1000
        peak = vm_mb(pid, "VmHWM")
        print(f"weed peak RSS {peak:.0f} MB")
        assert peak < STORAGE_RSS_BOUND_MB, f"weed peaked at {peak:.0f} MB"
    finally:
        server.stop()


def test_workers_starting_together_on_a_new_data_dir_share_one_key_pair(tmp_path: Path) -> None:
    """s3proxy workers start at once on a new data dir and each makes sure the embedded
    key pair exists (CI saw one fail renaming a temporary file another had renamed): the
    first writer wins, nobody fails, and every worker reads that one pair, 0600."""
    settings = load_settings({}, data_dir=str(tmp_path / "data"))
    together = threading.Barrier(16)

    def new_worker(_: int) -> tuple[str, str]:
        together.wait(timeout=30)
        creds = storage.ensure_embedded_credentials(settings)
        return creds.access_key, creds.secret_key

    with ThreadPoolExecutor(16) as pool:
        pairs = list(pool.map(new_worker, range(16)))
    assert len(set(pairs)) == 1
    path = tmp_path / "data" / "storage" / "credentials.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]
