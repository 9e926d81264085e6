"""S3 answers as a Nebula key sees them: only the buckets it may read, and owners from the
catalog (catalog.buckets), never the backend's one identity.

ListBuckets and the ACL documents are small and rewritten whole; object listings
(ListObjects, ListObjectVersions, ListMultipartUploads, ListParts) can be long, so
:class:`OwnerRewriter` rewrites them as they stream, one piece of the answer at a time.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from catalog.buckets import owner_id
from catalog.keys import allows
from catalog.models import AccessKey
from s3proxy.errors import XML_DECLARATION, local_name

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
# Serialize S3's default namespace as it came, not with ElementTree's "ns0:" prefixes.
ET.register_namespace("", S3_NAMESPACE)
ET.register_namespace("xsi", XSI_NAMESPACE)


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


def namespace_of(node: ET.Element) -> str:
    """``node``'s namespace as ElementTree writes it in tags (``{uri}``, or empty)."""
    return node.tag[: -len(local_name(node.tag))]


def name_person(person: ET.Element, owner: str) -> None:
    """``person`` (an ``Owner``, ``Initiator`` or grantee) now names ``owner`` alone: its
    canonical id and its name as the display name, whatever the backend had put there."""
    namespace = namespace_of(person)
    for node in [c for c in person if local_name(c.tag) in ("ID", "DisplayName")]:
        person.remove(node)
    ET.SubElement(person, namespace + "ID").text = owner_id(owner)
    ET.SubElement(person, namespace + "DisplayName").text = owner


def set_owner(root: ET.Element, owner: str) -> None:
    """The document's ``Owner`` now names ``owner``: every key reaches the backend as one
    identity, so the backend's ``Owner`` is that identity, never someone a Nebula key knows."""
    for person in children(root, "Owner"):
        name_person(person, owner)


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


def owner_alone(body: bytes, owner: str) -> bytes:
    """GetBucketAcl's or GetObjectAcl's AccessControlPolicy as S3 answers it under "bucket
    owner enforced": the bucket's owner, and one grant, to that owner, of FULL_CONTROL.

    That is what the proxy enforces (it never grants anyone else, s3proxy.owners), and the
    proxy is the only way in: a grant the backend holds besides (made on the backend
    directly, to AllUsers or another backend account) gives nobody anything here, and
    showing it would show the backend's identities. A body that is not an
    AccessControlPolicy passes unchanged."""
    root = parse(body, "AccessControlPolicy")
    if root is None:
        return body
    namespace = namespace_of(root)
    policy = ET.Element(root.tag)
    name_person(ET.SubElement(policy, namespace + "Owner"), owner)
    acl = ET.SubElement(policy, namespace + "AccessControlList")
    grant = ET.SubElement(acl, namespace + "Grant")
    user = {f"{{{XSI_NAMESPACE}}}type": "CanonicalUser"}
    name_person(ET.SubElement(grant, namespace + "Grantee", user), owner)
    ET.SubElement(grant, namespace + "Permission").text = "FULL_CONTROL"
    return serialize(policy)


# The element a batch of entries is serialized in, and the lengths of its start and end
# tags in ElementTree's output (which is "<batch></batch>").
BATCH = "batch"
_EMPTY_BATCH = ET.tostring(ET.Element(BATCH), encoding="unicode", short_empty_elements=False)
BATCH_START = _EMPTY_BATCH.index("</")
BATCH_END = len(_EMPTY_BATCH) - BATCH_START


@dataclass(frozen=True)
class Shape:
    """Where a listing names people: ``people`` (``Owner``, ``Initiator``) in each of the
    root's ``entries`` children, or in the root itself when it has no entries (ListParts)."""

    root: str
    entries: frozenset[str]
    people: tuple[str, ...]


OBJECTS = Shape("ListBucketResult", frozenset({"Contents"}), ("Owner",))
VERSIONS = Shape("ListVersionsResult", frozenset({"Version", "DeleteMarker"}), ("Owner",))
UPLOADS = Shape("ListMultipartUploadsResult", frozenset({"Upload"}), ("Initiator", "Owner"))
PARTS = Shape("ListPartsResult", frozenset(), ("Initiator", "Owner"))


def ensure_people(node: ET.Element, people: tuple[str, ...], owner: str, namespace: str) -> None:
    """Each of ``people`` in ``node`` names ``owner``; one the backend left out (SeaweedFS
    omits ``Initiator`` and ``Owner`` from multipart listings) is added, as S3 documents."""
    for name in people:
        found = children(node, name) or [ET.SubElement(node, namespace + name)]
        for person in found:
            name_person(person, owner)


class OwnerRewriter:
    """One listing document rewritten as its bytes arrive: feed the backend's pieces, send
    what each call returns, then what :meth:`close` returns.

    ElementTree's pull parser builds the root's children (objects, versions, uploads,
    parts) as the bytes arrive; each complete one is rewritten, and those a piece completed
    are serialized together and dropped, so memory holds one piece's entries (a read of at
    most 256 KiB), not the listing. A body that is not the expected document (not XML,
    or the answer to a sub-resource the request classification did not know) passes
    through unchanged."""

    def __init__(self, shape: Shape, owner: str) -> None:
        self._shape = shape
        self._owner = owner
        self._parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
        self._root: ET.Element | None = None
        self._depth = 0
        self._held: list[bytes] = []  # the bytes before the root's start tag
        self._passthrough = False
        self._namespace = ""
        self._end_tag = b""
        self._seen: set[str] = set()  # root-level people already sent
        self._strip = False

    def feed(self, data: bytes) -> bytes:
        if self._passthrough:
            return data
        if self._root is None:
            self._held.append(data)
        return self._parsed(self._parser.feed, data)

    def close(self) -> bytes:
        if self._passthrough:
            return b""
        return self._parsed(lambda _: self._parser.close(), b"")

    def _parsed(self, step: Callable[[bytes], object], data: bytes) -> bytes:
        """What ``step`` (feeding or closing the parser) lets out; a document that is not
        XML before its root passes through, one that breaks after it raises ParseError."""
        try:
            step(data)
            return self._read()
        except ET.ParseError:
            if self._root is not None:
                raise
            return self._pass_through()

    def _pass_through(self) -> bytes:
        self._passthrough = True
        held, self._held = b"".join(self._held), []
        return held

    def _read(self) -> bytes:
        out: list[bytes] = []
        done: list[ET.Element] = []  # complete children of the root, rewritten
        for event in self._parser.read_events():
            kind, node = event[0], event[-1]
            assert isinstance(node, ET.Element)  # only start and end events were asked for
            if kind == "start":
                self._depth += 1
                if self._depth == 1:
                    out.append(self._start(node))
                    if self._passthrough:
                        return b"".join(out)
            else:
                self._depth -= 1
                if self._depth == 1:
                    done.append(self._entry(node))
                elif self._depth == 0:
                    done += self._missing(node)
                    out += [self._serialized(done), self._end_tag]
                    done = []
        out.append(self._serialized(done))
        return b"".join(out)

    def _start(self, root: ET.Element) -> bytes:
        """The root's start tag as ElementTree writes it, or all held bytes unchanged."""
        if local_name(root.tag) != self._shape.root:
            return self._pass_through()
        self._root, self._held = root, []
        self._namespace = namespace_of(root)
        # Only S3's namespace is written as the default one (registered above).
        self._strip = self._namespace == "{" + S3_NAMESPACE + "}"
        shell = ET.Element(root.tag, root.attrib)
        whole = ET.tostring(shell, encoding="utf-8", short_empty_elements=False)
        start, _, end = whole.rpartition(b"</")
        self._end_tag = b"</" + end
        return XML_DECLARATION + start

    def _entry(self, node: ET.Element) -> ET.Element:
        """One complete child of the root, rewritten and dropped from the tree."""
        assert self._root is not None
        name = local_name(node.tag)
        if name in self._shape.entries:
            ensure_people(node, self._shape.people, self._owner, self._namespace)
        elif not self._shape.entries and name in self._shape.people:
            name_person(node, self._owner)
            self._seen.add(name)
        self._root.remove(node)
        return node

    def _missing(self, root: ET.Element) -> list[ET.Element]:
        """At the root's end: the root-level people the backend left out (ListParts)."""
        if self._shape.entries:
            return []
        left = tuple(p for p in self._shape.people if p not in self._seen)
        ensure_people(root, left, self._owner, self._namespace)
        return list(root)

    def _serialized(self, nodes: list[ET.Element]) -> bytes:
        """Children of the root already sent, serialized in one pass (per entry, the
        serializer's setup cost more than the entry). Tags in the root's default namespace
        lose it, so it is not declared again; if one names another namespace, each child
        is written alone, declaring what it uses."""
        if not nodes:
            return b""
        if not all([self._bare(node) for node in nodes]):
            return b"".join(ET.tostring(n, short_empty_elements=False) for n in nodes)
        batch = ET.Element(BATCH)
        batch.extend(nodes)
        text = ET.tostring(batch, encoding="unicode", short_empty_elements=False)
        return text[BATCH_START:-BATCH_END].encode()

    def _bare(self, node: ET.Element) -> bool:
        """Strip the root's default namespace from ``node``'s tags; whether it then names
        no namespace at all."""
        bare = True
        for element in node.iter():
            if self._strip and element.tag.startswith(self._namespace):
                element.tag = element.tag[len(self._namespace) :]
            if element.tag.startswith("{") or any(k.startswith("{") for k in element.attrib):
                bare = False
        return bare
