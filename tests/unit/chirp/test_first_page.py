"""What a first page's snapshot surely holds, from where it was read (pure)."""

from chirp.reads import snapshot_holds_writes_before
from chirp.routing import CLOCK_MARGIN_SECONDS as MARGIN


def test_a_primary_snapshot_holds_the_writes_before_the_read_started_less_the_clock_margin():
    assert snapshot_holds_writes_before(100.0, True, 98.0, 100.05) == 100.0 - MARGIN


def test_a_replica_snapshot_holds_only_what_the_replica_was_proven_to_hold():
    assert snapshot_holds_writes_before(100.0, False, 98.0, 100.05) == 98.0


def test_a_layout_checked_long_ago_vouches_only_for_the_writes_before_its_check():
    assert snapshot_holds_writes_before(100.0, True, 98.0, 97.0) == 97.0 - MARGIN
    assert snapshot_holds_writes_before(100.0, False, 98.0, 97.0) == 97.0 - MARGIN
