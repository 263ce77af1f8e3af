"""Layering: the data layer records into a context-local trace and never loads Flask; the Celery
app is built by a factory and builds its worker's services on its own worker_init only."""

import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest
from celery import signals

from chirp import tasks
from chirp.config import load_config
from chirp.trace import NO_TRACE, RequestTrace, current_trace, traced

STAGE_5 = {"CHIRP_STAGE": "5", "CHIRP_SECRET_KEY": "0123456789abcdef",
           "CHIRP_SHARD_URLS": "postgresql://c@s0/c,postgresql://c@s1/c",
           "CHIRP_REDIS_URL": "redis://r/0", "CHIRP_BROKER_URL": "redis://r/1"}
DATA_LAYER = ["chirp.db.pools", "chirp.db.queries", "chirp.cache", "chirp.shards", "chirp.reads",
              "chirp.writes", "chirp.accounts", "chirp.fanout", "chirp.services", "chirp.tasks",
              "chirp.trace"]


def test_the_data_layer_and_the_worker_never_import_flask():
    code = ("import sys\n"
            f"for name in {DATA_LAYER!r}: __import__(name)\n"
            "print(sorted(m for m in sys.modules if m == 'flask' or m.startswith('flask.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_outside_a_trace_recording_is_a_no_op():
    current_trace().used_db("primary")
    current_trace().used_cache("hit")
    current_trace().served_timeline("database")
    assert current_trace() is NO_TRACE
    assert NO_TRACE.db_routes == [] and NO_TRACE.cache_results == []
    assert NO_TRACE.timeline_source is None


def test_a_trace_collects_what_runs_inside_it_and_ends_with_it():
    with traced() as outer:
        current_trace().used_db("replica-1")
        with traced(RequestTrace()) as inner:
            current_trace().used_db("shard-2")
        current_trace().used_cache("miss")
    assert current_trace() is NO_TRACE
    assert (outer.db_routes, outer.cache_results) == (["replica-1"], ["miss"])
    assert inner.db_routes == ["shard-2"]


def test_threads_do_not_share_a_trace():
    seen = {}

    def other_thread():
        current_trace().used_db("primary")
        seen["trace"] = current_trace()

    with traced() as mine:
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    assert seen["trace"] is NO_TRACE and mine.db_routes == []


def test_each_celery_app_has_its_own_tasks_and_no_services_before_its_worker_starts():
    config = load_config(STAGE_5)
    first, second = tasks.create_celery(config), tasks.create_celery(config)
    assert first is not second
    for app in (first, second):
        assert {tasks.FANOUT_POST, tasks.REBUILD_TIMELINE} <= set(app.tasks)
        assert app.conf.broker_url == "redis://r/1" and app.conf.worker_pool == "threads"
    with pytest.raises(RuntimeError, match="services are built when the worker starts"):
        tasks.worker_services(first)


class FakeWorkController:
    """What Celery sends with worker_init / worker_shutdown: the worker, which knows its app."""

    def __init__(self, app):
        self.app = app


def test_worker_init_builds_the_services_of_that_worker_app_only(monkeypatch):
    built = []

    def fake_build(config, celery_app=None):
        built.append(celery_app)
        return SimpleNamespace(close=lambda: built.append("closed"))

    monkeypatch.setattr(tasks, "build_services", fake_build)
    config = load_config(STAGE_5)
    mine, other = tasks.create_celery(config), tasks.create_celery(config)
    worker = FakeWorkController(mine)
    signals.worker_init.send(sender=worker)
    assert built == [mine]
    assert tasks.worker_services(mine) is not None and other.chirp_services is None
    signals.worker_shutdown.send(sender=worker)
    assert built == [mine, "closed"] and mine.chirp_services is None
