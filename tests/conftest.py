"""Shared settings and helpers for genetune's Python tests.

Hypothesis profiles (pick one with ``HYPOTHESIS_PROFILE``):

* ``default`` / ``ci``: a moderate number of examples, so the suite stays fast on 2 cores;
* ``thorough``: 500 examples per property, for a long local or nightly run.

Helpers the test modules share live in ``tests_support`` (configurations, result tables, ports,
an isolated Prefect environment) and ``engine_support`` (ask/tell loops, candidate checks).
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

_COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("default", max_examples=100, **_COMMON)
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("thorough", max_examples=500, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
