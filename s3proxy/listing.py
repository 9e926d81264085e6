"""ListBuckets for scoped keys: only the buckets the key may read are shown."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from catalog.keys import allows
from catalog.models import AccessKey
from s3proxy.errors import XML_DECLARATION

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def visible_buckets_only(body: bytes, key: AccessKey) -> bytes:
    """The ListAllMyBucketsResult without the buckets ``key`` has no read scope on."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return body
    if _local(root.tag) != "ListAllMyBucketsResult":
        return body
    for buckets in (node for node in root if _local(node.tag) == "Buckets"):
        for bucket in list(buckets):
            name = next((c.text for c in bucket if _local(c.tag) == "Name"), None)
            if name is None or not allows(key, name, "r"):
                buckets.remove(bucket)
    # Keep S3's default namespace rather than ElementTree's "ns0:" prefixes.
    ET.register_namespace("", S3_NAMESPACE)
    return XML_DECLARATION + ET.tostring(root, encoding="utf-8", xml_declaration=False)
