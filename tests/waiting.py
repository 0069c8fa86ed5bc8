"""Waiting for the kernel's state instead of assuming it.

Some teardown finishes after the call that started it has returned: a network namespace is
freed by a kernel work queue once its last reference goes (``cleanup_net``), so the host end of a
veth whose peer lived there vanishes a little later; a killed process stays a zombie until
its parent reaps it. A test that asserts such state right away passes on a quiet machine and
fails on a busy one. :func:`eventually` polls with a deadline and reports what it saw last.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def eventually(read: Callable[[], T], ok: Callable[[T], bool] = bool, *, timeout: float = 15.0,
               what: str = "the kernel's state") -> T:
    """Call ``read()`` until ``ok(value)`` holds (polling faster at first); return that value.
    After ``timeout`` seconds, fail the test with the last value seen."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = read()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g} s; last seen {value!r}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
