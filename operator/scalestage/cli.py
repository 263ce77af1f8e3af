"""`scalestage`: move a ScaleStage to another stage, and show where it stands.

    scalestage stage 3             # create or move the ScaleStage `chirp` to stage 3
    scalestage status              # stage, phase, components, single points of failure
    scalestage status --name blog -n demo
    scalestage load                # a load Job inside the cluster; live figures, then the verdict
    scalestage load --stop         # end a running load (it verifies every acknowledged write)
    scalestage chaos kill web      # delete a web pod under load; what users saw, and for how long
    scalestage spof-check          # kill each component in turn: is status.spofs right?
    scalestage bench               # the same load at stages 1→5: a Markdown table and a chart
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping

from rich.console import Console
from rich.table import Table

from . import loadjob
from .chaos import HOLD_SECONDS
from .names import GROUP, PLURAL, VERSION
from .stages import STAGES

PHASE_STYLE = {"Ready": "green", "Progressing": "yellow", "Pending": "yellow",
               "Migrating": "cyan", "Degraded": "red", "Failed": "red"}


def status_table(obj: Mapping) -> Table:
    """One ScaleStage as a table: a component per row, SPOFs in red. Pure (easy to test)."""
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    phase = status.get("phase", "Unknown")
    stage = status.get("stage", spec.get("stage"))
    stage_name = STAGES[stage].name if stage in STAGES else "?"
    title = (f"{obj['metadata']['name']}: stage {stage} ({stage_name})"
             f" · [{PHASE_STYLE.get(phase, 'white')}]{phase}[/]")
    table = Table(title=title, title_justify="left")
    table.add_column("component")
    table.add_column("kind")
    table.add_column("ready", justify="right")
    table.add_column("note")
    spofs = set(status.get("spofs") or [])
    for c in status.get("components") or []:
        ready = f"{c.get('ready', 0)}/{c.get('desired', 0)}"
        style = "green" if c.get("ready", 0) >= c.get("desired", 0) else "yellow"
        spof = c["name"] in spofs or "monolith" in spofs
        note = "[bold red]single point of failure[/]" if spof else ""
        table.add_row(c["name"], c.get("kind", ""), f"[{style}]{ready}[/]", note)
    table.caption = caption(status, spec)
    table.caption_justify = "left"
    return table


REFUSALS = {"LayoutUnknown"}  # transitions.REFUSED reasons


def caption(status: Mapping, spec: Mapping) -> str | None:
    """Under the table: why nothing moves (refused, failed), the data move with a progress bar,
    or the walk ahead."""
    for cond in status.get("conditions") or []:
        refused = cond.get("type") == "Progressing" and cond.get("reason") in REFUSALS
        failed = status.get("phase") == "Failed" and cond.get("type") == "Ready"
        if cond.get("status") == "False" and (refused or failed):
            return f"[red]{cond.get('message', '')}[/]"
    lines = []
    move = status.get("migration") or {}
    if move:
        lines.append(f"[cyan]moving data {move.get('from')} → {move.get('to')}: "
                     f"{move.get('step', '')}[/]")
        copied, total = move.get("rowsCopied"), move.get("rowsTotal")
        if isinstance(copied, int) and isinstance(total, int):
            lag = move.get("lagSeconds")
            lines.append(f"{progress_bar(copied, total)} {copied}/{total} rows"
                         + (f" · lag {lag:.1f} s" if isinstance(lag, int | float) else ""))
        if isinstance(move.get("longestWritePauseSeconds"), int | float):
            lines.append(f"writes held {move['longestWritePauseSeconds']:.2f} s at the cutover")
    path = status.get("path") or []
    if path:
        lines.append(f"walking to stage {spec.get('stage')}: "
                     + " → ".join(str(n) for n in [status.get("stage"), *path]))
    elif spec.get("stage") != status.get("stage", spec.get("stage")):
        lines.append(f"moving to stage {spec.get('stage')}…")
    return "\n".join(lines) or None


def progress_bar(done: int, total: int, width: int = 30) -> str:
    """A text bar for the caption: filled in proportion to done/total (full when total is 0)."""
    share = 1.0 if total <= 0 else min(1.0, max(0.0, done / total))
    filled = round(share * width)
    return f"[green]{'█' * filled}[/][dim]{'░' * (width - filled)}[/] {share:4.0%}"


def custom_objects(context: str | None = None):
    from kubernetes import client, config

    try:
        config.load_kube_config(context=context)
    except config.ConfigException:
        config.load_incluster_config()
    return client.CustomObjectsApi()


def set_stage(api, namespace: str, name: str, stage: int) -> dict:
    from kubernetes.client.exceptions import ApiException

    try:
        return api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"stage": stage}},
            _content_type="application/merge-patch+json")
    except ApiException as error:
        if error.status != 404:
            raise
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ScaleStage",
            "metadata": {"name": name}, "spec": {"stage": stage}}
    return api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


# --- `scalestage load`: the load generator Job (specs/load.py) and its JSON lines (docs/load.md) --
LOAD_ROWS = 10  # seconds shown in the live table


def _ms(value) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _errors(errors: Mapping[str, int]) -> str:
    return ", ".join(f"[red]{kind} {n}[/]" for kind, n in sorted(errors.items())) or "[green]0[/]"


def _count(value: int, bad: bool = True) -> str:
    return f"[bold red]{value}[/]" if value and bad else f"[green]{value}[/]"


def load_table(ticks: list[Mapping], title: str) -> Table:
    """The last LOAD_ROWS tick lines of `chirp load`, one row a second. Pure."""
    table = Table(title=title, title_justify="left")
    for column in ("t s", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors/s", "writes acked",
                   "unknown", "sessions lost", "longest write ms"):
        table.add_column(column, justify="left" if column == "errors/s" else "right")
    for tick in ticks[-LOAD_ROWS:]:
        table.add_row(f"{tick.get('t', 0):g}", f"{tick.get('rps', 0):g}", _ms(tick.get("p50_ms")),
                      _ms(tick.get("p95_ms")), _ms(tick.get("p99_ms")),
                      _errors(tick.get("errors") or {}), str(tick.get("writes_acked", 0)),
                      str(tick.get("writes_unknown", 0)),
                      _count(tick.get("sessions_lost", 0)), _ms(tick.get("longest_write_ms")))
    return table


def summary_table(summary: Mapping) -> Table:
    """`chirp load`'s summary line: totals and the verdict; lost, duplicated red if any. Pure."""
    verdict = ("[bold green]every acknowledged write was read back exactly once[/]"
               if summary.get("ok") else "[bold red]FAILED: not every acknowledged write was read "
               "back exactly once[/]")
    table = Table(title=f"load {summary.get('run', '')}: {verdict}", title_justify="left",
                  show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("requests", f"{summary.get('requests', 0)} ({summary.get('rps', 0):g}/s,"
                              f" stopped by {summary.get('stopped_by') or '?'})")
    table.add_row("latency p50 / p95 / p99 ms", " / ".join(
        _ms(summary.get(f"p{p}_ms")) for p in (50, 95, 99)))
    table.add_row("errors", _errors(summary.get("errors") or {}))
    table.add_row("writes", f"{summary.get('writes_acked', 0)} acknowledged,"
                            f" {summary.get('writes_failed', 0)} failed,"
                            f" {summary.get('writes_unknown', 0)} unknown"
                            f" ({summary.get('unknown_present', 0)} of them stored)")
    table.add_row("longest write ms", _ms(summary.get("longest_write_ms")))
    table.add_row("sessions lost", _count(summary.get("sessions_lost", 0)))
    table.add_row("fresh sessions refused", _count(summary.get("fresh_sessions_refused", 0)))
    for key in ("lost", "duplicated", "renumbered", "unverified"):
        if key in ("lost", "duplicated") or summary.get(key):
            table.add_row(key, _count(summary.get(key, 0)))
    samples = list(summary.get("lost_sample") or []) + list(summary.get("duplicated_sample") or [])
    if samples:
        table.caption = "[red]" + "; ".join(samples) + "[/]"
    return table





def follow_load(lines: Iterable[str], console: Console, title: str) -> dict | None:
    """Render `chirp load`'s JSON lines live until its summary line, which it returns (None if the
    lines end without one; what was not JSON is printed then)."""
    from rich.live import Live

    ticks: list[dict] = []
    other: list[str] = []
    summary = None
    with Live(load_table(ticks, title), console=console, refresh_per_second=4) as live:
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                other = (other + [line])[-20:]
                continue
            kind = event.get("event") if isinstance(event, dict) else None
            if kind == "tick":
                ticks = (ticks + [event])[-LOAD_ROWS:]
                live.update(load_table(ticks, title))
            elif kind == "verifying":
                live.update(load_table(ticks, f"{title} · verifying"
                                              f" {event.get('writes_acked', 0)} writes…"))
            elif kind == "summary":
                summary = event
                break
    if not console.is_terminal:
        console.line()  # a Live's last frame ends without a newline when it is not a terminal
    if summary is None:
        for line in other:
            console.print(line, markup=False, highlight=False)
    return summary





def _attach(core, batch, job, console: Console) -> int:
    """Follow the Job's pod to its summary; exit 0 only if the load's verdict and the Job agree."""
    name, namespace = job.metadata.name, job.metadata.namespace
    pod = loadjob.wait_for_pod(core, job, console)
    if pod is None:
        return 1
    try:
        summary = follow_load(loadjob.pod_log_lines(core, namespace, pod), console,
                              f"{name} (pod {pod})")
    except KeyboardInterrupt:
        console.print(f"detached; the load goes on. [bold]scalestage load --stop[/] ends it and"
                      f" prints the verdict, [bold]kubectl logs job/{name}[/] shows its lines.")
        return 130
    if summary is None:
        console.print(f"[red]the load pod {pod} ended without a summary[/]")
        return 1
    console.print(summary_table(summary))
    state = loadjob.wait_for_job_end(batch, namespace, name)
    return 0 if summary.get("ok") and state == "Complete" else 1



def load_command(args, api, console: Console) -> int:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from .specs import load

    core, batch = client.CoreV1Api(), client.BatchV1Api()
    name = load.job_name(args.name)
    existing = loadjob.read_job(batch, args.namespace, name)
    if args.stop:
        pod = loadjob.load_pod(core, existing) if existing else None
        if pod is None or pod.status.phase != "Running":
            console.print(f"[red]no load is running[/] (Job {name} in {args.namespace})")
            return 1
        loadjob.stop_load(args.namespace, pod.metadata.name)
        console.print(f"stop requested: {name} stops, then verifies its writes")
        return 0 if args.detach else _attach(core, batch, existing, console)
    if existing is not None and loadjob.job_state(existing) == "Running":
        console.print(f"{name} is already running; following it ([bold]scalestage load --stop[/]"
                      " ends it)")
        return 0 if args.detach else _attach(core, batch, existing, console)
    try:
        scalestage = api.get_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL,
                                                      args.name)
    except ApiException as error:
        if error.status != 404:
            raise
        console.print(f"[red]no ScaleStage {args.name} in namespace {args.namespace}[/]")
        return 1
    options = load.LoadOptions(users=args.users, concurrency=args.concurrency, rate=args.rate,
                               duration=args.duration, mix=args.mix)
    job = loadjob.start(batch, scalestage, options, args.image, replacing=existing)
    length = f"{args.duration:g} s" if args.duration else "until stopped"
    console.print(f"Job {name} created: {args.users} users, concurrency {args.concurrency}"
                  f"{f', {args.rate:g} req/s' if args.rate else ''}, {length}")
    if args.detach:
        console.print(f"follow it with [bold]scalestage load[/] or [bold]kubectl logs -f"
                      f" job/{name}[/]; end it with [bold]scalestage load --stop[/]")
        return 0
    return _attach(core, batch, job, console)


def _instance_options(parser) -> None:
    """--name and -n also after the subcommand (`scalestage load -n demo`); SUPPRESS keeps the
    main parser's value when they are not given there."""
    parser.add_argument("--name", default=argparse.SUPPRESS, help="the ScaleStage (default: chirp)")
    parser.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="its namespace")


def _add_load_parser(commands) -> None:
    load = commands.add_parser(
        "load", help="run a load Job inside the cluster; live figures, then the write verdict",
        description="Runs `chirp load` as the Job <name>-load (the ScaleStage's app image): it "
                    "signs up users, mixes reads, posts and follows, and at the end reads every "
                    "acknowledged write back. Exit 0: none lost or duplicated. With a load "
                    "running already, follows it.")
    _instance_options(load)
    load.add_argument("--users", type=int, default=4, help="users signed up (default 4)")
    load.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    load.add_argument("--rate", type=float, default=None, help="total req/s (default: no limit)")
    load.add_argument("--duration", type=float, default=60.0,
                      help="seconds (default 60; 0: until --stop)")
    load.add_argument("--mix", default=None,
                      help="request weights, e.g. timeline=40,public=30,post=25,follow=5")
    load.add_argument("--image", default=None,
                      help="image with `chirp load` (default: the ScaleStage's spec.images.app)")
    load.add_argument("--detach", action="store_true", help="create (or stop) and return")
    load.add_argument("--stop", action="store_true",
                      help="end the running load: it verifies its writes and reports")


# --- `scalestage chaos kill` and `scalestage spof-check` (chaos.py judges, chaos_run.py kills) ---
def _share(value) -> str:
    if value is None:
        return "-"
    style = "green" if value >= 0.995 else "yellow" if value >= 0.95 else "red"
    return f"[{style}]{value:.1%}[/]"


def kill_table(report: Mapping) -> Table:
    """One kill as users saw it (KillReport.as_dict()). Pure."""
    how = "force-killed" if report["forced"] else "deleted"
    # what users saw (the SPOF verdict is spof-check's: a graceful stop can delay an outage)
    verdict = (f"[bold red]users saw failures for {report['outage_seconds']:g} s[/]"
               if report["outage_seconds"] else "[bold green]no failure users could see[/]")
    table = Table(title=f"{report['component']}: pod {report['pod']} {how} · {verdict}",
                  title_justify="left")
    table.add_column("")
    for path in ("read", "write", "session"):
        table.add_column(f"{path}s ok", justify="right")
    table.add_row("before the kill", *(_share(report["before"][p])
                                       for p in ("read", "write", "session")))
    table.add_row("kill → recovered", *(_share(report["during"][p])
                                        for p in ("read", "write", "session")))
    recovered = (f"everything answered again {report['recovered_after']:g} s after the kill"
                 if report["recovered"] else "[red]not recovered within the window[/]")
    held = (f"; replacement held back {report['held_for']:g} s"
            if report.get("held_for") is not None else "")
    table.caption = (f"outage {report['outage_seconds']:g} s (longest run of failing seconds); "
                     f"{recovered}; sessions lost {report['sessions_lost']}{held}")
    table.caption_justify = "left"
    return table


def spof_table(check: Mapping) -> Table:
    """`status.spofCheck` as a table: a row per component, contradictions in red. Pure."""
    title = (f"spof-check at stage {check['stage']}: "
             + ("[bold green]measurements agree with status.spofs[/]" if check["agrees"]
                else "[bold red]measurements contradict status.spofs[/]"))
    table = Table(title=title, title_justify="left")
    for column in ("component", "declared SPOF", "reads ok", "writes ok", "sessions ok",
                   "sessions lost", "outage s", "held s", "verdict"):
        table.add_column(column, justify="left" if column in ("component", "verdict")
                         else "right")
    for row in check["components"]:
        style = "green" if row["declared"] == row["measured"] else "bold red"
        table.add_row(row["component"], "yes" if row["declared"] else "no",
                      _share(row.get("readOk")), _share(row.get("writeOk")),
                      _share(row.get("sessionOk")), str(row["sessionsLost"]),
                      f"{row['outageSeconds']:g}",
                      "-" if row.get("heldForSeconds") is None else f"{row['heldForSeconds']:g}",
                      f"[{style}]{row['verdict']}[/]")
    table.caption = ("Each pod killed outright, its replacement held back: a single point of "
                     "failure when a path still failed as the hold ended.")
    table.caption_justify = "left"
    return table


def chaos_command(args, api, console: Console) -> int:
    from kubernetes import client

    from . import chaos_run

    target = chaos_run.Target(client.CoreV1Api(), client.AppsV1Api(), client.BatchV1Api(), api,
                              args.namespace, args.name)
    say = console.print if not args.json else (lambda text: print(text, file=sys.stderr))
    try:
        load = chaos_run.Load(target, say)
        try:
            if args.command == "spof-check":
                result = chaos_run.spof_check(target, load, say)
            else:
                result = chaos_run.kill(target, load, args.component, force=args.force,
                                        pod=args.pod, hold=args.hold, say=say).as_dict()
        finally:
            summary = load.finish()
    except chaos_run.ChaosError as error:
        console.print(f"[red]{error}[/]")
        return 2
    # a load the command started has a verdict (None: it used a running one, which goes on)
    writes_kept = summary is None or bool(summary.get("ok"))
    if args.json:
        print(json.dumps({**result, "load": summary}, sort_keys=True))
    else:
        console.print(spof_table(result) if args.command == "spof-check" else kill_table(result))
        if summary is not None:
            console.print(summary_table(summary))
    return 0 if writes_kept and result.get("agrees", True) else 1


def _add_chaos_parsers(commands) -> None:
    chaos = commands.add_parser(
        "chaos", help="kill a pod under load and report what users saw",
        description="Kills one pod of a component while a load runs (the running `scalestage "
                    "load`, or one started for the measurement) and reports the share of reads, "
                    "writes and sessions that worked before and after, the outage and the time "
                    "until everything answered again.")
    actions = chaos.add_subparsers(dest="action", required=True)
    kill = actions.add_parser("kill", help="kill one pod of COMPONENT (as `scalestage status` "
                                           "names it: web, db-primary, redis, ...)")
    kill.add_argument("component")
    kill.add_argument("--force", action="store_true",
                      help="no graceful stop (grace period 0): a crash, not a rollout")
    kill.add_argument("--pod", default=None, help="this pod (default: the first ready one)")
    kill.add_argument("--hold", action="store_true",
                      help=f"hold its replacement back {HOLD_SECONDS} s (no new pod in "
                           "the namespace meanwhile): users without the pod, not a quick restart")
    kill.add_argument("--json", action="store_true", help="print the report as JSON")
    check = commands.add_parser(
        "spof-check", help="kill each component in turn under load; compare with status.spofs",
        description="For the stage the ScaleStage is at, kills one pod of each component in "
                    "turn (outright) under load, holds its replacement back "
                    f"{HOLD_SECONDS} s, and measures what users saw. A component is a "
                    "single point of failure when a path still failed as the hold ended "
                    "(docs/chaos.md). Writes the result to "
                    "status.spofCheck and an Event; exits non-zero when a measurement "
                    "contradicts status.spofs.")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    _instance_options(kill)
    _instance_options(check)


# --- `scalestage bench`: the capacity report (capacity.py figures, bench_run.py walks) ---------
def bench_command(args, api, console: Console) -> int:
    from pathlib import Path

    from kubernetes import client

    from . import bench_run, capacity
    from .specs.load import LoadOptions

    options = LoadOptions(users=args.users, concurrency=args.concurrency, rate=None,
                          duration=args.seconds)
    try:
        rows, table, chart = bench_run.bench(
            client.CoreV1Api(), client.BatchV1Api(), api, args.namespace, args.name,
            [int(n) for n in args.stages.split(",")], options, Path(args.out), console.print)
    except bench_run.BenchError as error:
        console.print(f"[red]{error}[/]")
        return 1
    console.print(capacity.markdown(rows, f"{args.users} users, {args.concurrency} in flight, "
                                          f"{args.seconds:g} s per stage"), markup=False)
    console.print(f"table: {table}\nchart: {chart}")
    return 0


def _add_bench_parser(commands) -> None:
    bench = commands.add_parser(
        "bench", help="the same load at each stage: a Markdown table and a PNG chart",
        description="Walks the ScaleStage through --stages and runs the same load Job at each "
                    "(closed loop: --concurrency requests in flight), reading the app pods' "
                    "/metrics before and after: req/s, latency percentiles, errors, database "
                    "queries per request by role and the cache hit ratio per stage. Writes "
                    "capacity.md and capacity.png to --out. Leaves the ScaleStage at the last "
                    "stage.")
    bench.add_argument("--stages", default="1,2,3,4,5", help="in order (default 1,2,3,4,5)")
    bench.add_argument("--seconds", type=float, default=60.0, help="load per stage (default 60)")
    bench.add_argument("--users", type=int, default=20, help="users signed up (default 20)")
    bench.add_argument("--concurrency", type=int, default=8,
                       help="requests in flight (default 8)")
    bench.add_argument("--out", default="bench-out", help="folder for capacity.md/.png")
    _instance_options(bench)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scalestage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="chirp", help="the ScaleStage (default: chirp)")
    parser.add_argument("-n", "--namespace", default="default", help="its namespace")
    parser.add_argument("--context", default=None, help="the kubeconfig context to use")
    commands = parser.add_subparsers(dest="command", required=True)
    stage = commands.add_parser("stage", help="create the ScaleStage or move it to stage N")
    stage.add_argument("number", type=int, choices=sorted(STAGES))
    commands.add_parser("status", help="show stage, phase, components and SPOFs")
    _add_load_parser(commands)
    _add_chaos_parsers(commands)
    _add_bench_parser(commands)
    args = parser.parse_args(argv)
    console = Console()
    from kubernetes.client.exceptions import ApiException

    api = custom_objects(args.context)
    try:
        if args.command == "load":
            return load_command(args, api, console)
        if args.command in ("chaos", "spof-check"):
            return chaos_command(args, api, console)
        if args.command == "bench":
            return bench_command(args, api, console)
        if args.command == "stage":
            obj = set_stage(api, args.namespace, args.name, args.number)
            requested = f"{args.name}: stage {args.number} ({STAGES[args.number].name}) requested"
            console.print(f"{requested}; watch it with [bold]scalestage status[/] or"
                          " [bold]kubectl get scalestages -w[/]")
        else:
            obj = api.get_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL,
                                                   args.name)
            console.print(status_table(obj))
    except ApiException as error:
        console.print(f"[red]{error.status} {error.reason}[/]: {error.body}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
