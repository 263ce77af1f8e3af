"""Ids and shard mapping, including properties over all inputs (hypothesis)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chirp.buckets import (
    BUCKETS,
    bucket_for_username,
    buckets_of_shard,
    shard_for_bucket,
    shard_for_id,
)
from chirp.ids import EPOCH_MS, MAX_ID, compose_id, id_bucket, id_unix_ms, is_valid_id

times = st.integers(EPOCH_MS, EPOCH_MS + (1 << 41) - 1)
buckets = st.integers(0, BUCKETS - 1)
sequences = st.integers(0, 10**9)
shard_counts = st.integers(1, 64)


@given(times, buckets, sequences)
def test_an_id_carries_its_time_and_bucket(ms, bucket, seq):
    chirp_id = compose_id(ms, bucket, seq)
    assert 0 <= chirp_id <= MAX_ID < 2**63
    assert id_unix_ms(chirp_id) == ms and id_bucket(chirp_id) == bucket


@given(times, times, buckets, buckets, sequences, sequences)
def test_ids_order_by_time_first(ms1, ms2, b1, b2, s1, s2):
    if ms1 < ms2:
        assert compose_id(ms1, b1, s1) < compose_id(ms2, b2, s2)


def test_distinct_sequence_numbers_give_distinct_ids_in_one_millisecond():
    ids = {compose_id(EPOCH_MS + 5, 17, seq) for seq in range(4096)}
    assert len(ids) == 4096


def test_invalid_parts_are_refused():
    with pytest.raises(ValueError):
        compose_id(EPOCH_MS, 1024, 0)
    with pytest.raises(ValueError):
        compose_id(EPOCH_MS - 1, 0, 0)
    assert not is_valid_id(0) and not is_valid_id(True) and not is_valid_id(MAX_ID + 1)


@given(buckets, shard_counts)
def test_every_bucket_maps_to_exactly_one_valid_shard(bucket, n):
    shard = shard_for_bucket(bucket, n)
    assert 0 <= shard < n and bucket in buckets_of_shard(shard, n)


@given(shard_counts)
def test_shards_partition_the_buckets_evenly(n):
    ranges = [buckets_of_shard(k, n) for k in range(n)]
    assert sorted(b for r in ranges for b in r) == list(range(BUCKETS))
    sizes = [len(r) for r in ranges]
    assert max(sizes) - min(sizes) <= 1


@given(buckets, shard_counts)
def test_doubling_shards_only_splits_buckets(bucket, n):
    """A reshard N -> 2N moves each bucket to one of the two halves of its old shard."""
    assert shard_for_bucket(bucket, 2 * n) // 2 == shard_for_bucket(bucket, n)


@given(shard_counts, shard_counts)
def test_growing_by_one_shard_moves_a_bounded_share(n, extra):
    m = n + extra
    moved = sum(shard_for_bucket(b, n) != shard_for_bucket(b, m) for b in range(BUCKETS))
    assert moved < BUCKETS  # never everything; buckets keep their identity


@given(st.text(min_size=1, max_size=30))
def test_username_bucket_is_in_range(name):
    assert 0 <= bucket_for_username(name) < BUCKETS


def test_username_buckets_never_change_across_versions():
    """Buckets are baked into stored ids and decide shards: these values are part of the data."""
    assert [bucket_for_username(n) for n in ("alice", "bob", "émile", "user42")] == \
        [71, 320, 595, 694]


@given(times, buckets, sequences, shard_counts)
def test_a_row_id_and_its_owner_agree_on_the_shard(ms, bucket, seq, n):
    assert shard_for_id(compose_id(ms, bucket, seq), n) == shard_for_bucket(bucket, n)


def test_usernames_spread_over_buckets():
    used = {bucket_for_username(f"user{i}") for i in range(5000)}
    assert len(used) > 900
