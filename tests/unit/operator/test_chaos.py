"""Judging a kill from the load's ticks: failing seconds, outages, recovery, the verdict."""

from scalestage import chaos


def tick(t, read=(10, 0), write=(5, 0), session=(12, 0), sessions_lost=0):
    requests = sum(read) + sum(write)  # a session is carried by a read or a write
    return {"t": t, "requests": requests, "sessions_lost": sessions_lost, "served": {
        "read": {"ok": read[0], "failed": read[1]},
        "write": {"ok": write[0], "failed": write[1]},
        "session": {"ok": session[0], "failed": session[1]}}}


def test_a_second_fails_for_a_path_only_past_the_share():
    assert chaos.failing_paths(tick(1)) == []
    assert chaos.failing_paths(tick(1, read=(99, 1))) == []  # 1 % of reads: in-flight noise
    assert chaos.failing_paths(tick(1, write=(3, 2), session=(0, 4))) == ["write", "session"]
    # no request completed in a second: users were kept waiting on every path
    assert chaos.failing_paths({"t": 1, "requests": 0}) == ["read", "write", "session"]


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
                           forced=False, killed_at=4.2, back_at=10)
    assert report.outage_seconds == 7 and report.failing_seconds == 7
    assert report.recovered and report.recovered_after == 6.8
    assert report.during["read"] == 1.0 and report.during["write"] < 0.5
    assert report.before == {"read": 1.0, "write": 1.0, "session": 1.0}
    assert report.spof


def test_a_redundant_pod_killed_costs_what_was_in_flight_and_recovers_before_its_replacement():
    ticks = ([tick(t) for t in range(1, 5)] + [tick(5, read=(7, 3))]
             + [tick(t) for t in range(6, 18)])
    report = chaos.measure(ticks, component="web", pod="chirp-web-abc", forced=True,
                           killed_at=4.5, back_at=10)
    assert report.outage_seconds == 1 and report.recovered and report.replaced_after == 5.5
    assert not report.spof
    # the replacement ready only at 14: not yet 5 quiet seconds after it
    late = chaos.measure(ticks, component="web", pod="chirp-web-abc", forced=True,
                         killed_at=4.5, back_at=14)
    assert not late.recovered and late.spof
    never = chaos.measure(ticks, component="web", pod="chirp-web-abc", forced=True,
                          killed_at=4.5)
    assert not never.recovered and never.spof


def test_failures_that_last_until_the_replacement_is_ready_make_a_spof():
    # measured on kind at stage 4: a replica's reads failed ~3 s, its replacement took 12 s
    # (redundant); the primary's writes failed until its replacement was ready after 6 s
    replica = ([tick(t) for t in range(1, 4)] + [tick(t, read=(5, 5)) for t in range(4, 7)]
               + [tick(t) for t in range(7, 22)])
    report = chaos.measure(replica, component="db-replica", pod="r", forced=True, killed_at=3.5,
                           back_at=15.5)
    assert report.outage_seconds == 3 and not report.spof
    primary = ([tick(t) for t in range(1, 4)] + [tick(t, write=(0, 5)) for t in range(4, 10)]
               + [tick(t) for t in range(10, 16)])
    report = chaos.measure(primary, component="db-primary", pod="p", forced=True, killed_at=3.5,
                           back_at=9.5)
    assert report.recovered_after == 5.5 and report.replaced_after == 6.0 and report.spof
    nothing = [tick(t) for t in range(1, 12)]  # a worker: no user-visible failure at all
    report = chaos.measure(nothing, component="worker", pod="w", forced=True, killed_at=3.5,
                           back_at=4.0)
    assert report.failing_seconds == 0 and not report.spof


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
    reports = [chaos.measure(down, component="db-primary", pod="a", forced=False, killed_at=3.5,
                             back_at=8),
               chaos.measure(fine, component="web", pod="b", forced=False, killed_at=3.5,
                             back_at=4)]
    check = chaos.spof_check_status(reports, ["db-primary"], 3, "2026-11-28T20:00:00Z")
    assert check["agrees"] and check["stage"] == 3
    assert [(r["component"], r["verdict"]) for r in check["components"]] == [
        ("db-primary", chaos.CONFIRMED), ("web", chaos.REDUNDANT)]
    assert "confirmed" in chaos.summary_message(check)
    wrong = chaos.spof_check_status(reports, ["db-primary", "web"], 3, "now")
    assert not wrong["agrees"]
    assert "web (declared, but survived the kill)" in chaos.summary_message(wrong)


def test_writes_held_while_a_primary_restarts_are_an_outage_and_later_noise_is_not():
    # stage 3: reads go on from the replicas; writes wait (held by the app) until the primary is
    # back after 6 s; a slow second much later (a busy node) is not the kill's doing
    def held(t):
        return {**tick(t, write=(0, 0)), "waiting": {"read": 0, "write": 3}}

    ticks = ([tick(t) for t in range(1, 4)] + [tick(4, write=(0, 0))]
             + [held(t) for t in range(5, 10)] + [tick(t) for t in range(10, 14)]
             + [held(14)] + [tick(t) for t in range(15, 22)])
    assert chaos.failing_paths(held(5)) == ["write"]
    report = chaos.measure(ticks, component="db-primary", pod="p", forced=True, killed_at=3.5,
                           back_at=9.5)
    assert report.caused == (0.5, 5.5) and report.spof
    worker = [tick(t) for t in range(1, 10)] + [held(10), held(11)] + [tick(t) for t in
                                                                          range(12, 20)]
    report = chaos.measure(worker, component="worker", pod="w", forced=True, killed_at=3.5,
                           back_at=10.5)
    assert report.caused is None and not report.spof  # the slow seconds came 5.5 s later...
    blip = [tick(t) for t in range(1, 4)] + [held(5)] + [tick(t) for t in range(6, 14)]
    report = chaos.measure(blip, component="edge", pod="e", forced=True, killed_at=3.5,
                           back_at=6.5)
    assert report.caused == (0.5, 1.5) and not report.spof  # ...or ended before the replacement
    fast = chaos.measure(blip, component="redis", pod="r", forced=True, killed_at=3.5,
                         back_at=5.0)
    assert fast.replaced_after == 1.5 and fast.spof  # back in 1.5 s, but everything waited


def test_with_the_replacement_held_back_a_spof_is_a_path_still_failing_as_the_hold_ends():
    # the stage-3 lesson that timing alone got wrong on a quiet node: the pinned client's web pod
    # killed, its requests failed ~2 s until the Service routed it to another pod, and the
    # replacement (had it not been held) would have been ready just then
    pinned = ([tick(t) for t in range(1, 4)] + [tick(4, read=(0, 6), session=(0, 6))]
              + [tick(5, read=(2, 6), session=(2, 6), sessions_lost=4)]
              + [tick(t, sessions_lost=4) for t in range(6, 30)])
    assert chaos.measure(pinned, component="web", pod="w", forced=True, killed_at=3.5,
                         back_at=5.0).spof  # no hold: the timing rule is fooled
    held = chaos.measure(pinned, component="web", pod="w", forced=True, killed_at=3.5,
                         back_at=22.0, released_at=18.5)
    assert held.held_for == 15.0 and held.survived_hold and not held.spof
    assert held.sessions_lost == 4 and held.as_dict()["held_for"] == 15.0
    # Redis held back: sessions fail until the hold ends, however fast it would have restarted
    redis = ([tick(t) for t in range(1, 4)] + [tick(t, session=(0, 9)) for t in range(4, 20)]
             + [tick(t) for t in range(20, 30)])
    report = chaos.measure(redis, component="redis", pod="r", forced=True, killed_at=3.5,
                           back_at=19.5, released_at=18.5)
    assert report.survived_hold is False and report.spof
    # a path that recovered only in the hold's last seconds: not QUIET_SECONDS of it yet
    late = ([tick(t) for t in range(1, 4)] + [tick(t, write=(0, 5)) for t in range(4, 16)]
            + [tick(t) for t in range(16, 30)])
    assert chaos.measure(late, component="db-primary", pod="p", forced=True, killed_at=3.5,
                         back_at=20.0, released_at=18.5).spof


def test_a_hold_the_replacement_beat_does_not_count():
    # the quota did not hold it (it was back before the release): timing decides, as without one
    ticks = [tick(t) for t in range(1, 4)] + [tick(t, read=(5, 5)) for t in range(4, 6)] + [
        tick(t) for t in range(6, 25)]
    report = chaos.measure(ticks, component="db-replica", pod="r", forced=True, killed_at=3.5,
                           back_at=12.0, released_at=18.5)
    assert report.held_for is None and report.survived_hold is None and not report.spof


def test_the_hold_quota_admits_no_new_pod():
    quota = chaos.hold_quota("demo")
    assert quota["kind"] == "ResourceQuota" and quota["metadata"]["name"] == chaos.HOLD_QUOTA
    assert quota["metadata"]["namespace"] == "demo" and quota["spec"]["hard"] == {"pods": "0"}


def test_the_hold_probe_is_a_restricted_pod():
    probe = chaos.hold_probe("demo")
    assert probe["kind"] == "Pod" and probe["metadata"]["namespace"] == "demo"
    assert probe["spec"]["securityContext"]["runAsNonRoot"] is True
    [container] = probe["spec"]["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_the_controller_woken_after_a_hold_is_the_one_that_replaces_the_pod():
    assert chaos.replacing_controller([
        {"kind": "ScaleStage", "name": "chirp", "controller": False},
        {"kind": "ReplicaSet", "name": "chirp-web-5d9f", "controller": True},
    ]) == ("ReplicaSet", "chirp-web-5d9f")
    assert chaos.replacing_controller(
        [{"kind": "StatefulSet", "name": "chirp-db", "controller": True}]) == ("StatefulSet",
                                                                              "chirp-db")
    # a Job's pod, or a bare pod: nothing to wake
    assert chaos.replacing_controller([{"kind": "Job", "name": "x", "controller": True}]) is None
    assert chaos.replacing_controller([]) is None


def test_waking_a_controller_changes_only_an_annotation():
    assert chaos.wake_patch("2026-11-29T06:00:00Z") == {"metadata": {"annotations": {
        "scalestage.dev/spof-hold-released-at": "2026-11-29T06:00:00Z"}}}
