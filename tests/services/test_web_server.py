"""`chirp web` for real: gunicorn serving, /healthz /readyz /metrics, a clear error on bad
configuration, and graceful shutdown (readiness fails first, in-flight requests finish)."""

import signal
import threading
import time

import psycopg
import pytest
import requests

from tests.fixtures.processes import free_port
from tests.services.conftest import ChirpProcess, run_chirp, stage_env, wait_http


@pytest.fixture
def web(migrated_db, tmp_path):
    port = free_port()
    env = stage_env(2, database=migrated_db.primary_url, PORT=str(port), CHIRP_DRAIN_SECONDS="1.5")
    server = ChirpProcess(["web"], env, str(tmp_path / "web.log"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", proc=server)
        yield server, base
    finally:
        server.stop()


def test_serves_health_readiness_and_metrics(web):
    _, base = web
    assert requests.get(base + "/healthz").json() == {"status": "ok"}
    ready = requests.get(base + "/readyz")
    assert ready.status_code == 200 and ready.json()["databases"] == {"primary": True}
    requests.get(base + "/api/public")
    metrics = requests.get(base + "/metrics").text
    assert 'chirp_db_queries_total{kind="read",route="primary"}' in metrics
    assert "chirp_http_requests_total" in metrics


def test_sigterm_fails_readiness_first_and_drains_in_flight_requests(web, migrated_db):
    server, base = web
    session = requests.Session()
    signup = session.post(base + "/api/signup", json={"username": "drainer", "password": "long enough"})
    assert signup.status_code == 201
    result = {}
    with psycopg.connect(migrated_db.primary_url) as blocker:
        blocker.execute("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE")  # the next post will wait

        def slow_post():
            result["response"] = session.post(base + "/api/posts", json={"body": "in flight"},
                                              timeout=30)

        writer = threading.Thread(target=slow_post)
        writer.start()
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        ready = requests.get(base + "/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json()["reason"] == "shutting down"
        assert requests.get(base + "/healthz", timeout=5).status_code == 200  # still serving
        time.sleep(1.5)  # the drain period ends; gunicorn now stops gracefully
        assert "response" not in result
        blocker.rollback()  # release the lock: the in-flight request can finish
    writer.join(30)
    assert result["response"].status_code == 201
    assert server.proc.wait(30) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(base + "/healthz", timeout=2)
    with psycopg.connect(migrated_db.primary_url) as conn:
        assert conn.execute("SELECT body FROM posts").fetchall() == [("in flight",)]


@pytest.mark.parametrize("env,variable", [
    ({"CHIRP_STAGE": "7"}, "CHIRP_STAGE"),
    ({"CHIRP_STAGE": "2", "CHIRP_SECRET_KEY": "long-enough-secret-key"}, "CHIRP_DATABASE_URL"),
    ({"CHIRP_STAGE": "4", "CHIRP_SECRET_KEY": "long-enough-secret-key",
      "CHIRP_DATABASE_URL": "postgresql://chirp@db/chirp"}, "CHIRP_REDIS_URL"),
])
def test_bad_configuration_exits_naming_the_variable(env, variable):
    clean = {k: "" for k in ("CHIRP_STAGE", "CHIRP_SECRET_KEY", "CHIRP_DATABASE_URL",
                             "CHIRP_REDIS_URL", "CHIRP_SHARD_URLS", "CHIRP_BROKER_URL")}
    result = run_chirp("web", env={**clean, **env}, timeout=30)
    assert result.returncode == 2
    assert f"configuration error: {variable}:" in result.stderr
