"""`chirp migrate`: safe when many pods run it at once, and with --wait it outlasts a database that
is not up yet (the operator's init container runs `chirp migrate --wait 300`)."""

import os
import subprocess

import pytest

from chirp.db.migrate import available_migrations
from tests.fixtures import processes
from tests.fixtures.postgres import PostgresCluster
from tests.polling import wait_until
from tests.services.conftest import chirp_command, rows, run_chirp

ALL_VERSIONS = [version for version, _, _ in available_migrations()]


def test_migrations_are_safe_when_many_pods_start_at_once(pg_database):
    procs = [subprocess.Popen(chirp_command("migrate", "--url", pg_database.primary_url),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    applied = rows(pg_database.primary_url, "SELECT version FROM schema_migrations ORDER BY 1")
    assert applied == [(v,) for v in ALL_VERSIONS]
    assert sum(f"applied {ALL_VERSIONS}" in out for out, _ in outputs) == 1
    assert sum("up to date" in out for out, _ in outputs) == 3


@pytest.fixture
def stopped_postgres():
    """A server of our own holding an empty database, stopped: the test starts it when it likes."""
    cluster = PostgresCluster.start(replicas=0)
    try:
        url = cluster.primary.url(cluster.create_database())
        cluster.primary.stop()
        yield cluster.primary, url
    finally:
        cluster.stop()


def test_migrate_wait_outlasts_a_database_that_starts_later(stopped_postgres, tmp_path):
    server, url = stopped_postgres
    log = tmp_path / "migrate.log"
    migrate = processes.spawn(chirp_command("migrate", "--wait", "30", "--url", url), str(log),
                              env=dict(os.environ))
    try:
        wait_until(lambda: "not answering yet" in log.read_text(),
                   what="chirp migrate to retry against the stopped database")
        assert migrate.poll() is None, log.read_text()
        server.start()
        assert migrate.wait(30) == 0, log.read_text()
    finally:
        processes.stop(migrate)
    assert f"{url}: applied {ALL_VERSIONS}" in log.read_text()
    assert rows(url, "SELECT version FROM schema_migrations ORDER BY 1") == \
        [(v,) for v in ALL_VERSIONS]


def test_a_short_wait_for_no_database_fails_with_a_clear_message():
    url = f"postgresql://postgres@127.0.0.1:{processes.free_port()}/chirp"
    result = run_chirp("migrate", "--wait", "2", "--url", url, timeout=60)
    assert result.returncode == 1
    assert "not answering yet" in result.stderr  # it did retry
    assert f"chirp migrate: giving up: {url} did not answer within 2 s" in result.stderr
    assert "Connection refused" in result.stderr and "Traceback" not in result.stderr
