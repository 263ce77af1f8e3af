"""Stage 4's home timeline built from cached per-author lists, pure.

Each author's cached list holds their newest K posts. Merging them answers a page exactly when every
truncated list reaches at least down to the page's oldest post; otherwise there may be posts we do
not hold, and the caller asks the database instead (None).

A cached page whose authors partly wrote since is repaired the same way: the old page still holds
every post of the authors who did not write down to its oldest post, so it is one more list, merged
with the changed authors' current lists.
"""

import heapq
from dataclasses import dataclass


@dataclass(frozen=True)
class AuthorPosts:
    posts: tuple[dict, ...]  # newest first, each with an "id"
    complete: bool  # True when the list holds all of the author's posts
    # When not complete: every post down to this id is held (default: down to the last post).
    held_down_to: int | None = None


def _held_down_to(lst: AuthorPosts) -> int | None:
    if lst.held_down_to is not None:
        return lst.held_down_to
    return lst.posts[-1]["id"] if lst.posts else None


def merge_author_lists(lists: list[AuthorPosts], before: int | None,
                       limit: int) -> list[dict] | None:
    merged = heapq.merge(*(lst.posts for lst in lists), key=lambda post: -post["id"])
    page = []
    for post in merged:
        if before is not None and post["id"] >= before:
            continue
        page.append(post)
        if len(page) == limit:
            break
    boundary = page[-1]["id"] if len(page) == limit else None
    for lst in lists:
        if lst.complete:
            continue
        held = _held_down_to(lst)
        if boundary is None or held is None or held > boundary:
            return None  # this author may have posts inside the page that we do not hold
    return page


def repair_page(old_page: list[dict], limit: int, changed_authors: set[int],
                changed_lists: list[AuthorPosts], before: int | None) -> list[dict] | None:
    """The page (of `limit` posts older than `before`) again, after `changed_authors` wrote:
    their current lists replace their part of old_page. None when that cannot be exact."""
    kept = tuple(post for post in old_page if post["author_id"] not in changed_authors)
    if len(old_page) < limit:  # the old page held every post of its authors
        unchanged = AuthorPosts(kept, complete=True)
    else:
        unchanged = AuthorPosts(kept, complete=False, held_down_to=old_page[-1]["id"])
    return merge_author_lists([unchanged, *changed_lists], before, limit)
