"""What every view needs: the services, the logged-in user, write recency, JSON shapes."""

import time

from flask import current_app, request, session

from chirp.accounts import find_user
from chirp.cursor import BadCursor, decode_cursor, next_cursor
from chirp.errors import BadRequest, NotFound, NotLoggedIn, Unavailable, UnsupportedMediaType
from chirp.validation import InvalidInput, clean_limit, clean_username


def services():
    return current_app.extensions["chirp"]


def current_user() -> dict | None:
    user_id = session.get("user_id")
    if user_id is None:
        return None
    return {"id": int(user_id), "username": session.get("username", "")}


def require_user() -> dict:
    user = current_user()
    if user is None:
        raise NotLoggedIn("log in first (POST /api/login)")
    return user


def username_or_404(raw: str) -> str:
    """A username from a URL, normalised; 404 when it cannot name anyone (never a query with it:
    Postgres refuses text with NUL bytes)."""
    try:
        return clean_username(raw)
    except InvalidInput:
        raise NotFound(f"no user named {raw!r}") from None


def user_or_404(raw: str) -> dict:
    """The user a URL names (as this session may read them), or 404."""
    user = find_user(services(), username_or_404(raw), last_write_at())
    if user is None:
        raise NotFound(f"no user named {raw!r}")
    return user


def last_write_at() -> float | None:
    return session.get("last_write_at")


def note_write() -> None:
    """Read-your-writes: this session reads from primaries for a short while."""
    session["last_write_at"] = time.time()


def ensure_session_store() -> None:
    """Logging in is pointless when sessions cannot be stored (Redis down at stages 4-5)."""
    svc = services()
    if svc.config.session_backend == "redis":
        if not svc.cache_ping():
            raise Unavailable("the session store (Redis) is unavailable; try again shortly")


def log_in_session(user: dict) -> None:
    current_app.session_interface.regenerate(session)  # a new session id at login
    session.clear()
    session["user_id"] = user["id"]
    session["username"] = user["username"]


def json_body() -> dict:
    # Only application/json: a cross-site HTML form cannot send it (it needs a CORS preflight the
    # app never grants), which is why the JSON API can go without form CSRF tokens (security.md).
    if not request.is_json:
        raise UnsupportedMediaType("send the body as JSON (Content-Type: application/json)")
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly nested JSON: the parser gives up
        body = None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def page_args() -> tuple[int | None, int]:
    try:
        before = decode_cursor(request.args.get("cursor"))
        limit = clean_limit(request.args.get("limit"))
    except (BadCursor, InvalidInput) as error:
        raise BadRequest(str(error)) from None
    return before, limit


def post_json(post: dict) -> dict:
    # 64-bit ids do not survive JavaScript numbers: strings, like Twitter's id_str.
    return {"id": str(post["id"]), "author_id": str(post["author_id"]), "author": post["author"],
            "body": post["body"], "created_at": post["created_at"]}


def page_json(posts: list[dict], limit: int) -> dict:
    return {"posts": [post_json(p) for p in posts], "next_cursor": next_cursor(posts, limit)}
