"""ListBuckets and GetBucketAcl as a Nebula key sees them: only the buckets it may read,
and owners from the catalog (catalog.buckets), not the backend's one identity."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from catalog.buckets import owner_id
from catalog.keys import allows
from catalog.models import AccessKey
from s3proxy.errors import XML_DECLARATION, local_name

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
# Serialize S3's default namespace as it came, not with ElementTree's "ns0:" prefixes.
ET.register_namespace("", S3_NAMESPACE)
ET.register_namespace("xsi", "http://www.w3.org/2001/XMLSchema-instance")


def children(node: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in node if local_name(c.tag) == name]


def child_text(node: ET.Element, name: str) -> str | None:
    return next((c.text for c in children(node, name)), None)


def serialize(root: ET.Element) -> bytes:
    return XML_DECLARATION + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def parse(body: bytes, expected: str) -> ET.Element | None:
    """The document's root if it is the ``expected`` element, else None (left as it came)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    return root if local_name(root.tag) == expected else None


def hide_unreadable(root: ET.Element, key: AccessKey) -> None:
    """Remove the buckets ``key`` has no read scope on."""
    for buckets in children(root, "Buckets"):
        for bucket in list(buckets):
            name = child_text(bucket, "Name")
            if name is None or not allows(key, name, "r"):
                buckets.remove(bucket)


def set_owner(root: ET.Element, owner: str) -> None:
    """Every ``Owner`` and grantee that names the backend's identity now names ``owner``
    (its canonical id and its name as the display name)."""
    backend_ids = {child_text(o, "ID") for o in children(root, "Owner")} - {None}
    people = [*children(root, "Owner")]
    for acl in children(root, "AccessControlList"):
        for grant in children(acl, "Grant"):
            people += [g for g in children(grant, "Grantee") if child_text(g, "ID") in backend_ids]
    for person in people:
        for field, value in (("ID", owner_id(owner)), ("DisplayName", owner)):
            for node in children(person, field):
                node.text = value


def listing_for(body: bytes, key: AccessKey) -> bytes:
    """ListBuckets for ``key``: the buckets it may read, its own owner as the ``Owner``
    (S3 names the requester there)."""
    root = parse(body, "ListAllMyBucketsResult")
    if root is None:
        return body
    if not key.is_admin:
        hide_unreadable(root, key)
    set_owner(root, key.owner)
    return serialize(root)


def with_owner(body: bytes, owner: str) -> bytes:
    """GetBucketAcl's AccessControlPolicy with the bucket's owner from the catalog."""
    root = parse(body, "AccessControlPolicy")
    if root is None:
        return body
    set_owner(root, owner)
    return serialize(root)
