"""The JSON API (/api/...), described by chirp/openapi.json (served at /api/openapi.json)."""

from importlib import resources

from flask import Blueprint, current_app, request, session

from chirp import accounts, reads, writes
from chirp.errors import BadRequest
from chirp.validation import InvalidInput, clean_password, clean_post_body, clean_username
from chirp.web.common import (
    ensure_session_store,
    json_body,
    last_write_at,
    log_in_session,
    note_write,
    page_args,
    page_json,
    post_json,
    require_user,
    services,
    user_or_404,
    username_or_404,
)

bp = Blueprint("api", __name__, url_prefix="/api")


def _credentials() -> tuple[str, str]:
    body = json_body()
    try:
        return clean_username(body.get("username")), clean_password(body.get("password"))
    except InvalidInput as error:
        raise BadRequest(str(error)) from None


@bp.post("/signup")
def signup():
    username, password = _credentials()
    ensure_session_store()
    svc = services()
    user = accounts.sign_up(svc, username, password)
    log_in_session(user)
    note_write()
    return {"user": {"id": str(user["id"]), "username": user["username"]}}, 201


@bp.post("/login")
def login():
    username, password = _credentials()
    ensure_session_store()
    user = accounts.log_in(services(), username, password)
    log_in_session(user)
    return {"user": {"id": str(user["id"]), "username": user["username"]}}


@bp.post("/logout")
def logout():
    session.clear()
    return {"logged_out": True}


@bp.get("/me")
def me():
    user = require_user()
    return {"user": {"id": str(user["id"]), "username": user["username"]}}


@bp.post("/posts")
def create_post():
    user = require_user()
    try:
        body = clean_post_body(json_body().get("body"))
    except InvalidInput as error:
        raise BadRequest(str(error)) from None
    post = writes.create_post(services(), user, body)
    note_write()
    return {"post": post_json(post)}, 201


@bp.get("/timeline")
def timeline():
    user = require_user()
    before, limit = page_args()
    posts = reads.home_timeline(services(), user["id"], before, limit, last_write_at())
    return page_json(posts, limit)


@bp.get("/public")
def public():
    before, limit = page_args()
    return page_json(reads.public_posts(services(), before, limit, last_write_at()), limit)


@bp.get("/users/<username>")
def user_page(username):
    before, limit = page_args()
    user = user_or_404(username)
    svc = services()
    profile = reads.profile(svc, user["id"], last_write_at())
    posts = reads.user_posts(svc, user["id"], before, limit, last_write_at())
    result = page_json(posts, limit)
    result["user"] = {"id": str(profile["id"]), "username": profile["username"],
                      "joined": profile["joined"], "posts": profile["posts"],
                      "following": profile["following"]}
    return result


@bp.route("/users/<username>/follow", methods=["POST", "DELETE"])
def follow(username):
    """POST follows, DELETE unfollows."""
    user = require_user()
    following = request.method == "POST"
    # set_following looks the user up itself (404 when there is none): no lookup of our own
    changed = writes.set_following(services(), user, username_or_404(username),
                                   following, last_write_at())
    note_write()
    return {"following": following, "changed": changed}


@bp.get("/openapi.json")
def openapi():
    # Served from the package data the fuzz tests check the real responses against.
    document = resources.files("chirp").joinpath("openapi.json").read_bytes()
    return current_app.response_class(document, mimetype="application/json")
