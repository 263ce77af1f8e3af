"""How writers and readers follow a cutover (the app's side of the routing contract,
docs/moves.md), pure.

A database that is not live refuses writes with SQLSTATE CH001. The writer then reads that
database's chirp_routing row: a retired database names the layout that replaced it (newer epoch:
switch to it and retry at once); a standby database, or a retired one whose successors are not
live yet, means a cutover is under way: wait a moment and retry, for at most HOLD_SECONDS.
A retired database still answers reads, so readers ask it instead (after_check,
Databases.layout).
"""

from dataclasses import dataclass

MOVED_SQLSTATE = "CH001"
HOLD_SECONDS = 10.0  # longest a write waits for a cutover before it is answered 503
RETRY_PAUSE_SECONDS = 0.02

ROUTING_SQL = "SELECT state, epoch, shard_urls FROM chirp_routing"


@dataclass(frozen=True)
class Routing:
    """What a database says about itself: live / standby / retired, since which epoch, and (when
    retired) the shard URLs that hold its rows now, shard 0 first."""

    state: str
    epoch: int
    shard_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class NextMove:
    action: str  # "reroute": use shard_urls from now on; "wait": pause, then retry; "give-up";
    # for readers (after_check): "current" / "unknown"
    shard_urls: tuple[str, ...] = ()
    epoch: int = 0


def is_moved_error(error: Exception) -> bool:
    return getattr(error, "sqlstate", None) == MOVED_SQLSTATE


def after_check(found: Routing, known_epoch: int) -> NextMove:
    """A reader's next step once a primary of its layout (epoch `known_epoch`) showed `found`.

    Retired with a newer epoch: switch to its successors. Live or standby: every write
    acknowledged before the check is there (a standby target takes no app write before every
    source retired, and has caught up by then). Retired with no newer successor named: "unknown",
    read it anyway (reads must go on), but do not count the layout as checked."""
    if found.state == "retired":
        if found.shard_urls and found.epoch > known_epoch:
            return NextMove("reroute", found.shard_urls, found.epoch)
        return NextMove("unknown")
    return NextMove("current")


def after_refusal(refused_by: Routing, known_epoch: int, waited_seconds: float) -> NextMove:
    """The writer's next step once `refused_by` refused its write."""
    if refused_by.state == "retired" and refused_by.shard_urls and refused_by.epoch > known_epoch:
        return NextMove("reroute", refused_by.shard_urls, refused_by.epoch)
    if waited_seconds >= HOLD_SECONDS:
        return NextMove("give-up")
    return NextMove("wait")
