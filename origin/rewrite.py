"""Writing a token query into every URI of a playlist or thumbnail track being served."""

from __future__ import annotations

import re

URI_ATTRIBUTE = re.compile(r'URI="([^"]*)"')
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def with_query(uri: str, query: str) -> str:
    """``seg.m4s`` -> ``seg.m4s?q``; ``sprite.jpg#xywh=…`` -> ``sprite.jpg?q#xywh=…``.

    URIs naming another host (with a scheme) are left alone: the token is for this origin.
    """
    if not uri or SCHEME.match(uri):
        return uri
    path, hash_sign, fragment = uri.partition("#")
    joiner = "&" if "?" in path else "?"
    return f"{path}{joiner}{query}{hash_sign}{fragment}"


def sign_playlist(text: str, query: str) -> str:
    """Every URI line and every ``URI="…"`` attribute (EXT-X-MAP, EXT-X-MEDIA, …)."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            line = URI_ATTRIBUTE.sub(lambda m: f'URI="{with_query(m.group(1), query)}"', line)
        elif stripped:
            line = with_query(stripped, query)
        lines.append(line)
    return "\n".join(lines) + "\n"


def sign_vtt(text: str, query: str) -> str:
    """The payload line after each cue timing line is the image URI of that thumbnail."""
    lines = text.splitlines()
    for number in range(1, len(lines)):
        if "-->" in lines[number - 1] and lines[number].strip():
            lines[number] = with_query(lines[number].strip(), query)
    return "\n".join(lines) + "\n"
