"""`chirp move run` (what the operator's move Job runs) between separate Postgres servers: its
stdout is JSON lines ending with the cut-over line, a rerun is a no-op that prints it again, and a
run SIGKILLed anywhere is finished by the next one."""

import json
import os
import signal
import subprocess

import pytest

from chirp.move import online
from tests.services.test_online_moves import (
    Traffic,
    assert_holds_exactly,
    move_command,
    run_move,
    seed_sources,
)

PROGRESS_KEYS = {"event", "step", "rows_copied", "rows_total", "tables_done", "tables_total",
                 "lag_bytes", "lag_seconds", "cutover_ready"}


def chirp_move_run(sources, targets, *extra, crash_after=None, expect=0) -> list[dict]:
    """Run `chirp move run`; every stdout line must be JSON. Returns them."""
    env = dict(os.environ)
    if crash_after:
        env[online.CRASH_AFTER_ENV] = crash_after
    result = subprocess.run(move_command("run", sources, targets, "--progress-interval", "0.2",
                                         *extra),
                            capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == expect, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    if crash_after:
        assert crash_after in result.stderr.splitlines()[-1], result.stderr
    return lines


def seeded_rows(seeded) -> int:
    return len(seeded["users"]) + len(seeded["posts"]) + len(seeded["follows"])


@pytest.mark.slow
def test_run_reports_progress_cuts_over_and_is_idempotent(separate_databases):
    sources, targets = separate_databases(1), separate_databases(2)
    seeded = seed_sources(sources)
    rows = seeded_rows(seeded)
    lines = chirp_move_run(sources, targets)
    print("\nchirp move run:\n" + "\n".join(json.dumps(line) for line in lines))
    progress = [line for line in lines if line["event"] == "progress"]
    assert progress and all(set(line) == PROGRESS_KEYS for line in progress)
    copying = [line for line in progress if line["step"] == "copying"]
    assert copying[-1]["cutover_ready"] is True and copying[-1]["rows_total"] == rows
    assert copying[-1]["tables_done"] == copying[-1]["tables_total"] > 0
    last = lines[-1]
    assert last["event"] == "cut-over" and last["step"] == "cut-over"
    assert last["rows_copied"] == last["rows_total"] == rows
    assert 0 < last["writes_held_seconds"] < 10
    assert run_move("status", sources, targets)["phase"] == "cut-over"

    again = chirp_move_run(sources, targets)  # a rerun: nothing to do, the same figures
    assert again == [last]
    assert run_move("complete", sources, targets)["phase"] == "completed"
    assert chirp_move_run(sources, targets) == [last]  # completed: still the cut-over line
    assert_holds_exactly(targets, seeded, {"failures": [], "posts": [], "follows": set()})


@pytest.mark.slow
def test_run_killed_in_start_and_in_cutover_is_finished_by_a_rerun(separate_databases):
    sources, targets = separate_databases(1), separate_databases(2)
    seeded = seed_sources(sources)
    traffic = Traffic(sources, seeded["users"], writers=2, pause=0.01)
    traffic.let_writes_land()
    for line in ("replicating", "retired"):  # mid-start; after the sources' commit point
        chirp_move_run(sources, targets, crash_after=line, expect=-signal.SIGKILL)
    assert run_move("status", sources, targets)["phase"] == "cutover-committed"
    lines = chirp_move_run(sources, targets)
    last = lines[-1]
    assert last["event"] == "cut-over"
    assert last["rows_copied"] == last["rows_total"] >= seeded_rows(seeded)
    # the run that held the writes was killed before it could record for how long
    assert last["writes_held_seconds"] is None
    traffic.let_writes_land()  # the held writes went on to the targets
    assert chirp_move_run(sources, targets)[-1] == last
    assert_holds_exactly(targets, seeded, traffic.finish())
    assert run_move("complete", sources, targets)["phase"] == "completed"


def test_run_retries_a_database_not_answering_yet_and_refuses_an_unsafe_move(separate_databases):
    """Exit 1 (a new Job pod tries again) while a database does not answer: the operator starts
    the Job as soon as the new database's pod is ready, a moment before its Service routes to it.
    Exit 2 (a person must look) for a request that is unsafe, e.g. one database on both sides."""
    sources = separate_databases(1)
    nowhere = ["postgresql://chirp@127.0.0.1:9/chirp"]  # the discard port: nothing listens
    [line] = chirp_move_run(sources, nowhere, "--wait-for-databases", "1", expect=1)
    assert line["event"] == "failed" and line["exit_code"] == 1
    assert "cannot reach" in line["reason"]
    [line] = chirp_move_run(sources, sources, expect=2)
    assert line["event"] == "failed" and line["exit_code"] == 2
