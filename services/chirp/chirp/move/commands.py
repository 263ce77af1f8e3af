"""`chirp move start|status|cutover|reverse|complete|abort --from URL[,URL] --to URL[,URL]`.

Prints the move's JSON status on stdout, progress on stderr. Exit 0: done (or nothing to do);
1: the cutover/reverse could not finish within its bound (the old side stayed live; rerun);
2: refused (bad request, or the step does not fit the move's phase; nothing changed).
"""

import json
import sys

from chirp.move import online


def _urls(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def run(args) -> int:
    try:
        move = online.open_move(_urls(args.source), _urls(args.target))
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


def add_parser(sub) -> None:
    move = sub.add_parser("move", help="online copy / reshard / merge (writes go on)")
    move.add_argument("step", choices=("start", "status", "cutover", "reverse", "complete",
                                       "abort"))
    move.add_argument("--from", dest="source", required=True, help="source URL(s), shard 0 first")
    move.add_argument("--to", dest="target", required=True, help="target URL(s), shard 0 first")
    move.add_argument("--bound-seconds", type=float, default=10.0,
                      help="cutover/reverse: give up (old side stays live) after this long")
    move.add_argument("--ready-timeout", type=float, default=3600.0,
                      help="cutover: wait this long for the initial copy to finish")
    move.set_defaults(func=run)

