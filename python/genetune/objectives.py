"""Objectives in two phases, and how a search measures a candidate (``repeats``, measuring alone).

A two-phase objective splits an evaluation into ``build(params)`` (compile: any number at once)
and ``measure(built)`` (benchmark: one at a time per host, or per GPU: see
:mod:`genetune.exclusive`). Workers build on every slot and measure alone, so a timing is never
disturbed by a neighbour's benchmark. ``release(built)`` (optional) is called once the measuring
is over, whatever happened (delete the binary, free the device memory).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from genetune.evaluation import exception_score, placement, scores_from_return, with_metrics
from genetune.exclusive import building_slot, measuring_slot
from genetune.metrics import collect_metrics
from genetune.scores import Score

__all__ = ["MeasuredObjective", "TwoPhase", "TwoPhaseObjective", "checked_objective", "is_two_phase", "measured_objective"]


@runtime_checkable
class TwoPhaseObjective(Protocol):
    """An objective in two phases: ``build(params) -> built`` then ``measure(built) -> score``
    (a number, a tuple of numbers, or ``"*"``). ``built`` stays in the process that built it.
    An exception in either phase makes the candidate INVALID with its reason."""

    def build(self, params: Any) -> Any: ...

    def measure(self, built: Any) -> Any: ...


class TwoPhase:
    """A two-phase objective from two functions (and an optional ``release``). Picklable with
    cloudpickle, so lambdas and closures work as with plain objectives."""

    def __init__(self, build: Callable[[Any], Any], measure: Callable[[Any], Any], release: Callable[[Any], Any] | None = None) -> None:
        for name, value in (("build", build), ("measure", measure)):
            if not callable(value):
                raise TypeError(f"TwoPhase: {name} must be callable, got {type(value).__name__}")
        if release is not None and not callable(release):
            raise TypeError(f"TwoPhase: release must be callable or None, got {type(release).__name__}")
        self._build, self._measure, self._release = build, measure, release

    def build(self, params: Any) -> Any:
        return self._build(params)

    def measure(self, built: Any) -> Any:
        return self._measure(built)

    def release(self, built: Any) -> None:
        if self._release is not None:
            self._release(built)

    def __repr__(self) -> str:
        return f"TwoPhase(build={self._build!r}, measure={self._measure!r})"


def is_two_phase(objective: Any) -> bool:
    return callable(getattr(objective, "build", None)) and callable(getattr(objective, "measure", None))


def checked_objective(objective: Any) -> Any:
    """``objective`` when it is a callable or a complete two-phase objective; a clear TypeError
    for half of one (a ``measure`` without ``build`` or the reverse) or anything else."""
    has_build, has_measure = callable(getattr(objective, "build", None)), callable(getattr(objective, "measure", None))
    if has_measure and not has_build:
        raise TypeError(
            f"objective_function {type(objective).__name__} has measure() but no build(): a two-phase objective needs "
            "build(params) -> built (compile; run concurrently) and measure(built) -> score (benchmark; run alone)"
        )
    if has_build and not has_measure:
        raise TypeError(
            f"objective_function {type(objective).__name__} has build() but no measure(): a two-phase objective needs "
            "build(params) -> built (compile; run concurrently) and measure(built) -> score (benchmark; run alone)"
        )
    if not has_build and not callable(objective):
        raise TypeError(
            f"objective_function must be callable or a two-phase objective (build/measure), got {type(objective).__name__}"
        )
    return objective


def measured_objective(objective: Any, repeats: int, quiet: bool = False) -> Any:
    """What a search ships to its workers: the objective itself when it is a plain function
    measured once (today's behaviour exactly), else a :class:`MeasuredObjective`."""
    if repeats == 1 and not is_two_phase(objective) and not isinstance(objective, MeasuredObjective):
        return objective
    if isinstance(objective, MeasuredObjective):
        return MeasuredObjective(objective.objective, repeats, quiet)
    return MeasuredObjective(objective, repeats, quiet)


def _placement() -> str:
    return str(placement()["placement"])


@dataclass(frozen=True)
class Measurements:
    """The raw outcome of measuring one candidate ``repeats`` times."""

    values: list[Any]
    build_s: float | None
    wait_s: float | None
    measure_s: float


@dataclass(frozen=True)
class MeasuredObjective:
    """The objective with its measuring plan: ``repeats`` measurements per candidate, the score
    their median per objective; a two-phase objective is built once and measured ``repeats``
    times while holding its placement's measuring slot. Every measurement and their spread go
    into the Score's metadata (``measurements``, ``stdev``, and ``build_s``/``wait_s``/``measure_s``).

    Built-in workers evaluate it through :func:`genetune.evaluation.evaluate`; a custom worker
    that simply calls it gets the median (the measurements then stay in the process)."""

    objective: Any
    repeats: int = 1
    #: Measurements also exclude the placement's builds (``quiet_measurements``).
    quiet: bool = False

    def build(self, params: Any) -> Any:
        """The objective's build, inside the placement's building slot (quiet measuring)."""
        with building_slot(_placement(), self.quiet):
            return self.objective.build(params)

    @property
    def two_phase(self) -> bool:
        return is_two_phase(self.objective)

    def measure_params(self, params: Any, times: int) -> Measurements:
        """Builds (two-phase) and measures ``times`` times; exceptions propagate."""
        if not self.two_phase:
            started = time.perf_counter()
            values = [self.objective(params) for _ in range(times)]
            return Measurements(values, None, None, time.perf_counter() - started)
        started = time.perf_counter()
        built = self.build(params)
        return self.measure_built(built, times, time.perf_counter() - started)

    def measure_built(self, built: Any, times: int, build_s: float | None) -> Measurements:
        """Measures a built candidate ``times`` times holding its placement's measuring slot,
        then releases it; exceptions propagate."""
        try:
            with measuring_slot(_placement(), self.quiet) as wait_s:
                began = time.perf_counter()
                values = [self.objective.measure(built) for _ in range(times)]
                measure_s = time.perf_counter() - began
        finally:
            release = getattr(self.objective, "release", None)
            if callable(release):
                release(built)
        return Measurements(values, build_s, wait_s, measure_s)

    def __call__(self, params: Any) -> Any:
        values = self.measure_params(params, self.repeats).values
        return median_value(values)

    def genetune_evaluate(self, param_id: int | str, params: Any, num_objectives: int, worker: str) -> Score:
        """One evaluation as a Score (used by :func:`genetune.evaluation.evaluate`)."""

        start = time.perf_counter()
        with collect_metrics() as metrics:
            try:
                measured = self.measure_params(params, self.repeats)
            except Exception as err:
                return with_metrics(exception_score(err, param_id, params, num_objectives, start, worker), metrics)
        return with_metrics(self.score_of(param_id, params, num_objectives, worker, start, measured), metrics)

    def build_step(self, param_id: int | str, params: Any, num_objectives: int, worker: str) -> BuildOutcome | Score:
        """Only the build (a worker that measures elsewhere, e.g. one at a time from its parent
        process): the built artifact with its time and logged metrics, or the INVALID Score."""

        start = time.perf_counter()
        with collect_metrics() as metrics:
            try:
                built = self.build(params)
            except Exception as err:
                return with_metrics(exception_score(err, param_id, params, num_objectives, start, worker), metrics)
        return BuildOutcome(built, time.perf_counter() - start, dict(metrics))

    def measure_step(self, param_id: int | str, params: Any, built: BuildOutcome, num_objectives: int, worker: str) -> Score:
        """The measurements of a :meth:`build_step` outcome, as the Score of the evaluation."""

        start = time.perf_counter() - built.build_s
        with collect_metrics() as metrics:
            metrics.update(built.metrics)
            try:
                measured = self.measure_built(built.built, self.repeats, built.build_s)
            except Exception as err:
                return with_metrics(exception_score(err, param_id, params, num_objectives, start, worker), metrics)
        return with_metrics(self.score_of(param_id, params, num_objectives, worker, start, measured), metrics)

    def score_of(self, param_id: int | str, params: Any, num_objectives: int, worker: str, start: float, measured: Measurements) -> Score:
        """The Score of ``repeats`` measurements: their median, with every one and their spread."""

        where = f"candidate {param_id} {params!r}"
        checked = [scores_from_return(v, num_objectives, where) for v in measured.values]
        meta: dict[str, Any] = {"worker": worker, **placement(), "repeats": self.repeats}
        timing = {"build_s": measured.build_s, "wait_s": measured.wait_s, "measure_s": measured.measure_s}
        meta.update({k: v for k, v in timing.items() if v is not None})
        rows = [list(scores) for scores, _ in checked]
        meta["measurements"] = [r[0] for r in rows] if num_objectives == 1 else rows
        failed = next(((i, reason) for i, (_, reason) in enumerate(checked) if reason), None)
        duration = time.perf_counter() - start
        if failed is not None:
            i, reason = failed
            if self.repeats > 1:
                reason = f"{reason} (measurement {i + 1} of {self.repeats})"
            return Score(param_id=param_id, params=params, score="*", num_objectives=num_objectives, reason=reason, duration_s=duration, metadata=meta)
        medians = [statistics.median(col) for col in zip(*rows, strict=True)]
        spread = [statistics.stdev(col) if len(col) > 1 else 0.0 for col in zip(*rows, strict=True)]
        meta["stdev"] = spread[0] if num_objectives == 1 else spread
        value: Any = medians[0] if num_objectives == 1 else tuple(medians)
        return Score(param_id=param_id, params=params, score=value, num_objectives=num_objectives, duration_s=duration, metadata=meta)


@dataclass(frozen=True)
class BuildOutcome:
    """A built candidate on its way to be measured (it must pickle to cross processes)."""

    built: Any
    build_s: float
    metrics: dict[str, Any]


def median_value(values: list[Any]) -> Any:
    """The per-objective median of raw return values (``"*"`` if any is not a number)."""
    try:
        if all(isinstance(v, list | tuple) for v in values):
            return tuple(statistics.median(float(x) for x in col) for col in zip(*values, strict=True))
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return "*"
    if not all(math.isfinite(v) for v in numbers):
        return "*"
    return statistics.median(numbers)

