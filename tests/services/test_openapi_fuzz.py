"""The OpenAPI document (chirp/openapi.json, served at /api/openapi.json) against a real `chirp web`
(gunicorn, Postgres): schemathesis generates requests for every operation, valid and invalid, with
and without a session, and every response must be documented, match its schema and never be 5xx.
The same server shows the body size limit (docs/security.md) the way gunicorn delivers bodies.
"""

import json
import re
from importlib import resources
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chirp.db.migrate import migrate
from chirp.gunicorn_conf import REQUEST_LINE_LIMIT
from tests.fixtures.processes import free_port
from tests.services.conftest import ChirpProcess, stage_env, unique_name, wait_http

DOCUMENT = json.loads(resources.files("chirp").joinpath("openapi.json").read_text())
OPERATIONS = [(method, path) for path, item in DOCUMENT["paths"].items() for method in item]
# Invalid data exists only where the document constrains something: a body or query parameters.
CONSTRAINED = [(method, path) for method, path in OPERATIONS
               if "requestBody" in (spec := DOCUMENT["paths"][path][method])
               or any(p["in"] == "query" for p in spec.get("parameters", []))]
CASES = [(method, path, GenerationMode.POSITIVE) for method, path in OPERATIONS] + [
    (method, path, GenerationMode.NEGATIVE) for method, path in CONSTRAINED]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
EXAMPLES = 40  # per operation and generation mode: ~1 s each on a shared 2-core box


@pytest.fixture(scope="module")
def server(postgres_cluster, tmp_path_factory):
    """One real server for the module: stage 2, production password hashing (scrypt)."""
    name = postgres_cluster.create_database()
    url = postgres_cluster.primary.url(name)
    migrate(url)
    port = free_port()
    # Rate limits raised: the fuzzer's sign-ups and failed logins would otherwise lock its own
    # user out (429 is documented; test_abuse.py covers the limits).
    high = "100000/minute"
    env = stage_env(2, database=url, PORT=str(port), CHIRP_SIGNUP_LIMIT_PER_IP=high,
                    CHIRP_LOGIN_LIMIT_PER_IP=high, CHIRP_LOGIN_LIMIT_PER_USERNAME=high)
    proc = ChirpProcess(["web"], env, str(tmp_path_factory.mktemp("fuzz") / "web.log"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", proc=proc)
        yield base
    finally:
        proc.stop()
        postgres_cluster.drop_database(name)


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(server + "/api/openapi.json")


@pytest.fixture(scope="module")
def accounts(server):
    """Two users: one to fuzz as, one to follow (a real username for the follow paths)."""
    names = []
    for _ in range(2):
        name = unique_name("fuzz")
        response = requests.post(server + "/api/signup",
                                 json={"username": name, "password": "fuzz-password"}, timeout=10)
        assert response.status_code == 201, response.text
        names.append(name)
    return names


def logged_in(server, name) -> requests.Session:
    session = requests.Session()
    response = session.post(server + "/api/login",
                            json={"username": name, "password": "fuzz-password"}, timeout=10)
    assert response.status_code == 200, response.text
    return session


def test_the_served_document_is_the_package_file(server):
    response = requests.get(server + "/api/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == DOCUMENT


def test_a_real_server_refuses_large_bodies_with_413(server):
    big = b'{"body": "' + b"x" * 100_000 + b'"}'
    declared = requests.post(server + "/api/signup", data=big,
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert declared.status_code == 413
    assert declared.json() == {"error": "request body is too large", "status": 413}
    chunked = requests.post(server + "/api/signup", data=iter([big[:50_000], big[50_000:]]),
                            headers={"Content-Type": "application/json"}, timeout=10)
    assert chunked.status_code == 413, chunked.text  # no Content-Length: counted as it streams
    form = requests.post(server + "/login", data={"username": "x" * 100_000}, timeout=10)
    assert form.status_code == 413 and "request body is too large" in form.text


def test_a_scripted_visit_matches_the_document(server, api_schema, accounts):
    """Every documented happy path once, each real response checked against its schema."""
    me, other = accounts
    session = logged_in(server, me)
    steps = [("post", "/api/posts", {"json": {"body": "hello, schema"}}, 201),
             ("get", "/api/me", {}, 200),
             ("get", "/api/timeline", {"params": {"limit": 1}}, 200),
             ("get", "/api/public", {}, 200),
             ("get", f"/api/users/{me}", {}, 200),
             ("post", f"/api/users/{other}/follow", {}, 200),
             ("delete", f"/api/users/{other}/follow", {}, 200),
             ("get", "/api/architecture", {}, 200),
             ("get", "/healthz", {}, 200),
             ("get", "/readyz", {}, 200),
             ("post", "/api/login", {"json": {"username": me, "password": "wrong-password"}}, 401),
             ("post", "/api/logout", {}, 200),
             ("get", "/api/me", {}, 401)]
    for method, path, kwargs, status in steps:
        response = session.request(method, server + path, timeout=10, **kwargs)
        assert response.status_code == status, (method, path, response.text)
        template = path.replace(f"/users/{me}", "/users/{username}")
        template = template.replace(f"/users/{other}", "/users/{username}")
        api_schema[template][method.upper()].validate_response(response)


def test_an_over_long_url_is_a_4xx(server):
    """gunicorn refuses a request line over its limit with a 4xx of its own, never a 5xx."""
    response = requests.get(f"{server}/api/public", params={"cursor": "x" * REQUEST_LINE_LIMIT},
                            timeout=10)
    assert 400 <= response.status_code < 500, response.status_code


@pytest.mark.slow
@pytest.mark.parametrize("method,path,mode", CASES)
def test_fuzzing_finds_no_5xx_and_no_undocumented_response(server, api_schema, accounts, method,
                                                           path, mode):
    me, other = accounts
    operation = api_schema[path][method.upper()]
    # Half the follow cases name a real user, so they get past the 404.
    overrides = {"path_parameters": {"username": other}} if path.endswith("/follow") else {}
    session = logged_in(server, me)

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(operation.as_strategy(generation_mode=mode),
                          operation.as_strategy(generation_mode=mode, **overrides)),
           as_user=st.booleans())
    def fuzz(case, as_user):
        nonlocal session
        # gunicorn answers an over-long request line itself, before the app (and outside the
        # document): test_an_over_long_url_is_a_4xx covers that boundary.
        target = requests.Request(method, server + case.formatted_path, params=case.query)
        assume(len(target.prepare().path_url) + len(method) + 12 <= REQUEST_LINE_LIMIT)
        client = session if as_user else requests.Session()
        case.call_and_validate(base_url=server, session=client, checks=CHECKS, timeout=10)
        if as_user and path == "/api/logout":
            session = logged_in(server, me)

    fuzz()


# The HTML pages are not in the OpenAPI document: plain hypothesis drives them, with a valid form
# token, as a logged-in user; whatever the input, the answer is a page and never a 5xx.
TEXT = st.text(max_size=40)
PAGES = st.one_of(
    st.tuples(st.just("get"), st.sampled_from(["/", "/public", "/u/{}", "/architecture"]),
              st.fixed_dictionaries({}, optional={"cursor": TEXT, "limit": TEXT}), st.none()),
    st.tuples(st.just("post"), st.sampled_from(["/post", "/u/{}/follow", "/login", "/signup"]),
              st.just({}), st.fixed_dictionaries({}, optional={
                  "body": TEXT, "action": st.sampled_from(["follow", "unfollow", ""]),
                  "username": TEXT, "password": TEXT})),
)


@pytest.mark.slow
def test_html_pages_answer_every_input_without_a_5xx(server, accounts):
    me, other = accounts
    state = {}

    def log_in():  # a login starts a new session, and so a new form token
        state["session"] = session = logged_in(server, me)
        state["token"] = TOKEN.search(session.get(server + "/", timeout=10).text).group(1)

    log_in()

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(page=PAGES, name=st.one_of(st.just(other), st.just(me), TEXT))
    def fuzz(page, name):
        method, template, params, form = page
        path = template.format(quote(name, safe="")) if "{}" in template else template
        data = None if form is None else {**form, "csrf_token": state["token"]}
        response = state["session"].request(method, server + path, params=params, data=data,
                                            allow_redirects=False, timeout=10)
        assert response.status_code < 500, (method, path, params, form, response.text[:300])
        if path in ("/login", "/signup") and response.status_code == 302:
            log_in()

    fuzz()
