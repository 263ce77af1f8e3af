"""`chirp load`'s figures: nearest-rank percentiles, one-second windows, bounded run totals."""

import random

import pytest

from chirp.load import stats


def test_nearest_rank_percentiles():
    values = sorted(float(v) for v in range(1, 101))
    assert [stats.percentile(values, p) for p in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert stats.percentile([7.0], 99) == 7.0
    assert stats.percentile([], 50) is None


def test_the_histogram_is_within_one_percent():
    rng = random.Random(3)
    values = [rng.lognormvariate(2, 1.5) for _ in range(20_000)]
    hist = stats.Histogram()
    for v in values:
        hist.add(v)
    exact = sorted(values)
    for p in (50, 95, 99):
        assert hist.percentile(p) == pytest.approx(stats.percentile(exact, p), rel=0.011)
    assert len(hist.buckets) < 1500  # bounded, however long the run
    assert stats.Histogram().percentile(50) is None


def test_a_tick_reports_its_window_then_starts_a_new_one():
    s = stats.Stats(start=10.0)
    for ms in (10, 20, 30, 40):
        s.record(ms)
    s.record(900, write=True, error=stats.WRITE_FAILED, served={"write": False, "session": True})
    s.record(5, error=stats.SESSION_LOST, served={"session": False})
    s.session_lost()
    tick = s.tick(11.0)
    assert tick == {"t": 1.0, "requests": 6, "rps": 6.0, "p50_ms": 20, "p95_ms": 900,
                    "p99_ms": 900, "errors": {"session_lost": 1, "write_failed": 1},
                    "served": {"read": {"ok": 0, "failed": 0}, "write": {"ok": 0, "failed": 1},
                               "session": {"ok": 1, "failed": 1}},
                    "sessions_lost": 1, "fresh_sessions_refused": 0, "longest_write_ms": 900}
    s.record(3, write=True, served={"write": True})
    tick = s.tick(11.5)
    assert (tick["requests"], tick["rps"], tick["errors"], tick["longest_write_ms"]) == (
        1, 2.0, {}, 3)
    assert tick["served"]["write"] == {"ok": 1, "failed": 0}  # this window's only
    assert s.tick(12.5)["p50_ms"] is None  # an idle second


def test_totals_cover_the_whole_run():
    s = stats.Stats(start=0.0)
    for ms in range(1, 101):
        s.record(float(ms), write=ms == 77, error=stats.TIMEOUT if ms > 98 else None)
        if ms % 10 == 0:
            s.tick(ms / 10)
    totals = s.totals(10.0)
    assert totals["requests"] == 100 and totals["rps"] == 10.0
    assert totals["errors"] == {"timeout": 2} and totals["longest_write_ms"] == 77
    assert totals["p50_ms"] == pytest.approx(50, rel=0.011)


def test_requests_in_flight_long_enough_keep_users_waiting():
    in_flight = [("write", 10.0), ("write", 11.5), ("read", 7.0)]
    assert stats.waiting(in_flight, 12.0) == {"read": 1, "write": 1}  # 2 s or more
    assert stats.waiting([], 12.0) == {"read": 0, "write": 0}
