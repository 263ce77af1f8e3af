"""Pure parts of copy/reshard/merge: row placement, resume points, SQL shapes, URL redaction."""

from chirp.buckets import shard_for_id
from chirp.ids import EPOCH_MS, compose_id
from chirp.move import plan

USERS, POSTS, FOLLOWS = plan.TABLES


def test_rows_go_to_the_target_of_their_owner():
    owners = [compose_id(EPOCH_MS + i, b, i) for i, b in enumerate((0, 300, 700, 1023))]
    rows = [(owner, f"u{owner}", "hash", "2026-01-01") for owner in owners]
    split = plan.split_rows(USERS, rows, 2)
    assert [len(part) for part in split] == [2, 2]
    follows = [(owners[3], owners[0], "t")]  # stored with the follower
    assert plan.split_rows(FOLLOWS, follows, 2) == [[], follows]
    assert all(shard_for_id(row[0], 2) == k for k, part in enumerate(split) for row in part)


def test_resume_from_the_least_advanced_target():
    assert plan.resume_key([[10], [7], [12]]) == [7]
    assert plan.resume_key([[10], None]) is None
    assert plan.resume_key([]) is None
    assert plan.resume_key([[1, 9], [1, 5]]) == [1, 5]


def test_keyset_batches():
    assert plan.batch_sql(POSTS, False) == \
        "SELECT id, author_id, body, created_at FROM posts ORDER BY id LIMIT %s"
    assert "WHERE (follower_id, followee_id) > (%s, %s)" in plan.batch_sql(FOLLOWS, True)
    assert plan.insert_sql(USERS).endswith("ON CONFLICT DO NOTHING")


def test_totals_and_misplaced_rows():
    per_bucket = [(0, 2, 5), (600, 3, 7), (1023, 1, 1)]
    assert plan.totals_per_target(per_bucket, 2) == [{"rows": 2, "checksum": 5},
                                                     {"rows": 4, "checksum": 8}]
    assert plan.misplaced_rows(per_bucket, 0, 2) == 4 and plan.misplaced_rows(per_bucket, 0, 1) == 0


def test_passwords_never_reach_output():
    assert plan.redact("postgresql://chirp:s3cret@db:5432/chirp") == "postgresql://chirp@db:5432/chirp"
    assert plan.sources_identity(["postgresql://a@x/c", "postgresql://a:p@y/c"]) == \
        "postgresql://a@x/c,postgresql://a@y/c"
