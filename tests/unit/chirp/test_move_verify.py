"""The two-pass verification's pure parts: which keys a decoded change names, and the sums at the
switch from the sums before the lock and the re-read rows (chirp.move.verify)."""

from chirp.move import layout, verify

KEYS = {t.name: t.key_columns for t in layout.TABLES}
TS = "created_at[timestamp with time zone]:'2026-11-28 18:32:47.31+00'"


def test_inserts_updates_and_deletes_name_their_primary_keys():
    post = ("table public.posts: INSERT: id[bigint]:385135955666808834 author_id[bigint]:77"
            f" body[text]:'it''s id[bigint]:5 x' {TS}")
    assert verify.changed_keys(post, KEYS) == ("posts", [(385135955666808834,)])
    unfollow = "table public.follows: DELETE: follower_id[bigint]:1 followee_id[bigint]:2"
    assert verify.changed_keys(unfollow, KEYS) == ("follows", [(1, 2)])
    renamed = ("table public.users: UPDATE: id[bigint]:9 username[text]:'bob by'"
               f" password_hash[text]:'x' {TS}")
    assert verify.changed_keys(renamed, KEYS) == ("users", [(9,)])
    rekeyed = ("table public.follows: UPDATE: old-key: follower_id[bigint]:1 followee_id[bigint]:2"
               f" new-tuple: follower_id[bigint]:1 followee_id[bigint]:3 {TS}")
    assert verify.changed_keys(rekeyed, KEYS) == ("follows", [(1, 2), (1, 3)])


def test_a_change_that_names_no_rows_means_reading_the_whole_table_again():
    assert verify.changed_keys("table public.follows: TRUNCATE: (no-flags)", KEYS) == \
        ("follows", None)
    assert verify.changed_keys("table public.posts: DELETE: (no-tuple-data)", KEYS) == \
        ("posts", None)
    assert verify.changed_keys("table public.users: INSERT: id[bigint]:null", KEYS) == \
        ("users", None)
    assert verify.changed_keys("table public.posts: INSERT: body[text]:'unterminated", KEYS) == \
        ("posts", None)


def test_other_lines_and_tables_are_not_data_changes():
    for line in ("BEGIN", "COMMIT",
                 "table public.chirp_move_marks: INSERT: move_id[text]:'m' stream[text]:'s'",
                 "table public.chirp_routing: UPDATE: singleton[boolean]:true"):
        assert verify.changed_keys(line, KEYS) is None


def test_tuples_parse_quotes_nulls_and_types_with_spaces():
    assert verify.parse_tuple("a[bigint]:1 b[text]:'x y ''z''' c[text]:null"
                              " d[timestamp with time zone]:'2026-01-01'") == \
        {"a": "1", "b": "x y 'z'", "c": None, "d": "2026-01-01"}


def test_changes_collect_keys_per_table_once():
    changes = verify.Changes(KEYS)
    changes.add(["BEGIN", "table public.posts: INSERT: id[bigint]:5 author_id[bigint]:1",
                 "table public.posts: INSERT: id[bigint]:5 author_id[bigint]:1", "COMMIT",
                 "table public.follows: TRUNCATE: (no-flags)"])
    assert changes.keys == {"posts": {(5,)}} and changes.whole == {"follows"}
    assert changes.count() == 1


def test_key_parameters_are_one_array_per_key_column():
    assert verify.key_parameters({(1, 4), (0, 3)}, 2) == [[0, 1], [3, 4]]
    assert verify.key_parameters({(7,)}, 1) == [[7]]


def test_sums_at_the_switch_replace_the_changed_rows_only():
    before = [(0, 3, 30), (5, 1, 7)]  # per bucket: rows, checksum, in S
    # bucket 0: one row changed (10 -> 11) and one inserted (4); bucket 5: its row deleted.
    changed_then = [(0, 1, 10), (5, 1, 7)]
    changed_now = [(0, 2, 15)]
    assert verify.combine(before, changed_then, changed_now) == [(0, 4, 35)]
    assert verify.combine(before, [], []) == [(0, 3, 30), (5, 1, 7)]
    # A bucket left empty but with a checksum is kept: it will differ from the other side.
    assert verify.combine([(2, 1, 9)], [(2, 1, 8)], []) == [(2, 0, 1)]


def test_keyed_checksums_read_by_primary_key():
    posts, follows = layout.TABLES[1], layout.TABLES[2]
    assert layout.keyed_checksum_sql(posts).endswith(
        "FROM posts t WHERE id = ANY(%s::bigint[]) GROUP BY 1")
    assert "(follower_id, followee_id) IN (SELECT * FROM unnest(%s::bigint[], %s::bigint[]))" \
        in layout.keyed_checksum_sql(follows)
    assert layout.keyed_checksum_sql(posts).split(" WHERE ")[0] == \
        layout.checksum_sql(posts).removesuffix(" GROUP BY 1")


def test_fences_are_the_cutovers_own_transactional_messages():
    fence = f"message: transactional: 1 prefix: {verify.FENCE_PREFIX}, sz: 9 content:slot-1-2"
    assert verify.fence_token(fence) == "slot-1-2"
    assert verify.fence_token(fence.replace("transactional: 1", "transactional: 0")) is None
    assert verify.fence_token("message: transactional: 1 prefix: other, sz: 1 content:x") is None
    assert verify.fence_token("table public.posts: INSERT: id[bigint]:5") is None
    changes = verify.Changes(KEYS)
    changes.add([fence, "table public.posts: INSERT: id[bigint]:5 author_id[bigint]:1"])
    assert changes.fences == {"slot-1-2"} and changes.keys == {"posts": {(5,)}}
