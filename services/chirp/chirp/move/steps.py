"""The step state machine of an online move, pure: given the recorded phase, what may a command do.

    (none) --start--> copying --cutover--> cutover-committed --> cut-over --complete--> completed
                         |                                          |
                       abort                                     reverse
                         v                                          v
                      (none)          reversed <-- reverse-committed

Each arrow's commit point is one row on the coordinator (the first target); a step killed
anywhere is rerun and finishes from where the commit point says it stands.
"""

from dataclasses import dataclass

COPYING = "copying"
CUTOVER_COMMITTED = "cutover-committed"
CUT_OVER = "cut-over"
REVERSE_COMMITTED = "reverse-committed"
REVERSED = "reversed"
COMPLETED = "completed"
PHASES = (COPYING, CUTOVER_COMMITTED, CUT_OVER, REVERSE_COMMITTED, REVERSED, COMPLETED)

COMMANDS = ("start", "status", "cutover", "reverse", "complete", "abort")


@dataclass(frozen=True)
class Decision:
    action: str  # "run": do (or finish) the step; "done": nothing to do; "refuse": error
    reason: str = ""


RUN, DONE = Decision("run"), Decision("done")

# (command, phase or None) -> decision; anything missing is refused with a generic reason.
_TABLE = {
    ("start", None): RUN, ("start", COPYING): RUN,
    ("start", CUTOVER_COMMITTED): DONE, ("start", CUT_OVER): DONE, ("start", COMPLETED): DONE,
    ("cutover", COPYING): RUN, ("cutover", CUTOVER_COMMITTED): RUN,
    ("cutover", CUT_OVER): DONE, ("cutover", COMPLETED): DONE,
    ("reverse", CUT_OVER): RUN, ("reverse", REVERSE_COMMITTED): RUN, ("reverse", REVERSED): DONE,
    ("complete", CUT_OVER): RUN, ("complete", COMPLETED): DONE,
    ("abort", None): DONE, ("abort", COPYING): RUN, ("abort", REVERSED): RUN,
}

_WHY_NOT = {
    "start": "the move was reversed; abort it first, then start a new one on fresh targets",
    "cutover": "no move in progress (start it first), or it was reversed",
    "reverse": "nothing to reverse: the move has not cut over, or it is completed",
    "complete": "only a move that has cut over can be completed",
    "abort": "the move has cut over: run `reverse` to go back (abort only undoes a copy)",
}


def decide(command: str, phase: str | None) -> Decision:
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    if command == "status":
        return RUN
    decision = _TABLE.get((command, phase))
    if decision is not None:
        return decision
    return Decision("refuse", f"cannot {command} a move in phase {phase or 'none'}: "
                              f"{_WHY_NOT[command]}")


def stream_progress(copied: int, total: int, tables_ready: int, tables: int,
                    lag_bytes: int | None, lag_seconds: float | None) -> dict:
    return {"rows_copied": copied, "rows_total": total,
            "tables_ready": tables_ready, "tables": tables,
            "lag_bytes": lag_bytes, "lag_seconds": lag_seconds,
            "initial_copy_done": tables_ready == tables}


def move_progress(move_id: str, phase: str | None, streams: dict[str, dict],
                  ready_lag_bytes: int = 16 * 1024 * 1024) -> dict:
    """The `status` JSON. Cutover-ready: every table copied and every stream close behind."""
    copied = sum(s["rows_copied"] for s in streams.values())
    total = sum(s["rows_total"] for s in streams.values())
    ready = phase == COPYING and bool(streams) and all(
        s["initial_copy_done"] and s["lag_bytes"] is not None and s["lag_bytes"] <= ready_lag_bytes
        for s in streams.values())
    lags = [s["lag_bytes"] for s in streams.values() if s["lag_bytes"] is not None]
    seconds = [s["lag_seconds"] for s in streams.values() if s["lag_seconds"] is not None]
    return {"move_id": move_id, "phase": phase, "rows_copied": copied, "rows_total": total,
            "lag_bytes": max(lags, default=None), "lag_seconds": max(seconds, default=None),
            "cutover_ready": ready, "streams": streams}
