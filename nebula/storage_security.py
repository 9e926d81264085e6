"""SeaweedFS's ``security.toml`` for the embedded storage: JWT keys and mTLS everywhere inside.

SeaweedFS trusts anyone who reaches its internal ports unless told otherwise. On a
machine other users log into, 127.0.0.1 is reachable by all of them, so:

* the volume server accepts writes (``jwt.signing``) and reads (``jwt.signing.read``)
  only with a JWT signed by a key only this process tree knows;
* the filer accepts HTTP writes (``jwt.filer_signing``) and reads
  (``jwt.filer_signing.read``) only with a JWT, and never lists directory metadata;
* every gRPC port (master, volume, filer, s3, admin) requires a client certificate
  from a CA made for this start (mTLS), since gRPC carries the same powers as HTTP
  (``Assign`` hands out volume write JWTs) and takes no JWT itself;
* the master, filer and admin HTTP ports speak HTTPS and require the same client
  certificate, so their unauthenticated pages (cluster status, the filer's listings)
  are closed too;
* the volume server's HTTP port is the one internal port left in plain HTTP: it
  carries every object byte, and TLS between two processes on one machine cost
  more CPU than the data path itself (docs/benchmarks.md#embedded-storage). Every
  read, write and delete there already wants a JWT for that very file id, signed
  with a key only this process tree knows; what it serves without one is its
  health check and ``/status`` (volume ids, bucket names, sizes and counts, no
  object bytes), see docs/security.md.

Keys and certificates are made anew at each start: nothing stored depends on them
(volume JWTs live seconds), and a leaked copy stops working at the next start. The
CA's private key is never written anywhere, so no further certificate can be signed.
SeaweedFS reads ``./security.toml`` first, so the file lives in the storage root and
``weed`` runs with that as its working directory: no global path is touched.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nebulacore.private import private_dir, write_private

SECURITY_FILE = "security.toml"

# Every gRPC role a ``weed mini`` process serves or dials with; one certificate does for
# all (SeaweedFS does not check host names, only that the peer's chain ends at our CA).
GRPC_COMPONENTS = ("master", "volume", "filer", "s3", "admin", "worker", "client")
# The HTTP servers that get HTTPS with required client certificates. The S3 gateway is
# not one of them: it is the one port meant for clients, and it checks SigV4 itself.
# Nor is the volume server: its data port is guarded by per-file JWTs instead (above).
HTTPS_COMPONENTS = ("master", "filer", "admin")

CERT_VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None = None,
    signer: ec.EllipticCurvePrivateKey | None = None,
) -> x509.Certificate:
    """A CA certificate when ``issuer`` is None, else a leaf for TLS servers and clients."""
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
    )
    is_ca = issuer is None
    builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), True)
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    else:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), False)
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    return builder.sign(signer or key, hashes.SHA256())


def write_tls_files(directory: Path) -> TlsFiles:
    """A fresh CA and one certificate signed by it, all 0600 in a 0700 directory."""
    private_dir(directory)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("nebula-storage-ca", ca_key)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = _certificate("nebula-storage", leaf_key, ca_cert.subject, ca_key)
    files = TlsFiles(directory / "ca.crt", directory / "storage.crt", directory / "storage.key")
    write_private(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
    write_private(files.cert, leaf_cert.public_bytes(serialization.Encoding.PEM))
    write_private(files.key, _pem_key(leaf_key))
    return files


def _toml_string(value: str | Path) -> str:
    # A JSON string is a valid TOML basic string (same quotes and escapes).
    return json.dumps(str(value))


def security_toml(tls: TlsFiles, keys: dict[str, str]) -> str:
    """The text of ``security.toml``: JWT keys and mTLS for every internal port."""
    lines = [
        "# Written by Nebula at each start; edits are lost.",
        "[jwt.signing]",
        f"key = {_toml_string(keys['volume_write'])}",
        "expires_after_seconds = 10",
        "[jwt.signing.read]",
        f"key = {_toml_string(keys['volume_read'])}",
        "expires_after_seconds = 60",
        "[jwt.filer_signing]",
        f"key = {_toml_string(keys['filer_write'])}",
        "expires_after_seconds = 10",
        "[jwt.filer_signing.read]",
        f"key = {_toml_string(keys['filer_read'])}",
        "expires_after_seconds = 60",
        # The volume server's status UI is unauthenticated: keep it off.
        "[access]",
        "ui = false",
        "[filer.expose_directory_metadata]",
        "enabled = false",
        "[grpc]",
        f"ca = {_toml_string(tls.ca)}",
    ]
    pair = [f"cert = {_toml_string(tls.cert)}", f"key = {_toml_string(tls.key)}"]
    for component in GRPC_COMPONENTS:
        lines += [f"[grpc.{component}]", *pair]
    # ``ca`` on an HTTPS server means: require a client certificate signed by it.
    for component in HTTPS_COMPONENTS:
        lines += [f"[https.{component}]", *pair, f"ca = {_toml_string(tls.ca)}"]
    # ``[https.client]`` stays off: it would make the S3 gateway and the filer speak
    # HTTPS to the volume server, the only HTTP port they dial.
    return "\n".join(lines) + "\n"


def write_security_config(root: Path) -> Path:
    """Fresh JWT keys and certificates under ``root``; returns the ``security.toml`` path."""
    tls = write_tls_files(root / "tls")
    names = ("volume_write", "volume_read", "filer_write", "filer_read")
    keys = {name: secrets.token_urlsafe(32) for name in names}
    path = root / SECURITY_FILE
    write_private(path, security_toml(tls, keys))
    return path
