"""Repairing a cached home page after some of its authors wrote (timeline_merge.repair_page)."""

from hypothesis import given
from hypothesis import strategies as st

from chirp.timeline_merge import AuthorPosts, merge_author_lists, repair_page


def _posts(author: int, ids) -> list[dict]:
    return [{"id": i, "author_id": author} for i in sorted(ids, reverse=True)]


def _page(by_author: dict[int, list[dict]], before, limit) -> list[dict]:
    every = [p for posts in by_author.values() for p in posts if before is None or p["id"] < before]
    return sorted(every, key=lambda p: -p["id"])[:limit]


# Authors' posts before the page was cached; ids unique across authors, all below 10,000.
old_posts = st.lists(st.sets(st.integers(1, 9_999), max_size=25), min_size=1, max_size=5).map(
    lambda sets: [sorted(s - set().union(*sets[:n])) for n, s in enumerate(sets)])


@given(old_posts, st.data(), st.integers(1, 25), st.integers(1, 25),
       st.one_of(st.none(), st.integers(1, 20_000)))
def test_repair_is_exact_or_declines(old, data, limit, k, before):
    """Whatever the changed authors wrote since (new ids are higher), the repaired page equals the
    page built from scratch, or the repair declines (None)."""
    by_author = {a: _posts(a, ids) for a, ids in enumerate(old)}
    cached = _page(by_author, before, limit)
    changed = set(data.draw(st.sets(st.sampled_from(sorted(by_author)), min_size=1)))
    next_id = 10_000
    for author in sorted(changed):
        new = data.draw(st.integers(0, 6))
        by_author[author] = _posts(author, range(next_id, next_id + new)) + by_author[author]
        next_id += new
    lists = [AuthorPosts(tuple(by_author[a][:k]), complete=len(by_author[a]) <= k)
             for a in sorted(changed)]
    repaired = repair_page(cached, limit, changed, lists, before)
    if repaired is not None:
        assert repaired == _page(by_author, before, limit)


def test_one_new_post_by_a_followee_repairs_the_page():
    a, b = _posts(1, [10, 8, 6, 4]), _posts(2, [9, 7, 5, 3])
    cached = _page({1: a, 2: b}, None, 4)  # 10 9 8 7
    a_now = _posts(1, [11]) + a
    repaired = repair_page(cached, 4, {1}, [AuthorPosts(tuple(a_now[:3]), complete=False)], None)
    assert [p["id"] for p in repaired] == [11, 10, 9, 8]


def test_repair_declines_when_the_changed_list_does_not_reach_the_page():
    a, b = _posts(1, [10, 8]), _posts(2, [9, 7, 5, 3])
    cached = _page({1: a, 2: b}, None, 4)  # 10 9 8 7
    # author 2 stopped at 7 in the cached page, author 1's list now holds only its newest post
    repaired = repair_page(cached, 4, {1}, [AuthorPosts(({"id": 12, "author_id": 1},),
                                                        complete=False)], None)
    assert repaired is None  # 10 and 8 may still belong on the page: only a rebuild can tell


def test_a_short_cached_page_held_everything_of_its_unchanged_authors():
    cached = _posts(2, [5, 3])  # fewer than the limit: author 2 has no other posts
    repaired = repair_page(cached, 4, {1}, [AuthorPosts(tuple(_posts(1, [9])), complete=True)],
                           None)
    assert [p["id"] for p in repaired] == [9, 5, 3]


def test_held_down_to_vouches_for_more_than_the_list_shows():
    held = AuthorPosts(({"id": 9},), complete=False, held_down_to=4)  # nothing of it in 4..8
    other = AuthorPosts(({"id": 8}, {"id": 5}), complete=True)
    assert merge_author_lists([held, other], None, 3) == [{"id": 9}, {"id": 8}, {"id": 5}]
    assert merge_author_lists([AuthorPosts(({"id": 9},), complete=False), other], None, 3) is None
