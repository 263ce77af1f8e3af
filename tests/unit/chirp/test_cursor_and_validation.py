"""Cursors round-trip and reject forgeries; input rules give clear messages."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chirp.cursor import BadCursor, decode_cursor, encode_cursor, next_cursor
from chirp.ids import MAX_ID
from chirp.validation import (
    InvalidInput,
    clean_limit,
    clean_password,
    clean_post_body,
    clean_username,
)


@given(st.integers(1, MAX_ID))
def test_cursor_round_trip(post_id):
    cursor = encode_cursor(post_id)
    assert decode_cursor(cursor) == post_id and "=" not in cursor


@given(st.text(max_size=80))
def test_arbitrary_text_is_either_a_real_cursor_or_refused(text):
    try:
        before = decode_cursor(text)
    except BadCursor:
        return
    assert before is None or encode_cursor(before) == text


@pytest.mark.parametrize("cursor", ["bm9wZQ", "djE6LTU", "djE6MA", "djE6YWJj", "!!!!", "x" * 65])
def test_forged_cursors_are_refused(cursor):
    with pytest.raises(BadCursor):
        decode_cursor(cursor)


def test_next_cursor_only_after_a_full_page():
    page = [{"id": 30}, {"id": 20}]
    assert decode_cursor(next_cursor(page, 2)) == 20
    assert next_cursor(page, 3) is None and next_cursor([], 1) is None


def test_usernames_are_normalised_and_checked():
    assert clean_username("  Alice_01 ") == "alice_01"
    for bad in ("ab", "a" * 31, "has space", "émile", "", 5):
        with pytest.raises(InvalidInput):
            clean_username(bad)


def test_post_bodies():
    assert clean_post_body("  hi  ") == "hi"
    assert clean_post_body("é" * 280) == "é" * 280  # characters, not bytes
    with pytest.raises(InvalidInput, match="281 characters"):
        clean_post_body("a" * 281)
    for bad in ("", "   ", None, "nul\x00"):
        with pytest.raises(InvalidInput):
            clean_post_body(bad)


def test_passwords_and_limits():
    assert clean_password("12345678") == "12345678"
    with pytest.raises(InvalidInput):
        clean_password("1234567")
    assert clean_limit(None) == 20 and clean_limit("5") == 5
    for bad in ("0", "101", "x", "1.5"):
        with pytest.raises(InvalidInput):
            clean_limit(bad)
