"""`chirp move run`: its JSON lines, what it does next in each phase, and its loop over a fake
engine (start, copy progress, cutover retries, resuming after a kill)."""

import json

import pytest

from chirp.move import online, steps
from chirp.move import run as run_step

PROGRESS_KEYS = {"event", "step", "rows_copied", "rows_total", "tables_done", "tables_total",
                 "lag_bytes", "lag_seconds", "cutover_ready"}


def a_status(phase, copied=30, total=40, ready=False, streams=None, last_step=None):
    if streams is None:
        streams = {"a": steps.stream_progress(10, 20, 2, 4, 5000, 0.5),
                   "b": steps.stream_progress(20, 20, 4, 4, 100, 0.0)}
    status = steps.move_progress("m", phase, streams)
    status.update(rows_copied=copied, rows_total=total, cutover_ready=ready,
                  last_step=last_step)
    return status


@pytest.mark.parametrize("phase,action", [
    (None, run_step.START), (steps.COPYING, run_step.COPY),
    (steps.CUTOVER_COMMITTED, run_step.CUTOVER), (steps.CUT_OVER, run_step.REPORT),
    (steps.COMPLETED, run_step.REPORT), (steps.REVERSE_COMMITTED, run_step.REFUSE),
    (steps.REVERSED, run_step.REFUSE),
])
def test_next_action_goes_on_from_the_recorded_phase(phase, action):
    assert run_step.next_action(phase)[0] == action


def test_every_phase_has_a_next_action_and_refusals_say_why():
    for phase in (None, *steps.PHASES):
        action, reason = run_step.next_action(phase)
        assert (action == run_step.REFUSE) == bool(reason)
    assert "reversed" in run_step.next_action(steps.REVERSED)[1]


def test_progress_line_sums_the_streams_with_exactly_the_contract_keys():
    status = steps.move_progress("m", steps.COPYING, {
        "a": steps.stream_progress(10, 20, 2, 4, 5000, 0.5),
        "b": steps.stream_progress(20, 20, 4, 4, 100, 0.0)})
    line = run_step.progress_line(status)
    assert set(line) == PROGRESS_KEYS
    assert line == {"event": "progress", "step": "copying", "rows_copied": 30, "rows_total": 40,
                    "tables_done": 6, "tables_total": 8, "lag_bytes": 5000, "lag_seconds": 0.5,
                    "cutover_ready": False}
    assert json.loads(json.dumps(line)) == line


def test_progress_line_of_an_empty_database_and_unknown_lag_is_all_numbers():
    status = steps.move_progress("m", steps.COPYING,
                                 {"a": steps.stream_progress(0, 0, 0, 4, None, None)})
    line = run_step.progress_line(status, "cutover-retry")
    assert line["step"] == "cutover-retry" and line["rows_total"] == 0
    assert line["lag_bytes"] == 0 and line["lag_seconds"] == 0.0
    assert line["cutover_ready"] is False and line["tables_total"] == 4
    assert all(isinstance(v, (int, float, bool)) for k, v in line.items()
               if k not in ("event", "step"))
    assert run_step.progress_line({"phase": None})["tables_total"] == 0  # no streams at all


def test_cut_over_line_prefers_the_verified_rows_and_the_recorded_pause():
    record = {"locked_seconds": 0.213,
              "tables": {"users": {"ok": True, "rows": 40, "target_rows": 40},
                         "posts": {"ok": True, "rows": 200, "target_rows": 200}}}
    line = run_step.cut_over_line(a_status(steps.COMPLETED, 0, 0, streams={}, last_step=record))
    assert line == {"event": "cut-over", "step": "cut-over", "writes_held_seconds": 0.213,
                    "rows_copied": 240, "rows_total": 240}


def test_cut_over_line_without_records_uses_the_status_and_null_pause():
    line = run_step.cut_over_line(a_status(steps.CUT_OVER, 7, 9, last_step=None))
    assert line["writes_held_seconds"] is None
    assert (line["rows_copied"], line["rows_total"]) == (7, 9)
    assert json.dumps(line).count("null") == 1


class FakeEngine:
    """online.start/status/cutover over a recorded phase; cutover aborts `aborts` times."""

    def __init__(self, phase, ready_after=2, aborts=0, refuse_start=False):
        self.phase, self.polls, self.ready_after = phase, 0, ready_after
        self.aborts, self.refuse_start, self.calls = aborts, refuse_start, []

    def status(self, move):
        if self.phase == steps.COPYING:
            self.polls += 1
        ready = self.phase == steps.COPYING and self.polls > self.ready_after
        last = ({"locked_seconds": 0.25, "tables": {"users": {"rows": 5, "target_rows": 5}}}
                if self.phase in (steps.CUT_OVER, steps.COMPLETED) else None)
        return a_status(self.phase, 5 if ready else 3, 5, ready=ready, last_step=last)

    def start(self, move):
        self.calls.append("start")
        if self.refuse_start:
            raise online.MoveRefused("target holds data")
        self.phase = steps.COPYING
        return self.status(move)

    def cutover(self, move, bound_seconds, ready_timeout):
        self.calls.append(("cutover", bound_seconds))
        if self.aborts:
            self.aborts -= 1
            raise online.CutoverAborted("could not lock the tables: LockNotAvailable")
        self.phase = steps.CUT_OVER
        return self.status(move)


@pytest.fixture
def engine(monkeypatch):
    def make(*args, **kwargs):
        fake = FakeEngine(*args, **kwargs)
        for name in ("status", "start", "cutover"):
            monkeypatch.setattr(online, name, getattr(fake, name))
        monkeypatch.setattr(run_step.time, "sleep", lambda seconds: None)
        return fake
    return make


def run(**options):
    lines = []
    final = run_step.run_move(None, progress_interval=0, out=lines.append, **options)
    assert lines[-1] == final
    return lines


def test_a_new_move_is_started_reported_and_cut_over(engine):
    fake = engine(None)
    lines = run(bound_seconds=3.0)
    assert fake.calls == ["start", ("cutover", 3.0)]
    copying = [line for line in lines if line["step"] == "copying"]
    assert len(copying) >= 2 and copying[-1]["cutover_ready"] is True
    assert all(set(line) == PROGRESS_KEYS for line in copying)
    assert [line["step"] for line in lines[-2:]] == ["cutover", "cut-over"]
    assert lines[-1] == {"event": "cut-over", "step": "cut-over", "writes_held_seconds": 0.25,
                         "rows_copied": 5, "rows_total": 5}


@pytest.mark.parametrize("phase,calls", [
    (steps.COPYING, [("cutover", 10.0)]), (steps.CUTOVER_COMMITTED, [("cutover", 10.0)]),
    (steps.CUT_OVER, []), (steps.COMPLETED, []),
])
def test_a_rerun_goes_on_from_where_the_move_stands(engine, phase, calls):
    fake = engine(phase)
    lines = run()
    assert fake.calls == calls and "start" not in fake.calls
    assert lines[-1]["event"] == "cut-over"


def test_an_aborted_cutover_is_retried_with_a_retry_line_each_time(engine):
    fake = engine(steps.COPYING, ready_after=0, aborts=2)
    lines = run(cutover_attempts=3)
    retries = [line for line in lines if line["step"] == "cutover-retry"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert "LockNotAvailable" in retries[0]["reason"]
    assert len(fake.calls) == 3 and lines[-1]["event"] == "cut-over"


def test_a_cutover_aborted_every_attempt_gives_up(engine):
    fake = engine(steps.COPYING, ready_after=0, aborts=9)
    lines = []
    with pytest.raises(online.CutoverAborted, match="2 attempts"):
        run_step.run_move(None, progress_interval=0, cutover_attempts=2, out=lines.append)
    assert len(fake.calls) == 2
    assert [line["step"] for line in lines] == ["copying", "cutover", "cutover-retry"]


def test_refusals_come_through_and_a_reversed_move_is_refused(engine):
    engine(None, refuse_start=True)
    with pytest.raises(online.MoveRefused, match="holds data"):
        run()
    engine(steps.REVERSED)
    with pytest.raises(online.MoveRefused, match="reversed"):
        run()


def test_a_copy_never_ready_is_refused_after_the_ready_timeout(engine):
    engine(steps.COPYING, ready_after=10 ** 9)
    with pytest.raises(online.MoveRefused, match="not cutover-ready"):
        run(ready_timeout=0)


def test_the_failed_line_names_the_exit_code():
    assert run_step.failed_line(2, "refused: x") == {"event": "failed", "step": "run",
                                                     "exit_code": 2, "reason": "refused: x"}
