"""Helpers shared by tests."""

from __future__ import annotations

import json
import math
from typing import Any

import genetune as gt


def table(result: gt.SearchResult) -> list[tuple[Any, ...]]:
    """The part of a result that must be identical between equivalent runs: params and scores
    in order (durations and process ids naturally differ)."""
    df = result.get_results()
    cols = [c for c in df.columns if c.startswith(("score_", "norm_score_"))]
    rows = []
    for record in df.to_dict("records"):
        scores = tuple("nan" if isinstance(record[c], float) and math.isnan(record[c]) else record[c] for c in cols)
        rows.append((record["generation"], record["id"], json.dumps(record["params"], sort_keys=True), scores, record["status"], record["reason"]))
    return rows
