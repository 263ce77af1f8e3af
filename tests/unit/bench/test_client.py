"""The bench's open-loop schedule: when each client thread's operations are due."""

import pytest

from bench.stagebench.client import due_offset


def test_the_threads_take_turns_evenly_spaced_at_the_rate():
    threads, rate = 4, 200.0
    offsets = sorted(due_offset(n, t, threads, rate) for n in range(25) for t in range(threads))
    assert offsets == pytest.approx([k / rate for k in range(100)])


def test_each_thread_sends_at_its_share_of_the_rate():
    assert due_offset(1, 2, 4, 200.0) - due_offset(0, 2, 4, 200.0) == pytest.approx(4 / 200.0)
