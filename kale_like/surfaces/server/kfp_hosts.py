"""The KFP host a request names, checked before anything connects to it.

A host is an http(s) address the standard library can parse: a NUL or other control character,
text beyond 2,048 characters, a malformed IPv6 literal or a port outside 1-65535 is a 400 naming the
problem (those used to escape as a 500 from the URL parser).
"""

from __future__ import annotations

import urllib.parse

from kale_like.surfaces.server.paths import PathRefused

MOST_HOST_CHARACTERS = 2048


def checked_host(text: object) -> str:
    """The host without surrounding spaces and trailing `/` ('' when none is given); PathRefused(400)
    when it cannot be an address."""
    if not isinstance(text, str):
        raise PathRefused(400, "the KFP host must be text such as http://localhost:8080")
    host = text.strip().rstrip("/")
    shown = host if len(host) <= 80 else host[:77] + "..."
    if len(host) > MOST_HOST_CHARACTERS:
        raise PathRefused(400, f"the KFP host {shown!r} is longer than {MOST_HOST_CHARACTERS} characters")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in host):
        raise PathRefused(400, f"the KFP host {shown!r} holds a control character or invalid text")
    if not host:
        return ""
    try:
        parts = urllib.parse.urlsplit(host)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise PathRefused(400, f"the KFP host {shown!r} is not a valid address ({error})") from None
    return host
