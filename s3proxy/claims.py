"""One interface over the signature schemes: what a request claims, checked the same way.

:func:`read_claim` finds the request's scheme (SigV4 header or query, SigV2 header or
query) and returns its claim; the handler then checks its time, looks its key up,
verifies it and reads the headers it vouches for, whatever the scheme.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from s3proxy import sigv4
from s3proxy.addressing import Target
from s3proxy.errors import S3Error
from s3proxy.sigv2 import DISABLED, QUERY_PARAMS, is_sigv2, parse_claim_v2

ONE_MECHANISM = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
    "Signature query string parameter or the Authorization header should be specified"
)
V4_QUERY_PARAMS = ("X-Amz-Algorithm", "X-Amz-Signature")


class SignatureClaim(Protocol):
    """A request's signature claim, nothing trusted until :meth:`verify` passed."""

    @property
    def access_key_id(self) -> str: ...

    @property
    def payload_hash(self) -> str: ...

    def check_time(self, regions: Sequence[str], now: datetime | None = None) -> None: ...

    def verify(
        self,
        secret: str,
        method: str,
        target: Target,
        raw_path: str,
        headers: Any,
        lower: Mapping[str, str] | None = None,
    ) -> sigv4.ChainSigner | None:
        """Raise unless the signature is right for ``secret`` and covers what it must;
        the chunk signer of an aws-chunked body (SigV4) or None. ``lower``: the headers
        with lower-case names, when the caller has them already."""
        ...

    def verified_headers(self, headers: Mapping[str, str]) -> dict[str, str]: ...


@dataclass(frozen=True)
class ClaimV4:
    """A SigV4 claim (:mod:`s3proxy.sigv4`) behind the common interface."""

    claim: sigv4.SigV4Authorization

    @property
    def access_key_id(self) -> str:
        return self.claim.credential.access_key_id

    @property
    def payload_hash(self) -> str:
        return self.claim.payload_hash

    def check_time(self, regions: Sequence[str], now: datetime | None = None) -> None:
        sigv4.check_time(self.claim, regions, now)

    def verify(
        self,
        secret: str,
        method: str,
        target: Target,
        raw_path: str,
        headers: Any,
        lower: Mapping[str, str] | None = None,
    ) -> sigv4.ChainSigner:
        return sigv4.verify(
            self.claim, secret, method, target.canonical_path, target.query, headers, lower
        )

    def verified_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return sigv4.verified_headers(self.claim, headers)


def _mechanisms(headers: Mapping[str, str], params: Mapping[str, str]) -> int:
    return sum(
        (
            bool(headers.get("authorization")),
            any(name in params for name in V4_QUERY_PARAMS),
            any(name in params for name in QUERY_PARAMS if name != "Expires"),
        )
    )


def read_claim(
    headers: Mapping[str, str], target: Target, allow_sigv2: bool
) -> SignatureClaim | None:
    """The request's claim, None when anonymous; malformed or refused claims raise S3Error.

    ``headers`` must have lower-case names.
    """
    params = dict(target.query)
    if _mechanisms(headers, params) > 1:
        raise S3Error("InvalidArgument", ONE_MECHANISM, ArgumentName="Authorization")
    if is_sigv2(headers, params):
        if not allow_sigv2:
            raise S3Error("AccessDenied", DISABLED)
        return parse_claim_v2(headers, target.query)
    claim = sigv4.parse_claim(headers, target.query)
    return None if claim is None else ClaimV4(claim)
