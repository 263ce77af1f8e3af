"""What to send and when: the request mix, pacing to a total rate, and which users each worker
drives. Pure: randomness and clocks are arguments."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping
from dataclasses import dataclass

TIMELINE, PUBLIC, POST, FOLLOW = "timeline", "public", "post", "follow"
ACTIONS = (TIMELINE, PUBLIC, POST, FOLLOW)
WRITES = frozenset({POST, FOLLOW})
NEEDS_SESSION = frozenset({TIMELINE, POST, FOLLOW})
DEFAULT_MIX: dict[str, int] = {TIMELINE: 40, PUBLIC: 30, POST: 25, FOLLOW: 5}
# A paced run that fell further behind than this does not burst to catch up: it starts afresh.
MAX_LAG_SECONDS = 1.0


def parse_mix(text: str) -> dict[str, int]:
    """`timeline=40,public=30,post=25,follow=5` -> weights; actions left out weigh 0."""
    weights = dict.fromkeys(ACTIONS, 0)
    for item in filter(None, (part.strip() for part in text.split(","))):
        action, sep, value = item.partition("=")
        action = action.strip()
        if not sep or action not in weights:
            raise ValueError(f"{item!r}: expected ACTION=WEIGHT with ACTION one of "
                             f"{', '.join(ACTIONS)}")
        try:
            weight = int(value)
        except ValueError:
            raise ValueError(f"{item!r}: the weight must be a whole number") from None
        if weight < 0:
            raise ValueError(f"{item!r}: the weight must not be negative")
        weights[action] = weight
    if not any(weights.values()):
        raise ValueError("the mix needs at least one action with a positive weight")
    return weights


@dataclass(frozen=True)
class Mix:
    """Weighted choice of the next action from a number in [0, 1)."""

    weights: Mapping[str, int]

    def pick(self, x: float) -> str:
        actions = [a for a in ACTIONS if self.weights.get(a, 0) > 0]
        bounds = list(itertools.accumulate(self.weights[a] for a in actions))
        return actions[min(bisect.bisect_right(bounds, x * bounds[-1]), len(actions) - 1)]


class Pacer:
    """Due times for requests at `rate` per second in total, shared by every worker (the caller
    holds a lock): slot k is due at start + k / rate. A pacer behind by more than MAX_LAG_SECONDS
    restarts from now rather than sending the missed slots in a burst."""

    def __init__(self, rate: float, start: float):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.next_due = start

    def slot(self, now: float) -> float:
        if self.next_due < now - MAX_LAG_SECONDS:
            self.next_due = now
        due = self.next_due
        self.next_due += self.interval
        return due


def users_of_worker(worker: int, workers: int, users: int) -> list[int]:
    """The users (indexes) a worker drives: round robin, so each user has as few drivers as can
    be; with more workers than users, several workers share a user (and its session)."""
    if workers <= users:
        return list(range(worker, users, workers))
    return [worker % users]


def follow_target(user: int, users: int, x: float) -> int | None:
    """Another user to follow, from a number in [0, 1); None when there is nobody else."""
    if users < 2:
        return None
    other = int(x * (users - 1)) % (users - 1)
    return other if other < user else other + 1


def username(run_id: str, index: int) -> str:
    """Fresh users per run (usernames: 3-30 of a-z, 0-9, _)."""
    return f"ld{run_id}_{index}"
