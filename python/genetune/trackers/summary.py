"""A finished search in markdown: what the Prefect summary artifact shows and the MLflow run's
description (``mlflow.note.content``) says."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from genetune.results import SearchResult

__all__ = ["format_value", "search_summary_markdown"]


def format_value(value: Any) -> str:
    """A score or vector of scores, short (``nan`` for NaN)."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    return str(value)


def search_summary_markdown(
    reason: str, summary: Mapping[str, Any], directions: Sequence[str], top_k: int = 10, links: Mapping[str, str] | None = None
) -> str:
    """The search's end in markdown: stop reason, counts, best score(s), wall time, where the
    results are, the best configurations (from ``summary["result_csv"]``) and ``links``
    (text to URL)."""
    best = summary.get("best")
    pareto = summary.get("pareto_size")
    lines = [
        "# genetune search",
        "",
        f"* stop reason: **{reason}**",
        f"* generations: {summary.get('generations')}",
        f"* evaluations: {summary.get('evaluations')} ({summary.get('invalid')} invalid)",
        f"* best score(s): {format_value(best)}",
        *(
            [
                f"* re-measured winner: id {summary['remeasured_best_id']}, mean {format_value(summary['remeasured_best_mean'])} "
                f"(95% CI {format_value(summary.get('remeasured_best_ci_low'))}–{format_value(summary.get('remeasured_best_ci_high'))}, "
                f"{summary.get('remeasured_best_n')} measurements)"
            ]
            if summary.get("remeasured_best_mean") is not None
            else []
        ),
        f"* Pareto front size: {pareto if pareto is not None else 'n/a (one objective)'}",
        f"* wall time: {float(summary.get('wall_time_s') or 0.0):.1f} s",
        f"* run folder: `{summary.get('run_folder')}`",
        f"* results: `{summary.get('result_csv')}`",
    ]
    best_rows = _best_configs(summary.get("result_csv"), directions, top_k)
    if best_rows:
        lines += ["", "## Best configurations", "", "| id | generation | scores | re-measured mean | params |", "|---|---|---|---|---|"]
        lines += [f"| {r['id']} | {r['generation']} | {r['scores']} | {r['remeasured']} | `{r['params']}` |" for r in best_rows]
    for text, url in (links or {}).items():
        lines += ["", f"[{text}]({url})"]
    return "\n".join(lines)


def _best_configs(result_csv: Any, directions: Sequence[str], top_k: int) -> list[dict[str, Any]]:
    if not result_csv:
        return []
    try:
        result = SearchResult.from_csv(result_csv, directions=list(directions), num_objectives=len(directions))
        best = result.get_best_result()
    except Exception:  # the summary is still useful without them
        return []
    rows = best if isinstance(best, list) else [best]
    out = []
    for r in rows[:top_k]:
        scores = [v for k, v in r.items() if str(k).startswith("score_")]
        out.append(
            {
                "id": r.get("id"),
                "generation": r.get("generation"),
                "scores": format_value(scores),
                "remeasured": format_value(r["remeasured_mean"]) if r.get("remeasured_mean") is not None else "",
                "params": json.dumps(r.get("params"), sort_keys=True, default=str),
            }
        )
    return out
