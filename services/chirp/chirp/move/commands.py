"""`chirp move start|status|cutover|reverse|complete|abort|run --from URL[,URL] --to URL[,URL]`.

Prints the move's JSON status on stdout, progress on stderr (`run`: JSON lines, see
chirp.move.run). Exit 0: done (or nothing to do); 1: the cutover/reverse could not finish within
its bound (the old side stayed live; rerun); 2: refused (bad request, or the step does not fit
the move's phase; nothing changed).
"""

import argparse
import json
import sys
import traceback

import psycopg

from chirp.move import online
from chirp.move import run as run_step


def _urls(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _run_to_cut_over(args) -> int:
    """`chirp move run`: every outcome ends with one JSON line on stdout (see chirp.move.run)."""
    def failed(code: int, message: str) -> int:
        print(f"chirp move run: {message}", file=sys.stderr, flush=True)
        run_step.emit(run_step.failed_line(code, message))
        return code

    try:
        move = online.open_move(_urls(args.source), _urls(args.target), args.wait_for_databases)
    except online.DatabaseUnreachable as error:  # not yet routable: a new pod tries again
        return failed(1, str(error))
    except online.MoveRefused as error:
        return failed(2, f"refused: {error}")
    except psycopg.Error as error:  # e.g. a migration cut short: a new pod reruns it
        traceback.print_exc()
        return failed(1, f"database error: {type(error).__name__}: {str(error).strip()}")
    try:
        run_step.run_move(move, progress_interval=args.progress_interval,
                          bound_seconds=args.bound_seconds,
                          cutover_attempts=args.cutover_attempts, ready_timeout=args.ready_timeout)
    except online.MoveRefused as error:
        return failed(2, f"refused: {error}")
    except online.CutoverAborted as error:
        return failed(1, f"aborted, the old databases stay live: {error}")
    except psycopg.Error as error:  # a database went away: a new pod reruns from the top
        traceback.print_exc()
        return failed(1, f"database error: {type(error).__name__}: {str(error).strip()}")
    finally:
        move.close()
    return 0


def run(args) -> int:
    if args.step == "run":
        return _run_to_cut_over(args)
    try:
        move = online.open_move(_urls(args.source), _urls(args.target), args.wait_for_databases)
    except online.DatabaseUnreachable as error:
        # a person's `start` is refused; a step an operator's Job runs fails so a new pod retries
        print(f"chirp move {args.step}: {error}", file=sys.stderr)
        return 2 if args.step == "start" else 1
    except online.MoveRefused as error:
        print(f"chirp move {args.step}: refused: {error}", file=sys.stderr)
        return 2
    try:
        if args.step == "cutover":
            result = online.cutover(move, args.bound_seconds, args.ready_timeout)
        elif args.step == "reverse":
            result = online.reverse(move, args.bound_seconds)
        else:
            result = {"start": online.start, "status": online.status,
                      "complete": online.complete, "abort": online.abort}[args.step](move)
    except online.MoveRefused as error:
        print(f"chirp move {args.step}: refused: {error}", file=sys.stderr)
        return 2
    except online.CutoverAborted as error:
        print(f"chirp move {args.step}: aborted, the old databases stay live: {error}",
              file=sys.stderr)
        return 1
    finally:
        move.close()
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0


RUN_HELP = """\
run: one idempotent command from wherever the move stands to cut-over (what the operator's Job
runs): start if not started (start's refusals, exit 2), print a JSON progress line every
--progress-interval s while copying, cut over once ready (bounded by --bound-seconds, tried
--cutover-attempts times; still aborted: exit 1, the old side stays live), then print
{"event": "cut-over", "writes_held_seconds": ..., "rows_copied": ..., "rows_total": ...} as the
last line and exit 0. On a move already cut over or completed it prints that line at once; killed
anywhere, rerun it. stdout holds JSON lines only (the last one {"event": "failed", ...} on
exit 1/2); see docs/moves.md.
"""


def add_parser(sub) -> None:
    move = sub.add_parser("move", help="online copy / reshard / merge (writes go on)",
                          description="Online data moves; see docs/moves.md.\n\n" + RUN_HELP,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    move.add_argument("step", choices=("start", "status", "cutover", "reverse", "complete",
                                       "abort", "run"))
    move.add_argument("--from", dest="source", required=True, help="source URL(s), shard 0 first")
    move.add_argument("--to", dest="target", required=True, help="target URL(s), shard 0 first")
    move.add_argument("--wait-for-databases", type=float, default=online.OPEN_PATIENCE_SECONDS,
                      metavar="SECONDS", help="how long to keep trying to reach every database "
                      f"when the step starts (default {online.OPEN_PATIENCE_SECONDS:g})")
    move.add_argument("--bound-seconds", type=float, default=10.0,
                      help="cutover/reverse/run: give up (old side stays live) after this long")
    move.add_argument("--ready-timeout", type=float, default=3600.0,
                      help="cutover, run: wait this long for the initial copy to finish")
    move.add_argument("--progress-interval", type=float, default=2.0,
                      help="run: seconds between JSON progress lines while copying")
    move.add_argument("--cutover-attempts", type=int, default=5,
                      help="run: cutover attempts before giving up with exit 1")
    move.set_defaults(func=run)

