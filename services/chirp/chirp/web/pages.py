"""Small server-rendered HTML pages over the same operations as the JSON API."""

from flask import Blueprint, redirect, render_template, request, session, url_for

from chirp import accounts, reads, writes
from chirp.cursor import next_cursor
from chirp.errors import BadRequest, ChirpError
from chirp.validation import InvalidInput, clean_password, clean_post_body, clean_username
from chirp.web.common import (
    current_user,
    ensure_session_store,
    last_write_at,
    log_in_session,
    note_write,
    page_args,
    require_user,
    services,
    user_or_404,
    username_or_404,
)

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    user = current_user()
    before, limit = page_args()
    svc = services()
    if user is None:
        posts = reads.public_posts(svc, before, limit, last_write_at())
        title = "Recent chirps"
    else:
        posts = reads.home_timeline(svc, user["id"], before, limit, last_write_at())
        title = "Your timeline"
    return render_template("timeline.html", title=title, posts=posts,
                           next_cursor=next_cursor(posts, limit), show_form=user is not None)


@bp.get("/public")
def public():
    before, limit = page_args()
    posts = reads.public_posts(services(), before, limit, last_write_at())
    return render_template("timeline.html", title="Recent chirps", posts=posts,
                           next_cursor=next_cursor(posts, limit), show_form=False)


def _auth_form(title: str, action):
    """The sign-up and log-in form (one template; `title` names the page and the button)."""
    if request.method == "GET":
        return render_template("auth.html", title=title)
    try:
        username = clean_username(request.form.get("username", ""))
        password = clean_password(request.form.get("password", ""))
        ensure_session_store()
        user = action(username, password)
    except (InvalidInput, ChirpError) as error:
        status = getattr(error, "status", 400)
        return render_template("auth.html", title=title, error=str(error)), status
    log_in_session(user)
    return redirect(url_for("pages.index"))


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    def action(username, password):
        user = accounts.sign_up(services(), username, password)
        note_write()
        return user

    return _auth_form("Sign up", action)


@bp.route("/login", methods=["GET", "POST"])
def login():
    return _auth_form("Log in", lambda u, p: accounts.log_in(services(), u, p))


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("pages.index"))


@bp.post("/post")
def post():
    user = require_user()
    try:
        body = clean_post_body(request.form.get("body", ""))
    except InvalidInput as error:
        raise BadRequest(str(error)) from None
    writes.create_post(services(), user, body)
    note_write()
    return redirect(url_for("pages.index"))


@bp.get("/u/<username>")
def user_page(username):
    before, limit = page_args()
    svc = services()
    found = user_or_404(username)
    profile = reads.profile(svc, found["id"], last_write_at())
    posts = reads.user_posts(svc, found["id"], before, limit, last_write_at())
    return render_template("user.html", profile=profile, posts=posts,
                           next_cursor=next_cursor(posts, limit), me=current_user())


@bp.post("/u/<username>/follow")
def follow(username):
    user = require_user()
    follow = request.form.get("action") != "unfollow"
    name = username_or_404(username)
    writes.set_following(services(), user, name, follow, last_write_at())
    note_write()
    return redirect(url_for("pages.user_page", username=name))
