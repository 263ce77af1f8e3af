"""The HTTP edge: Chirp's JSON API over plain http.client (the image has no other HTTP client).

One fresh connection per request (`Connection: close`): each request is routed by the Service
anew, like a new client's, and a write's outcome stays exact. A failure to connect means nothing
was sent (the write failed); a connection that breaks after the request went out, or no answer
within the timeout, leaves the write's outcome unknown. A reused keep-alive connection would blur
that line: the server may close it just as a request is sent.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from chirp.load import stats
from chirp.load.plan import NEEDS_SESSION, WRITES

SIGNUP, LOGIN, VERIFY = "signup", "login", "verify"

# Why an answer is missing (Answer.failure):
NOT_SENT = "not_sent"  # the connection could not be made: nothing reached the app
BROKEN = "broken"  # the connection broke after the request was sent
TIMED_OUT = "timed_out"  # no answer within the timeout

ACKED, FAILED, UNKNOWN = "acked", "failed", "unknown"
# A gateway's own answers (stage 5's nginx edge): the app behind it may have done the work.
GATEWAY_STATUSES = frozenset({502, 504})


@dataclass
class Answer:
    status: int | None  # None: no answer (see failure)
    body: Any = None  # the JSON answer, None when there was none or it was not JSON
    ms: float = 0.0
    failure: str | None = None
    cookies: dict[str, str | None] = field(default_factory=dict)  # None: the server deleted it

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def classify(action: str, answer: Answer, *, with_session: bool) -> str | None:
    """The error kind of an answer (stats.ERROR_KINDS), None when it succeeded."""
    if answer.failure == TIMED_OUT:
        return stats.TIMEOUT
    if answer.failure is not None:
        return stats.CONNECTION
    if answer.ok:
        return None
    if answer.status == 401 and with_session and action in NEEDS_SESSION:
        return stats.SESSION_LOST
    if action in (SIGNUP, LOGIN):
        return stats.AUTH_FAILED
    if answer.status >= 500:
        return stats.WRITE_FAILED if action in WRITES else stats.READ_FAILED
    return stats.REJECTED


def served(action: str, kind: str | None, *, with_session: bool) -> dict[str, bool]:
    """Which user-visible paths a request tried, and whether each worked (stats.PATHS): reads,
    writes, and sessions — a log-in, or a request sent with a session and not refused for it (a
    request that got no answer says nothing about its session; one refused for its session says
    nothing about reads or writes)."""
    out: dict[str, bool] = {}
    if action in (SIGNUP, LOGIN):
        out[stats.SESSION] = kind is None
    elif kind != stats.SESSION_LOST:  # refused for its session: that path failed, not this one
        out[stats.WRITE if action in WRITES else stats.READ] = kind is None
    if with_session and action in NEEDS_SESSION and kind not in (stats.CONNECTION, stats.TIMEOUT):
        out[stats.SESSION] = kind != stats.SESSION_LOST
    return out


def write_outcome(answer: Answer) -> str:
    """What a post's answer says about it: ACKED (2xx with its id), FAILED (the app said no, or
    nothing was sent) or UNKNOWN (it may have been stored)."""
    if answer.failure in (BROKEN, TIMED_OUT) or answer.status in GATEWAY_STATUSES:
        return UNKNOWN
    if answer.failure == NOT_SENT:
        return FAILED
    if answer.ok:
        post = (answer.body or {}).get("post") if isinstance(answer.body, dict) else None
        return ACKED if isinstance(post, dict) and post.get("id") else UNKNOWN
    return FAILED


def parse_set_cookies(headers: list[str]) -> dict[str, str | None]:
    """Set-Cookie headers -> {name: value}; None for a cookie the server deletes."""
    out: dict[str, str | None] = {}
    for header in headers:
        jar = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        for name, morsel in jar.items():
            expired = morsel["max-age"] in ("0", "-1") or "1970" in morsel["expires"]
            out[name] = None if expired or not morsel.value else morsel.value
    return out


def merge_cookies(jar: Mapping[str, str], update: Mapping[str, str | None]) -> dict[str, str]:
    out = dict(jar)
    for name, value in update.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


class Http:
    """Requests to one base URL (`http://chirp`, `http://127.0.0.1:8080`)."""

    def __init__(self, base_url: str, timeout: float,
                 clock: Callable[[], float] = time.monotonic):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r}: expected http://HOST[:PORT]")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.clock = clock

    def _connection(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, path: str, *, json_body: Any = None,
                cookies: Mapping[str, str] | None = None) -> Answer:
        headers = {"Accept": "application/json", "Connection": "close",
                   "User-Agent": "chirp-load"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connection()
        start = self.clock()

        def failed(reason: str) -> Answer:
            return Answer(None, ms=(self.clock() - start) * 1000, failure=reason)

        try:
            try:
                conn.connect()
            except OSError:  # refused, unreachable, no such host, connect timeout
                return failed(NOT_SENT)
            try:
                conn.request(method, self.prefix + path, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except TimeoutError:
                return failed(TIMED_OUT)
            except (OSError, http.client.HTTPException):
                return failed(BROKEN)
        finally:
            conn.close()
        ms = (self.clock() - start) * 1000
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        return Answer(response.status, body, ms,
                      cookies=parse_set_cookies(response.headers.get_all("Set-Cookie") or []))


class Api:
    """The JSON API calls the load generator makes (services/chirp/chirp/openapi.json)."""

    PAGE = 100  # the API's largest page

    def __init__(self, http_: Http):
        self.http = http_

    def signup(self, username: str, password: str) -> Answer:
        return self.http.request("POST", "/api/signup",
                                 json_body={"username": username, "password": password})

    def login(self, username: str, password: str) -> Answer:
        return self.http.request("POST", "/api/login",
                                 json_body={"username": username, "password": password})

    def post(self, cookies: Mapping[str, str], body: str) -> Answer:
        return self.http.request("POST", "/api/posts", json_body={"body": body}, cookies=cookies)

    def follow(self, cookies: Mapping[str, str], username: str) -> Answer:
        return self.http.request("POST", f"/api/users/{quote(username)}/follow", cookies=cookies)

    def timeline(self, cookies: Mapping[str, str]) -> Answer:
        return self.http.request("GET", "/api/timeline", cookies=cookies)

    def public(self, cookies: Mapping[str, str]) -> Answer:
        return self.http.request("GET", "/api/public", cookies=cookies)

    def user_posts(self, cookies: Mapping[str, str], username: str,
                   cursor: str | None = None) -> Answer:
        query = {"limit": self.PAGE, **({"cursor": cursor} if cursor else {})}
        return self.http.request("GET", f"/api/users/{quote(username)}?{urlencode(query)}",
                                 cookies=cookies)
