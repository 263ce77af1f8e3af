"""The capacity report's pure parts: counters from /metrics, a stage's figures, table, chart."""

from scalestage import capacity

BEFORE = """# HELP chirp_db_queries_total SQL statements sent
# TYPE chirp_db_queries_total counter
chirp_db_queries_total{route="primary",kind="read"} 10.0
chirp_db_queries_total{route="replica-1",kind="read"} 5.0
# TYPE chirp_cache_lookups_total counter
chirp_cache_lookups_total{result="hit"} 1.0
chirp_cache_lookups_total{result="miss"} 1.0
# TYPE chirp_http_requests_total counter
chirp_http_requests_total{endpoint="x",method="GET",status="200"} 99.0
"""
AFTER = BEFORE.replace("} 10.0", "} 30.0").replace("} 5.0", "} 85.0").replace(
    'result="hit"} 1.0', 'result="hit"} 61.0').replace('result="miss"} 1.0',
                                                        'result="miss"} 21.0')


def test_counters_grow_by_role_and_the_cache_hit_ratio():
    grown = capacity.delta(capacity.counters(BEFORE), capacity.counters(AFTER))
    summary = {"rps": 50.0, "p50_ms": 4.0, "p95_ms": 9.0, "p99_ms": 20.0, "requests": 100,
               "errors": {"timeout": 1}}
    row = capacity.figures(4, "cached", summary, grown)
    assert row.queries == {"primary": 20.0, "replica": 80.0}
    assert row.cache_hit_ratio == 0.75 and row.errors == 1
    assert row.queries_per_request("replica") == 0.8
    table = capacity.markdown([row], "8 users")
    assert "| 4 cached | 50.0 | 4.0 | 9.0 | 20.0 | 1 | 0.20 | 0.80 | 75% |" in table


def test_a_restarted_pod_counts_from_zero():
    assert capacity.delta({("a",): 50.0}, {("a",): 7.0}) == {("a",): 7.0}
    # the labels chirp.shards.route_label gives
    assert capacity.role_of("replica-2") == "replica"
    assert capacity.role_of("shard-1-replica-1") == "replica"
    assert capacity.role_of("shard-0") == "primary" and capacity.role_of("primary") == "primary"


def test_the_chart_is_a_png(tmp_path):
    rows = [capacity.StageFigures(n, f"s{n}", 10.0 * n, 5.0, 9.0, 12.0, 100, 0,
                                  {"primary": 100.0, "replica": 50.0 * n}) for n in (1, 2, 3)]
    path = capacity.chart(rows, tmp_path / "c.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
