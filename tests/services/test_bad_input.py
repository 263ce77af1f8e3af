"""Bad requests get a 4xx with a message that says what is wrong, never a 5xx."""

import pytest

from chirp.cursor import encode_cursor
from tests.services.conftest import config_for, form_token, post, signup, stage_env


@pytest.fixture
def client(migrated_db, make_app):
    app = make_app(config_for(stage_env(2, database=migrated_db.primary_url)))
    client = app.test_client()
    signup(client, "mallory_" + migrated_db.name)
    return client


@pytest.mark.parametrize("method,path,kwargs,status,message", [
    ("post", "/api/posts", {"json": {"body": "x" * 281}}, 400, "281 characters; the limit is 280"),
    ("post", "/api/posts", {"json": {"body": "   "}}, 400, "post body is empty"),
    ("post", "/api/posts", {"json": {"body": 42}}, 400, "body must be a string"),
    ("post", "/api/posts", {"data": "{not json", "content_type": "application/json"}, 400,
     "request body must be a JSON object"),
    ("post", "/api/posts", {"json": ["a", "list"]}, 400, "request body must be a JSON object"),
    ("get", "/api/users/nobody_here_at_all", {}, 404, "no user named 'nobody_here_at_all'"),
    ("get", "/api/users/Bad%20Name!", {}, 404, "no user named"),
    ("post", "/api/users/nobody_here_at_all/follow", {}, 404, "no user named"),
    ("get", "/api/timeline?cursor=bm90LWEtY3Vyc29y", {}, 400,
     "cursor was not issued by this server"),
    ("get", "/api/timeline?cursor=%%%", {}, 400, "cursor"),
    ("get", "/api/public?limit=1000", {}, 400, "limit must be an integer 1-100"),
    ("get", "/api/public?limit=ten", {}, 400, "limit must be an integer 1-100"),
    ("post", "/api/signup", {"json": {"username": "ab", "password": "long enough"}}, 400,
     "username must be 3-30 characters"),
    ("post", "/api/signup", {"json": {"username": "good_name", "password": "short"}}, 400,
     "password must be 8-128 characters"),
    ("post", "/api/signup", {"json": {"username": None}}, 400, "username must be a string"),
    ("get", "/api/nothing-here", {}, 404, "no such page: /api/nothing-here"),
    ("put", "/api/posts", {"json": {}}, 405, "PUT is not allowed on /api/posts"),
    ("post", "/api/posts", {"data": "x" * 70_000, "content_type": "application/json"}, 413,
     "request body is too large"),
])
def test_bad_requests_answer_4xx_with_a_clear_message(client, method, path, kwargs, status,
                                                      message):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert message in response.get_json()["error"]


def test_username_taken_is_409(client, migrated_db):
    response = client.post("/api/signup", json={"username": "mallory_" + migrated_db.name,
                                                "password": "long enough"})
    assert response.status_code == 409 and "is taken" in response.get_json()["error"]


def test_following_yourself_is_400(client, migrated_db):
    response = client.post(f"/api/users/mallory_{migrated_db.name}/follow")
    assert response.status_code == 400 and "yourself" in response.get_json()["error"]


def test_anonymous_writes_are_401(migrated_db, make_app):
    anonymous = make_app(config_for(stage_env(2, database=migrated_db.primary_url))).test_client()
    response = anonymous.post("/api/posts", json={"body": "hi"})
    assert response.status_code == 401 and "log in first" in response.get_json()["error"]


def test_a_cursor_past_the_end_is_an_empty_page_not_an_error(client):
    post(client, "only one")
    response = client.get("/api/timeline", query_string={"cursor": encode_cursor(1)})
    assert response.status_code == 200 and response.get_json() == {"posts": [], "next_cursor": None}


def test_html_forms_show_errors_as_4xx(client):
    token = form_token(client, "/")
    response = client.post("/post", data={"body": "y" * 300, "csrf_token": token})
    assert response.status_code == 400 and "limit is 280" in response.get_data(as_text=True)
    response = client.post("/login", data={"username": "x", "password": "whatever!",
                                           "csrf_token": token})
    assert response.status_code == 400 and "username must be" in response.get_data(as_text=True)
    assert client.get("/u/nobody_at_all").status_code == 404
    # Names no one can have are not looked up (Postgres refuses text with NUL: it was a 500).
    for name in ("%00", "Bad%20Name!", "x" * 40):
        response = client.post(f"/u/{name}/follow", data={"csrf_token": token})
        assert response.status_code == 404, (name, response.status_code)
        assert "no user named" in response.get_data(as_text=True)
