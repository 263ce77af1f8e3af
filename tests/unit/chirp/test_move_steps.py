"""The online move's step machine, its status JSON, and how writers follow a cutover."""

import pytest

from chirp.move import handoff, steps


@pytest.mark.parametrize("command,phase,action", [
    ("start", None, "run"), ("start", steps.COPYING, "run"), ("start", steps.CUT_OVER, "done"),
    ("start", steps.REVERSED, "refuse"),
    ("cutover", None, "refuse"), ("cutover", steps.COPYING, "run"),
    ("cutover", steps.CUTOVER_COMMITTED, "run"), ("cutover", steps.CUT_OVER, "done"),
    ("cutover", steps.REVERSED, "refuse"),
    ("reverse", steps.COPYING, "refuse"), ("reverse", steps.CUT_OVER, "run"),
    ("reverse", steps.REVERSE_COMMITTED, "run"), ("reverse", steps.REVERSED, "done"),
    ("reverse", steps.COMPLETED, "refuse"),
    ("complete", steps.COPYING, "refuse"), ("complete", steps.CUT_OVER, "run"),
    ("complete", steps.COMPLETED, "done"),
    ("abort", None, "done"), ("abort", steps.COPYING, "run"), ("abort", steps.CUT_OVER, "refuse"),
    ("abort", steps.REVERSED, "run"), ("status", steps.COMPLETED, "run"),
])
def test_each_command_knows_what_to_do_in_each_phase(command, phase, action):
    assert steps.decide(command, phase).action == action


def test_refusals_say_why():
    reason = steps.decide("abort", steps.CUT_OVER).reason
    assert "phase cut-over" in reason and "reverse" in reason
    with pytest.raises(ValueError):
        steps.decide("launch", None)


def test_every_phase_and_command_has_an_answer():
    for command in steps.COMMANDS:
        for phase in (None, *steps.PHASES):
            assert steps.decide(command, phase).action in ("run", "done", "refuse")


def test_progress_is_ready_once_copied_and_close_behind():
    copying = steps.stream_progress(10, 20, 2, 4, 5000, 0.5)
    caught_up = steps.stream_progress(20, 20, 4, 4, 100, 0.0)
    assert copying["initial_copy_done"] is False
    status = steps.move_progress("m", steps.COPYING, {"a": copying, "b": caught_up})
    assert status["rows_copied"] == 30 and status["rows_total"] == 40
    assert status["lag_bytes"] == 5000 and status["cutover_ready"] is False
    assert steps.move_progress("m", steps.COPYING, {"b": caught_up})["cutover_ready"] is True
    assert steps.move_progress("m", steps.CUT_OVER, {"b": caught_up})["cutover_ready"] is False
    far_behind = steps.stream_progress(20, 20, 4, 4, 1 << 30, 9.0)
    assert steps.move_progress("m", steps.COPYING, {"c": far_behind})["cutover_ready"] is False


def test_a_refused_writer_follows_a_newer_layout_or_waits():
    retired = handoff.Routing("retired", 3, ("postgresql://a@t0/db", "postgresql://a@t1/db"))
    step = handoff.after_refusal(retired, known_epoch=2, waited_seconds=0.1)
    assert step == handoff.NextMove("reroute", retired.shard_urls, 3)
    assert handoff.after_refusal(retired, known_epoch=3, waited_seconds=0.1).action == "wait"
    standby = handoff.Routing("standby", 0)
    assert handoff.after_refusal(standby, 0, 0.5).action == "wait"
    assert handoff.after_refusal(standby, 0, handoff.HOLD_SECONDS).action == "give-up"


def test_only_the_moved_sqlstate_counts_as_a_move():
    class Refused(Exception):
        sqlstate = "CH001"

    class ReadOnly(Exception):
        sqlstate = "25006"

    assert handoff.is_moved_error(Refused()) and not handoff.is_moved_error(ReadOnly())
