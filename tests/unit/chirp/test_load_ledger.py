"""`chirp load`'s write ledger: what counts as lost, duplicated, renumbered, unverified."""

from chirp.load import ledger


def test_post_bodies_carry_their_nonce_and_fit_a_post():
    nonce = ledger.nonce("ab12cd34", 3, 17)
    body = ledger.post_body(nonce)
    assert ledger.nonce_of(body) == nonce and len(body) <= 280
    assert ledger.nonce_of("chirp-load ab12cd34.3.170: x") == "ab12cd34.3.170"
    assert ledger.nonce_of("hello") is None and ledger.nonce_of("") is None


def book(acked=(), failed=(), unknown=()):
    book = ledger.Ledger()
    for n, post_id in acked:
        book.ack(n, int(n.split(".")[1]), post_id)
    for n in failed:
        book.fail(n, int(n.split(".")[1]))
    for n in unknown:
        book.unknown_outcome(n, int(n.split(".")[1]))
    return book


def read(*pairs):
    return ledger.seen_from((ledger.post_body(n), post_id) for n, post_id in pairs)


def test_everything_read_back_once_under_its_id_is_ok():
    b = book(acked=[("r.0.1", "11"), ("r.1.1", "12")])
    verdict = ledger.verify(b, read(("r.0.1", "11"), ("r.1.1", "12")))
    assert verdict.ok and verdict.lost == verdict.duplicated == verdict.renumbered == 0
    assert b.counts() == {"writes_acked": 2, "writes_failed": 0, "writes_unknown": 0}


def test_an_acknowledged_write_not_read_back_is_lost():
    b = book(acked=[("r.0.1", "11"), ("r.0.2", "12")])
    verdict = ledger.verify(b, read(("r.0.1", "11")))
    assert verdict.lost == 1 and not verdict.ok
    assert verdict.lost_sample == ["r.0.2 (id 12)"]


def test_extra_copies_are_duplicates_of_any_write_of_the_run():
    b = book(acked=[("r.0.1", "11")], unknown=["r.0.2"])
    verdict = ledger.verify(b, read(("r.0.1", "11"), ("r.0.1", "99"), ("r.0.1", "98"),
                                    ("r.0.2", "13"), ("r.0.2", "14")))
    assert verdict.duplicated == 3 and not verdict.ok
    assert verdict.duplicated_sample[0] == "r.0.1 (ids 11, 99, 98)"


def test_a_write_read_back_under_another_id_is_renumbered():
    verdict = ledger.verify(book(acked=[("r.0.1", "11")]), read(("r.0.1", "77")))
    assert verdict.renumbered == 1 and verdict.lost == 0 and not verdict.ok


def test_unknown_and_failed_writes_are_not_lost_but_reported_when_stored():
    b = book(failed=["r.0.1", "r.0.2"], unknown=["r.0.3", "r.0.4"])
    verdict = ledger.verify(b, read(("r.0.2", "12"), ("r.0.3", "13")))
    assert verdict.ok and verdict.lost == 0
    assert (verdict.failed_present, verdict.unknown_present) == (1, 1)


def test_writes_of_users_that_could_not_be_read_are_unverified_not_lost():
    b = book(acked=[("r.0.1", "11"), ("r.1.1", "12")])
    verdict = ledger.verify(b, read(("r.0.1", "11")), unread_users=[1])
    assert verdict.lost == 0 and verdict.unverified == 1 and not verdict.ok


def test_posts_of_others_are_ignored():
    verdict = ledger.verify(book(acked=[("r.0.1", "11")]),
                            read(("r.0.1", "11"), ("zz.0.1", "5"), ("zz.0.1", "6")))
    assert verdict.ok
