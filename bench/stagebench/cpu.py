"""CPU time spent by the bench's servers, read from /proc: where a timeline read's time goes beyond
the client's clock (issue 15). A server's CPU is that of its process and every descendant (the
web server's worker, Postgres's backends, which each lead a session of their own, so a session id
would miss them); a process that ended is counted in its parent's cutime/cstime. The client is
this process (os.times)."""

import os
from dataclasses import dataclass, field

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of the process and of its reaped children)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:  # the process ended meanwhile
            continue
        # after "pid (comm) ": state, ppid, ..., utime, stime, cutime, cstime (fields 14-17)
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(entry)] = (int(fields[1]),
                             sum(int(v) for v in fields[11:15]) / TICKS_PER_SECOND)
    return found


def servers_cpu_seconds(servers: dict[str, list[int]]) -> dict[str, float]:
    """Name -> CPU seconds (user + system) of those processes and all their descendants;
    "client": this process's."""
    table = _processes()
    owner = {pid: name for name, pids in servers.items() for pid in pids}
    totals = dict.fromkeys(servers, 0.0)
    for pid, (_, seconds) in table.items():
        ancestor, seen = pid, 0
        while ancestor not in owner and ancestor in table and seen < 64:
            ancestor, seen = table[ancestor][0], seen + 1
        if ancestor in owner:
            totals[owner[ancestor]] += seconds
    own = os.times()
    totals["client"] = own.user + own.system
    return totals


@dataclass
class CpuMeter:
    """CPU seconds per server (name -> its root pids), added up over the stretches a stage ran
    alone."""
    servers: dict[str, list[int]]
    spent: dict[str, float] = field(init=False)

    def __post_init__(self):
        self.spent = dict.fromkeys([*self.servers, "client"], 0.0)

    def measure(self, work, *args):
        """Run work(*args) and add the CPU it cost every server (nothing else runs meanwhile)."""
        before = servers_cpu_seconds(self.servers)
        result = work(*args)
        after = servers_cpu_seconds(self.servers)
        for name in self.spent:
            self.spent[name] += after[name] - before[name]
        return result

    def per(self, count: int) -> dict[str, float]:
        """Milliseconds of CPU per unit of work (e.g. per timeline read)."""
        return {name: 1000 * seconds / max(count, 1) for name, seconds in self.spent.items()}
