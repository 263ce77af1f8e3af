"""Stage 4's home timeline built from cached per-author lists, pure.

Each author's cached list holds their newest K posts. Merging them answers a page exactly when every
truncated list reaches at least down to the page's oldest post; otherwise there may be posts we do
not hold, and the caller asks the database instead (None).
"""

import heapq
from dataclasses import dataclass


@dataclass(frozen=True)
class AuthorPosts:
    posts: tuple[dict, ...]  # newest first, each with an "id"
    complete: bool  # True when the list holds all of the author's posts


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
        if boundary is None or not lst.posts or lst.posts[-1]["id"] > boundary:
            return None  # this author may have posts inside the page that we do not hold
    return page
