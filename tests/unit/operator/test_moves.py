"""A data move's steps, decided from the Jobs and workloads that exist; the Jobs' progress."""

import pytest

from scalestage import moves
from scalestage.moves import ABSENT, JOB_FAILED, RUNNING, SUCCEEDED, Observed


def seen(databases=False, stage=False, source=True, copy=ABSENT, complete=ABSENT):
    return Observed(databases, stage, source, copy, complete)


@pytest.mark.parametrize("observed, step", [
    (seen(), moves.PROVISIONING),
    (seen(databases=True), moves.COPYING),
    (seen(databases=True, copy=RUNNING), moves.COPYING),
    (seen(databases=False, copy=RUNNING), moves.COPYING),  # a database pod restarting
    (seen(databases=True, copy=SUCCEEDED), moves.SWITCHING),
    (seen(databases=True, stage=True, copy=SUCCEEDED), moves.COMPLETING),
    (seen(stage=False, copy=SUCCEEDED, complete=RUNNING), moves.COMPLETING),
    (seen(copy=SUCCEEDED, complete=SUCCEEDED), moves.RETIRING),
    (seen(source=False, copy=SUCCEEDED, complete=SUCCEEDED), moves.DONE),
    (seen(source=False), moves.DONE),
    (seen(databases=True, copy=JOB_FAILED), moves.FAILED),
    (seen(copy=SUCCEEDED, complete=JOB_FAILED), moves.FAILED),
])
def test_the_step_follows_from_what_exists(observed, step):
    assert moves.step(observed) == step


def test_users_reach_the_target_only_after_the_cutover():
    assert not moves.target_serves(moves.COPYING, seen(copy=RUNNING))
    assert moves.target_serves(moves.SWITCHING, seen(copy=SUCCEEDED))
    assert not moves.target_serves(moves.FAILED, seen(copy=JOB_FAILED))
    assert moves.target_serves(moves.FAILED, seen(copy=SUCCEEDED, complete=JOB_FAILED))


def test_a_succeeded_job_is_kept_until_the_move_is_done():
    assert moves.jobs_wanted(moves.SWITCHING, seen(copy=SUCCEEDED)) == (moves.COPY,)
    assert moves.jobs_wanted(moves.RETIRING, seen()) == (moves.COPY, moves.COMPLETE)
    assert moves.jobs_wanted(moves.DONE, seen()) == ()
    assert moves.jobs_wanted(moves.FAILED, seen(copy=JOB_FAILED)) == (moves.COPY,)


@pytest.mark.parametrize("conditions, state", [
    ([], RUNNING),
    ([{"type": "Complete", "status": "True"}], SUCCEEDED),
    ([{"type": "Failed", "status": "True"}], JOB_FAILED),
    ([{"type": "Failed", "status": "False"}], RUNNING),
])
def test_job_state_from_conditions(conditions, state):
    assert moves.job_state({"status": {"conditions": conditions}}) == state
    assert moves.job_state(None) == ABSENT


def test_progress_from_the_last_json_line_of_a_log():
    log = ('chirp move: copying\n'
           '{"event": "progress", "rows_copied": 10, "rows_total": 40, "lag_bytes": 512, '
           '"lag_seconds": 0.25}\n'
           'some stderr text\n')
    line = moves.last_json_line(log)
    assert moves.progress(line) == {"rowsCopied": 10, "rowsTotal": 40, "lagBytes": 512,
                                    "lagSeconds": 0.25}
    done = moves.last_json_line('{"event": "cut-over", "writes_held_seconds": 0.0791, '
                                '"rows_copied": 40, "rows_total": 40}')
    assert moves.progress(done)["longestWritePauseSeconds"] == 0.079
    assert moves.last_json_line("no json {here\n") is None
    assert moves.progress(None) == {}


def test_summary_for_the_progress_column():
    record = {"from": 1, "to": 2, "step": "copying", "rowsCopied": 5, "rowsTotal": 9}
    assert moves.summary(record) == "1→2 copying 5/9 rows"
    record = {"from": 4, "to": 5, "step": "switching", "longestWritePauseSeconds": 0.31}
    assert moves.summary(record) == "4→5 switching, writes held 0.31 s"


def test_failure_message_from_the_job_controller():
    job = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason":
                                      "PodFailurePolicy", "message": "exit code 2 matched"}]}}
    assert moves.failure_message(job) == "exit code 2 matched"
    assert moves.failure_message(None) == ""
