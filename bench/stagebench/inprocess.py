"""Where a timeline read's time goes, in-process (BENCH_PROFILE=1): stage 4 against stage 2 on a
fresh copy of the seeded database, one thread, no HTTP and no session: the cost of each way a
stage-4 page is built (cached page, repaired, first page...) with its database queries and Redis
round trips, the functions that took the most time (cProfile), and what (de)serializing a page
costs with the cache's codec against JSON."""

import cProfile
import io
import json
import pstats
import random
import time
from collections import defaultdict

import msgspec
import psycopg

from chirp import reads
from chirp.app import create_app
from chirp.config import load_config
from chirp.metrics import REDIS_ROUND_TRIPS, db_query_count
from chirp.trace import traced
from chirp.writes import create_post

from .dataset import Zipf, username


def _round_trips() -> float:
    return sum(sample.value for metric in REDIS_ROUND_TRIPS.collect()
               for sample in metric.samples if sample.name.endswith("_total"))


def _ops(ids: dict[str, int], users: int, count: int, seed: int, zipf_s: float,
         write_share: float) -> list[tuple[int, int | None]]:
    rng = random.Random(seed)
    zipf = Zipf(users, zipf_s, rng)
    return [(ids[username(zipf.draw())],
             ids[username(zipf.draw())] if rng.random() < write_share else None)
            for _ in range(count)]


def _run(svc, ops, by_path=None) -> None:
    """Each op: a post first (not measured) when drawn, then the reader's home timeline."""
    for reader, author in ops:
        if author is not None:
            create_post(svc, {"id": author}, "bench")
        queries, trips, started = db_query_count(), _round_trips(), time.perf_counter()
        with traced() as trace:
            reads.home_timeline(svc, reader, None, 20)
        if by_path is not None:
            path = by_path[trace.timeline_source]
            path[0] += 1
            path[1] += time.perf_counter() - started
            path[2] += db_query_count() - queries
            path[3] += _round_trips() - trips


def _print_paths(name: str, by_path: dict) -> None:
    total = sum(n for n, *_ in by_path.values())
    seconds = sum(s for _, s, *_ in by_path.values())
    print(f"  {name}: {seconds / total * 1000:.2f} ms per read ({total} reads)")
    for path, (n, sec, queries, trips) in sorted(by_path.items(), key=lambda kv: -kv[1][0]):
        print(f"    {path:<36} {n / total:6.1%} {sec / n * 1000:6.2f} ms"
              f"  DB {queries / n:.2f}  Redis round trips {trips / n:.2f}")


def _codec_cost(page: list[dict]) -> str:
    blob, text = msgspec.msgpack.encode(page), json.dumps(page)
    decode = msgspec.msgpack.Decoder().decode
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        decode(blob)
    msgpack_us = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    for _ in range(rounds):
        json.loads(text)
    json_us = (time.perf_counter() - started) / rounds * 1e6
    return (f"  decoding a page of {len(page)} posts: MessagePack (msgspec) {msgpack_us:.1f} us"
            f" ({len(blob)} bytes), JSON {json_us:.1f} us ({len(text)} bytes)")


def profile_paths(database_url: str, redis_url: str, plan, warmup: int, measured: int,
                  write_share: float, secret: str) -> None:
    with psycopg.connect(database_url) as conn:
        ids = dict(conn.execute("SELECT username, id FROM users").fetchall())
    base = {"CHIRP_SECRET_KEY": secret, "POD_NAME": "bench-inprocess",
            "CHIRP_DATABASE_URL": database_url}
    four = create_app(load_config(dict(base, CHIRP_STAGE="4", CHIRP_REDIS_URL=redis_url)))
    two = create_app(load_config(dict(base, CHIRP_STAGE="2")))
    ops = _ops(ids, plan.users, measured, 3, plan.zipf_s, write_share)
    by_four, by_two = defaultdict(lambda: [0, 0.0, 0, 0]), defaultdict(lambda: [0, 0.0, 0, 0])
    profile = cProfile.Profile()
    with four.app_context():
        svc = four.extensions["chirp"]
        _run(svc, _ops(ids, plan.users, warmup, 2, plan.zipf_s, write_share))
        profile.enable()
        _run(svc, ops, by_four)
        profile.disable()
        page = reads.home_timeline(svc, ops[0][0], None, 20)
    with two.app_context():
        _run(two.extensions["chirp"], ops, by_two)
    print(f"\nIn-process cost of a timeline read (one thread, no HTTP/session; {measured} reads"
          f" after {warmup}):")
    _print_paths("stage 4", by_four)
    _print_paths("stage 2", by_two)
    print(_codec_cost(page))
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(12)
    print("  stage 4, most time by function (cProfile, tottime):")
    print("\n".join("    " + line for line in out.getvalue().splitlines()
                    if line.strip() and "function calls" not in line))
