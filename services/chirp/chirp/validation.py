"""Input rules for everything a client sends; each failure carries a message fit for the user."""

import re

USERNAME_RE = re.compile(r"^[a-z0-9_]{3,30}$")
MAX_POST_CHARS = 280
MIN_PASSWORD, MAX_PASSWORD = 8, 128
DEFAULT_PAGE, MAX_PAGE = 20, 100


class InvalidInput(ValueError):
    """Bad client input; the message is shown to the client as is (HTTP 400)."""


def _text(value, what: str) -> str:
    """A str that can be stored and hashed: JSON may carry lone surrogates ("\\ud800"), which
    Python accepts but UTF-8 (Postgres, password hashing) cannot encode."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid Unicode text (lone surrogate)") from None
    return value


def clean_username(value) -> str:
    name = _text(value, "username").strip().lower()
    if not USERNAME_RE.match(name):
        raise InvalidInput("username must be 3-30 characters: letters, digits or _")
    return name


def clean_password(value) -> str:
    value = _text(value, "password")
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise InvalidInput(f"password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    return value


def clean_post_body(value) -> str:
    body = _text(value, "body").strip()
    if not body:
        raise InvalidInput("post body is empty")
    if len(body) > MAX_POST_CHARS:
        raise InvalidInput(f"post is {len(body)} characters; the limit is {MAX_POST_CHARS}")
    if "\x00" in body:
        raise InvalidInput("post body contains a NUL character")
    return body


def clean_limit(value) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"limit must be an integer 1-{MAX_PAGE}") from None
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be an integer 1-{MAX_PAGE}")
    return limit
