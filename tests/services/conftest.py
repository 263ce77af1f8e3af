"""Helpers for the services tier: Chirp configured per stage against the real fixtures."""

import itertools
import os
import subprocess
import sys
import time

import psycopg
import pytest
import requests

from chirp.app import create_app
from chirp.config import load_config
from chirp.db.migrate import migrate
from tests.fixtures import processes

SECRET = "services-tier-secret-key"
FAST_HASH = "pbkdf2:sha256:1000"  # scrypt would cost ~50 ms per sign-up
_names = itertools.count(1)


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}{os.getpid() % 1000}_{next(_names)}"


def stage_env(stage: int, *, database=None, replicas=(), shards=(), shard_replicas=(),
              redis_url=None, broker_url=None, **extra) -> dict:
    env = {"CHIRP_STAGE": str(stage), "CHIRP_SECRET_KEY": SECRET, "POD_NAME": f"test-pod-{stage}"}
    if database:
        env["CHIRP_DATABASE_URL"] = database
    if replicas:
        env["CHIRP_REPLICA_URLS"] = ",".join(replicas)
    if shards:
        env["CHIRP_SHARD_URLS"] = ",".join(shards)
    if shard_replicas:
        env["CHIRP_SHARD_REPLICA_URLS"] = ",".join(shard_replicas)
    if redis_url:
        env["CHIRP_REDIS_URL"] = redis_url
    if broker_url:
        env["CHIRP_BROKER_URL"] = broker_url
    env.update(extra)
    return env


def config_for(env: dict, **tunables):
    return load_config(env).replace(password_method=FAST_HASH, **tunables)


@pytest.fixture
def migrated_db(pg_database, postgres_cluster):
    """A fresh database with Chirp's schema, replicated."""
    migrate(pg_database.primary_url)
    postgres_cluster.wait_replicated()
    return pg_database


@pytest.fixture
def make_app():
    """Build Chirp apps; their pools are closed after the test."""
    apps = []

    def factory(config):
        app = create_app(config)
        app.testing = True
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["chirp"].close()


# --- API helpers ------------------------------------------------------------------------------
def signup(client, username=None, password="correct horse"):
    username = username or unique_name()
    response = client.post("/api/signup", json={"username": username, "password": password})
    assert response.status_code == 201, response.get_json()
    return username


def post(client, body):
    response = client.post("/api/posts", json={"body": body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["post"]


def follow(client, username):
    response = client.post(f"/api/users/{username}/follow")
    assert response.status_code == 200, response.get_json()


def bodies(response) -> list[str]:
    return [p["body"] for p in response.get_json()["posts"]]


def rows(url: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


# --- real processes of the app ----------------------------------------------------------------
def chirp_command(*args) -> list[str]:
    return [sys.executable, "-m", "chirp.cli", *args]


class ChirpProcess:
    """`chirp web` or `chirp worker` as a real subprocess with its own environment."""

    def __init__(self, args, env, log_path):
        self.log_path = log_path
        full_env = dict(os.environ, **env)
        self.proc = processes.spawn(chirp_command(*args), log_path, env=full_env)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as log:
            return log.read()

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in log:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def stop(self):
        processes.stop(self.proc)


def wait_http(url: str, timeout: float = 30.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:  # not listening yet, or the worker is still booting
            if proc is not None and proc.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{proc.log()[-3000:]}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def run_chirp(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(chirp_command(*args), capture_output=True, text=True, env=full_env,
                          timeout=timeout)
