"""Time-ordered, globally unique 64-bit ids (Instagram-style), the same from stage 1 to stage 5.

Layout (63 bits, always positive):
  41 bits milliseconds since EPOCH_MS | 10 bits bucket | 12 bits sequence.
The bucket is the owner's logical bucket (see buckets.py), so an id tells which shard holds its row
and ids minted on different shards can never collide: a bucket is written on exactly one database
at a time (a data move's cutover hands it over; docs/moves.md). Postgres mints them
(chirp_next_id() in migration 0001) from a sequence, so concurrent web pods never need to
coordinate; compose_id() mirrors that SQL for tests.
"""

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
TIME_BITS, BUCKET_BITS, SEQUENCE_BITS = 41, 10, 12
BUCKET_SHIFT = SEQUENCE_BITS
TIME_SHIFT = BUCKET_BITS + SEQUENCE_BITS
MAX_BUCKET = (1 << BUCKET_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
MAX_ID = (1 << (TIME_BITS + BUCKET_BITS + SEQUENCE_BITS)) - 1


def compose_id(unix_ms: int, bucket: int, sequence: int) -> int:
    """Build an id from its parts; the sequence wraps like the SQL `nextval % 4096`."""
    if not 0 <= bucket <= MAX_BUCKET:
        raise ValueError(f"bucket {bucket} outside 0..{MAX_BUCKET}")
    elapsed = unix_ms - EPOCH_MS
    if not 0 <= elapsed < (1 << TIME_BITS):
        raise ValueError(f"timestamp {unix_ms} outside the id epoch")
    return (elapsed << TIME_SHIFT) | (bucket << BUCKET_SHIFT) | (sequence & MAX_SEQUENCE)


def id_bucket(chirp_id: int) -> int:
    """The logical bucket embedded in an id."""
    return (chirp_id >> BUCKET_SHIFT) & MAX_BUCKET


def id_unix_ms(chirp_id: int) -> int:
    """When the id was minted (milliseconds since the Unix epoch)."""
    return (chirp_id >> TIME_SHIFT) + EPOCH_MS


def is_valid_id(value: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID
