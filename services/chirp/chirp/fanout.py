"""Stage 5's fanned-out home timelines in Redis: one sorted set of post ids per user.

ZADD with the post id as both member and score makes delivery idempotent: a retried or duplicated
fan-out task rewrites the same entry, never a second one. A timeline is trusted only while its
"ready" marker lives (set by a full rebuild); otherwise readers scatter-gather from the shards.
"""

PREFIX = "chirp:"


def timeline_key(user_id: int) -> str:
    return f"{PREFIX}tl:{user_id}"


def ready_key(user_id: int) -> str:
    return f"{PREFIX}tl-ready:{user_id}"


class FanoutTimelines:
    def __init__(self, cap: int, ready_ttl_seconds: int):
        self.cap = cap
        self.ready_ttl = ready_ttl_seconds

    def read(self, r, user_id: int, before: int | None, limit: int) -> list[int] | None:
        """Post ids of one page, or None when the fanned-out timeline cannot answer it."""
        pipe = r.pipeline(transaction=False)
        pipe.exists(ready_key(user_id))
        pipe.zrevrangebyscore(timeline_key(user_id), f"({before}" if before else "+inf", "-inf",
                              start=0, num=limit)
        pipe.zcard(timeline_key(user_id))
        ready, ids, size = pipe.execute()
        if not ready:
            return None
        if len(ids) < limit and size >= self.cap:
            return None  # paged past what we keep: older posts exist only in the shards
        return [int(post_id) for post_id in ids]

    def deliver(self, r, post_id: int, user_ids) -> int:
        pipe = r.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.zadd(timeline_key(user_id), {post_id: post_id})
            pipe.zremrangebyrank(timeline_key(user_id), 0, -self.cap - 1)
        results = pipe.execute()
        return sum(results[0::2])  # entries actually added (0 for a repeat delivery)

    def deliver_if_ready(self, r, post_id: int, user_id: int) -> None:
        """The author's own timeline, synchronously: they see their post at once."""
        if r.exists(ready_key(user_id)):
            self.deliver(r, post_id, [user_id])

    def rebuild(self, r, user_id: int, post_ids: list[int]) -> None:
        pipe = r.pipeline(transaction=False)
        if post_ids:
            pipe.zadd(timeline_key(user_id), {pid: pid for pid in post_ids})
            pipe.zremrangebyrank(timeline_key(user_id), 0, -self.cap - 1)
        pipe.set(ready_key(user_id), 1, ex=self.ready_ttl)
        pipe.execute()

    def invalidate(self, r, user_id: int) -> None:
        r.delete(ready_key(user_id), timeline_key(user_id))

    def claim_rebuild(self, r, user_id: int) -> bool:
        """One rebuild request at a time per user."""
        return bool(r.set(f"{PREFIX}tl-rebuilding:{user_id}", 1, nx=True, ex=30))
