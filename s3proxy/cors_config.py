"""The ``CORSConfiguration`` document of Put/GetBucketCors: read and checked as S3 does,
kept in the catalog as rules (:mod:`catalog.cors`), and written back.

A rule is a dict with S3's (and boto3's) names: ``AllowedOrigins``, ``AllowedMethods``,
``AllowedHeaders``, ``ExposeHeaders`` (lists), and ``MaxAgeSeconds`` (an int) and ``ID``
when given.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from s3proxy.errors import XML_DECLARATION, S3Error, local_name
from s3proxy.listing import S3_NAMESPACE

Rule = dict[str, Any]

MAX_RULES = 100  # S3's bound
MAX_DOCUMENT = 64 << 10  # S3's bound on a CORS configuration
MAX_ID = 255
METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD")
# Element name in the document -> list name in a rule, in the order S3 writes them.
LISTS = {
    "AllowedHeader": "AllowedHeaders",
    "AllowedMethod": "AllowedMethods",
    "AllowedOrigin": "AllowedOrigins",
    "ExposeHeader": "ExposeHeaders",
}


def malformed_xml() -> S3Error:
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )


def too_large() -> S3Error:
    return S3Error(
        "MaxMessageLengthExceeded",
        f"Your request was too big: a CORS configuration is at most {MAX_DOCUMENT} bytes.",
    )


def no_configuration(bucket: str) -> S3Error:
    return S3Error(
        "NoSuchCORSConfiguration", "The CORS configuration does not exist", BucketName=bucket
    )


def _one_wildcard(kind: str, values: list[str]) -> None:
    for value in values:
        if value.count("*") > 1:
            raise S3Error(
                "InvalidRequest", f'{kind} "{value}" can not have more than one wildcard.'
            )


def _rule(node: ET.Element) -> Rule:
    rule: Rule = {name: [] for name in LISTS.values()}
    for child in node:
        tag, text = local_name(child.tag), (child.text or "").strip()
        if tag in LISTS:
            rule[LISTS[tag]].append(text)
        elif tag == "MaxAgeSeconds" and "MaxAgeSeconds" not in rule:
            if not (text.isascii() and text.isdigit()):
                raise malformed_xml()
            rule["MaxAgeSeconds"] = int(text)
        elif tag == "ID" and "ID" not in rule and len(text) <= MAX_ID:
            rule["ID"] = text
        else:
            raise malformed_xml()
    if not rule["AllowedMethods"] or not rule["AllowedOrigins"]:
        raise malformed_xml()
    for method in rule["AllowedMethods"]:
        if method not in METHODS:
            raise S3Error(
                "InvalidRequest",
                "Found unsupported HTTP method in CORS config. Unsupported method is " + method,
            )
    _one_wildcard("AllowedOrigin", rule["AllowedOrigins"])
    _one_wildcard("AllowedHeader", rule["AllowedHeaders"])
    return rule


def read_configuration(body: bytes) -> list[Rule]:
    """The rules of a PutBucketCors body; S3's errors for a document it would refuse."""
    if len(body) > MAX_DOCUMENT:
        raise too_large()
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise malformed_xml() from None
    if local_name(root.tag) != "CORSConfiguration":
        raise malformed_xml()
    nodes = list(root)
    if not nodes or len(nodes) > MAX_RULES:
        raise malformed_xml()
    if any(local_name(node.tag) != "CORSRule" for node in nodes):
        raise malformed_xml()
    return [_rule(node) for node in nodes]


def configuration_xml(rules: list[Rule]) -> bytes:
    """GetBucketCors' answer for ``rules``."""
    root = ET.Element("CORSConfiguration", xmlns=S3_NAMESPACE)
    for rule in rules:
        node = ET.SubElement(root, "CORSRule")
        if "ID" in rule:
            ET.SubElement(node, "ID").text = rule["ID"]
        for tag, name in LISTS.items():
            for value in rule.get(name, []):
                ET.SubElement(node, tag).text = value
        if "MaxAgeSeconds" in rule:
            ET.SubElement(node, "MaxAgeSeconds").text = str(rule["MaxAgeSeconds"])
    return XML_DECLARATION + ET.tostring(root, encoding="utf-8", xml_declaration=False)
