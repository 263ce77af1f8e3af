"""One data move of the walk (1↔2, 4↔5), as steps decided from what exists. Pure.

The app does the moving (`chirp move`, docs/moves.md); the operator provides the databases, runs
the app's commands as Jobs, and switches the stage around them:

    provisioning  the source stage keeps serving; the target's databases are created
    copying       Job `run`: copy while writes go on, then the cutover (writes held ≤ bound)
    switching     the target stage is applied (new web/workers/edge), the source's databases kept
    completing    Job `complete`: the undo streams dropped, the source databases retired
    retiring      the source's data-holding workloads (and their volumes) deleted
    done          status.stage = target

Each step follows from the Jobs and workloads that exist (level-triggered), so an operator restarted
anywhere picks up where it was; the move itself (from, to, start time) is recorded in
status.migration, so a spec changed mid-move cannot leave data half-moved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROVISIONING, COPYING, SWITCHING, COMPLETING, RETIRING, DONE, FAILED = (
    "provisioning", "copying", "switching", "completing", "retiring", "done", "failed")

ABSENT, RUNNING, SUCCEEDED, JOB_FAILED = "absent", "running", "succeeded", "failed"

# The Job actions: `run` copies and cuts over, `complete` retires the undo streams.
COPY, COMPLETE = "run", "complete"


@dataclass(frozen=True)
class Observed:
    """What the move's step is decided from."""

    target_databases_ready: bool  # the target's data-holding workloads are ready
    target_stage_ready: bool  # every component of the target stage is ready and rolled out
    source_data_present: bool  # the source's data-holding workloads still exist
    copy_job: str  # ABSENT | RUNNING | SUCCEEDED | JOB_FAILED
    complete_job: str


def step(seen: Observed) -> str:
    """The move's current step. Later evidence wins: a Job that succeeded is never run again."""
    if not seen.source_data_present:
        return DONE
    if seen.complete_job == SUCCEEDED:
        return RETIRING
    if JOB_FAILED in (seen.copy_job, seen.complete_job):
        return FAILED
    if seen.complete_job == RUNNING:
        return COMPLETING
    if seen.copy_job == SUCCEEDED:
        return COMPLETING if seen.target_stage_ready else SWITCHING
    if seen.copy_job == RUNNING or seen.target_databases_ready:
        return COPYING
    return PROVISIONING


def target_serves(current: str, seen: Observed) -> bool:
    """Whether the target stage's plan faces users: only once the cutover is done (the copy Job
    succeeded); until then the source stage serves as before."""
    if current == FAILED:
        return seen.copy_job == SUCCEEDED
    return current not in (PROVISIONING, COPYING)


def jobs_wanted(current: str, seen: Observed) -> tuple[str, ...]:
    """The move Jobs that must exist at this step. A Job is kept until the move is done, so a
    succeeded one is never recreated and rerun; a failed one stays for a person to read (deleting
    it runs it again)."""
    if current == FAILED:
        return tuple(job for job, state in ((COPY, seen.copy_job), (COMPLETE, seen.complete_job))
                     if state != ABSENT)
    return {
        PROVISIONING: (),
        COPYING: (COPY,),
        SWITCHING: (COPY,),
        COMPLETING: (COPY, COMPLETE),
        RETIRING: (COPY, COMPLETE),
        DONE: (),
    }[current]


def job_state(job: Mapping | None) -> str:
    """A Job's outcome from its conditions (Complete / Failed), ABSENT when there is none."""
    if job is None:
        return ABSENT
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return SUCCEEDED
        if condition.get("type") == "Failed":
            return JOB_FAILED
    return RUNNING


def failure_message(job: Mapping | None) -> str:
    """What the Job controller says of a failed Job (e.g. the exit code a FailJob rule matched)."""
    for condition in ((job or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return condition.get("message") or condition.get("reason") or ""
    return ""


def last_json_line(log: str) -> dict[str, Any] | None:
    """The last line of a move Job's log that is a JSON object (`chirp move run` prints one per
    progress tick, and the cut-over figures last); None when there is none yet."""
    for line in reversed(log.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    return None


def progress(line: Mapping | None) -> dict[str, Any]:
    """status.migration fields from a `chirp move run` line (docs/moves.md: the JSON contract)."""
    if not line:
        return {}
    out: dict[str, Any] = {}
    for key, field in (("rows_copied", "rowsCopied"), ("rows_total", "rowsTotal"),
                       ("lag_bytes", "lagBytes")):
        if isinstance(line.get(key), int):
            out[field] = line[key]
    for key, field in (("lag_seconds", "lagSeconds"),
                       ("writes_held_seconds", "longestWritePauseSeconds")):
        if isinstance(line.get(key), int | float):
            out[field] = round(float(line[key]), 3)
    return out


def summary(migration: Mapping) -> str:
    """One line for `kubectl get` (the Progress column) and the conditions."""
    current = migration.get("step", PROVISIONING)
    text = f"{migration.get('from')}→{migration.get('to')} {current}"
    copied, total = migration.get("rowsCopied"), migration.get("rowsTotal")
    if current == COPYING and isinstance(copied, int) and isinstance(total, int):
        text += f" {copied}/{total} rows"
    if isinstance(migration.get("longestWritePauseSeconds"), int | float):
        text += f", writes held {migration['longestWritePauseSeconds']:.2f} s"
    return text
