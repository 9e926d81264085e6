"""Browser uploads (S3 POST Object): read the form, check it, stream its file as a PutObject.

The form is read with aiohttp's multipart reader. The fields before ``file`` are small and
read whole, within S3's bound on them (20 KB, ``MaxPostPreDataLengthExceededError``);
fields after ``file`` are ignored, as S3 does. The file part is never held: it streams
to the backend as a PutObject of unknown length (sent chunked, as a chunked client PUT
is), through :class:`s3proxy.body.UploadBody`, which releases the last piece only once
the file ended within the policy's ``content-length-range``, so an upload that breaks a
bound is aborted upstream and nothing is stored. The policy itself is checked by the
pure functions of :mod:`s3proxy.post_policy`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from nebulacore.backend import Backend
from nebulacore.s3 import UNSIGNED_PAYLOAD
from s3proxy.addressing import Target, check_object_key
from s3proxy.auth import KeyStore, KnownKey, authorize, known_key, never_overwrite
from s3proxy.body import UploadBody
from s3proxy.checksums import BodyDigests
from s3proxy.chunked import PIECE
from s3proxy.errors import S3Error
from s3proxy.events import UploadEvents
from s3proxy.exchange import AuthenticatedExchange, Exchange, Operation
from s3proxy.forward import (
    close_if_body_unread,
    open_upstream,
    refuse_encryption,
    relay_buffered,
    send_continue,
)
from s3proxy.limits import Limits
from s3proxy.owners import BucketOwners, names_acl
from s3proxy.post_policy import (
    Policy,
    check_policy,
    check_signature,
    check_size,
    decode_policy,
    form_auth,
    object_headers,
    object_key,
    success_answer,
)

log = logging.getLogger(__name__)

FORM_TYPE = "multipart/form-data"
MAX_PREDATA = 20 * 1024  # S3's bound on the fields before the file
MAX_FIELDS = 100  # each costs a part header too: bound their count as well
FIELD_PIECE = 8192
# After the file: the closing boundary (and ignored fields) are read this far, so a
# browser still sending them gets the answer rather than a reset connection.
MAX_TRAILER = 64 * 1024
# What a broken form raises as it is read: aiohttp's reader raises ValueError (a line
# too long for its buffer), its HttpProcessingError family (a part header line over its
# limit, a body whose Content-Encoding does not decode) and AssertionError (a boundary
# that is too long); a field that is not UTF-8, UnicodeDecodeError.
BROKEN_FORM = (ValueError, AssertionError, UnicodeDecodeError, HttpProcessingError)


def is_browser_post(method: str, target: Target, headers: Mapping[str, str]) -> bool:
    """POST Object: a multipart/form-data POST to a bucket (no key, no sub-resource)."""
    return (
        method == "POST"
        and target.bucket is not None
        and not target.key
        and not target.query
        and headers.get("content-type", "").lower().startswith(FORM_TYPE)
    )


def refuse_encoded(headers: Mapping[str, str]) -> None:
    """S3 never decodes a request body: a form sent with a Content-Encoding is not
    multipart/form-data as it stands (and is not decoded here either)."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise malformed()


def malformed() -> S3Error:
    return S3Error(
        "MalformedPOSTRequest",
        "The body of your POST request is not well-formed multipart/form-data.",
    )


def too_much_predata() -> S3Error:
    return S3Error(
        "MaxPostPreDataLengthExceededError",
        "Your POST request fields preceding the upload file were too large.",
    )


@dataclass
class Form:
    """The fields before the file (names lower-case) and the unread file part."""

    fields: dict[str, str]
    file: BodyPartReader
    filename: str | None
    content_type: str | None


async def _read_field(part: BodyPartReader, budget: int) -> bytes:
    data = bytearray()
    while not part.at_eof():
        data += await part.read_chunk(FIELD_PIECE)
        if len(data) > budget:
            raise too_much_predata()
    return bytes(data)


async def read_form(request: web.Request) -> Form:
    """Read the form up to its ``file`` part. Raises S3Error."""
    fields: dict[str, str] = {}
    budget = MAX_PREDATA
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                raise S3Error(
                    "InvalidArgument",
                    "POST requires exactly one file upload per request.",
                    ArgumentName="file",
                    ArgumentValue="0",
                )
            if not isinstance(part, BodyPartReader) or not part.name:
                raise malformed()
            name = part.name.lower()
            if name == "file":
                return Form(fields, part, part.filename, part.headers.get("Content-Type"))
            if name in fields:
                raise _repeated(part.name)
            if len(fields) >= MAX_FIELDS:
                raise too_much_predata()
            value = await _read_field(part, budget - len(name))
            budget -= len(name) + len(value)
            fields[name] = value.decode("utf-8")
    except S3Error:
        raise
    except BROKEN_FORM as exc:
        log.info("malformed POST form: %r", exc)
        raise malformed() from None


def _repeated(name: str) -> S3Error:
    return S3Error(
        "InvalidArgument",
        f"POST form field '{name}' appears more than once.",
        ArgumentName=name,
    )


async def file_pieces(
    part: BodyPartReader, length_range: tuple[int, int] | None
) -> AsyncIterator[bytes]:
    """The file's bytes as they arrive, cut off as soon as they pass the policy's maximum;
    its minimum is checked at the end (before :class:`UploadBody` releases the last piece)."""
    size = 0
    try:
        while not part.at_eof():
            piece = await part.read_chunk(PIECE)
            size += len(piece)
            check_size(size, length_range, final=False)
            if piece:
                yield piece
    except BROKEN_FORM as exc:
        log.info("malformed POST file part: %r", exc)
        raise malformed() from None
    check_size(size, length_range, final=True)


async def drain(request: web.Request) -> None:
    """Read what follows the file (its closing boundary), a bounded amount. The object is
    stored by now: a client that stalls or leaves here only loses its answer."""
    read = 0
    try:
        while read < MAX_TRAILER and not request.content.at_eof():
            piece = await request.content.readany()
            if not piece:
                break
            read += len(piece)
    except (S3Error, OSError, aiohttp.ClientError, *BROKEN_FORM) as exc:  # idle timeout, cut
        log.info("POST form trailer not read: %r", exc)


def object_location(request: web.Request, key: str) -> str:
    """The object's URL as the client addressed the bucket (path or virtual-hosted style)."""
    return f"{request.url.origin()}{request.path.rstrip('/')}/{quote(key, safe='/~')}"


def stored_answer(
    request: web.Request, x: AuthenticatedExchange, fields: Mapping[str, str], etag: str
) -> web.Response:
    """What the client gets once the backend stored the object (see :func:`success_answer`)."""
    bucket, key = x.target.bucket or "", x.target.key
    answer = success_answer(fields, bucket, key, etag, object_location(request, key))
    response = web.Response(
        status=answer.status,
        headers={**answer.headers, "x-amz-request-id": x.request_id},
        body=answer.body or None,
    )
    close_if_body_unread(request, response)
    return response


class BrowserUploads:
    """Answers POST Object requests with the proxy's key store, backend and events."""

    def __init__(
        self,
        keys: KeyStore,
        backend: Backend,
        events: UploadEvents,
        limits: Limits,
        regions: Sequence[str],
        owners: BucketOwners,
        allow_sigv2: bool = True,
    ) -> None:
        self.allow_sigv2 = allow_sigv2
        self.owners = owners
        self.keys = keys
        self.backend = backend
        self.events = events
        self.limits = limits
        self.regions = regions

    async def handle(
        self,
        request: web.Request,
        exchange: Exchange,
        form_target: Target,
        request_headers: dict[str, str],
    ) -> web.StreamResponse:
        """``form_target``: the bucket the form is posted to; ``request_headers``: the request's,
        names lower-case."""
        bucket = form_target.bucket
        assert bucket is not None  # is_browser_post
        refuse_encoded(request_headers)
        # The form carries its own credentials: the body must be read to know who sends it.
        await send_continue(request, request_headers)
        form = await read_form(request)
        policy, fields, key = await self._verify(exchange, form, bucket)
        target = Target(bucket, fields["key"], (), quote(f"/{bucket}/{fields['key']}", safe="/~"))
        x = AuthenticatedExchange(
            exchange,
            Operation.POST_OBJECT,
            target,
            object_headers(fields, form.content_type),
            key,
        )
        create_only = authorize(key, "PUT", target, None)  # a POST writes like a PUT
        self.limits.take(request, key.record.access_key_id)
        headers = x.headers
        if create_only:  # a form's key (nebula upload-form): never overwrite
            never_overwrite(headers)
        refuse_encryption("POST", headers, ())  # as a signed PUT's (s3proxy.forward)
        if names_acl(headers):  # the form's ``acl`` and grants: owner-only, as a PUT's
            await self.owners.refuse_foreign_acl(x)
        body = UploadBody(
            file_pieces(form.file, policy.length_range), BodyDigests(), None, UNSIGNED_PAYLOAD
        )
        upstream = await open_upstream(self.backend, "PUT", target, headers, body, UNSIGNED_PAYLOAD)
        try:
            if upstream.status >= 300:
                response, _ = await relay_buffered(upstream, "PUT", x.request_id)
                close_if_body_unread(request, response)
                return response
            etag = upstream.headers.get("ETag", "")
        finally:
            upstream.release()
        if self.events.watches(bucket):
            await self.events.written(
                bucket, target.key, etag, body.digests.size, headers.get("content-type")
            )
        await drain(request)
        return stored_answer(request, x, fields, etag)

    async def _verify(
        self, exchange: Exchange, form: Form, bucket: str
    ) -> tuple[Policy, dict[str, str], KnownKey]:
        """The form's policy, fields (``key`` substituted) and key once its signature,
        policy and conditions checked out. Raises S3Error."""
        if "policy" not in form.fields:
            raise S3Error(
                "AccessDenied",
                "Anonymous access is not allowed: sign the POST policy with a Nebula key.",
            )
        policy = decode_policy(form.fields["policy"])
        auth = form_auth(form.fields, self.regions, self.allow_sigv2)
        exchange.access_key = auth.access_key_id
        key = await known_key(self.keys, auth.access_key_id)
        check_signature(auth, key.secret, form.fields["policy"])
        fields = {**form.fields, "key": object_key(form.fields, form.filename)}
        # As a path's key: a ${filename} of "../../x" passes the policy's starts-with and
        # the prefix scope as text, and the backend would store it outside both.
        check_object_key(fields["key"])
        check_policy(policy, fields, bucket, signed_at=auth.signed_at)
        return policy, fields, key
