"""Opaque pagination cursors: 'older than post id X', url-safe, versioned, validated when read."""

import base64
import binascii

from chirp.ids import is_valid_id

_PREFIX = "v1:"


class BadCursor(ValueError):
    pass


def encode_cursor(before_id: int) -> str:
    raw = f"{_PREFIX}{before_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """None/'' means the first page; anything not produced by encode_cursor raises BadCursor."""
    if cursor is None or cursor == "":
        return None
    if len(cursor) > 64:
        raise BadCursor("cursor is too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("cursor is not valid base64") from None
    if not raw.startswith(_PREFIX) or not raw[len(_PREFIX):].isdigit():
        raise BadCursor("cursor was not issued by this server")
    before_id = int(raw[len(_PREFIX):])
    if not is_valid_id(before_id) or encode_cursor(before_id) != cursor:
        raise BadCursor("cursor was not issued by this server")
    return before_id


def next_cursor(page: list[dict], limit: int) -> str | None:
    """A full page may have more behind it; a short page is the last one."""
    if len(page) < limit or not page:
        return None
    return encode_cursor(page[-1]["id"])
