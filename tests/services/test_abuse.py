"""The app under abuse (docs/security.md): CSRF tokens on HTML forms, the JSON API only taking
JSON, rate-limited logins and sign-ups (in the process, or in Redis shared by every web pod),
session cookies HttpOnly + SameSite, scrypt password hashes, hostile JSON, the client's address
behind the stage-5 edge (a real nginx with the operator's config in front of a real gunicorn).
Body size limits on a real gunicorn: test_openapi_fuzz.py."""

import http.client
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import redis

from chirp.config import Config
from chirp.db.migrate import migrate
from chirp.web.security import LIMITS_KEY_PREFIX, proxies_in_front
from scalestage import stages
from scalestage.names import Names
from scalestage.specs import architecture
from scalestage.specs.common import render
from tests.fixtures import processes
from tests.polling import wait_until
from tests.services.conftest import (
    SECRET,
    ChirpProcess,
    config_for,
    rows,
    signup,
    stage_env,
    unique_name,
    wait_http,
)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

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


# --- the client's address behind the edge -----------------------------------------------------
def architecture_at(stage: int) -> dict:
    """The architecture document the operator writes for a default ScaleStage at this stage."""
    return architecture.document(stages.resolve({"stage": stage}), Names("chirp"))


def test_the_app_trusts_as_many_proxies_as_the_request_path_has():
    def hops(**config):
        return proxies_in_front(Config(stage=5, secret_key=SECRET, **config))

    assert [hops(architecture=architecture_at(n)) for n in stages.STAGES] == [0, 0, 0, 0, 1]
    assert hops() == 0  # no document (local runs): the TCP peer
    assert hops(architecture=architecture_at(5), proxies_in_front=2) == 2  # said outright
    looping = {"flows": [{"from": "client", "to": "edge"}, {"from": "edge", "to": "edge"}]}
    assert hops(architecture=looping) == 0  # no path to the app: trust nothing
    assert hops(architecture={"flows": "client -> edge -> web"}) == 0


def login_from(port: int, username: str, forwarded_for: str, source: str = "127.0.0.1"):
    """A failing login (wrong password) sent from a chosen loopback address, with a spoofed
    X-Forwarded-For; (status, JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("POST", "/api/login",
                     body=json.dumps({"username": username, "password": "spraying1"}),
                     headers={"Content-Type": "application/json",
                              "X-Forwarded-For": forwarded_for})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def start_web(env: dict, log_dir: Path) -> tuple[ChirpProcess, int]:
    port = processes.free_port()
    web = ChirpProcess(["web"], {**env, "PORT": str(port),
                                 "CHIRP_LOGIN_LIMIT_PER_IP": "3/minute",
                                 "CHIRP_LOGIN_LIMIT_PER_USERNAME": "1000/minute",
                                 "CHIRP_SIGNUP_LIMIT_PER_IP": "1000/minute"},
                       str(log_dir / "web.log"))
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=web)
    except BaseException:
        web.stop()
        raise
    return web, port


@pytest.fixture
def edge_in_front_of_stage_5(postgres_cluster, redis_server, redis_url, tmp_path):
    """`chirp web` (gunicorn) at stage 5 with the operator's stage-5 architecture document, and
    nginx in front of it with the edge's config (specs/edge.py's template; only its /tmp paths
    moved to a folder of its own). Yields the edge's port."""
    names = [postgres_cluster.create_database() for _ in range(2)]
    edge_dir = Path(tempfile.mkdtemp(prefix="chirp-edge-"))
    web = edge = None
    try:
        for name in names:
            migrate(postgres_cluster.primary.url(name))
        env = stage_env(5, shards=[postgres_cluster.primary.url(n) for n in names],
                        redis_url=redis_url, broker_url=redis_server.url(1),
                        CHIRP_ARCHITECTURE=json.dumps(architecture_at(5)))
        web, web_port = start_web(env, tmp_path)
        edge_port = processes.free_port()
        conf = render("nginx.conf", UPSTREAM="127.0.0.1", UPSTREAM_PORT=web_port, PORT=edge_port)
        (edge_dir / "nginx.conf").write_text(conf.replace("/tmp/", f"{edge_dir}/"))
        log = edge_dir / "edge.log"  # nginx reopens /dev/stdout: the file must be its own
        log.touch()
        account = processes.service_account("www-data")
        processes.give_to(str(edge_dir), account)
        edge = processes.spawn([NGINX, "-e", "stderr", "-c", str(edge_dir / "nginx.conf"),
                                "-g", "daemon off;"], str(log), account)

        def edge_answers():
            if edge.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{log.read_text()[-2000:]}")
            conn = http.client.HTTPConnection("127.0.0.1", edge_port, timeout=5)
            try:
                conn.request("GET", "/edge-healthz")
                return conn.getresponse().status == 200
            finally:
                conn.close()

        wait_until(edge_answers, what="the edge answering", tolerate=(OSError,))
        yield edge_port
    finally:
        if edge is not None:
            processes.stop(edge)
        if web is not None:
            web.stop()
        shutil.rmtree(edge_dir, ignore_errors=True)
        for name in names:
            postgres_cluster.drop_database(name)


def test_behind_the_edge_a_spoofed_forwarded_for_does_not_escape_the_address_limit(
        edge_in_front_of_stage_5):
    edge = edge_in_front_of_stage_5
    # One client, a new made-up address in X-Forwarded-For on every try: nginx appends the
    # address it saw, and the app trusts that one entry only.
    for i in range(3):
        status, _ = login_from(edge, unique_name(), forwarded_for=f"203.0.113.{i}")
        assert status == 401
    status, body = login_from(edge, unique_name(), forwarded_for="198.51.100.9")
    assert status == 429 and "from this address" in body["error"]
    # Another client behind the same edge has its own count: the limit is the client's, not the
    # edge's (before ProxyFix every client of an edge shared one).
    status, _ = login_from(edge, unique_name(), forwarded_for="127.0.0.1", source="127.0.0.2")
    assert status == 401


def test_without_a_proxy_in_front_forwarded_for_is_ignored(migrated_db, tmp_path):
    web, port = start_web(stage_env(2, database=migrated_db.primary_url), tmp_path)
    try:
        for i in range(3):
            status, _ = login_from(port, unique_name(), forwarded_for=f"203.0.113.{i}")
            assert status == 401
        status, body = login_from(port, unique_name(), forwarded_for="198.51.100.9")
        assert status == 429 and "from this address" in body["error"]
    finally:
        web.stop()
