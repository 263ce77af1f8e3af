"""Pure parts of online moves: which streams a move needs, their names and row filters, and the
per-bucket verification."""

from chirp.buckets import BUCKETS, buckets_of_shard
from chirp.ids import EPOCH_MS, compose_id, id_bucket
from chirp.move import layout


def pairs(streams):
    return [(s.source, s.target) for s in streams]


def test_every_bucket_flows_once_from_its_source_to_its_target():
    for sources, targets in [(1, 1), (1, 2), (2, 1), (2, 3), (3, 1), (3, 2), (4, 4)]:
        streams = layout.streams("m", sources, targets, "forward")
        flowing = sorted(b for s in streams for b in s.buckets)
        assert flowing == list(range(BUCKETS))
        for s in streams:
            assert set(s.buckets) <= set(buckets_of_shard(s.source, sources))
            assert set(s.buckets) <= set(buckets_of_shard(s.target, targets))


def test_only_overlapping_pairs_get_a_stream():
    assert pairs(layout.streams("m", 1, 2, "forward")) == [(0, 0), (0, 1)]
    assert pairs(layout.streams("m", 2, 3, "forward")) == [(0, 0), (0, 1), (1, 1), (1, 2)]
    assert pairs(layout.streams("m", 3, 1, "back")) == [(0, 0), (1, 0), (2, 0)]


def test_names_are_unique_per_move_and_fit_postgres_identifiers():
    move = layout.move_id(["postgresql://a@h:1/x"], ["postgresql://a@h:2/y", "postgresql://a@h:3/z"])
    assert move == layout.move_id(["postgresql://a:secret@h:1/x"],
                                  ["postgresql://a@h:2/y", "postgresql://a@h:3/z"])
    streams = layout.streams(move, 2, 3, "forward") + layout.streams(move, 2, 3, "back")
    names = [s.name for s in streams]
    assert len(set(names)) == len(names) and all(len(n) <= 63 for n in names)
    forward, back = streams[0], streams[4]
    assert forward.publication == f"chirp_{move}_to_t0"
    assert back.publication == f"chirp_{move}_back_s0"
    assert layout.move_id(["postgresql://a@h:2/y"], ["postgresql://a@h:1/x"]) != move


def test_passwords_never_reach_names_or_output():
    assert layout.redact("postgresql://chirp:s3cret@db:5432/chirp") == \
        "postgresql://chirp@db:5432/chirp"
    assert layout.redact("postgresql://chirp@db/chirp") == "postgresql://chirp@db/chirp"


def test_row_filters_select_contiguous_buckets_from_key_columns():
    assert layout.row_filter("id", range(0, BUCKETS)) is None
    assert layout.row_filter("id", range(512, 1024)) == "((id >> 12) & 1023) BETWEEN 512 AND 1023"
    sql = layout.publication_sql("p", range(0, 342), "abc")
    assert sql == ("CREATE PUBLICATION p FOR TABLE"
                   " users WHERE (((id >> 12) & 1023) BETWEEN 0 AND 341),"
                   " posts WHERE (((id >> 12) & 1023) BETWEEN 0 AND 341),"
                   " follows WHERE (((follower_id >> 12) & 1023) BETWEEN 0 AND 341),"
                   " chirp_move_marks WHERE (move_id = 'abc')")
    assert "WHERE" not in layout.publication_sql("p", range(0, BUCKETS), "abc").split("marks")[0]


def test_the_sql_bucket_matches_the_id_layout():
    some_id = compose_id(EPOCH_MS + 5, 700, 9)
    assert layout.bucket_expression("some_id") == "((some_id >> 12) & 1023)"
    assert (some_id >> 12) & 1023 == id_bucket(some_id) == 700


def test_verification_compares_buckets_and_finds_misplaced_rows():
    old = [[(0, 2, 10), (600, 1, 5)]]
    assert layout.verification(old, [[(0, 2, 10)], [(600, 1, 5)]])["ok"] is True
    missing = layout.verification(old, [[(0, 2, 10)], []])
    assert missing["ok"] is False and missing["differing_buckets"] == [600]
    misplaced = layout.verification(old, [[(0, 2, 10), (600, 1, 5)], []])
    assert misplaced["ok"] is False and misplaced["misplaced_rows"] == 1
    merged = layout.verification([[(0, 2, 10)], [(600, 1, 5)]], [[(0, 2, 10), (600, 1, 5)]])
    assert merged == {"ok": True, "rows": 3, "target_rows": 3, "checksum": "15",
                      "differing_buckets": [], "misplaced_rows": 0}
