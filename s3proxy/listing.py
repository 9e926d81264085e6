"""ListBuckets for scoped keys: only the buckets the key may read are shown."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from catalog.keys import allows
from catalog.models import AccessKey
from s3proxy.errors import XML_DECLARATION, local_name

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
# Serialize S3's default namespace as it came, not with ElementTree's "ns0:" prefixes.
ET.register_namespace("", S3_NAMESPACE)


def visible_buckets_only(body: bytes, key: AccessKey) -> bytes:
    """The ListAllMyBucketsResult without the buckets ``key`` has no read scope on."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return body
    if local_name(root.tag) != "ListAllMyBucketsResult":
        return body
    for buckets in (node for node in root if local_name(node.tag) == "Buckets"):
        for bucket in list(buckets):
            name = next((c.text for c in bucket if local_name(c.tag) == "Name"), None)
            if name is None or not allows(key, name, "r"):
                buckets.remove(bucket)
    return XML_DECLARATION + ET.tostring(root, encoding="utf-8", xml_declaration=False)
