"""`PrefectTracker`: a search's lifecycle in the Prefect UI of the flow run that runs it.

* run logs (``get_run_logger``) for the search start, each generation's end and the search end;
* a progress artifact (``genetune-progress``) updated after every generation, 100 at the end;
* a table artifact per generation (``genetune-generation-<n>``): the best candidates of that
  generation and its invalid rate;
* a markdown summary (``genetune-summary``): best configurations, Pareto front size, stop reason;
* a link artifact (``genetune-mlflow-run``) when ``mlflow_run_url`` is given.

Construct it inside the flow (or task) run: tracker hooks run on the search's tracker thread,
where Prefect's run context (context variables) is not visible, so the tracker captures the
caller's context at construction and runs every hook in a copy of it. Constructed outside a
run, it does nothing.
"""

from __future__ import annotations

import contextvars
import json
import math
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from genetune.results import SearchResult
from genetune.trackers.base import BaseTracker

__all__ = ["PrefectTracker"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)


class PrefectTracker(BaseTracker):
    """Prefect logs and artifacts for a search (see the module docstring).

    ``top_k``: rows of each generation's table. ``key_prefix``: artifact keys start with it
    (lowercase letters, digits and dashes). ``mlflow_run_url``: adds a link artifact (a URL, or
    a function giving it once the search starts, such as ``MLflowTracker.run_url``).
    """

    def __init__(self, top_k: int = 10, key_prefix: str = "genetune", mlflow_run_url: str | Callable[[], str | None] | None = None) -> None:
        self.top_k = top_k
        self.key_prefix = key_prefix
        self.mlflow_run_url = mlflow_run_url
        active = FlowRunContext.get() is not None or TaskRunContext.get() is not None
        # The caller's context (flow run, settings such as the API URL): the hooks run in a copy.
        self._context: contextvars.Context | None = contextvars.copy_context() if active else None
        self._progress_id: UUID | None = None
        self._generations = 0
        self._rows: dict[int, list[dict[str, Any]]] = {}
        self._directions: list[str] = []
        self.artifact_keys: list[str] = []

    # ----- plumbing --------------------------------------------------------------------------

    def _mlflow_url(self) -> str | None:
        link = self.mlflow_run_url
        return link() if callable(link) else link

    @property
    def active(self) -> bool:
        return self._context is not None

    def _run(self, function: Any, *args: Any) -> None:
        if self._context is not None:
            self._context.run(function, *args)

    def _log(self, message: str, level: int = 20) -> None:
        try:
            get_run_logger().log(level, message)
        except MissingContextError:
            pass

    def _key(self, *parts: Any) -> str:
        key = "-".join([self.key_prefix, *(str(p) for p in parts)]).lower()
        return "".join(c if c.isalnum() or c == "-" else "-" for c in key)

    # ----- hooks -------------------------------------------------------------------------------

    def search_starts(self, manifest: dict[str, Any]) -> None:
        self._run(self._search_starts, manifest)

    def _search_starts(self, manifest: dict[str, Any]) -> None:
        config = manifest.get("config") or {}
        self._generations = int(config.get("generations") or 0)
        self._directions = [str(d) for d in (config.get("directions") or ["min"])]
        self._log(
            f"genetune search starts: {self._generations} generations of {config.get('pool_size')} candidates, "
            f"seed {manifest.get('seed')}, run folder {manifest.get('run_folder')}"
        )
        key = self._key("progress")
        created = create_progress_artifact(progress=0.0, key=key, description="genetune search progress (generations)")
        self._progress_id = created if isinstance(created, UUID) else None
        self.artifact_keys.append(key)
        url = self._mlflow_url()
        if url:
            key = self._key("mlflow-run")
            create_link_artifact(link=url, link_text="MLflow run", key=key, description="The MLflow run of this search")
            self.artifact_keys.append(key)

    def post_objective(self, candidate: dict[str, Any], score: dict[str, Any]) -> None:
        # Plain bookkeeping: no Prefect call per candidate.
        if self._context is None or score.get("status") == "baseline":
            return
        self._rows.setdefault(int(candidate["generation"]), []).append(score)

    def generation_ends(self, generation: int, stats: dict[str, Any]) -> None:
        self._run(self._generation_ends, generation, stats)

    def _sort_key(self, row: dict[str, Any]) -> tuple[int, float]:
        used = row.get("norm_scores") or row.get("scores") or [math.nan]
        first = float(used[0]) if used and used[0] is not None else math.nan
        if math.isnan(first):
            return (1, 0.0)
        return (0, -first if self._directions and self._directions[0] == "max" else first)

    def _generation_ends(self, generation: int, stats: dict[str, Any]) -> None:
        rows = self._rows.pop(generation, [])
        invalid = sum(r.get("status") == "invalid" for r in rows)
        rate = stats.get("invalid_rate", invalid / len(rows) if rows else 0.0)
        top = sorted(rows, key=self._sort_key)[: self.top_k]
        table = [
            {
                "rank": rank + 1,
                "id": r.get("id"),
                "scores": _fmt(r.get("scores")),
                "status": r.get("status"),
                "params": json.dumps(r.get("params"), sort_keys=True, default=str),
                "reason": r.get("reason") or "",
            }
            for rank, r in enumerate(top)
        ]
        key = self._key("generation", generation)
        create_table_artifact(
            table=table,
            key=key,
            description=f"Generation {generation}: top {len(table)} of {len(rows)}, invalid rate {float(rate):.1%}, best so far {_fmt(stats.get('best'))}",
        )
        self.artifact_keys.append(key)
        if self._progress_id is not None and self._generations:
            update_progress_artifact(self._progress_id, progress=min(100.0, 100.0 * (generation + 1) / self._generations))
        self._log(
            f"Generation {generation} ended: best so far {_fmt(stats.get('best'))}, "
            f"{len(rows)} evaluated, invalid rate {float(rate):.1%}"
        )

    def search_ends(self, reason: str, summary: dict[str, Any]) -> None:
        self._run(self._search_ends, reason, summary)

    def _search_ends(self, reason: str, summary: dict[str, Any]) -> None:
        if self._progress_id is not None and reason in ("completed", "exhausted"):
            update_progress_artifact(self._progress_id, progress=100.0)
        best = summary.get("best")
        lines = [
            "# genetune search",
            "",
            f"* stop reason: **{reason}**",
            f"* generations: {summary.get('generations')}",
            f"* evaluations: {summary.get('evaluations')} ({summary.get('invalid')} invalid)",
            f"* best score(s): {_fmt(best)}",
            *(
                [
                    f"* re-measured winner: id {summary['remeasured_best_id']}, mean {_fmt(summary['remeasured_best_mean'])} "
                    f"(95% CI {_fmt(summary.get('remeasured_best_ci_low'))}–{_fmt(summary.get('remeasured_best_ci_high'))}, "
                    f"{summary.get('remeasured_best_n')} measurements)"
                ]
                if summary.get("remeasured_best_mean") is not None
                else []
            ),
            f"* Pareto front size: {summary.get('pareto_size') if summary.get('pareto_size') is not None else 'n/a (one objective)'}",
            f"* wall time: {float(summary.get('wall_time_s') or 0.0):.1f} s",
            f"* run folder: `{summary.get('run_folder')}`",
            f"* results: `{summary.get('result_csv')}`",
        ]
        best_rows = self._best_configs(summary.get("result_csv"))
        if best_rows:
            lines += ["", "## Best configurations", "", "| id | generation | scores | re-measured mean | params |", "|---|---|---|---|---|"]
            lines += [f"| {r['id']} | {r['generation']} | {r['scores']} | {r['remeasured']} | `{r['params']}` |" for r in best_rows]
        url = self._mlflow_url()
        if url:
            lines += ["", f"[MLflow run]({url})"]
        key = self._key("summary")
        create_markdown_artifact(markdown="\n".join(lines), key=key, description=f"genetune search summary ({reason})")
        self.artifact_keys.append(key)
        self._log(f"genetune search ended ({reason}): best {_fmt(best)}, {summary.get('evaluations')} evaluations")

    def _best_configs(self, result_csv: Any) -> list[dict[str, Any]]:
        if not result_csv:
            return []
        try:
            result = SearchResult.from_csv(result_csv, directions=self._directions, num_objectives=len(self._directions))
            best = result.get_best_result()
        except Exception:  # the summary is still useful without them
            return []
        rows = best if isinstance(best, list) else [best]
        out = []
        for r in rows[: self.top_k]:
            scores = [v for k, v in r.items() if str(k).startswith("score_")]
            out.append(
                {
                    "id": r.get("id"),
                    "generation": r.get("generation"),
                    "scores": _fmt(scores),
                    "remeasured": _fmt(r["remeasured_mean"]) if r.get("remeasured_mean") is not None else "",
                    "params": json.dumps(r.get("params"), sort_keys=True, default=str),
                }
            )
        return out
