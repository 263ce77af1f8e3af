"""`chirp migrate --wait`: connection attempts retried with backoff until the time is up."""

import socket

import pytest

from chirp.db.migrate import DatabaseNotAnswering, wait_for_database


@pytest.fixture
def nothing_listening() -> str:
    with socket.socket() as sock:  # a port that was free a moment ago: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://chirp@127.0.0.1:{port}/chirp"


def test_no_wait_means_one_attempt(nothing_listening):
    retries = []
    with pytest.raises(DatabaseNotAnswering) as error:
        wait_for_database(nothing_listening, 0, on_retry=lambda *a: retries.append(a))
    assert error.value.attempts == 1 and retries == []
    assert str(error.value).startswith(f"{nothing_listening} did not answer within 0 s (1 attempt)")
    assert "refused" in error.value.reason.lower()


def test_retries_with_growing_pauses_until_the_time_is_up(nothing_listening):
    retries = []
    with pytest.raises(DatabaseNotAnswering) as error:
        wait_for_database(nothing_listening, 1.0,
                          on_retry=lambda attempt, exc, pause: retries.append((attempt, pause)))
    assert error.value.attempts == len(retries) + 1 >= 3
    pauses = [pause for _, pause in retries]
    assert pauses == sorted(pauses) and sum(pauses) <= 1.0  # never sleeps past the budget
