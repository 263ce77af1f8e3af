"""`chirp move run`: one idempotent command that takes a move from wherever it stands to cut-over.

The operator runs it as a Kubernetes Job (restartPolicy Never, a new pod on failure) and reads the
pod's last log line as JSON, so stdout carries only JSON lines, one per event, flushed:

    {"event": "progress", "step": "copying"|"cutover"|"cutover-retry", "rows_copied": N,
     "rows_total": N, "tables_done": N, "tables_total": N, "lag_bytes": N, "lag_seconds": F,
     "cutover_ready": bool}                      ("cutover-retry" adds "attempt" and "reason")
    {"event": "cut-over", "step": "cut-over", "writes_held_seconds": F|null, "rows_copied": N,
     "rows_total": N}                            (the last line when it exits 0)
    {"event": "failed", "step": "run", "exit_code": 1|2, "reason": "..."}   (exit 1 or 2)

The deciding parts (`next_action`, `progress_line`, `cut_over_line`) are pure; `run_move` is the
loop, doing its I/O through chirp.move.online. Killed anywhere, the same command run again goes on
from the phase recorded on the coordinator.
"""

import json
import sys
import time

from chirp.move import online, steps

START, COPY, CUTOVER, REPORT, REFUSE = "start", "copy", "cutover", "report", "refuse"
RETRY_PAUSE_SECONDS = 1.0


def next_action(phase: str | None) -> tuple[str, str]:
    """What `run` does next in the move's recorded phase: (action, reason when refused)."""
    if phase is None:
        return START, ""
    if phase == steps.COPYING:
        return COPY, ""
    if phase == steps.CUTOVER_COMMITTED:
        return CUTOVER, ""  # killed after the decision: the cutover only finishes
    if phase in (steps.CUT_OVER, steps.COMPLETED):
        return REPORT, ""
    return REFUSE, (f"cannot run a move in phase {phase}: it is being or was reversed "
                    "(finish with `reverse`, then `abort`, and start a new move)")


def _number(value, default):
    return default if value is None else value


def progress_line(status: dict, step: str = steps.COPYING) -> dict:
    """The progress line of a `status` dict, summed over its streams. An unknown lag (a slot or
    a subscription worker not reporting yet) is 0; cutover_ready is false then anyway."""
    streams = (status.get("streams") or {}).values()
    return {"event": "progress", "step": step,
            "rows_copied": int(status.get("rows_copied") or 0),
            "rows_total": int(status.get("rows_total") or 0),
            "tables_done": sum(int(s.get("tables_ready") or 0) for s in streams),
            "tables_total": sum(int(s.get("tables") or 0) for s in streams),
            "lag_bytes": int(_number(status.get("lag_bytes"), 0)),
            "lag_seconds": float(_number(status.get("lag_seconds"), 0.0)),
            "cutover_ready": bool(status.get("cutover_ready"))}


def cut_over_line(status: dict) -> dict:
    """The last line. Rows: those the cutover verified (old side / new side, per table, summed),
    recorded with the decision, so they are known after `complete` too; without that record, the
    status' sums. Writes held: the cutover's locked_seconds as recorded at its end (null when the
    cutover that held them was killed before it could record it)."""
    record = status.get("last_step") or {}
    tables = record.get("tables") or {}
    if tables:
        copied = sum(int(t.get("target_rows") or 0) for t in tables.values())
        total = sum(int(t.get("rows") or 0) for t in tables.values())
    else:
        copied, total = int(status.get("rows_copied") or 0), int(status.get("rows_total") or 0)
    held = record.get("locked_seconds")
    return {"event": "cut-over", "step": steps.CUT_OVER,
            "writes_held_seconds": None if held is None else float(held),
            "rows_copied": copied, "rows_total": total}


def failed_line(exit_code: int, reason: str) -> dict:
    return {"event": "failed", "step": "run", "exit_code": exit_code, "reason": reason}


def emit(line: dict) -> None:
    sys.stderr.flush()  # the pod's log interleaves both streams: keep stderr before the JSON
    print(json.dumps(line), flush=True)


def _log(message: str) -> None:
    print(f"chirp move run: {message}", file=sys.stderr, flush=True)


def _wait_until_ready(move: online.Move, interval: float, ready_timeout: float,
                      out) -> dict:
    """A progress line every `interval` seconds until cutover-ready (or the phase changed)."""
    give_up = time.monotonic() + ready_timeout
    while True:
        polled = time.monotonic()
        status = online.status(move)
        if status["phase"] != steps.COPYING:
            return status
        out(progress_line(status))
        if status["cutover_ready"]:
            return status
        if time.monotonic() > give_up:
            raise online.MoveRefused(f"not cutover-ready after {ready_timeout:g} s (the initial "
                                     "copy is unfinished or the streams lag): look at `status`")
        time.sleep(max(0.0, interval - (time.monotonic() - polled)))


def _cutover(move: online.Move, status: dict, bound_seconds: float, attempts: int,
             ready_timeout: float, out) -> None:
    out(progress_line(status, "cutover"))
    for attempt in range(1, attempts + 1):
        try:
            online.cutover(move, bound_seconds, ready_timeout)
            return
        except online.CutoverAborted as error:
            if attempt >= attempts:
                raise online.CutoverAborted(f"{error} ({attempts} attempts)") from None
            _log(f"cutover attempt {attempt} of {attempts} aborted, the old databases stay "
                 f"live: {error}; retrying")
            time.sleep(RETRY_PAUSE_SECONDS)
            out(dict(progress_line(online.status(move), "cutover-retry"), attempt=attempt,
                     reason=str(error)))


def run_move(move: online.Move, *, progress_interval: float = 2.0, bound_seconds: float = 10.0,
             cutover_attempts: int = 5, ready_timeout: float = 3600.0, out=emit) -> dict:
    """Start (if needed), report the copy, cut over (retried), and print the cut-over line.
    Raises online.MoveRefused (exit 2) or online.CutoverAborted (exit 1)."""
    status = online.status(move)
    for _ in range(8):  # each action moves the phase on (or raises); a few are enough
        action, reason = next_action(status["phase"])
        if action == REFUSE:
            raise online.MoveRefused(reason)
        if action == REPORT:
            line = cut_over_line(status)
            out(line)
            return line
        if action == START:
            status = online.start(move)  # start's refusals: MoveRefused, nothing changed
            continue
        if action == COPY:
            status = _wait_until_ready(move, progress_interval, ready_timeout, out)
            if status["phase"] != steps.COPYING:
                continue  # another runner got further meanwhile
        _cutover(move, status, bound_seconds, max(1, cutover_attempts), ready_timeout, out)
        status = online.status(move)
    raise online.CutoverAborted(f"the move did not reach cut-over (phase {status['phase']})")
