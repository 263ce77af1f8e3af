"""Stages 1-2: one Postgres, sessions in the web process. The whole app works end to end."""

import json

import psycopg
import pytest

from chirp.cursor import decode_cursor
from chirp.db import queries
from tests.services.conftest import (
    bodies,
    config_for,
    follow,
    form_token,
    post,
    rows,
    signup,
    stage_env,
    unique_name,
)


@pytest.fixture(params=[1, 2])
def app(request, migrated_db, make_app):
    return make_app(config_for(stage_env(request.param, database=migrated_db.primary_url)))


def test_signup_login_logout(app):
    client = app.test_client()
    name = signup(client)
    assert client.get("/api/me").get_json()["user"]["username"] == name
    assert client.post("/api/logout").status_code == 200
    assert client.get("/api/me").status_code == 401
    bad = client.post("/api/login", json={"username": name, "password": "wrong password"})
    assert bad.status_code == 401 and bad.get_json()["error"] == "wrong username or password"
    good = client.post("/api/login", json={"username": name, "password": "correct horse"})
    assert good.status_code == 200
    assert client.get("/api/me").get_json()["user"]["username"] == name


def test_passwords_are_hashed(app, migrated_db):
    name = signup(app.test_client(), password="plain-text-secret")
    (stored,) = rows(migrated_db.primary_url, "SELECT password_hash FROM users WHERE username=%s",
                     (name,))[0]
    assert "plain-text-secret" not in stored and stored.startswith("pbkdf2:")


def test_post_follow_and_home_timeline_newest_first(app):
    alice, bob, carol = app.test_client(), app.test_client(), app.test_client()
    signup(alice)
    b = signup(bob)
    signup(carol)
    post(bob, "bob 1")
    post(alice, "alice 1")
    post(carol, "carol (not followed)")
    follow(alice, b)
    post(bob, "bob 2")
    assert bodies(alice.get("/api/timeline")) == ["bob 2", "alice 1", "bob 1"]
    assert alice.delete(f"/api/users/{b}/follow").status_code == 200
    assert bodies(alice.get("/api/timeline")) == ["alice 1"]


class _Statement:
    """Stands in for the database handle: keeps the statement a query function would run."""

    def all(self, sql, params):
        self.sql, self.params = sql, params
        return []


def _posts_rows_read(url: str, statement: _Statement) -> int:
    """Rows of `posts` the statement reads (returned or filtered out), from EXPLAIN ANALYZE, as
    the planner runs it on a big table (no sequential scans)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        [[[plan]]] = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement.sql,
                                  statement.params).fetchall()

    def read(node) -> int:
        own = 0
        if node.get("Relation Name") == "posts":
            loops = node.get("Actual Loops", 1)
            own = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * loops
        return own + sum(read(child) for child in node.get("Plans", []))

    return read(plan["Plan"])


def test_a_home_page_reads_its_authors_newest_posts_not_everyones(app, migrated_db):
    """A reader whose followees wrote long ago: the page comes from each author's newest posts
    (posts_by_author), not from walking back through everybody's posts since (docs/cache.md)."""
    alice, bob, carol = app.test_client(), app.test_client(), app.test_client()
    a = signup(alice)
    b = signup(bob)
    signup(carol)
    follow(alice, b)
    for i in range(3):
        post(bob, f"bob {i}")
    for i in range(150):
        post(carol, f"carol {i}")
    assert bodies(alice.get("/api/timeline")) == ["bob 2", "bob 1", "bob 0"]
    [[alice_id]] = rows(migrated_db.primary_url, "SELECT id FROM users WHERE username = %s", (a,))
    statement = _Statement()
    queries.home_timeline(statement, alice_id, None, 20)
    # bob's 3 posts, from the index and as the page's rows: about 7; the walk back through
    # everybody's posts reads carol's 150 too.
    assert _posts_rows_read(migrated_db.primary_url, statement) < 20


def test_json_keys_come_in_the_order_the_api_builds_them(app):
    client = app.test_client()
    signup(client)
    post(client, "in order")
    page = json.loads(client.get("/api/timeline").get_data())  # dicts keep the document's order
    assert list(page) == ["posts", "next_cursor"]
    assert list(page["posts"][0]) == ["id", "author_id", "author", "body", "created_at"]


def test_timeline_cursor_pagination(app):
    client = app.test_client()
    signup(client)
    for i in range(7):
        post(client, f"post {i}")
    seen, cursor = [], None
    while True:
        args = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/timeline", query_string=args)
        assert page.status_code == 200
        data = page.get_json()
        seen += [p["body"] for p in data["posts"]]
        cursor = data["next_cursor"]
        if cursor is None:
            break
        assert decode_cursor(cursor) == int(data["posts"][-1]["id"])
    assert seen == [f"post {i}" for i in reversed(range(7))]


def test_user_page_and_public_page(app):
    client = app.test_client()
    name = signup(client)
    post(client, "hello world")
    page = app.test_client().get(f"/api/users/{name}")
    assert page.status_code == 200
    data = page.get_json()
    assert data["user"]["username"] == name and data["user"]["posts"] == 1
    assert bodies(page) == ["hello world"]
    assert "hello world" in bodies(app.test_client().get("/api/public"))


def test_ids_are_time_ordered(app):
    client = app.test_client()
    signup(client)
    ids = [int(post(client, f"p{i}")["id"]) for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_every_response_says_who_served_it(app):
    client = app.test_client()
    signup(client)
    response = client.get("/api/timeline")
    stage = app.extensions["chirp"].config.stage
    assert response.headers["X-Chirp-Pod"] == f"test-pod-{stage}"
    assert response.headers["X-Chirp-Stage"] == str(stage)
    assert response.headers["X-Chirp-DB"] == "primary"
    assert response.headers["X-Chirp-Cache"] == "off"
    html = client.get("/").get_data(as_text=True)
    assert f"served by pod <b>test-pod-{stage}</b>" in html and "database <b>primary</b>" in html


def test_without_an_architecture_the_page_shows_what_the_pod_knows(app, migrated_db):
    stage = app.extensions["chirp"].config.stage
    html = app.test_client().get("/architecture").get_data(as_text=True)
    assert f"<h1>Stage {stage}</h1>" in html  # the app has no name for a stage of its own
    assert "The operator has not described this instance" in html
    assert f"127.0.0.1:{migrated_db.primary_url.rsplit(':', 1)[1]}" in html
    assert "answered this request" in html and f"test-pod-{stage}" in html
    data = app.test_client().get("/api/architecture").get_json()
    assert data["architecture"] is None and data["stageName"] is None
    assert data["stage"] == stage and data["sessions"] == "process" and data["redis"] is None
    assert data["databases"] == [{"route": "primary",
                                  "address": migrated_db.primary_url.split("@", 1)[1]}]


def test_the_architecture_and_stage_name_come_from_the_operator(migrated_db, make_app):
    architecture = {"stage": 2, "stageName": "separate-db",
                    "components": [{"name": "web", "kind": "Deployment", "replicas": 1},
                                   {"name": "db-primary", "kind": "StatefulSet", "replicas": 1}],
                    "spofs": ["web", "db-primary"]}
    app = make_app(config_for(stage_env(2, database=migrated_db.primary_url,
                                        CHIRP_ARCHITECTURE=json.dumps(architecture))))
    client = app.test_client()
    html = client.get("/architecture").get_data(as_text=True)
    assert "<h1>Stage 2: separate-db</h1>" in html and "not described" not in html
    assert '<div class="component spof served">' in html  # web: a SPOF, and it served this
    assert '<li class="spof">db-primary</li>' in html
    assert "stage 2 (separate-db)" in client.get("/").get_data(as_text=True)  # nav and footer
    data = client.get("/api/architecture").get_json()
    assert data["architecture"] == architecture and data["stageName"] == "separate-db"


def test_sessions_live_in_the_web_process(migrated_db, make_app):
    """Two pods (apps) on one database: a session made on one is unknown to the other; this is
    why stage 3 needs sticky sessions."""
    config = config_for(stage_env(2, database=migrated_db.primary_url))
    pod_a, pod_b = make_app(config), make_app(config)
    client = pod_a.test_client()
    signup(client)
    cookie = client.get_cookie("chirp_session")
    assert cookie is not None and len(cookie.value) >= 32  # an id, not signed session data
    assert client.get("/api/me").status_code == 200
    other = pod_b.test_client()
    other.set_cookie("chirp_session", cookie.value)
    assert other.get("/api/me").status_code == 401


def test_html_pages_work(app):
    client = app.test_client()
    name = unique_name()
    response = client.post("/signup", data={"username": name, "password": "long enough",
                                            "csrf_token": form_token(client, "/signup")})
    assert response.status_code == 302
    posted = client.post("/post", data={"body": "from a form",
                                        "csrf_token": form_token(client, "/")})
    assert posted.status_code == 302
    home = client.get("/").get_data(as_text=True)
    assert "from a form" in home and "Your timeline" in home
    assert "from a form" in app.test_client().get(f"/u/{name}").get_data(as_text=True)
