"""Judging a kill from the load's ticks: failing seconds, outages, recovery, the verdict."""

from scalestage import chaos


def tick(t, read=(10, 0), write=(5, 0), session=(12, 0), sessions_lost=0):
    return {"t": t, "sessions_lost": sessions_lost, "served": {
        "read": {"ok": read[0], "failed": read[1]},
        "write": {"ok": write[0], "failed": write[1]},
        "session": {"ok": session[0], "failed": session[1]}}}


def test_a_second_fails_for_a_path_only_past_the_share():
    assert chaos.failing_paths(tick(1)) == []
    assert chaos.failing_paths(tick(1, read=(99, 1))) == []  # 1 % of reads: in-flight noise
    assert chaos.failing_paths(tick(1, write=(3, 2), session=(0, 4))) == ["write", "session"]
    assert chaos.failing_paths({"t": 1}) == []  # an idle second (or an old load without served)


def test_outages_are_runs_of_failing_seconds():
    ticks = [tick(1), tick(2, write=(0, 5)), tick(3, write=(0, 5)), tick(4), tick(5, read=(0, 3))]
    assert chaos.outages(ticks) == [(1, 3), (4, 5)]
    assert chaos.outages([tick(1, read=(0, 1))]) == [(0, 1)]
    assert chaos.outages([tick(1), tick(2)]) == []


def test_a_primary_killed_stops_writes_for_seconds_a_measured_spof():
    ticks = ([tick(t) for t in range(1, 5)]
             + [tick(t, write=(0, 5)) for t in range(5, 12)]
             + [tick(t) for t in range(12, 18)])
    report = chaos.measure(ticks, component="db-primary", pod="chirp-db-primary-0",
                           forced=False, killed_at=4.2)
    assert report.outage_seconds == 7 and report.failing_seconds == 7
    assert report.recovered and report.recovered_after == 6.8
    assert report.during["read"] == 1.0 and report.during["write"] < 0.5
    assert report.before == {"read": 1.0, "write": 1.0, "session": 1.0}
    assert report.spof


def test_a_redundant_pod_killed_costs_a_second_at_most():
    ticks = ([tick(t) for t in range(1, 5)] + [tick(5, read=(7, 3))]
             + [tick(t) for t in range(6, 12)])
    report = chaos.measure(ticks, component="web", pod="chirp-web-abc", forced=True,
                           killed_at=4.5)
    assert report.outage_seconds == 1 and report.recovered
    assert not report.spof


def test_not_recovered_within_the_window_is_a_spof():
    ticks = [tick(1), tick(2)] + [tick(t, session=(0, 8)) for t in range(3, 6)] + [tick(6)]
    report = chaos.measure(ticks, component="redis", pod="chirp-redis-1", forced=False,
                           killed_at=2.5)
    assert not chaos.recovered(ticks, 2.5)
    assert report.spof


def test_sessions_lost_count_only_what_the_kill_did():
    ticks = [tick(1, sessions_lost=2), tick(2, sessions_lost=2), tick(3, sessions_lost=6),
             tick(4, sessions_lost=6)]
    report = chaos.measure(ticks, component="web", pod="p", forced=False, killed_at=2.1)
    assert report.sessions_lost == 4


def test_verdicts_and_the_status_block():
    assert chaos.verdict(True, True) == chaos.CONFIRMED
    assert chaos.verdict(False, False) == chaos.REDUNDANT
    assert chaos.verdict(False, True) == chaos.UNDECLARED
    assert chaos.verdict(True, False) == chaos.SURVIVED
    down = [tick(t) for t in range(1, 4)] + [tick(t, write=(0, 5)) for t in range(4, 9)] + [
        tick(t) for t in range(9, 15)]
    fine = [tick(t) for t in range(1, 12)]
    reports = [chaos.measure(down, component="db-primary", pod="a", forced=False, killed_at=3.5),
               chaos.measure(fine, component="web", pod="b", forced=False, killed_at=3.5)]
    check = chaos.spof_check_status(reports, ["db-primary"], 3, "2026-11-28T20:00:00Z")
    assert check["agrees"] and check["stage"] == 3
    assert [(r["component"], r["verdict"]) for r in check["components"]] == [
        ("db-primary", chaos.CONFIRMED), ("web", chaos.REDUNDANT)]
    assert "confirmed" in chaos.summary_message(check)
    wrong = chaos.spof_check_status(reports, ["db-primary", "web"], 3, "now")
    assert not wrong["agrees"]
    assert "web (declared, but survived the kill)" in chaos.summary_message(wrong)
