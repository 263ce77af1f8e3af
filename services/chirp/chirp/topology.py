"""Where data lives at this stage: a list of shards, each a primary and its read replicas.

Stages 1-4 are one unsharded "shard" (labelled primary / replica-N); stage 5 has N shards
(labelled shard-K / shard-K-replica). The architecture page's default picture comes from here too.
"""

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


class Topology:
    def __init__(self, config: Config):
        self.sharded = config.sharded
        self.shards = shards_from_config(config)

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


def default_topology(config: Config) -> dict:
    """The architecture picture when the operator gave none (CHIRP_TOPOLOGY unset)."""
    stage = config.stage
    components = []
    if stage == 1:
        components.append({"name": "chirp", "kind": "Pod", "replicas": 1,
                           "containers": ["web", "postgres"]})
        spofs = ["chirp"]
    else:
        web_replicas = 1 if stage == 2 else 3
        components.append({"name": "web", "kind": "Deployment", "replicas": web_replicas})
        if stage < 5:
            components.append({"name": "db", "kind": "StatefulSet",
                               "replicas": 1 + len(config.replica_urls)})
        else:
            for k in range(len(config.shard_urls)):
                components.append({"name": f"db-shard-{k}", "kind": "StatefulSet",
                                   "replicas": 1 + (1 if config.shard_replica_urls else 0)})
        if stage >= 4:
            components.append({"name": "redis", "kind": "StatefulSet", "replicas": 1})
        if stage == 5:
            components.append({"name": "worker", "kind": "Deployment", "replicas": 2})
            components.append({"name": "edge", "kind": "Deployment", "replicas": 1})
        spofs = {2: ["web", "db"], 3: ["db-primary"], 4: ["db-primary", "redis"], 5: []}[stage]
    return {"stage": stage, "stageName": config.stage_name, "components": components,
            "spofs": spofs}
