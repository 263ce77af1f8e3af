"""Pure parts of a data move: which tables, in which order, where each row goes, where to resume."""

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from chirp.buckets import shard_for_bucket, shard_for_id

BUCKET_SQL = "(({owner} >> 12) & 1023)"  # mirrors chirp.ids.id_bucket()


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # keyset order for batches (the primary key)
    owner: str  # the column whose bucket decides the row's shard


# Parents before children (foreign keys hold batch by batch).
TABLES = (
    TableSpec("users", ("id", "username", "password_hash", "created_at"), ("id",), "id"),
    TableSpec("posts", ("id", "author_id", "body", "created_at"), ("id",), "author_id"),
    TableSpec("follows", ("follower_id", "followee_id", "created_at"),
              ("follower_id", "followee_id"), "follower_id"),
)


def redact(url: str) -> str:
    """A URL without any password: safe to print and to use as a stable source name."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def sources_identity(sources: list[str]) -> str:
    return ",".join(redact(url) for url in sources)


def target_of(owner_id: int, target_count: int) -> int:
    return shard_for_id(owner_id, target_count)


def split_rows(spec: TableSpec, rows: list[tuple], target_count: int) -> list[list[tuple]]:
    """Rows (tuples in spec.columns order) split per target by their owner's bucket."""
    owner_at = spec.columns.index(spec.owner)
    per_target: list[list[tuple]] = [[] for _ in range(target_count)]
    for row in rows:
        per_target[target_of(row[owner_at], target_count)].append(row)
    return per_target


def key_of(spec: TableSpec, row: tuple) -> list:
    return [row[spec.columns.index(column)] for column in spec.key]


def resume_key(checkpoints: list[list | None]) -> list | None:
    """Where to restart a (source, table): the least progress over all targets (None: start)."""
    if not checkpoints or any(cp is None for cp in checkpoints):
        return None
    return min(checkpoints)


def batch_sql(spec: TableSpec, after_key: bool) -> str:
    columns = ", ".join(spec.columns)
    order = ", ".join(spec.key)
    where = ""
    if after_key:
        placeholders = ", ".join(["%s"] * len(spec.key))
        where = f" WHERE ({order}) > ({placeholders})"
    return f"SELECT {columns} FROM {spec.name}{where} ORDER BY {order} LIMIT %s"


def insert_sql(spec: TableSpec) -> str:
    columns = ", ".join(spec.columns)
    placeholders = ", ".join(["%s"] * len(spec.columns))
    return f"INSERT INTO {spec.name} ({columns}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"


def checksum_sql(spec: TableSpec) -> str:
    """Row count and an order-independent checksum per bucket (sums add up across shards)."""
    bucket = BUCKET_SQL.format(owner=spec.owner)
    return (
        f"SELECT {bucket} AS bucket, count(*) AS rows,"
        f" coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0) AS checksum"
        f" FROM {spec.name} t GROUP BY 1"
    )


def totals_per_target(per_bucket: list[tuple[int, int, int]], target_count: int) -> list[dict]:
    """[(bucket, rows, checksum)] -> per target {rows, checksum} (where those buckets belong)."""
    totals = [{"rows": 0, "checksum": 0} for _ in range(target_count)]
    for bucket, rows, checksum in per_bucket:
        target = shard_for_bucket(bucket, target_count)
        totals[target]["rows"] += int(rows)
        totals[target]["checksum"] += int(checksum)
    return totals


def misplaced_rows(per_bucket: list[tuple[int, int, int]], target: int, target_count: int) -> int:
    return sum(int(rows) for bucket, rows, _ in per_bucket
               if shard_for_bucket(bucket, target_count) != target)
