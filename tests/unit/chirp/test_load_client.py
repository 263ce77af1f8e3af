"""`chirp load`'s HTTP edge: how answers (and their absence) are classified, cookies, and the
three ways a request fails, against throwaway loopback sockets."""

import socket
import threading

import pytest

from chirp.load import client, stats
from chirp.load.client import Answer


@pytest.mark.parametrize("action,answer,with_session,kind", [
    ("post", Answer(201), True, None),
    ("post", Answer(503), True, stats.WRITE_FAILED),
    ("follow", Answer(500), True, stats.WRITE_FAILED),
    ("timeline", Answer(503), True, stats.READ_FAILED),
    ("public", Answer(502), True, stats.READ_FAILED),
    ("timeline", Answer(401), True, stats.SESSION_LOST),
    ("public", Answer(401), True, stats.REJECTED),  # needs no session: not a lost one
    ("timeline", Answer(401), False, stats.REJECTED),
    ("login", Answer(401), False, stats.AUTH_FAILED),
    ("signup", Answer(503), False, stats.AUTH_FAILED),
    ("post", Answer(429), True, stats.REJECTED),
    ("post", Answer(None, failure=client.TIMED_OUT), True, stats.TIMEOUT),
    ("post", Answer(None, failure=client.BROKEN), True, stats.CONNECTION),
    ("public", Answer(None, failure=client.NOT_SENT), True, stats.CONNECTION),
])
def test_classify(action, answer, with_session, kind):
    assert client.classify(action, answer, with_session=with_session) == kind


@pytest.mark.parametrize("action,kind,with_session,served", [
    ("post", None, True, {"write": True, "session": True}),
    ("post", stats.WRITE_FAILED, True, {"write": False, "session": True}),
    ("post", stats.SESSION_LOST, True, {"session": False}),  # logged out: not a write failure
    ("timeline", stats.TIMEOUT, True, {"read": False}),  # no answer: nothing about the session
    ("public", None, True, {"read": True}),  # needs no session
    ("login", None, False, {"session": True}),
    ("signup", stats.AUTH_FAILED, False, {"session": False}),
])
def test_served_names_each_path_a_request_tried(action, kind, with_session, served):
    assert client.served(action, kind, with_session=with_session) == served


@pytest.mark.parametrize("answer,outcome", [
    (Answer(201, {"post": {"id": "123"}}), client.ACKED),
    (Answer(201, None), client.UNKNOWN),  # 2xx without the id: cannot be checked
    (Answer(503, {"error": "x"}), client.FAILED),
    (Answer(401), client.FAILED),
    (Answer(502), client.UNKNOWN),  # a gateway's: the app behind may have stored it
    (Answer(504), client.UNKNOWN),
    (Answer(None, failure=client.NOT_SENT), client.FAILED),
    (Answer(None, failure=client.BROKEN), client.UNKNOWN),
    (Answer(None, failure=client.TIMED_OUT), client.UNKNOWN),
])
def test_write_outcome(answer, outcome):
    assert client.write_outcome(answer) == outcome


def test_cookies_set_replaced_and_deleted():
    got = client.parse_set_cookies([
        "chirp_session=abc; HttpOnly; Path=/; SameSite=Lax",
        "old=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/",
    ])
    assert got == {"chirp_session": "abc", "old": None}
    assert client.merge_cookies({"old": "1", "chirp_session": "x"}, got) == {
        "chirp_session": "abc"}


def test_bad_urls_are_refused():
    with pytest.raises(ValueError):
        client.Http("chirp:80", 1)


def one_shot_server(handle):
    """A loopback server that accepts one connection and calls handle(conn)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        with conn:
            handle(conn)
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{port}", thread


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
              if line.lower().startswith(b"content-length")]
    while length and len(body) < length[0]:
        body += conn.recv(65536)
    return head.decode(), body


def test_a_json_request_with_cookies_and_its_answer():
    seen = {}

    def handle(conn):
        seen["head"], seen["body"] = read_request(conn)
        payload = b'{"post": {"id": "42"}}'
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                     b"Set-Cookie: chirp_session=new; HttpOnly\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(payload),
                                                                             payload))

    url, thread = one_shot_server(handle)
    answer = client.Api(client.Http(url, 5)).post({"chirp_session": "old"}, "hi")
    thread.join(5)
    assert answer.status == 201 and answer.body == {"post": {"id": "42"}}
    assert answer.cookies == {"chirp_session": "new"} and answer.ms > 0
    assert seen["head"].startswith("POST /api/posts HTTP/1.1")
    assert "Cookie: chirp_session=old" in seen["head"]
    assert "Content-Type: application/json" in seen["head"]
    assert seen["body"] == b'{"body": "hi"}'


def test_nothing_listening_means_not_sent():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answer = client.Http(f"http://127.0.0.1:{port}", 2).request("GET", "/api/public")
    assert (answer.status, answer.failure) == (None, client.NOT_SENT)


def test_no_answer_in_time_is_a_timeout():
    release = threading.Event()
    url, thread = one_shot_server(lambda conn: (read_request(conn), release.wait(5)))
    answer = client.Http(url, 0.3).request("POST", "/api/posts", json_body={"body": "x"})
    release.set()
    thread.join(5)
    assert answer.failure == client.TIMED_OUT


def test_a_connection_closed_without_an_answer_is_broken():
    url, thread = one_shot_server(read_request)  # reads the request, closes without answering
    answer = client.Http(url, 5).request("POST", "/api/posts", json_body={"body": "x"})
    thread.join(5)
    assert answer.failure == client.BROKEN
