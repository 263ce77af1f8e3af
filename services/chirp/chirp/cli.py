"""`chirp` command: web, worker, migrate, seed, move, load."""

import argparse
import json
import os
import sys
import time

from chirp.config import ConfigError, ignored_variables_warning, load_config
from chirp.load.commands import add_parser as add_load_parser
from chirp.move.commands import add_parser as add_move_parser

# gunicorn calls the app factory itself: no app is built at import time.
GUNICORN_APP = "chirp.app:create_app()"


def _config_or_exit():
    try:
        config = load_config(os.environ)
    except ConfigError as error:
        print(f"chirp: configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    if warning := ignored_variables_warning(config):
        print(f"chirp: warning: {warning}", file=sys.stderr, flush=True)
    return config


def cmd_web(args) -> int:
    """Become gunicorn (exec: it gets the pod's signals itself). Graceful stop is gunicorn's: on
    SIGTERM it stops accepting, finishes in-flight requests within graceful_timeout, exits 0."""
    _config_or_exit()  # a bad configuration stops here, with a clear message and exit code 2
    if args.port:
        os.environ["PORT"] = str(args.port)
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:chirp.gunicorn_conf",
            GUNICORN_APP]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def cmd_worker(args) -> int:
    config = _config_or_exit()
    if not config.broker_url:
        print("chirp: configuration error: CHIRP_BROKER_URL: the worker needs a broker (stage 5)",
              file=sys.stderr)
        return 2
    from chirp.tasks import QUEUE, create_celery

    app = create_celery(config)
    app.worker_main(["worker", "--loglevel=INFO", "-Q", QUEUE,
                     f"--concurrency={args.concurrency}", "-n", f"chirp@{config.pod_name}",
                     "--without-gossip", "--without-mingle"])
    return 0


def _stage_primaries() -> list[str]:
    config = _config_or_exit()
    return list(config.shard_urls) if config.sharded else [config.database_url]


def _migrate_urls(args) -> list[str]:
    return args.url or _stage_primaries()


def cmd_migrate(args) -> int:
    from chirp.db.migrate import DatabaseNotAnswering, migrate, wait_for_database

    def report(url):
        def on_retry(attempt, error, pause):
            reason = " ".join(str(error).split())
            print(f"chirp migrate: {url}: not answering yet (attempt {attempt}: {reason});"
                  f" retrying in {pause:.1f} s", file=sys.stderr, flush=True)
        return on_retry

    deadline = time.monotonic() + args.wait  # one budget for all the databases (stage 5: shards)
    for url in _migrate_urls(args):
        try:
            wait_for_database(url, max(0.0, deadline - time.monotonic()), on_retry=report(url))
        except DatabaseNotAnswering as error:  # told against the whole budget, not what was left
            told = DatabaseNotAnswering(url, args.wait, error.attempts, error.reason)
            print(f"chirp migrate: giving up: {told}", file=sys.stderr, flush=True)
            return 1
        applied = migrate(url)
        print(f"chirp migrate: {url}: applied {applied or 'nothing (up to date)'}", flush=True)
    return 0


def _non_negative_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 <= seconds <= 3600:
        raise argparse.ArgumentTypeError("must be between 0 and 3600 seconds")
    return seconds


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def cmd_seed(args) -> int:
    from chirp.move.seed import SeedPlan, seed

    urls = _split(args.url) if args.url else _stage_primaries()
    plan = SeedPlan(users=args.users, posts_per_user=args.posts, follows_per_user=args.follows,
                    prefix=args.prefix)
    started = time.monotonic()
    counts = seed(urls, plan)
    seconds = time.monotonic() - started
    print(json.dumps({"databases": len(urls), "rows": counts, "seconds": round(seconds, 3)}),
          flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chirp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    web = sub.add_parser("web", help="serve the app with gunicorn (PORT, default 8080)")
    web.add_argument("--port", type=int, default=None)
    web.set_defaults(func=cmd_web)
    worker = sub.add_parser("worker", help="Celery worker (stage 5 fan-out)")
    worker.add_argument("--concurrency", type=int, default=4)
    worker.set_defaults(func=cmd_worker)
    mig = sub.add_parser("migrate", help="apply schema migrations (safe to run concurrently)")
    mig.add_argument("--url", action="append",
                     help="database URL (repeatable); default: the stage's primaries")
    mig.add_argument("--wait", type=_non_negative_seconds, default=0.0, metavar="SECONDS",
                     help="keep trying to connect for up to SECONDS before giving up (default 0: "
                          "one attempt); for init containers that start with their database")
    mig.set_defaults(func=cmd_migrate)
    seed = sub.add_parser("seed", help="fill the stage's databases with users, posts, follows")
    seed.add_argument("--url", help="shard URLs, shard 0 first (default: the stage's primaries)")
    seed.add_argument("--users", type=int, default=1000)
    seed.add_argument("--posts", type=int, default=10, help="posts per user")
    seed.add_argument("--follows", type=int, default=10, help="follows per user")
    seed.add_argument("--prefix", default="seed", help="usernames are PREFIXn")
    seed.set_defaults(func=cmd_seed)
    add_move_parser(sub)
    add_load_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
