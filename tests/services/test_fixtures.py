"""The Postgres and Redis fixtures are real: replication works, replicas refuse writes, and
nothing is left running afterwards, even when the test using them fails."""

import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
import redis

from tests.fixtures import processes
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.redis import RedisServer
from tests.services.conftest import rows


def test_row_written_on_primary_appears_on_each_replica(postgres_cluster, pg_database):
    with psycopg.connect(pg_database.primary_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, text text)")
        conn.execute("INSERT INTO notes VALUES (1, 'hello from the primary')")
    postgres_cluster.wait_replicated()
    assert len(pg_database.replica_urls) == 2
    for url in pg_database.replica_urls:
        assert rows(url, "SELECT text FROM notes") == [("hello from the primary",)]
        assert rows(url, "SELECT pg_is_in_recovery()") == [(True,)]


def test_replica_refuses_writes(postgres_cluster, pg_database):
    with psycopg.connect(pg_database.replica_urls[0], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE nope (id int)")


def test_replication_is_streaming(postgres_cluster):
    states = rows(postgres_cluster.primary.url(), "SELECT state FROM pg_stat_replication")
    assert [s for (s,) in states] == ["streaming", "streaming"]


def test_postgres_runs_as_a_non_root_user(postgres_cluster):
    with open(f"/proc/{postgres_cluster.primary.proc.pid}/status") as status:
        uid = next(line.split()[1] for line in status if line.startswith("Uid:"))
    assert uid != "0"


def test_cluster_stop_leaves_no_process():
    cluster = PostgresCluster.start(replicas=1)
    pids, base = cluster.pids, cluster.base_dir
    assert processes.processes_mentioning(base), "servers should be running before stop"
    cluster.stop()
    assert processes.processes_mentioning(base) == []
    assert not any(processes.group_alive(pid) for pid in pids)


def test_redis_server_works_and_stop_leaves_no_process():
    server = RedisServer.start_new()
    client = redis.Redis.from_url(server.url())
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()
    pid, base = server.proc.pid, server.base_dir
    server.stop()
    assert not processes.group_alive(pid)
    assert processes.processes_mentioning(base) == []


def test_fixtures_clean_up_after_a_failing_test(tmp_path):
    """A nested pytest run whose test fails while the session fixtures are up."""
    (tmp_path / "test_fails.py").write_text(textwrap.dedent("""
        def test_fails(postgres_cluster, redis_server):
            with open("dirs.txt", "w") as out:
                out.write(postgres_cluster.base_dir + "\\n" + redis_server.base_dir)
            assert False, "deliberate failure"
    """))
    root = str(Path(__file__).resolve().parents[2])
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {root!r})\n"
        "pytest_plugins = ['tests.fixtures.postgres', 'tests.fixtures.redis']\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "--rootdir", str(tmp_path), str(tmp_path / "test_fails.py")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "deliberate failure" in result.stdout
    pg_dir, redis_dir = (tmp_path / "dirs.txt").read_text().split("\n")
    assert processes.processes_mentioning(pg_dir) == []
    assert processes.processes_mentioning(redis_dir) == []
