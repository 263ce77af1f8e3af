"""Chirp's stage figures on a seeded dataset, measured on real services started here (Postgres
primary + 2 streaming replicas, Redis, `chirp web` under gunicorn, a Celery worker at stage 5).

Dataset (bench/stagebench/dataset.py): BENCH_USERS users (default 100,000), 10 posts each (1M),
20 follows each drawn by Zipf(1.1) popularity; stage 5 has the same rows split over 2 shards.
Seeding takes minutes: set BENCH_DATA_DIR to keep the cluster between runs.

Load (bench/stagebench/client.py): 4 client threads with keep-alive connections; readers drawn
from Zipf(1.1) over all users, 2 % of operations are a post by a Zipf-drawn author first
(invalidations, read-your-writes). The same operations at every stage. Stages 2-4 run side by side
and take turns, ROUND operations each, so that load from other work on the machine falls on all of
them alike; stage 5 (its fan-out worker would load the machine) runs afterwards, alone. Per stage:
  cold   the first BENCH_MEASURED operations (default 1,000) after the web process (and Redis)
         started empty
  warm   BENCH_MEASURED operations after BENCH_WARMUP more (default 10,000, every stage alike)
  paced  BENCH_MEASURED more at a load every stage of the group carries (half the slowest one's
         warm req/s), open loop: each sent when due, latency counted from then. Closed-loop
         latency at full load is the client's threads over req/s; this is what a user waits for
         at a load the stage is not saturated by, where what it does per read shows.
Each stage writes into its own copy of the seeded databases (CREATE DATABASE ... TEMPLATE), so
the posts of one stage or of an earlier run never change what another stage reads.
Figures per timeline read: req/s, latency p50/p95/p99 (client side), database read queries and
Redis round trips (from the app's /metrics: chirp_db_queries_total, chirp_redis_round_trips_total;
the posts' share included), cache hit ratio (X-Chirp-Cache: hit, i.e. no database query) and how
the timelines were built (X-Chirp-Timeline); then the CPU milliseconds each server spent per read
(bench/stagebench/cpu.py: the web process, Postgres with all its backends, Redis, this client),
measured over the stretches each stage ran alone.

BENCH_PROFILE=1 adds where the web process's CPU goes, by part of a request (py-spy samples each
web process over 3 x BENCH_MEASURED more warm operations, a phase apart:
bench/stagebench/sampling.py), and at the end where a timeline read's time goes in-process (stage
4's ways of building a page against stage 2's query, cProfile, the codec's cost:
bench/stagebench/inprocess.py).

Goals (issue 15): stage 4 warm p50 and p95 <= 70 % of stage 2's, req/s >= 1.3x stage 2's, DB reads
<= 20 % of stage 2's; stage 4 cold never slower than stage 2 by more than 20 %.
"""

import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))
sys.path.append(str(ROOT / "bench"))

from stagebench.client import Client, PhaseResult, draw_ops  # noqa: E402
from stagebench.cpu import CpuMeter  # noqa: E402
from stagebench.dataset import (  # noqa: E402
    Plan,
    close_cluster,
    drop_copies,
    open_cluster,
    working_copies,
)
from stagebench.inprocess import profile_paths  # noqa: E402
from stagebench.sampling import Sampler  # noqa: E402

from tests.fixtures import processes  # noqa: E402
from tests.fixtures.redis import RedisServer  # noqa: E402

PLAN = Plan(users=int(os.environ.get("BENCH_USERS", "100000")), posts_each=10, follows_each=20,
            shards=2, zipf_s=1.1)
WRITE_SHARE = 0.02
WARMUP = int(os.environ.get("BENCH_WARMUP", "10000"))
MEASURED = int(os.environ.get("BENCH_MEASURED", "1000"))
PACED_LOAD = 0.5  # of the group's slowest warm req/s: the paced phase's load
SAMPLED = 3 * MEASURED  # BENCH_PROFILE=1: operations sampled by py-spy (thousands of stacks)
STAGES = [s for s in os.environ.get("BENCH_STAGES", "2,3,4,5").split(",") if s]
DATA_DIR = os.environ.get("BENCH_DATA_DIR")
PROFILE = os.environ.get("BENCH_PROFILE") == "1"  # also where a read's time goes, in-process
CLIENT_THREADS = 4
PHASES = ("cold", "warm", "paced")  # reported, in this order
ROUND = 100  # operations a stage takes in turn (interleaved_phase)
SECRET = "bench-secret-key-0123456789"


# --- the app's counters ---------------------------------------------------------------------------
def counters(base: str) -> dict[tuple[str, str], float]:
    """(metric, route or client) -> value, for DB read queries and Redis round trips."""
    text = requests.get(base + "/metrics", timeout=10).text
    found = {}
    for name, labels, value in re.findall(r"^(\w+)\{([^}]*)\} (\S+)$", text, re.M):
        tags = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if name == "chirp_db_queries_total" and tags.get("kind") == "read":
            found[("db", tags["route"])] = float(value)
        elif name == "chirp_redis_round_trips_total":
            found[("redis", tags["client"])] = float(value)
    return found


def delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after}


# --- processes ------------------------------------------------------------------------------------
def spawn_chirp(args: list[str], env: dict, log_path: str):
    full = dict(os.environ, **env, CHIRP_SECRET_KEY=SECRET)
    return processes.spawn([sys.executable, "-m", "chirp.cli", *args], log_path, env=full)


def start_web(env: dict, log_dir: str, name: str):
    port = processes.free_port()
    proc = spawn_chirp(["web"], dict(env, PORT=str(port), POD_NAME=f"bench-{name}"),
                       os.path.join(log_dir, f"{name}.log"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(base + "/readyz", timeout=5).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"chirp web ({name}) did not start; see {log_dir}/{name}.log")
        time.sleep(0.2)


def start_worker(env: dict, log_dir: str):
    log_path = os.path.join(log_dir, "worker.log")
    proc = spawn_chirp(["worker", "--concurrency", "2"], env, log_path)
    deadline = time.monotonic() + 120
    while "ready." not in Path(log_path).read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"chirp worker did not start; see {log_path}")
        time.sleep(0.2)
    return proc


# --- stages measured side by side ---------------------------------------------------------------
@dataclass(frozen=True)
class Running:
    """A stage's web server as the bench drives it."""

    client: Client
    base: str  # the server's URL
    pids: dict[str, list[int]]  # server ("web", "postgres", ...) -> its processes, for their CPU


def percentile(latencies: list[float], p: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def summarize(result, used: dict, cpu: CpuMeter) -> dict:
    db = {route: v for (kind, route), v in used.items() if kind == "db"}
    p50_by_source = {source: percentile(latencies, 0.5)
                     for source, latencies in result.by_source.items()}
    return {"rps": result.reads / result.seconds, "p50": percentile(result.latencies_ms, 0.50),
            "p95": percentile(result.latencies_ms, 0.95),
            "p99": percentile(result.latencies_ms, 0.99), "p50_by_source": p50_by_source,
            "db": sum(db.values()) / result.reads, "routes": db,
            "redis": sum(v for (kind, _), v in used.items() if kind == "redis") / result.reads,
            "hit": result.cache.get("hit", 0) / result.reads, "sources": result.sources,
            "cpu": cpu.per(result.reads)}


def interleaved_phase(running: dict[str, Running], plans, tag: str,
                      log_dir: str | None = None, rate: float | None = None) -> dict:
    """The same operations at each running stage, in rounds of ROUND operations taken by each
    stage in turn: load from other work on the machine falls on every stage alike. With log_dir,
    py-spy samples each web process meanwhile (sampling.py): its parts under "parts". With rate,
    operations are sent at that many a second (client.py: open loop)."""
    for run in running.values():
        run.client.log_in_for(plans)  # not part of what is measured
    before = {stage: counters(run.base) for stage, run in running.items()}
    totals = {stage: PhaseResult(0.0) for stage in running}
    meters = {stage: CpuMeter(run.pids) for stage, run in running.items()}
    samplers = {stage: Sampler(run.pids["web"][0], os.path.join(log_dir, f"stage{stage}.spy"))
                for stage, run in running.items()} if log_dir else {}
    per_thread = ROUND // CLIENT_THREADS
    for start in range(0, len(plans[0]), per_thread):
        chunk = [plan[start:start + per_thread] for plan in plans]
        for stage, run in running.items():
            totals[stage].add(meters[stage].measure(run.client.run, chunk,
                                                    f"s{stage}-{tag}-{start}", rate))
    results = {}
    for stage, run in running.items():
        if totals[stage].errors:
            print(f"    stage {stage} {tag}: {len(totals[stage].errors)} failed requests:"
                  f" {totals[stage].errors[:5]}")
        results[stage] = summarize(totals[stage], delta(counters(run.base), before[stage]),
                                   meters[stage])
        if stage in samplers:
            results[stage]["parts"] = samplers[stage].stop()
    return results


def measure_group(stages: list[str], envs: dict, log_dir: str, servers: dict[str, list[int]],
                  ops) -> dict:
    """Cold, then (after the caches' warm-up) warm figures of stages run side by side.
    servers: the pids of the shared servers (Postgres, Redis), for their CPU."""
    procs, running = [], {}
    try:
        for stage in stages:
            if "CHIRP_REDIS_URL" in envs[stage]:  # a cold cache, no old sessions
                redis.Redis.from_url(envs[stage]["CHIRP_REDIS_URL"]).flushdb()
            pids = dict(servers)
            if stage == "5":
                worker = start_worker(envs[stage], log_dir)
                procs.append(worker)
                pids["worker"] = [worker.pid]
            proc, base = start_web(envs[stage], log_dir, f"stage{stage}")
            procs.append(proc)
            running[stage] = Running(Client(base, CLIENT_THREADS), base,
                                     {"web": [proc.pid], **pids})
        cold = interleaved_phase(running, ops["cold"], "cold")
        # Every stage takes the warm-up (not reported): the same posts land in every copy.
        interleaved_phase(running, ops["warmup"], "warmup")
        warm = interleaved_phase(running, ops["warm"], "warm")
        rate = PACED_LOAD * min(r["rps"] for r in warm.values())
        paced = interleaved_phase(running, ops["paced"], "paced", rate=rate)
        measured = {stage: {"cold": cold[stage], "warm": warm[stage],
                            "paced": dict(paced[stage], rate=rate)} for stage in stages}
        if PROFILE:  # sampled apart: py-spy's own CPU must not weigh on the figures above
            sampled = interleaved_phase(running, ops["sampled"], "sampled", log_dir)
            for stage in stages:
                measured[stage]["sampled"] = sampled[stage]
        return measured
    finally:
        for proc in reversed(procs):
            processes.stop(proc)


def stage_envs(cluster, redis_server, copies: dict[str, list[str]]) -> dict[str, dict]:
    def urls(stage: str, server=None) -> str:
        return ",".join((server or cluster.primary).url(name) for name in copies.get(stage, []))

    return {
        "2": {"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": urls("2")},
        "3": {"CHIRP_STAGE": "3", "CHIRP_DATABASE_URL": urls("3"),
              "CHIRP_REPLICA_URLS": ",".join(urls("3", r) for r in cluster.replicas)},
        "4": {"CHIRP_STAGE": "4", "CHIRP_DATABASE_URL": urls("4"),
              "CHIRP_REPLICA_URLS": ",".join(urls("4", r) for r in cluster.replicas),
              "CHIRP_REDIS_URL": redis_server.url(0)},
        "5": {"CHIRP_STAGE": "5", "CHIRP_SHARD_URLS": urls("5"),
              "CHIRP_SHARD_REPLICA_URLS": ",".join(
                  cluster.replicas[k % 2].url(name) for k, name in enumerate(copies.get("5", []))),
              "CHIRP_BROKER_URL": redis_server.url(1), "CHIRP_REDIS_URL": redis_server.url(2)},
    }


# --- report ---------------------------------------------------------------------------------------
def row(stage: str, name: str, r: dict) -> str:
    sources = ", ".join(f"{k} {v}" for k, v in sorted(r["sources"].items(), key=lambda kv: -kv[1])
                        if k != "-")
    return (f"  {stage:>5} {name:<5} {r['rps']:7.0f} {r['p50']:7.2f} {r['p95']:7.2f}"
            f" {r['p99']:7.2f} {r['db']:8.3f} {r['redis']:8.2f} {r['hit']:6.1%}  {sources}")


def report_parts(results: dict) -> None:
    """The web process's CPU per read by part, from the sampled phase (sampling.py)."""
    sampled = {stage: r["sampled"] for stage, r in results.items() if "sampled" in r}
    parts = list(dict.fromkeys(part for r in sampled.values() for part in r["parts"]))
    print(f"  The web process's CPU per timeline read by part (ms; py-spy, {SAMPLED} more"
          " warm operations)")
    print(f"  {'part':<34}" + "".join(f" {'stage ' + stage:>9}" for stage in sampled))
    for part in parts:
        print(f"  {part:<34}" + "".join(
            f" {r['parts'].get(part, 0.0) * r['cpu']['web']:9.2f}" for r in sampled.values()))
    print(f"  {'all (the web process, cpu.py)':<34}"
          + "".join(f" {r['cpu']['web']:9.2f}" for r in sampled.values()))


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(results: dict) -> None:
    print()
    print(f"Chirp stage figures: {PLAN.users} users, {PLAN.users * PLAN.posts_each} posts,"
          f" {PLAN.follows_each} Zipf({PLAN.zipf_s}) follows each; Zipf readers, 2 % posts;"
          f" {CLIENT_THREADS} client threads; cold = first {MEASURED} ops, warm = {MEASURED} ops"
          f" after {WARMUP} more; paced = {MEASURED} ops at {PACED_LOAD:.0%} of the slowest"
          " stage's warm req/s, open loop")
    print("  stage phase    req/s p50(ms) p95(ms) p99(ms) DBreads/r Redis/r   hit"
          "   timelines built")
    for stage, r in results.items():
        for name in PHASES:
            print(row(stage, name, r[name]))
    print("  CPU per timeline read (ms): the stage's servers while it ran alone")
    print("  stage phase      web  worker postgres   redis  client")
    for stage, r in results.items():
        for name in PHASES:
            cpu = r[name]["cpu"]
            worker = f"{cpu['worker']:7.2f}" if "worker" in cpu else "      -"
            print(f"  {stage:>5} {name:<5} {cpu['web']:7.2f} {worker} {cpu['postgres']:8.2f}"
                  f" {cpu['redis']:7.2f} {cpu['client']:7.2f}")
    print("  paced: p50 (ms) by how the timeline was built (X-Chirp-Timeline), share of reads")
    for stage, r in results.items():
        paced = r["paced"]
        print(f"  {stage:>5}  " + ", ".join(
            f"{source} {p50:.2f} ({paced['sources'][source] / sum(paced['sources'].values()):.0%})"
            for source, p50 in sorted(paced["p50_by_source"].items(),
                                      key=lambda kv: -paced["sources"][kv[0]])))
    if any("sampled" in r for r in results.values()):
        report_parts(results)
    if "3" in results:
        routes = results["3"]["warm"]["routes"]
        share = sum(v for k, v in routes.items() if k.startswith("replica")) / max(
            sum(routes.values()), 1)
        print(f"  stage 3 reads served by replicas: {share:.1%}"
              f" (goal >= 80%: {verdict(share >= 0.8)})")
    if "2" in results and "4" in results:
        two, four = results["2"], results["4"]
        w2, w4 = two["warm"], four["warm"]
        p2, p4 = two["paced"], four["paced"]
        checks = [
            ("warm p50", w4["p50"] / w2["p50"], "<= 70%", w4["p50"] <= 0.7 * w2["p50"]),
            ("warm p95", w4["p95"] / w2["p95"], "<= 70%", w4["p95"] <= 0.7 * w2["p95"]),
            ("warm req/s", w4["rps"] / w2["rps"], ">= 130%", w4["rps"] >= 1.3 * w2["rps"]),
            ("paced p50", p4["p50"] / p2["p50"], "<= 70%", p4["p50"] <= 0.7 * p2["p50"]),
            ("paced p95", p4["p95"] / p2["p95"], "<= 70%", p4["p95"] <= 0.7 * p2["p95"]),
            ("warm DB reads", w4["db"] / w2["db"], "<= 20%", w4["db"] <= 0.2 * w2["db"]),
            ("cold p50", four["cold"]["p50"] / two["cold"]["p50"], "<= 120%",
             four["cold"]["p50"] <= 1.2 * two["cold"]["p50"]),
            ("cold req/s", four["cold"]["rps"] / two["cold"]["rps"], ">= 83%",
             four["cold"]["rps"] >= two["cold"]["rps"] / 1.2),
        ]
        print(f"  stage 4 against stage 2 (paced: both at {p2['rate']:.0f} reads/s):")
        for name, ratio, goal, ok in checks:
            print(f"    {name:<14} {ratio:7.1%} of stage 2 (goal {goal}: {verdict(ok)})")


def main() -> None:
    log_dir = tempfile.mkdtemp(prefix="chirp-bench-")
    print(f"Postgres (primary + 2 replicas) and Redis; logs in {log_dir}", flush=True)
    started = time.perf_counter()
    cluster, seeded = open_cluster(PLAN, DATA_DIR)
    print(f"{'seeded' if seeded else 'reused the data in ' + str(DATA_DIR) + ':'} {PLAN.users}"
          f" users, {PLAN.users * PLAN.posts_each} posts in {time.perf_counter() - started:.0f}s",
          flush=True)
    redis_server = RedisServer.start_new()
    ops = {tag: draw_ops(PLAN.users, count, CLIENT_THREADS, seed, PLAN.zipf_s, WRITE_SHARE)
           for tag, count, seed in (("cold", MEASURED, 1), ("warmup", WARMUP, 2),
                                    ("warm", MEASURED, 3), ("paced", MEASURED, 5),
                                    ("sampled", SAMPLED, 4))}
    results = {}
    try:
        copies = working_copies(cluster, PLAN, STAGES)
        envs = stage_envs(cluster, redis_server, copies)
        servers = {"postgres": [s.proc.pid for s in (cluster.primary, *cluster.replicas)],
                   "redis": [redis_server.proc.pid]}
        # Stage 5's fan-out worker would load the machine while the others are measured: alone.
        groups = [[s for s in STAGES if s != "5"], [s for s in STAGES if s == "5"]]
        for group in filter(None, groups):
            measured = measure_group(group, envs, log_dir, servers, ops)
            for stage in group:
                for name in PHASES:
                    print(row(stage, name, measured[stage][name]), flush=True)
            results.update(measured)
        drop_copies(cluster, copies)
        if PROFILE:
            profiled = working_copies(cluster, PLAN, ["4"])
            profile_paths(cluster.primary.url(profiled["4"][0]), redis_server.url(3), PLAN,
                          WARMUP, MEASURED, WRITE_SHARE, SECRET)
            drop_copies(cluster, profiled)
    finally:
        redis_server.stop()
        close_cluster(cluster, keep=bool(DATA_DIR))
    report(results)


if __name__ == "__main__":
    main()
