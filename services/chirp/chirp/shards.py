"""The shard map: where data lives at this stage, a list of shards, each a primary and its replicas.

Stages 1-4 are one unsharded "shard" (labelled primary / replica-N); stage 5 has N shards
(labelled shard-K / shard-K-replica-N). Built from the Config's database URLs only.
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


class ShardMap:
    def __init__(self, config: Config):
        self.sharded = config.sharded
        self.shards = shards_from_config(config)
        # Where writes go: the configured primaries until a data move's cutover says otherwise
        # (docs/moves.md). Reads keep the configured layout: the old databases stay in sync
        # until the move is completed, and the operator rolls the new layout out by then.
        self._write_lock = threading.Lock()
        self.write_primaries = tuple(shard.primary_url for shard in self.shards)
        self.write_epoch = 0

    def write_shard_for_bucket(self, bucket: int) -> Shard:
        """The primary that takes writes for rows of this bucket (no replicas: writes only)."""
        primaries = self.write_primaries
        k = shard_for_bucket(bucket, len(primaries))
        return Shard(k, primaries[k])

    def follow_move(self, primaries: tuple[str, ...], epoch: int) -> None:
        """Send writes to `primaries` (shard 0 first) from routing epoch `epoch` on."""
        with self._write_lock:
            if epoch > self.write_epoch:
                self.write_primaries, self.write_epoch = tuple(primaries), epoch

    def shard_for_user_id(self, user_id: int) -> Shard:
        return self.shards[shard_for_id(user_id, len(self.shards))]

    def shard_for_username(self, username: str) -> Shard:
        return self.shards[shard_for_bucket(bucket_for_username(username), len(self.shards))]

    def group_by_shard(self, owner_ids) -> dict[int, list[int]]:
        """owner ids (users, or posts: both carry a bucket) grouped by the shard that holds them."""
        groups: dict[int, list[int]] = {}
        for owner in owner_ids:
            groups.setdefault(shard_for_id(owner, len(self.shards)), []).append(owner)
        return groups

    def databases(self) -> list[tuple[str, str]]:
        """(route label, URL) of every database, primaries first within each shard."""
        out = []
        for shard in self.shards:
            out.append((route_label(self.sharded, shard.index, PRIMARY), shard.primary_url))
            out += [(route_label(self.sharded, shard.index, r), url)
                    for r, url in enumerate(shard.replica_urls)]
        return out
