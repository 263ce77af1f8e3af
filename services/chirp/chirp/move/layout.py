"""Pure parts of an online move: who feeds whom, under which names, with which row filters.

N sources -> M targets: source j holds the buckets of shard j of N, target k must end up with the
buckets of shard k of M. Each (source, target) pair whose bucket ranges overlap gets one logical
replication stream: a publication on the source whose PG15 row filter selects target k's buckets,
a slot on the source, a subscription on the target. The reverse streams (undo) mirror them:
target k publishes source j's buckets back to source j.
"""

import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from chirp.buckets import BUCKETS, buckets_of_shard
from chirp.ids import BUCKET_SHIFT, MAX_BUCKET


def redact(url: str) -> str:
    """A URL without any password: safe to print, to store and to derive names from."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class FilteredTable:
    name: str
    bucket_column: str  # a primary-key column carrying the owner's bucket (row filters need it)
    key_columns: tuple[str, ...]  # the primary key (bigint columns): names one row


# Row filters on UPDATE/DELETE may only use replica-identity (primary key) columns: a post's id
# carries its author's bucket, a follow's key starts with the follower's id.
TABLES = (
    FilteredTable("users", "id", ("id",)),
    FilteredTable("posts", "id", ("id",)),
    FilteredTable("follows", "follower_id", ("follower_id", "followee_id")),
)


@dataclass(frozen=True)
class Stream:
    """One replication stream: `publisher` publishes `buckets` to `subscriber` (indexes)."""

    move_id: str
    direction: str  # "forward" (source -> target) or "back" (target -> source)
    source: int
    target: int
    buckets: range

    @property
    def name(self) -> str:
        """Subscription and slot name (slots are per server: the move id keeps them apart)."""
        tag = "f" if self.direction == "forward" else "b"
        return f"chirp_{self.move_id}_{tag}_s{self.source}_t{self.target}"

    @property
    def publication(self) -> str:
        """Forward: on source j, one per target k. Back: on target k, one per source j."""
        if self.direction == "forward":
            return f"chirp_{self.move_id}_to_t{self.target}"
        return f"chirp_{self.move_id}_back_s{self.source}"


PUBLISHED_TABLES = len(TABLES) + 1  # and chirp_move_marks


def move_id(source_urls: list[str], target_urls: list[str]) -> str:
    """Stable for the same request, so a rerun after a kill finds what the first run made.
    Ten hex digits: safe to quote in SQL and short enough for slot names."""
    text = ",".join(map(redact, source_urls)) + ">" + ",".join(map(redact, target_urls))
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def overlap(a: range, b: range) -> range:
    return range(max(a.start, b.start), min(a.stop, b.stop))


def streams(move: str, source_count: int, target_count: int, direction: str) -> list[Stream]:
    """Every (source, target) pair that shares buckets, with the buckets they share."""
    found = []
    for j in range(source_count):
        for k in range(target_count):
            shared = overlap(buckets_of_shard(j, source_count), buckets_of_shard(k, target_count))
            if shared:
                found.append(Stream(move, direction, j, k, shared))
    return found


def bucket_expression(column: str) -> str:
    """Mirrors chirp.ids.id_bucket(); only built-in immutable operators (allowed in row filters)."""
    return f"(({column} >> {BUCKET_SHIFT}) & {MAX_BUCKET})"


def row_filter(column: str, buckets: range) -> str | None:
    """A row filter selecting these contiguous buckets; None when that is every bucket."""
    if buckets.start == 0 and buckets.stop == BUCKETS:
        return None
    return f"{bucket_expression(column)} BETWEEN {buckets.start} AND {buckets.stop - 1}"


def publication_sql(name: str, buckets: range, move: str) -> str:
    """The stream's data tables filtered to its buckets, and this move's cutover marks."""
    tables = []
    for table in TABLES:
        where = row_filter(table.bucket_column, buckets)
        tables.append(f"{table.name} WHERE ({where})" if where else table.name)
    tables.append(f"chirp_move_marks WHERE (move_id = '{move}')")
    return f"CREATE PUBLICATION {name} FOR TABLE " + ", ".join(tables)


def count_sql(table: FilteredTable, buckets: range) -> str:
    where = row_filter(table.bucket_column, buckets)
    return f"SELECT count(*) FROM {table.name}" + (f" WHERE {where}" if where else "")


def _checksum_select(table: FilteredTable) -> str:
    return (f"SELECT {bucket_expression(table.bucket_column)} AS bucket, count(*),"
            " coalesce(sum(hashtextextended(t::text, 0)), 0)"
            f" FROM {table.name} t")


def checksum_sql(table: FilteredTable) -> str:
    """Row count and an order-independent checksum per bucket (sums add up across databases)."""
    return _checksum_select(table) + " GROUP BY 1"


def keyed_checksum_sql(table: FilteredTable) -> str:
    """checksum_sql() over the rows with these primary keys only (one bigint[] parameter per key
    column, the keys' parts in the same order): primary-key index lookups, no table scan."""
    if len(table.key_columns) == 1:
        where = f"{table.key_columns[0]} = ANY(%s::bigint[])"
    else:
        where = (f"({', '.join(table.key_columns)}) IN (SELECT * FROM unnest("
                 + ", ".join(["%s::bigint[]"] * len(table.key_columns)) + "))")
    return _checksum_select(table) + f" WHERE {where} GROUP BY 1"


def bucket_totals(per_database: list[list[tuple]]) -> dict[int, tuple[int, int]]:
    """[(bucket, rows, checksum)] of several databases -> {bucket: (rows, checksum)} summed."""
    totals: dict[int, tuple[int, int]] = {}
    for rows in per_database:
        for bucket, count, checksum in rows:
            had_rows, had_sum = totals.get(int(bucket), (0, 0))
            totals[int(bucket)] = (had_rows + int(count), had_sum + int(checksum))
    return totals


def verification(old: list[list[tuple]], new: list[list[tuple]]) -> dict:
    """One table: do the new databases hold exactly the old ones' rows, each on its right shard?"""
    before, after = bucket_totals(old), bucket_totals(new)
    differing = sorted(b for b in before.keys() | after.keys() if before.get(b) != after.get(b))
    misplaced = sum(int(count) for k, rows in enumerate(new) for bucket, count, _ in rows
                    if int(bucket) not in buckets_of_shard(k, len(new)))
    return {"ok": not differing and misplaced == 0,
            "rows": sum(count for count, _ in before.values()),
            "target_rows": sum(count for count, _ in after.values()),
            "checksum": str(sum(checksum for _, checksum in before.values())),
            "differing_buckets": differing[:20], "misplaced_rows": misplaced}
