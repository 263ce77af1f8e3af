"""`chirp` command: web, worker, migrate, copy, reshard, merge."""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

from chirp.config import ConfigError, load_config


def _config_or_exit():
    try:
        return load_config(os.environ)
    except ConfigError as error:
        print(f"chirp: configuration error: {error}", file=sys.stderr)
        sys.exit(2)


def cmd_web(args) -> int:
    """gunicorn under a small supervisor that implements the drain: on SIGTERM, /readyz fails at
    once while requests keep being served for CHIRP_DRAIN_SECONDS (endpoints drop the pod), then
    gunicorn stops gracefully, finishing in-flight requests."""
    config = _config_or_exit()
    drain_file = os.path.join(tempfile.mkdtemp(prefix="chirp-web-"), "draining")
    env = dict(os.environ, CHIRP_DRAIN_FILE=drain_file)
    if args.port:
        env["PORT"] = str(args.port)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:chirp.gunicorn_conf", "chirp.wsgi:app"],
        env=env,
    )
    stopping = []

    def on_term(signum, _frame):
        if stopping:
            return
        stopping.append(signum)
        open(drain_file, "w").close()
        print(f"chirp web: signal {signum}: readiness off, draining {config.drain_seconds}s",
              file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while server.poll() is None:
        if stopping:
            time.sleep(config.drain_seconds)
            server.send_signal(signal.SIGTERM)
            return server.wait()
        time.sleep(0.1)
    return server.returncode


def cmd_worker(args) -> int:
    config = _config_or_exit()
    if not config.broker_url:
        print("chirp: configuration error: CHIRP_BROKER_URL: the worker needs a broker (stage 5)",
              file=sys.stderr)
        return 2
    from chirp.tasks import celery_for

    app = celery_for(config)
    app.worker_main(["worker", "--loglevel=INFO", "-Q", "chirp", "--pool=threads",
                     f"--concurrency={args.concurrency}", "-n", f"chirp@{config.pod_name}",
                     "--without-gossip", "--without-mingle"])
    return 0


def _migrate_urls(args) -> list[str]:
    if args.url:
        return args.url
    config = _config_or_exit()
    return list(config.shard_urls) if config.sharded else [config.database_url]


def cmd_migrate(args) -> int:
    from chirp.db.migrate import migrate

    for url in _migrate_urls(args):
        applied = migrate(url)
        print(f"chirp migrate: {url}: applied {applied or 'nothing (up to date)'}")
    return 0


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def cmd_move(args) -> int:
    from chirp.move.engine import MoveRefused, print_summary, run_move

    sources, targets = _split(args.source), _split(args.target)
    shapes = {"copy": (len(sources) == 1 and len(targets) == 1, "one --from and one --to"),
              "reshard": (len(sources) >= 1 and len(targets) >= 2, "--to with two or more URLs"),
              "merge": (len(sources) >= 2 and len(targets) == 1,
                        "--from with two or more URLs and one --to")}
    valid, expected = shapes[args.command]
    if not valid:
        print(f"chirp {args.command}: expected {expected}", file=sys.stderr)
        return 2
    try:
        summary = run_move(args.command, sources, targets, batch_size=args.batch_size,
                           throttle_seconds=args.throttle_ms / 1000, overwrite=args.overwrite)
    except MoveRefused as error:
        print(f"chirp {args.command}: refused: {error}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0 if summary["ok"] else 1


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
    mig.set_defaults(func=cmd_migrate)
    for name, text in (("copy", "copy one database into another (stage 1<->2)"),
                       ("reshard", "split into N shards by bucket (stage 4->5)"),
                       ("merge", "merge shards into one database (stage 5->4)")):
        move = sub.add_parser(name, help=text)
        move.add_argument("--from", dest="source", required=True, help="source URL(s), comma-separated")
        move.add_argument("--to", dest="target", required=True, help="target URL(s), shard 0 first")
        move.add_argument("--batch-size", type=int, default=1000)
        move.add_argument("--throttle-ms", type=int, default=0, help="pause between batches")
        move.add_argument("--overwrite", action="store_true",
                          help="allow replacing a live (unfenced) target that holds data")
        move.set_defaults(func=cmd_move)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
