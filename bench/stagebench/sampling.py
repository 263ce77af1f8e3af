"""Where a web process's CPU goes, by part of a request (BENCH_PROFILE=1).

py-spy samples the thread that holds the GIL (`--gil`: the Python CPU of the process and of the
worker it forks) while a stage serves a phase of its own; each sample's stack is put in one part,
the first of PARTS with a frame in it. Shares of samples times the CPU the process spent per read
(cpu.py) give milliseconds per read, per part: what a cache can save (the view) against what every
request pays whatever the stage (the server, the framework, the session).
"""

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

# (part, frames that mark it: (function name or "*", a piece of the file's path)); the first part
# with a matching frame in a stack takes the sample, so a query run inside a cache fill counts as
# the database's and the views of other requests are set apart before anything they share.
PARTS: list[tuple[str, tuple[tuple[str, str], ...]]] = [
    ("other requests (posts, logins)", (("create_post", "chirp/web/api.py"),
                                        ("login", "chirp/web/api.py"),
                                        ("signup", "chirp/web/api.py"))),
    # psycopg's own frames: py-spy at times loses the frames above its generators
    ("timeline: database query", (("*", "chirp/db/"), ("*", "/psycopg"))),
    ("timeline: cache (Redis)", (("*", "chirp/cache.py"),)),
    ("timeline: building the page", (("timeline", "chirp/web/api.py"),)),
    ("session: load and save", (("open_session", "flask_session/"),
                                ("save_session", "flask_session/"))),
    ("rate limits (Flask-Limiter)", (("*", "flask_limiter/"),)),
    ("JSON answer", (("response", "flask/json/"), ("jsonify", "flask/"))),
    ("app hooks (headers, metrics)", (("report", "chirp/app.py"), ("*", "prometheus_client/"))),
    ("Flask and Werkzeug", (("*", "flask/"), ("*", "werkzeug/"))),
    ("gunicorn (HTTP, connections)", (("*", "gunicorn/"), ("*", "concurrent/futures/"))),
]
OTHER = "other (no Python frame: C code, GC)"


def frame_parts(frame: str) -> tuple[str, str]:
    """(function, file) of a py-spy frame 'Class.function (file:line)'."""
    qualified, _, where = frame.partition(" (")
    return qualified.rsplit(".", 1)[-1], where.rsplit(":", 1)[0]


def part_of(stack: list[str]) -> str:
    """The part a sampled stack (outermost frame first) belongs to."""
    frames = [frame_parts(frame) for frame in stack]
    for part, marks in PARTS:
        for function, path in frames:
            if any(path_piece in path and mark in ("*", function) for mark, path_piece in marks):
                return part
    return OTHER


def parse_raw(text: str) -> list[tuple[list[str], int]]:
    """py-spy's raw output: one 'frame;frame;... count' per line."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def shares(stacks: list[tuple[list[str], int]]) -> dict[str, float]:
    """Each part's share of the samples, largest first."""
    counts = Counter()
    for stack, count in stacks:
        counts[part_of(stack)] += count
    total = sum(counts.values()) or 1
    return {part: n / total for part, n in counts.most_common()}


class Sampler:
    """py-spy recording one process and its children until stop()."""

    def __init__(self, pid: int, output: str):
        self.output = Path(output)
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
             "--subprocesses", "--gil", "--nonblocking", "--rate", "1000", "--format", "raw",
             "--output", str(self.output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> dict[str, float]:
        self.proc.send_signal(signal.SIGINT)  # py-spy writes what it sampled, then exits
        _, errors = self.proc.communicate(timeout=60)
        if not self.output.exists():
            raise RuntimeError(f"py-spy recorded nothing: {errors.strip()[-500:]}")
        return shares(parse_raw(self.output.read_text()))
