"""`chirp web` for real: it becomes gunicorn, serves /healthz /readyz /metrics, stops with a clear
error on bad configuration, and stops gracefully the way gunicorn does: on SIGTERM it takes no new
connections, the request in flight completes, and the server exits 0 within its graceful timeout."""

import signal
import socket
import threading

import psycopg
import pytest
import requests

from chirp.gunicorn_conf import GRACEFUL_TIMEOUT_SECONDS
from tests.fixtures.processes import free_port
from tests.polling import wait_until
from tests.services.conftest import (
    ChirpProcess,
    config_for,
    rows,
    run_chirp,
    stage_env,
    wait_http,
)


@pytest.fixture
def web(migrated_db, tmp_path):
    port = free_port()
    env = stage_env(2, database=migrated_db.primary_url, PORT=str(port))
    server = ChirpProcess(["web"], env, str(tmp_path / "web.log"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", proc=server)
        yield server, base, port
    finally:
        server.stop()


def test_serves_health_readiness_and_metrics(web):
    _, base, _ = web
    assert requests.get(base + "/healthz").json() == {"status": "ok"}
    ready = requests.get(base + "/readyz")
    assert ready.status_code == 200 and ready.json()["databases"] == {"primary": True}
    requests.get(base + "/api/public")
    metrics = requests.get(base + "/metrics").text
    assert 'chirp_db_queries_total{kind="read",route="primary"}' in metrics
    assert "chirp_http_requests_total" in metrics


def test_chirp_web_execs_gunicorn_so_gunicorn_gets_the_signals(web):
    server, _, _ = web
    with open(f"/proc/{server.proc.pid}/cmdline", "rb") as cmdline:
        argv = cmdline.read().split(b"\0")
    assert b"gunicorn" in argv and b"chirp.app:create_app()" in argv


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def sessions_waiting_for_a_lock(url: str) -> int:
    return rows(url, "SELECT count(*) FROM pg_stat_activity"
                     " WHERE datname = current_database() AND wait_event_type = 'Lock'")[0][0]


def test_sigterm_finishes_the_request_in_flight_then_exits_0(web, migrated_db):
    server, base, port = web
    session = requests.Session()
    signup = session.post(base + "/api/signup", json={"username": "stopper",
                                                      "password": "long enough"})
    assert signup.status_code == 201
    assert session.post(base + "/api/posts", json={"body": "before the stop"}).status_code == 201
    result = {}
    with psycopg.connect(migrated_db.primary_url) as blocker:
        blocker.execute("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE")  # the next read of posts waits

        def in_flight():
            result["response"] = requests.get(base + "/api/public", timeout=60)

        reader = threading.Thread(target=in_flight)
        reader.start()
        wait_until(lambda: sessions_waiting_for_a_lock(migrated_db.primary_url) > 0,
                   what="the request to be in flight (its query waiting on the lock)")
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: not accepts_connections(port),
                   what="gunicorn to stop taking new connections after SIGTERM")
        assert "response" not in result, "the request must still be in flight here"
        assert not server.exited(), "gunicorn must wait for the request in flight"
        blocker.rollback()  # release the lock: the request in flight can finish
    reader.join(GRACEFUL_TIMEOUT_SECONDS)
    assert not reader.is_alive(), "the request in flight did not complete"
    response = result["response"]
    assert response.status_code == 200
    assert [p["body"] for p in response.json()["posts"]] == ["before the stop"]
    assert server.proc.wait(GRACEFUL_TIMEOUT_SECONDS) == 0


def test_readiness_fails_while_the_primary_does_not_answer(make_app):
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/chirp"
    client = make_app(config_for(stage_env(2, database=nobody))).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json() == {"ready": False, "databases": {"primary": False},
                                "reason": "a shard has no database answering (its primary, "
                                          "nor a replica)"}
    assert client.get("/healthz").status_code == 200  # alive: restarting would not help


@pytest.mark.parametrize("env,variable", [
    ({"CHIRP_STAGE": "7"}, "CHIRP_STAGE"),
    ({"CHIRP_STAGE": "2", "CHIRP_SECRET_KEY": "long-enough-secret-key"}, "CHIRP_DATABASE_URL"),
    ({"CHIRP_STAGE": "4", "CHIRP_SECRET_KEY": "long-enough-secret-key",
      "CHIRP_DATABASE_URL": "postgresql://chirp@db/chirp"}, "CHIRP_REDIS_URL"),
    ({"CHIRP_STAGE": "2", "CHIRP_SECRET_KEY": "long-enough-secret-key",
      "CHIRP_DATABASE_URL": "postgresql://chirp@db/chirp", "CHIRP_ARCHITECTURE": "stage 2"},
     "CHIRP_ARCHITECTURE"),
])
def test_bad_configuration_exits_naming_the_variable(env, variable):
    clean = {k: "" for k in ("CHIRP_STAGE", "CHIRP_SECRET_KEY", "CHIRP_DATABASE_URL",
                             "CHIRP_REDIS_URL", "CHIRP_SHARD_URLS", "CHIRP_BROKER_URL",
                             "CHIRP_ARCHITECTURE")}
    result = run_chirp("web", env={**clean, **env}, timeout=30)
    assert result.returncode == 2
    assert f"configuration error: {variable}:" in result.stderr
