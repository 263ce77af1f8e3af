"""Online move figures (`chirp move`), measured on three separate Postgres servers started here
(the test fixtures used as a library): a single primary resharded into 2 shards while 4 writer
threads post and follow, following the routing contract (chirp.move.handoff).

Workload: `chirp seed` (COPY) of BENCH_MOVE_USERS users (default 20,000) with 10 posts and 10
follows each, then writers for 3 s before the move, during the copy and through the cutover.

Prints:
  - seed rate (rows/s, COPY)
  - copy rate (rows/s of the initial copy) and time from `start` to cutover-ready
  - the cutover: its time before the lock (undo streams, checksums of every row), writes held
    (tables locked: catch-up, verification of the rows written since, undo positions) and the
    longest write wait around it
  - p50/p99 write latency before the move vs during the copy
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))

from chirp.move.seed import SeedPlan, seed  # noqa: E402
from tests.fixtures.postgres import SeparateServers  # noqa: E402
from tests.services.test_online_moves import Traffic, query  # noqa: E402

USERS = int(os.environ.get("BENCH_MOVE_USERS", "20000"))
BEFORE_SECONDS = 3.0


def chirp_move(step: str, sources: list[str], targets: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-m", "chirp.cli", "move", step, "--from",
                             ",".join(sources), "--to", ",".join(targets)],
                            capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"chirp move {step} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def between(latencies, start: float, end: float) -> list[float]:
    return [seconds for finished, seconds in latencies if start <= finished < end]


def main() -> None:
    servers = SeparateServers.start(3)
    try:
        (src_server, src), (t0_server, t0), (t1_server, t1) = servers.create_databases(3)
        source = src_server.url(src)
        targets = [t0_server.url(t0), t1_server.url(t1)]
        started = time.monotonic()
        counts = seed([source], SeedPlan(users=USERS, posts_per_user=10, follows_per_user=10))
        seeded = sum(counts.values())
        seed_seconds = time.monotonic() - started
        users = [uid for (uid,) in query(source, "SELECT id FROM users ORDER BY id LIMIT 2000")]

        traffic = Traffic([source], users, pause=0.005)
        time.sleep(BEFORE_SECONDS)
        copy_started = time.monotonic()
        chirp_move("start", [source], targets)
        while True:
            status = chirp_move("status", [source], targets)
            if status["cutover_ready"]:
                break
            time.sleep(0.2)
        ready_at = time.monotonic()
        cutover_started = time.monotonic()
        cutover = chirp_move("cutover", [source], targets)["cutover"]
        cutover_ended = time.monotonic()
        time.sleep(1.0)
        result = traffic.finish()
        chirp_move("complete", [source], targets)

        latencies = result["latencies"]
        before = between(latencies, 0, copy_started)
        during = between(latencies, copy_started, ready_at)
        around = between(latencies, cutover_started, cutover_ended + 1.0)
        ready_seconds = ready_at - copy_started
        print(f"seeded {seeded:,} rows in {seed_seconds:.1f} s "
              f"({seeded / seed_seconds:,.0f} rows/s, COPY)")
        print(f"initial copy: {status['rows_total']:,} rows, cutover-ready after "
              f"{ready_seconds:.1f} s ({status['rows_total'] / ready_seconds:,.0f} rows/s)")
        print(f"cutover: {cutover_ended - cutover_started:.1f} s in all, of which before the lock"
              f" {cutover['prepare_seconds']:.3f} s (undo streams, checksums of every row);"
              f" writes held {cutover['locked_seconds']:.3f} s (locks + catch-up "
              f"{cutover['catch_up_seconds']:.3f} s, verify {cutover['verify_seconds']:.3f} s"
              f" re-reading {cutover['rechecked_keys']} keys written since the checksums,"
              f" undo positions {cutover['undo_slots_seconds']:.3f} s), longest write wait "
              f"{max(around, default=0):.3f} s; failed writes: {len(result['failures'])}")
        print(f"write latency p50/p99: before {percentile(before, .5) * 1000:.1f}/"
              f"{percentile(before, .99) * 1000:.1f} ms, during the copy "
              f"{percentile(during, .5) * 1000:.1f}/{percentile(during, .99) * 1000:.1f} ms "
              f"({len(before)} / {len(during)} writes)")
    finally:
        servers.stop()


if __name__ == "__main__":
    main()
