"""The re-measurement phase (``remeasure_top``): when a search ends, its best distinct candidates
(and the baseline, when normalizing) are measured ``remeasure_repeats`` more times in interleaved
rounds, in one evaluation on one placement, so the reported winner is not the luckiest
measurement (the winner's curse).

Which candidates: :func:`select` (the best by their own measurement and by their neighbourhood).

The phase is one task: every item is built once (two-phase objectives), then, holding the
placement's measuring slot, each round measures every item once in a seeded random order; a
plain objective is simply called once per item and round. Each measurement becomes a row with
status ``"remeasure"`` and id ``remeasure-<id>-<round>`` (``metadata["remeasure_of"]``: the
candidate), logged and sent to the trackers like any evaluation. With ``normalize=True`` a round's
measurements are normalized by the baseline's measurement of the same round.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from genetune.config import ProblemType, SearchConfiguration
from genetune.evaluation import exception_score, placement, scores_from_return
from genetune.exclusive import building_slot, measuring_slot
from genetune.objectives import is_two_phase
from genetune.results import SearchResult, pareto_mask
from genetune.rows import Row, told_scores
from genetune.scores import BASELINE_CONFIG, BASELINE_ID, Score, normalize_scores
from genetune.smoothing import smoothed
from genetune.workers.base import BaseWorker, RunOptions

__all__ = ["STATUS", "RemeasureTask", "own_share", "remeasure", "remeasure_id", "remeasured_summary", "select"]

#: The status of a re-measurement row.
STATUS: Final[Literal["remeasure"]] = "remeasure"
#: The id of the phase's one task.
TASK_ID = "remeasure"


def remeasure_id(item_id: int | str, round_index: int) -> str:
    return f"{STATUS}-{item_id}-{round_index}"


def _params_key(params: Any) -> str:
    return json.dumps(params, sort_keys=True, default=str)


#: Candidates whose neighbour-smoothed score is computed (the best by their own measurement):
#: bounds the phase's selection cost on very long searches.
SMOOTHED_POOL: Final = 1_000


def own_share(top: int) -> int:
    """How many of ``remeasure_top`` are chosen by their own measurement (the rest by their
    neighbour-smoothed score): one in five, at least one."""
    return max(1, math.ceil(top / 5))


def select(rows: Sequence[Row], config: SearchConfiguration) -> list[Row]:
    """The candidates to re-measure (distinct valid ones; a repeated candidate counts by its mean).

    One objective: the best :func:`own_share` of ``remeasure_top`` by their own measurement, so
    the plain search's winner (a narrow peak included) is always re-measured, then the best of
    the others by their score smoothed over their nearest evaluated neighbours
    (:func:`genetune.smoothing.smoothed`): with noise as large as the gaps between the leaders, the
    truly best candidate is rarely among the few luckiest single measurements, but usually sits
    in a good neighbourhood. Several objectives: up to ``remeasure_top`` of the Pareto front,
    spread along its first objective."""
    assert config.directions is not None
    top = config.remeasure_top
    signs = np.array([-1.0 if d == ProblemType.MAX else 1.0 for d in config.directions])
    valid = [r for r in rows if r["status"] == "valid" and all(math.isfinite(v) for v in told_scores(r))]
    groups: dict[str, list[Row]] = {}
    for r in valid:
        groups.setdefault(_params_key(r["params"]), []).append(r)
    candidates = [group[0] for group in groups.values()]
    if not candidates:
        return []
    if config.num_objectives == 1:
        means = np.array([np.mean([told_scores(r)[0] for r in group]) for group in groups.values()]) * signs[0]
        by_own = np.argsort(means, kind="stable")
        chosen = [int(i) for i in by_own[: own_share(top)]]
        if len(chosen) < min(top, len(candidates)):
            pool = [int(i) for i in by_own[: max(SMOOTHED_POOL, top)]]
            smooth = smoothed([r["params"] for r in candidates], means, pool)
            for j in np.lexsort((means[pool], smooth)):
                if len(chosen) == top:
                    break
                if pool[int(j)] not in chosen:
                    chosen.append(pool[int(j)])
        return [candidates[i] for i in chosen]
    scores = np.array([told_scores(r) for r in candidates], dtype=np.float64) * signs
    front = np.flatnonzero(pareto_mask(scores, "min"))
    front = front[np.argsort(scores[front, 0], kind="stable")]
    if len(front) > top:
        front = front[np.unique(np.round(np.linspace(0, len(front) - 1, top)).astype(int))]
    return [candidates[int(i)] for i in front]


@dataclass(frozen=True)
class RemeasureTask:
    """What the phase ships to a worker as the objective of its one evaluation (id
    ``"remeasure"``). Built-in workers call :meth:`genetune_evaluate`; the Score's
    ``metadata["remeasure"]`` holds, per item, each round's scores (None if it failed) and reason."""

    objective: Any
    items: tuple[tuple[int | str, Any], ...]
    rounds: int
    seed: int
    quiet: bool = False

    def __call__(self, params: Any) -> Any:
        raise TypeError("remeasure_top needs a worker that evaluates through genetune.evaluation.evaluate (every built-in worker does)")

    def genetune_evaluate(self, param_id: int | str, params: Any, num_objectives: int, worker: str) -> Score:
        start = time.perf_counter()
        n = len(self.items)
        values: list[list[list[float] | None]] = [[None] * self.rounds for _ in range(n)]
        reasons: list[list[str]] = [[""] * self.rounds for _ in range(n)]
        seconds: list[list[float]] = [[0.0] * self.rounds for _ in range(n)]
        two_phase = is_two_phase(self.objective)
        built: list[Any] = [None] * n
        broken: list[str] = [""] * n
        where = placement()

        def one(i: int, r: int) -> None:
            item_id, item_params = self.items[i]
            began = time.perf_counter()
            try:
                raw = self.objective.measure(built[i]) if two_phase else self.objective(item_params)
                scores, reason = scores_from_return(raw, num_objectives, f"re-measuring {item_id} {item_params!r}")
            except Exception as err:
                scores, reason = (math.nan,) * num_objectives, exception_score(err, item_id, item_params, num_objectives, began, worker).reason
            seconds[i][r] = time.perf_counter() - began
            values[i][r] = None if reason else list(scores)
            reasons[i][r] = reason

        try:
            if two_phase:
                for i, (item_id, item_params) in enumerate(self.items):
                    try:
                        with building_slot(str(where["placement"]), self.quiet):
                            built[i] = self.objective.build(item_params)
                    except Exception as err:
                        broken[i] = exception_score(err, item_id, item_params, num_objectives, start, worker).reason
            rng = np.random.default_rng([self.seed, 0x7E])
            with measuring_slot(str(where["placement"]), self.quiet) if two_phase else nullcontext():
                for r in range(self.rounds):
                    for i in rng.permutation(n):
                        if broken[int(i)]:
                            reasons[int(i)][r] = broken[int(i)]
                        else:
                            one(int(i), r)
        finally:
            release = getattr(self.objective, "release", None)
            if two_phase and callable(release):
                for b, fail in zip(built, broken, strict=True):
                    if not fail:
                        release(b)
        meta = {"worker": worker, **where, "remeasure": {"values": values, "reasons": reasons, "seconds": seconds}}
        return Score(param_id=param_id, params=None, score=0.0, num_objectives=num_objectives, duration_s=time.perf_counter() - start, metadata=meta)


def _rows_of(score: Score, task: RemeasureTask, generation: int, num_objectives: int, normalize: bool) -> list[Row]:
    meta = score.metadata_dict()
    data = meta.get("remeasure")
    base_meta = {k: v for k, v in meta.items() if k not in ("remeasure", "metrics")}
    n, rounds = len(task.items), task.rounds
    if not isinstance(data, Mapping):  # the task itself failed (crash, timeout): every row says why
        reason = score.reason or "the re-measurement task returned no measurements"
        data = {"values": [[None] * rounds for _ in range(n)], "reasons": [[reason] * rounds for _ in range(n)], "seconds": [[0.0] * rounds for _ in range(n)]}
    ids = [item_id for item_id, _ in task.items]
    base = ids.index(BASELINE_ID) if normalize and BASELINE_ID in ids else None
    rows: list[Row] = []
    for i, (item_id, params) in enumerate(task.items):
        for r in range(rounds):
            v = data["values"][i][r]
            raw = [float(x) for x in v] if v is not None else [math.nan] * num_objectives
            reason = str(data["reasons"][i][r]) if v is None else ""
            norm: list[float] | None = None
            if normalize:
                b = data["values"][base][r] if base is not None else None
                if b is None:
                    norm = [math.nan] * num_objectives
                    reason = reason or f"the baseline's re-measurement of round {r} failed"
                else:
                    norm = [float(x) for x in normalize_scores(np.asarray(raw), np.asarray(b, dtype=np.float64))]
                    if v is not None and not all(math.isfinite(x) for x in norm):
                        reason = "invalid normalized score (baseline is zero or invalid)"
            rows.append(
                {
                    "generation": generation,
                    "id": remeasure_id(item_id, r),
                    "params": params,
                    "scores": raw,
                    "norm_scores": norm,
                    "status": STATUS,
                    "reason": reason,
                    "duration_s": float(data["seconds"][i][r]),
                    "metadata": {**base_meta, "remeasure_of": item_id, "round": r},
                }
            )
    return rows


def remeasure(
    worker: BaseWorker,
    objective: Any,
    rows: Sequence[Row],
    config: SearchConfiguration,
    options: RunOptions,
    *,
    generation: int,
    seed: int,
    finished: Mapping[Any, Row],
    record: Callable[[Row], None],
) -> list[Row]:
    """Runs the phase (unless the evaluation log already holds it: a resumed search) and returns
    its rows; each new row goes to ``record`` (evaluation log, trackers)."""
    chosen = select(rows, config)
    if not chosen:
        return []
    items: list[tuple[int | str, Any]] = [(r["id"], r["params"]) for r in chosen]
    if config.normalize:
        items.insert(0, (BASELINE_ID, dict(BASELINE_CONFIG)))
    task = RemeasureTask(objective, tuple(items), config.remeasure_repeats, seed, config.quiet_measurements)
    expected = [remeasure_id(item_id, r) for item_id, _ in items for r in range(task.rounds)]
    if all(i in finished for i in expected):
        return [finished[i] for i in expected]
    timeout = options.task_timeout * len(items) * (task.rounds + 1) if options.task_timeout is not None else None
    quiet = RunOptions(options.num_workers, timeout, None, options.extra)
    scores = worker.run(task, [None], [TASK_ID], config.num_objectives, **quiet.as_kwargs())
    score = next((s for s in scores if s.param_id == TASK_ID), None)
    if score is None:
        raise RuntimeError(f"{worker.name} returned no score for the re-measurement task")
    new = _rows_of(score, task, generation, config.num_objectives, config.normalize)
    for row in new:
        record(row)
    return new


def remeasured_summary(result: SearchResult | None, remeasure_top: int) -> dict[str, Any]:
    """What the search's summary (trackers) says of the re-measured winner: ``remeasured_best_id``,
    ``remeasured_best_mean``, ``remeasured_best_ci_low``/``_high``, ``remeasured_best_n`` (one
    objective), ``remeasured`` (items re-measured); empty without a re-measurement."""
    if result is None or remeasure_top <= 0:
        return {}
    table = result.remeasured()
    if table.empty:
        return {}
    out: dict[str, Any] = {"remeasured": len(table)}
    try:
        best = result.get_best_result()
    except ValueError:
        return out
    if isinstance(best, dict) and "remeasured_mean" in best and result.num_objectives == 1:
        low, high = best["remeasured_ci95"]
        out.update(
            remeasured_best_id=best["id"],
            remeasured_best_mean=best["remeasured_mean"],
            remeasured_best_ci_low=low,
            remeasured_best_ci_high=high,
            remeasured_best_n=best["remeasured_n"],
        )
    return out
