"""Sharding by logical buckets: users hash into BUCKETS fixed buckets, buckets map onto N shards.

A reshard changes only the bucket -> shard map (contiguous ranges), so data moves bucket by bucket
and ids, which carry their bucket, never change.
"""

import zlib

from chirp.ids import MAX_BUCKET, id_bucket

BUCKETS = MAX_BUCKET + 1  # 1024


def bucket_for_username(username: str) -> int:
    """Stable bucket of a (normalised) username: login finds the user's shard with no directory."""
    return zlib.crc32(username.encode("utf-8")) % BUCKETS


def shard_for_bucket(bucket: int, shard_count: int) -> int:
    """Contiguous ranges: shard k owns buckets [k*B/N, (k+1)*B/N). Growing N moves whole buckets."""
    if shard_count < 1:
        raise ValueError("shard_count must be at least 1")
    if not 0 <= bucket < BUCKETS:
        raise ValueError(f"bucket {bucket} outside 0..{BUCKETS - 1}")
    return bucket * shard_count // BUCKETS


def buckets_of_shard(shard: int, shard_count: int) -> range:
    """The buckets shard `shard` owns out of `shard_count` (inverse of shard_for_bucket)."""
    if not 0 <= shard < shard_count:
        raise ValueError(f"shard {shard} outside 0..{shard_count - 1}")
    start = -(-shard * BUCKETS // shard_count)  # ceil
    end = -(-(shard + 1) * BUCKETS // shard_count)
    return range(start, end)


def shard_for_id(owner_id: int, shard_count: int) -> int:
    """The shard holding rows owned by this user id (or post id: it carries its author's bucket)."""
    return shard_for_bucket(id_bucket(owner_id), shard_count)
