"""A tool server's request headers, read from the file the pod mounts from a Secret.

The file holds one ``Name: value`` line per header (``Authorization: Bearer ...``);
blank lines and lines starting with ``#`` are skipped. It is read on every (re)connect,
so a rotated Secret is used from the next connection on. Values are never logged: an
error names the file and the line number only.
"""

from __future__ import annotations

import re
from pathlib import Path

_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)


class HeadersFileError(ValueError):
    """The headers file cannot be used; the message names the file and line, not values."""


def parse_headers(text: str, source: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, value = line.partition(":")
        if not colon or not _NAME.fullmatch(name.strip()):
            raise HeadersFileError(f"{source} line {number}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def read_headers(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise HeadersFileError(f"{path}: {error.strerror or error}") from None
    return parse_headers(text, str(path))
