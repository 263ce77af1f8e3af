"""`chirp load`: drive Chirp through its JSON API and verify every acknowledged write.

Prints JSON lines on stdout: `start`, a `tick` per second, `verifying`, and last the `summary`
(docs/load.md). Exit 0: every acknowledged write was read back exactly once; 1: some were lost,
duplicated, renumbered, or could not be read back.
"""

import argparse
import os

DEFAULT_URL = "http://chirp"  # the front-door Service of the ScaleStage `chirp`


def _positive(kind):
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
        if number <= 0:
            raise argparse.ArgumentTypeError("must be more than 0")
        return number
    return parse


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return seconds


def _mix(value: str) -> dict[str, int]:
    from chirp.load.plan import parse_mix

    try:
        return parse_mix(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parser(sub) -> None:
    load = sub.add_parser("load", help="load the app through its API; verify no write is lost",
                          description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    load.add_argument("--url", default=os.environ.get("CHIRP_LOAD_URL", DEFAULT_URL),
                      help=f"the app's front door (default: $CHIRP_LOAD_URL or {DEFAULT_URL})")
    load.add_argument("--users", type=_positive(int), default=4,
                      help="users signed up for this run (default 4)")
    load.add_argument("--concurrency", type=_positive(int), default=4,
                      help="requests in flight at once (worker threads; default 4)")
    load.add_argument("--rate", type=_positive(float), default=None, metavar="REQ_PER_S",
                      help="total requests per second (default: as fast as the workers go)")
    load.add_argument("--duration", type=_seconds, default=60.0, metavar="S",
                      help="seconds of load (default 60; 0: until stopped)")
    load.add_argument("--stop-file", metavar="PATH",
                      help="stop (then verify) when this file appears; SIGTERM/SIGINT do too")
    load.add_argument("--timeout", type=_positive(float), default=10.0, metavar="S",
                      help="per request (default 10); a write without an answer is 'unknown'")
    load.add_argument("--mix", type=_mix, default=None,
                      help="weights, default timeline=40,public=30,post=25,follow=5")
    load.add_argument("--verify-timeout", type=_seconds, default=30.0, metavar="S",
                      help="how long verification re-reads while writes look lost or reads "
                           "fail (default 30)")
    load.add_argument("--seed", type=int, default=None, help="random seed of the request mix")
    load.set_defaults(func=run)


def run(args) -> int:
    from chirp.load.plan import DEFAULT_MIX
    from chirp.load.run import Options, main

    return main(Options(url=args.url, users=args.users, concurrency=args.concurrency,
                        rate=args.rate, duration=args.duration, stop_file=args.stop_file,
                        timeout=args.timeout, mix=args.mix or dict(DEFAULT_MIX),
                        verify_timeout=args.verify_timeout, seed=args.seed))
