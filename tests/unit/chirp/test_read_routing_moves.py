"""How reads and the worker follow a data move, pure parts: what a read must see, when a routing
check vouches for it, a reader's step after the check, and the one layout (ShardMap) writes and
reads share."""

from chirp.buckets import BUCKETS, shard_for_bucket
from chirp.config import load_config
from chirp.ids import EPOCH_MS, compose_id
from chirp.move import handoff
from chirp.routing import CLOCK_MARGIN_SECONDS, layout_known_current, needed_since
from chirp.shards import Layout, Shard, ShardMap, layout_after_move

S0, S1, T0 = "postgresql://c@s0/c", "postgresql://c@s1/c", "postgresql://c@t0/c"
R0, R1 = "postgresql://c@r0/c", "postgresql://c@r1/c"
STAGE_5 = {"CHIRP_STAGE": "5", "CHIRP_SECRET_KEY": "0123456789abcdef",
           "CHIRP_SHARD_URLS": f"{S0},{S1}", "CHIRP_SHARD_REPLICA_URLS": f"{R0},{R1}",
           "CHIRP_REDIS_URL": "redis://r/0", "CHIRP_BROKER_URL": "redis://r/1"}


def test_a_read_needs_its_readers_last_write_and_a_read_with_none_accepts_the_bound():
    assert needed_since(90.0, now=100.0, staleness_seconds=1.0) == 90.0
    assert needed_since(None, now=100.0, staleness_seconds=1.0) == 99.0
    assert needed_since(float("inf"), now=100.0, staleness_seconds=1.0) == 100.0  # fresh now
    assert needed_since(100.5, now=100.0, staleness_seconds=1.0) == 100.0  # a clock ahead


def test_a_check_vouches_only_for_writes_acknowledged_before_it_less_the_clock_margin():
    assert layout_known_current(verified_at=10.0, needed=9.0)
    assert not layout_known_current(verified_at=10.0, needed=10.0 - CLOCK_MARGIN_SECONDS / 2)
    assert not layout_known_current(verified_at=10.0, needed=11.0)  # sent after the check
    assert not layout_known_current(verified_at=float("-inf"), needed=-1e9)  # never checked
    # A read that must be fresh now is never vouched for by an earlier check.
    assert not layout_known_current(verified_at=10.0, needed=needed_since(float("inf"), 10.0, 1))


def test_a_reader_follows_a_retired_primary_to_a_newer_layout_only():
    retired = handoff.Routing("retired", 2, (T0,))
    assert handoff.after_check(retired, known_epoch=1) == handoff.NextMove("reroute", (T0,), 2)
    assert handoff.after_check(retired, known_epoch=2).action == "unknown"
    assert handoff.after_check(handoff.Routing("retired", 3), 1).action == "unknown"  # no URLs
    assert handoff.after_check(handoff.Routing("live", 2, (T0,)), 0).action == "current"
    # A target still on standby after the cutover holds every write: nothing went elsewhere yet.
    assert handoff.after_check(handoff.Routing("standby", 1), 1).action == "current"


def test_a_moved_layout_knows_no_replicas_and_a_reversed_one_gets_them_back():
    configured = (Shard(0, S0, (R0,)), Shard(1, S1, (R1,)))
    assert layout_after_move(configured, (T0,), 1) == Layout(1, (Shard(0, T0),))
    assert layout_after_move(configured, (S0, S1), 2) == Layout(2, configured)
    assert layout_after_move(configured, (S1, S0), 3).shards == (Shard(0, S1), Shard(1, S0))


def test_a_layout_groups_owners_by_the_shard_that_holds_them_shard_0_first():
    layout = Layout(1, (Shard(0, S0), Shard(1, S1), Shard(2, T0)))
    ids = [compose_id(EPOCH_MS + 1000, bucket, 0) for bucket in (BUCKETS - 1, 0, BUCKETS // 2, 1)]
    groups = layout.group_by_shard(ids)
    assert [shard.index for shard, _ in groups] == [0, 1, 2]
    assert groups[0][1] == [ids[1], ids[3]]
    for shard, owners in groups:
        assert all(layout.shard_for_id(owner) == shard for owner in owners)
    assert layout.shard_for_bucket(BUCKETS - 1).index == shard_for_bucket(BUCKETS - 1, 3) == 2


def test_the_shard_map_is_the_one_layout_for_writes_and_reads():
    shard_map = ShardMap(load_config(STAGE_5))
    start = shard_map.current()
    assert start.epoch == 0 and [s.replica_urls for s in start.shards] == [(R0,), (R1,)]
    shard_map.verified(start, 50.0)
    assert shard_map.current_verified() == (start, 50.0)

    assert shard_map.follow_move((T0,), 1)
    moved, verified_at = shard_map.current_verified()
    assert moved == Layout(1, (Shard(0, T0),)) and verified_at == float("-inf")
    assert shard_map.shards == moved.shards
    assert not shard_map.follow_move((S0, S1), 1)  # not newer: ignored
    shard_map.verified(start, 60.0)  # a check of the layout before the move: ignored
    assert shard_map.current_verified()[1] == float("-inf")

    assert shard_map.follow_move((S0, S1), 2)  # reversed
    assert shard_map.current().shards == start.shards and shard_map.current().epoch == 2
