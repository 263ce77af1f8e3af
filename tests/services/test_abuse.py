"""The app under abuse (docs/security.md): CSRF tokens on HTML forms, the JSON API only taking
JSON, rate-limited logins and sign-ups (in the process, or in Redis shared by every web pod),
session cookies HttpOnly + SameSite, scrypt password hashes, hostile JSON. Body size limits on a
real gunicorn: test_openapi_fuzz.py."""

import re

import pytest
import redis

from chirp.web.security import LIMITS_KEY_PREFIX
from tests.services.conftest import (
    config_for,
    rows,
    signup,
    stage_env,
    unique_name,
)

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return TOKEN.search(page.get_data(as_text=True)).group(1)


@pytest.fixture
def app(migrated_db, make_app):
    return make_app(config_for(stage_env(2, database=migrated_db.primary_url)))


def limited_app(make_app, migrated_db, redis_url=None, **limits):
    return make_app(config_for(stage_env(2, database=migrated_db.primary_url,
                                         redis_url=redis_url), **limits))


def login(client, username, password="correct horse"):
    return client.post("/api/login", json={"username": username, "password": password})


# --- CSRF -------------------------------------------------------------------------------------
def test_html_forms_refuse_a_post_without_the_pages_token(app):
    client = app.test_client()
    name = unique_name()
    refused = client.post("/signup", data={"username": name, "password": "long enough"})
    assert refused.status_code == 400 and "CSRF token is missing" in refused.get_data(as_text=True)
    token = form_token(client, "/signup")
    signed_up = client.post("/signup", data={"username": name, "password": "long enough",
                                             "csrf_token": token})
    assert signed_up.status_code == 302

    assert client.post("/post", data={"body": "forged"}).status_code == 400
    forged = client.post("/post", data={"body": "forged", "csrf_token": "x" + token[1:]})
    assert forged.status_code == 400
    posted = client.post("/post", data={"body": "from the form",
                                        "csrf_token": form_token(client, "/")})
    assert posted.status_code == 302
    assert "from the form" in client.get("/").get_data(as_text=True)
    assert "forged" not in client.get("/").get_data(as_text=True)


def test_form_tokens_work_with_sessions_in_redis(migrated_db, make_app, redis_url):
    app = make_app(config_for(stage_env(4, database=migrated_db.primary_url, redis_url=redis_url)))
    client = app.test_client()
    response = client.post("/signup", data={"username": unique_name(), "password": "long enough",
                                            "csrf_token": form_token(client, "/signup")})
    assert response.status_code == 302
    posted = client.post("/post", data={"body": "via redis", "csrf_token": form_token(client, "/")})
    assert posted.status_code == 302 and "via redis" in client.get("/").get_data(as_text=True)


def test_a_token_from_another_session_is_refused(app):
    attacker, victim = app.test_client(), app.test_client()
    signup(victim)
    token = form_token(attacker, "/login")  # the attacker's own session's token
    response = victim.post("/post", data={"body": "forged", "csrf_token": token})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)


def test_the_json_api_takes_json_only_so_forms_cannot_forge_it(app):
    client = app.test_client()
    signup(client)
    # What a cross-site form can send: urlencoded, multipart or text/plain (even JSON-looking).
    for kwargs in ({"data": {"body": "forged"}},
                   {"data": '{"body": "forged"}', "content_type": "text/plain"}):
        response = client.post("/api/posts", **kwargs)
        assert response.status_code == 415, response.get_data(as_text=True)
        assert "Content-Type: application/json" in response.get_json()["error"]
    assert client.post("/api/posts", json={"body": "real"}).status_code == 201  # no token needed


# --- cookies and hashes -----------------------------------------------------------------------
def test_session_cookie_is_httponly_and_samesite_lax(app):
    client = app.test_client()
    response = client.post("/api/signup", json={"username": unique_name(),
                                                "password": "long enough"})
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("chirp_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_passwords_are_hashed_with_memory_hard_scrypt(migrated_db, make_app):
    config = config_for(stage_env(2, database=migrated_db.primary_url))
    app = make_app(config.replace(password_method="scrypt"))  # the production default
    name = signup(app.test_client())
    [(password_hash,)] = rows(migrated_db.primary_url,
                              "SELECT password_hash FROM users WHERE username = %s", (name,))
    method = password_hash.split("$")[0]
    assert method == "scrypt:32768:8:1"  # N=2^15, r=8: 128 * N * r = 32 MiB per guess
    assert login(app.test_client(), name).status_code == 200


# --- rate limits ------------------------------------------------------------------------------
def test_failed_logins_are_limited_per_username(migrated_db, make_app):
    app = limited_app(make_app, migrated_db, login_limit_per_username="3/minute")
    client = app.test_client()
    victim, other = signup(client), signup(client)
    for _ in range(3):
        assert login(client, victim, "wrong password").status_code == 401
    refused = login(client, victim)  # even the right password, until the window passes
    assert refused.status_code == 429
    assert "too many failed logins for this username" in refused.get_json()["error"]
    assert int(refused.headers["Retry-After"]) > 0
    assert login(client, " " + victim.upper(), "wrong password").status_code == 429  # same name
    assert login(client, other).status_code == 200  # other accounts are not affected


def test_successful_logins_do_not_count(migrated_db, make_app):
    app = limited_app(make_app, migrated_db, login_limit_per_username="2/minute",
                      login_limit_per_ip="2/minute")
    client = app.test_client()
    name = signup(client)
    for _ in range(6):
        assert login(client, name).status_code == 200


def test_failed_logins_are_limited_per_address_across_usernames(migrated_db, make_app):
    app = limited_app(make_app, migrated_db, login_limit_per_ip="4/minute")
    client = app.test_client()
    for _ in range(4):
        assert login(client, unique_name(), "spraying1").status_code == 401
    refused = login(client, unique_name(), "spraying1")
    assert refused.status_code == 429 and "from this address" in refused.get_json()["error"]
    other_address = client.post("/api/login", json={"username": unique_name(),
                                                    "password": "spraying1"},
                                environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other_address.status_code == 401


def test_signups_are_limited_per_address_on_the_api_and_the_form_together(migrated_db, make_app):
    app = limited_app(make_app, migrated_db, signup_limit_per_ip="2/minute")
    client = app.test_client()
    signup(client)
    form = app.test_client()
    token = form_token(form, "/signup")
    assert form.post("/signup", data={"username": unique_name(), "password": "long enough",
                                      "csrf_token": token}).status_code == 302
    refused = client.post("/api/signup", json={"username": unique_name(),
                                               "password": "long enough"})
    assert refused.status_code == 429 and "too many sign-ups" in refused.get_json()["error"]
    page = form.post("/signup", data={"username": unique_name(), "password": "long enough",
                                      "csrf_token": form_token(form, "/signup")})
    assert page.status_code == 429 and "too many sign-ups" in page.get_data(as_text=True)


def test_limits_are_shared_by_web_pods_through_redis(migrated_db, make_app, redis_url):
    pod_a, pod_b = (limited_app(make_app, migrated_db, redis_url,
                                login_limit_per_username="2/minute") for _ in range(2))
    name = signup(pod_a.test_client())
    assert login(pod_a.test_client(), name, "wrong password").status_code == 401
    assert login(pod_b.test_client(), name, "wrong password").status_code == 401
    assert login(pod_a.test_client(), name).status_code == 429
    assert login(pod_b.test_client(), name).status_code == 429
    keys = redis.Redis.from_url(redis_url).keys(f"*{LIMITS_KEY_PREFIX}*")
    assert keys, "the counters live in Redis"


def test_limits_fall_back_to_the_process_when_redis_is_down(migrated_db, make_app, own_redis):
    app = limited_app(make_app, migrated_db, own_redis.url(), login_limit_per_username="2/minute")
    client = app.test_client()
    name = signup(client)
    own_redis.kill()
    assert login(client, name, "wrong password").status_code == 401
    assert login(client, name, "wrong password").status_code == 401
    refused = login(client, name)
    assert refused.status_code == 429  # counted in this process meanwhile, never a 5xx


# --- bad bodies -------------------------------------------------------------------------------
@pytest.mark.parametrize("body,message", [
    ("[" * 20_000 + "]" * 20_000, "request body must be a JSON object"),  # parser recursion
    ('{"body": "\\ud800 lone surrogate"}', "body is not valid Unicode text"),
])
def test_hostile_json_is_a_400(app, body, message):
    client = app.test_client()
    signup(client)
    response = client.post("/api/posts", data=body, content_type="application/json")
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_a_lone_surrogate_in_a_password_is_a_400(app):
    response = app.test_client().post(
        "/api/signup", data='{"username": "surrogate", "password": "\\udfff\\udfff\\udfff12345"}',
        content_type="application/json")
    assert response.status_code == 400
    assert "password is not valid Unicode text" in response.get_json()["error"]
