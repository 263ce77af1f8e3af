"""The shard map: where data lives, a list of shards, each a primary and its replicas.

Stages 1-4 are one unsharded "shard" (labelled primary / replica-N); stage 5 has N shards
(labelled shard-K / shard-K-replica-N). The layout starts as the Config's database URLs and follows
data moves (docs/moves.md): ShardMap is this process's one answer to "which database owns this
key now", for writes and reads alike.
"""

import threading
from dataclasses import dataclass

from chirp.buckets import bucket_for_username, shard_for_bucket, shard_for_id
from chirp.config import Config

PRIMARY = -1  # replica index meaning "the primary"


@dataclass(frozen=True)
class Shard:
    index: int
    primary_url: str
    replica_urls: tuple[str, ...] = ()


def shards_from_config(config: Config) -> tuple[Shard, ...]:
    if config.sharded:
        replicas = config.shard_replica_urls or ("",) * len(config.shard_urls)
        return tuple(
            Shard(k, url, (replicas[k],) if replicas[k] else ())
            for k, url in enumerate(config.shard_urls)
        )
    return (Shard(0, config.database_url, config.replica_urls),)


def route_label(sharded: bool, shard: int, replica: int) -> str:
    """What X-Chirp-DB says: primary, replica-1.., shard-0.., shard-0-replica-1.."""
    if not sharded:
        return "primary" if replica == PRIMARY else f"replica-{replica + 1}"
    base = f"shard-{shard}"
    return base if replica == PRIMARY else f"{base}-replica-{replica + 1}"


@dataclass(frozen=True)
class Layout:
    """The shards at one routing epoch (0: the configuration's)."""

    epoch: int
    shards: tuple[Shard, ...]

    def shard_for_bucket(self, bucket: int) -> Shard:
        return self.shards[shard_for_bucket(bucket, len(self.shards))]

    def shard_for_id(self, owner_id: int) -> Shard:
        """The shard of a user id, or of a post id (it carries its author's bucket)."""
        return self.shards[shard_for_id(owner_id, len(self.shards))]

    def shard_for_username(self, username: str) -> Shard:
        return self.shard_for_bucket(bucket_for_username(username))

    def group_by_shard(self, owner_ids) -> list[tuple[Shard, list[int]]]:
        """owner ids (users, or posts) grouped by the shard that holds them, shard 0 first."""
        groups: dict[int, list[int]] = {}
        for owner in owner_ids:
            groups.setdefault(shard_for_id(owner, len(self.shards)), []).append(owner)
        return [(self.shards[k], ids) for k, ids in sorted(groups.items())]


def layout_after_move(configured: tuple[Shard, ...], primaries: tuple[str, ...],
                      epoch: int) -> Layout:
    """The layout a routing record names. Replicas only when it names the configured primaries
    again (a reversed move): the record carries no replica URLs, and the configured replicas copy
    retired primaries, which lag the new ones (and stop changing at the move's `complete`)."""
    if primaries == tuple(shard.primary_url for shard in configured):
        return Layout(epoch, configured)
    return Layout(epoch, tuple(Shard(k, url) for k, url in enumerate(primaries)))


class ShardMap:
    def __init__(self, config: Config):
        self.sharded = config.sharded
        self.configured = shards_from_config(config)
        self._lock = threading.Lock()
        self._layout = Layout(0, self.configured)
        # When a routing check (wall clock, taken before it was sent) last found this layout's
        # primaries current: every write acknowledged before then is on them (Databases.layout).
        self._verified_at = float("-inf")

    def current(self) -> Layout:
        return self._layout

    def current_verified(self) -> tuple[Layout, float]:
        with self._lock:
            return self._layout, self._verified_at

    @property
    def shards(self) -> tuple[Shard, ...]:
        return self._layout.shards

    def follow_move(self, primaries: tuple[str, ...], epoch: int) -> bool:
        """Use `primaries` (shard 0 first) from routing epoch `epoch` on; False if not newer."""
        with self._lock:
            if epoch <= self._layout.epoch:
                return False
            self._layout = layout_after_move(self.configured, tuple(primaries), epoch)
            self._verified_at = float("-inf")
            return True

    def verified(self, layout: Layout, at: float) -> None:
        """A routing check sent at `at` found `layout` current (ignored if it changed since)."""
        with self._lock:
            if self._layout is layout:
                self._verified_at = max(self._verified_at, at)

    def databases(self) -> list[tuple[str, str]]:
        """(route label, URL) of every database, primaries first within each shard."""
        out = []
        for shard in self.shards:
            out.append((route_label(self.sharded, shard.index, PRIMARY), shard.primary_url))
            out += [(route_label(self.sharded, shard.index, r), url)
                    for r, url in enumerate(shard.replica_urls)]
        return out
