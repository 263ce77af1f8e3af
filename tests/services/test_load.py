"""`chirp load` for real: a subprocess driving a real `chirp web` (gunicorn, Postgres) through its
JSON API. It verifies every acknowledged write at the end, and the verification can fail: a post
deleted behind the app's back is reported lost (exit 1). A web server restarted under load loses
the in-process sessions (stage 2): the load counts them, logs in again, and loses no write."""

import json
import os
import signal
import subprocess
import threading

import pytest

from tests.fixtures.processes import free_port
from tests.polling import wait_until
from tests.services.conftest import ChirpProcess, chirp_command, rows, stage_env, wait_http

pytestmark = pytest.mark.slow

TICK_KEYS = {"event", "t", "requests", "rps", "p50_ms", "p95_ms", "p99_ms", "errors", "served",
             "writes_acked", "writes_failed", "writes_unknown", "sessions_lost",
             "fresh_sessions_refused", "longest_write_ms", "waiting"}
SUMMARY_KEYS = (TICK_KEYS - {"waiting"}) | {
    "run", "users", "lost", "duplicated", "renumbered", "unverified",
                            "unknown_present", "failed_present", "stopped_by", "verified", "ok"}


class Web:
    """`chirp web` at stage 2 on a fixed port (so it can be restarted where clients expect it)."""

    def __init__(self, database_url, tmp_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = stage_env(2, database=database_url, PORT=str(self.port))
        self.tmp_path = tmp_path
        self.starts = 0
        self.server = None

    def start(self):
        self.starts += 1
        self.server = ChirpProcess(["web"], self.env, str(self.tmp_path / f"web{self.starts}.log"))
        wait_http(self.url + "/healthz", proc=self.server)

    def stop(self):
        self.server.stop()


@pytest.fixture
def web(migrated_db, tmp_path):
    server = Web(migrated_db.primary_url, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Load:
    """`chirp load` as a subprocess; its JSON lines are collected as they come."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(chirp_command("load", *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def ticks(self):
        return [line for line in self.lines if line["event"] == "tick"]

    def acked(self) -> int:
        ticks = self.ticks()
        return ticks[-1]["writes_acked"] if ticks else 0

    def finish(self, timeout=90):
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.reader.join(10)
        stderr = self.proc.stderr.read()
        assert self.lines and self.lines[-1]["event"] == "summary", (self.lines[-3:], stderr)
        return code, self.lines[-1], stderr


def posts_of_run(database_url, run_id):
    return rows(database_url, "SELECT id, body FROM posts WHERE body LIKE %s ORDER BY id",
                (f"chirp-load {run_id}.%",))


def test_load_for_5_seconds_loses_and_duplicates_nothing(web, migrated_db):
    load = Load("--url", web.url, "--duration", "5", "--users", "4", "--concurrency", "4",
                "--rate", "60", "--seed", "1")
    code, summary, stderr = load.finish()
    assert code == 0, (summary, stderr)
    start = load.lines[0]
    assert start["event"] == "start" and start["users"] == 4
    ticks = load.ticks()
    assert len(ticks) >= 4 and all(set(t) >= TICK_KEYS for t in ticks)
    assert sum(t["requests"] for t in ticks) == summary["requests"]
    assert set(summary) >= SUMMARY_KEYS
    assert summary["writes_acked"] > 0
    assert (summary["lost"], summary["duplicated"], summary["renumbered"]) == (0, 0, 0)
    assert summary["ok"] and summary["verified"] and summary["stopped_by"] == "duration"
    assert summary["errors"] == {} and summary["writes_unknown"] == 0
    assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]
    assert 30 <= summary["rps"] <= 70  # paced at 60/s (sign-ups at the start count too)
    stored = posts_of_run(migrated_db.primary_url, summary["run"])
    assert len(stored) == summary["writes_acked"]  # nothing failed: every post was acknowledged


def test_a_post_deleted_behind_the_apps_back_is_reported_lost(web, migrated_db, tmp_path):
    stop_file = tmp_path / "stop"
    load = Load("--url", web.url, "--duration", "0", "--stop-file", str(stop_file),
                "--users", "2", "--concurrency", "2", "--rate", "40", "--verify-timeout", "2")
    wait_until(lambda: load.acked() >= 3, timeout=60, what="three acknowledged posts")
    run_id = load.lines[0]["run"]
    oldest_id, _ = posts_of_run(migrated_db.primary_url, run_id)[0]  # answered long ago: acked
    rows(migrated_db.primary_url, "DELETE FROM posts WHERE id = %s RETURNING id", (oldest_id,))
    stop_file.touch()
    code, summary, _ = load.finish()
    assert code == 1
    assert summary["stopped_by"] == "stop-file"
    assert summary["lost"] == 1 and summary["duplicated"] == 0 and not summary["ok"]
    assert f"(id {oldest_id})" in summary["lost_sample"][0]


def test_sessions_lost_with_a_restarted_web_server_are_counted_and_no_write_is_lost(web):
    load = Load("--url", web.url, "--duration", "0", "--users", "3", "--concurrency", "3",
                "--rate", "40", "--timeout", "5")
    wait_until(lambda: load.acked() >= 3, timeout=60, what="three acknowledged posts")
    web.stop()  # stage 2 keeps sessions in the web process: they go with it
    web.start()
    acked_before = load.acked()
    wait_until(lambda: load.acked() >= acked_before + 3, timeout=60,
               what="posts acknowledged by the new server")
    load.proc.send_signal(signal.SIGTERM)
    code, summary, stderr = load.finish()
    assert code == 0, (summary, stderr)
    assert summary["stopped_by"] == "signal"
    assert summary["sessions_lost"] >= 1 and summary["logins"] >= 1
    assert summary["errors"].get("session_lost", 0) >= summary["sessions_lost"]
    assert summary["lost"] == 0 and summary["duplicated"] == 0 and summary["writes_acked"] > 6
