"""One polling helper for every test tier: wait on a condition, never on a clock."""

import time


class WaitTimeout(AssertionError):
    """A condition did not hold in time; the message names it and its last value."""


def wait_until(condition, *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition",
               tolerate: tuple[type[BaseException], ...] = ()):
    """Call `condition()` until it returns something truthy, and return that value.

    Exceptions of the types in `tolerate` count as "not yet" (e.g. an API server that is briefly
    unavailable); anything else propagates at once. Fails with WaitTimeout after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = condition()
        except tolerate as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")
        time.sleep(interval)
