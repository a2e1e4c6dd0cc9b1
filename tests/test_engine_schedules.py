"""The two schedules through `genetune.Engine`: ``"generational"`` replays the golden streams of
the engine before steady-state scheduling bit for bit; ``"steady"`` hands out candidates at any
time, chosen with every result so far, and keeps every guarantee of the engine."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine_golden import GOLDEN, SCENARIOS, run


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_generational_schedule_replays_the_golden_streams(scenario: dict[str, Any]) -> None:
    golden = json.loads(GOLDEN.read_text())[scenario["name"]]
    got = run(scenario, schedule="generational")
    assert got["head"] == golden["head"]
    assert (got["count"], got["digest"]) == (golden["count"], golden["digest"])
