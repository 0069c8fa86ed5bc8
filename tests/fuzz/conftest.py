"""The fuzz suite's budget and its one rule.

Every test here feeds random and mutated input to one of the kit's parsers and asserts that
nothing escapes but the kit's own errors (:class:`sandbox.errors.SandboxError` subclasses), or,
for the CNI plugins, which are separate programs, the spec's error JSON and no traceback.

The budget is fixed so that CI stays fast and deterministic: hypothesis runs derandomized (the
same examples every run, no example database written), with ``max_examples`` per test chosen so
that the whole directory takes well under a minute on a 2-core machine. A failure prints the
falsifying example (hypothesis' report, plus the input as bytes through :func:`shown`); run with
``SANDBOX_FUZZ_SCALE=10`` for a longer hunt (still deterministic for a given scale).
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("SANDBOX_FUZZ_SCALE") or 1)

settings.register_profile(
    "sandbox-fuzz", derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


def budget(n: int) -> settings:
    """The settings of one fuzz test: ``n`` examples (times SANDBOX_FUZZ_SCALE)."""
    return settings(settings.get_profile("sandbox-fuzz"), max_examples=max(1, int(n * SCALE)))
