"""Helpers for the services tier: Chirp configured per stage against the real fixtures."""

import itertools
import os
import re
import subprocess
import sys
import time

import psycopg
import pytest
import requests

from chirp.app import create_app
from chirp.config import RATE_LIMIT_FIELDS, load_config
from chirp.db.migrate import migrate
from chirp.routing import has_writes_until, healthy
from tests.fixtures import processes
from tests.polling import wait_until

SECRET = "services-tier-secret-key"
FAST_HASH = "pbkdf2:sha256:1000"  # scrypt would cost ~50 ms per sign-up
# Tests sign up many users from 127.0.0.1 (a module may share one Redis): limits out of the way,
# except where a test sets its own (test_abuse.py).
NO_RATE_LIMITS = dict.fromkeys(RATE_LIMIT_FIELDS, "1000000/minute")
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
    return load_config(env).replace(**{"password_method": FAST_HASH, **NO_RATE_LIMITS, **tunables})


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


# --- what the app itself knows about its replicas (stages 3-4: one shard) ----------------------
def usable_replicas(app) -> list[int]:
    """Indexes of the replicas the app's health check counts as usable now (up, lag in bound)."""
    svc = app.extensions["chirp"]
    states = svc.dbs.replica_states(svc.shard_map.shards[0])
    return [i for i, state in enumerate(states)
            if healthy(state, svc.config.max_replica_lag_seconds)]


def replicas_holding_writes_until(app, at: float) -> list[int]:
    """Usable replicas a health check proved complete up to `at` (they may serve those writes)."""
    svc = app.extensions["chirp"]
    states = svc.dbs.replica_states(svc.shard_map.shards[0])
    return [i for i in usable_replicas(app) if has_writes_until(states[i], at)]


def wait_for_a_replica_holding_the_writes(app) -> None:
    """Until a health check proves a replica holds every write acknowledged so far."""
    written_by = time.time()
    wait_until(lambda: replicas_holding_writes_until(app, written_by),
               what="a replica to be proven to hold the writes so far")


# --- API helpers ------------------------------------------------------------------------------
def signup(client, username=None, password="correct horse"):
    username = username or unique_name()
    response = client.post("/api/signup", json={"username": username, "password": password})
    assert response.status_code == 201, response.get_json()
    return username


def form_token(client, path: str) -> str:
    """The CSRF token an HTML form at `path` carries (forms are refused without it)."""
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


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

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def check_running(self) -> None:
        if self.exited():
            raise RuntimeError(f"process exited ({self.proc.returncode}):\n{self.log()[-3000:]}")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        def logged():
            self.check_running()
            return text in self.log()

        wait_until(logged, timeout=timeout, interval=0.05, what=f"{text!r} in the log")

    def stop(self):
        processes.stop(self.proc)


def wait_http(url: str, timeout: float = 30.0, proc: ChirpProcess | None = None) -> None:
    """Until url answers at all (any status): the server is listening and its worker booted."""

    def answers():
        if proc is not None:
            proc.check_running()
        requests.get(url, timeout=5)  # a Response is falsy for 4xx/5xx: any answer counts here
        return True

    wait_until(answers, timeout=timeout, what=f"{url} to answer",
               tolerate=(requests.RequestException,))


def run_chirp(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(chirp_command(*args), capture_output=True, text=True, env=full_env,
                          timeout=timeout)
