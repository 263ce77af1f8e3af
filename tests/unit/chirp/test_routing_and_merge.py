"""Read routing decisions and stage 4's merge of cached per-author lists."""

from hypothesis import given
from hypothesis import strategies as st

from chirp.routing import ReplicaState, choose_read_replica, statement_kind
from chirp.shards import PRIMARY, route_label
from chirp.timeline_merge import AuthorPosts, merge_author_lists
from chirp.trace import summarize_cache

UP = ReplicaState(up=True, lag_seconds=0.0, caught_up_until=100.0)
DOWN = ReplicaState(up=False, lag_seconds=None)
LAGGING = ReplicaState(up=True, lag_seconds=30.0, caught_up_until=70.0)
UNMEASURED = ReplicaState(up=True, lag_seconds=None)


def choose(replicas, last_write_at=None, rotation=0):
    return choose_read_replica(replicas, last_write_at=last_write_at, max_lag_seconds=2.0,
                               rotation=rotation)


def test_rotation_spreads_reads_over_healthy_replicas():
    assert [choose([UP, UP, UP], rotation=r) for r in range(6)] == [0, 1, 2, 0, 1, 2]


def test_a_writer_reads_from_primary_until_a_replica_is_known_to_hold_the_write():
    assert choose([UP, UP], last_write_at=99.95) == PRIMARY  # within the clock margin
    assert choose([UP, UP], last_write_at=101.0) == PRIMARY  # wrote after the last check
    assert choose([UP, UP], last_write_at=99.0) != PRIMARY
    behind = ReplicaState(up=True, lag_seconds=1.0, caught_up_until=95.0)
    assert choose([behind, UP], last_write_at=97.0, rotation=0) == 1
    assert {choose([behind, UP], last_write_at=90.0, rotation=r) for r in range(4)} == {0, 1}


def test_down_lagging_and_unmeasured_replicas_are_skipped():
    assert {choose([DOWN, UP, LAGGING, UNMEASURED], rotation=r) for r in range(8)} == {1}


def test_no_healthy_replica_means_primary():
    assert choose([DOWN, LAGGING]) == PRIMARY and choose([]) == PRIMARY


def test_route_labels():
    assert route_label(False, 0, PRIMARY) == "primary"
    assert route_label(False, 0, 1) == "replica-2"
    assert route_label(True, 3, PRIMARY) == "shard-3"
    assert route_label(True, 3, 0) == "shard-3-replica-1"


def test_statement_kinds():
    assert statement_kind("  select 1") == "read"
    assert statement_kind("WITH x AS (...) SELECT") == "read"
    assert statement_kind("INSERT INTO posts ...") == "write" and statement_kind("") == "write"


def test_cache_summary():
    assert summarize_cache(["hit", "miss"], True) == "miss"
    assert summarize_cache(["hit", "hit"], True) == "hit"
    assert summarize_cache(["hit", "down"], True) == "down"
    assert summarize_cache([], True) == "none" and summarize_cache(["hit"], False) == "off"


# Authors with posts: ids are unique across authors (like real ids).
authors = st.lists(st.lists(st.integers(1, 10_000), max_size=30, unique=True), min_size=1,
                   max_size=6).map(lambda lists: _unique_across(lists))


def _unique_across(lists):
    seen, result = set(), []
    for ids in lists:
        kept = [i for i in ids if i not in seen]
        seen.update(kept)
        result.append(sorted(kept, reverse=True))
    return result


@given(authors, st.integers(1, 8), st.one_of(st.none(), st.integers(1, 10_001)),
       st.integers(1, 25))
def test_merge_is_exact_or_declines(all_posts, k, before, limit):
    """Whatever the cache holds (each author's newest k), the merge equals the true page or
    returns None; and it never declines when every list is complete."""
    lists = [AuthorPosts(tuple({"id": i} for i in ids[:k]), complete=len(ids) <= k)
             for ids in all_posts]
    truth = sorted((i for ids in all_posts for i in ids if before is None or i < before),
                   reverse=True)[:limit]
    merged = merge_author_lists(lists, before, limit)
    if merged is not None:
        assert [p["id"] for p in merged] == truth
    if all(lst.complete for lst in lists):
        assert merged is not None


def test_merge_declines_when_a_truncated_list_might_hide_posts():
    full = AuthorPosts(({"id": 50}, {"id": 10}), complete=True)
    truncated = AuthorPosts(({"id": 40}, {"id": 30}), complete=False)  # older posts not held
    assert merge_author_lists([full, truncated], None, 2) == [{"id": 50}, {"id": 40}]
    assert merge_author_lists([full, truncated], None, 4) is None
